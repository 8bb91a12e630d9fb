//! The admin API's errors, and the one table that turns each into a status.
//! Every error answers `{"error": "..."}` ([`crate::admin::api::ErrorBody`]).

use http::{HeaderValue, Response, StatusCode, header};

use super::json;
use crate::admin::api::ErrorBody;
use crate::control::ControlError;
use crate::control::fleet::FleetError;
use crate::control::fleet::desired::DesiredError;
use crate::request::error::Body;
use crate::store::KvError;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No route has this method and path.
    #[error("no such admin route")]
    NoRoute,
    /// A token is set and the request did not carry it.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// The body could not be read or parsed.
    #[error("{0}")]
    BadBody(String),
    /// The body is over the route's limit, in bytes.
    #[error("body larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The key-value store has no such key.
    #[error("no such key")]
    NoKey,
    /// The method is not one the route takes.
    #[error("use {0}")]
    Method(&'static str),
    /// A deployment change, promote, rollback or upload was refused.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A key-value call failed.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// A `/v1/fleet` route on a node without `[cluster] registry`.
    #[error("this node takes no part in fleet rollouts: set [cluster] etcd and registry")]
    NoFleet,
    /// A fleet change failed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

impl AdminError {
    /// The status each error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute | Self::NoKey => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadBody(_) => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Control(ControlError::NoFunction(_)) => StatusCode::NOT_FOUND,
            Self::Control(ControlError::Invalid(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Control(ControlError::Conflict(_)) => StatusCode::CONFLICT,
            Self::Control(ControlError::Io(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Kv(KvError::NotFound) => StatusCode::NOT_FOUND,
            Self::Kv(KvError::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Kv(KvError::Invalid(_) | KvError::OutOfRange(_) | KvError::AccessDenied) => {
                StatusCode::BAD_REQUEST
            }
            Self::Kv(KvError::Io(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NoFleet => StatusCode::NOT_FOUND,
            Self::Fleet(FleetError::Desired(DesiredError::Refused(_))) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Fleet(FleetError::Desired(DesiredError::Contended(_))) => StatusCode::CONFLICT,
            Self::Fleet(FleetError::Desired(DesiredError::Missing(_))) => StatusCode::NOT_FOUND,
            Self::Fleet(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The JSON response.
    pub fn into_response(self) -> Response<Body> {
        let mut r = json(
            self.status(),
            &ErrorBody {
                error: self.to_string(),
            },
        );
        if let Self::Unauthorized = self {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}
