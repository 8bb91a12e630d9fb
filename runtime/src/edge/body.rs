//! The response body type of every wedge response, the request path's and the
//! admin API's alike.

use bytes::Bytes;
use http_body_util::Full;

/// The response body type of every wedge response.
pub type Body = Full<Bytes>;
