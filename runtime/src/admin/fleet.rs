//! The admin API's fleet routes, under `/v1/fleet`: the fleet's state, and
//! changes to its desired state. A module is checked on this node (compiled
//! and linked) before it is pushed, so a module that cannot serve never
//! reaches the registry or the fleet.

use std::path::Path;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::routes::body;
use super::{AdminError, json};
use crate::admin::api;
use crate::config::{Deployment, FunctionConfig, valid_name};
use crate::control::fleet::Fleet;
use crate::control::{Control, ControlError};
use crate::request::error::Body;

/// Largest `function.toml` or deployment body.
const MAX_BODY: usize = 64 << 10;

type Reply = Result<Response<Body>, AdminError>;

pub async fn route(
    control: &Control,
    fleet: Option<&Fleet>,
    req: Request<Incoming>,
    rest: &str,
) -> Reply {
    let fleet = fleet.ok_or(AdminError::NoFleet)?;
    let method = req.method().clone();
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, [""]) => Ok(ok(&fleet.state().await?)),
        (_, ["functions", name, ..]) if !valid_name(name) => {
            Err(AdminError::Control(ControlError::Invalid(
                "function names are 1-64 of A-Z a-z 0-9 - _ . (not starting with a dot)".into(),
            )))
        }
        (&Method::PUT, ["functions", name, "versions", label]) => {
            if !valid_name(label) {
                return Err(AdminError::Control(ControlError::Invalid(
                    "version labels are 1-64 of A-Z a-z 0-9 - _ . (not starting with a dot)".into(),
                )));
            }
            let bytes = body(req, control.catalogue().max_module_size()).await?;
            let module: Arc<[u8]> = bytes.to_vec().into();
            let _held = control
                .catalogue()
                .validate(module.clone())
                .await
                .map_err(|e| ControlError::Invalid(e.to_string()))?;
            let (desired, revision) = fleet.push(name, label, &module, None).await?;
            let pushed = &desired.versions[*label];
            Ok(ok(&api::FleetPushed {
                function: name.to_string(),
                label: label.to_string(),
                digest: pushed.digest.clone(),
                size: pushed.size,
                revision,
                deployment: desired.deployment,
            }))
        }
        (&Method::DELETE, ["functions", name]) => {
            let revision = fleet.retire(name).await?;
            Ok(ok(&api::FleetRemoved {
                function: name.to_string(),
                revision,
            }))
        }
        (&Method::PUT, ["functions", name, "config"]) => {
            let text = body(req, MAX_BODY).await?;
            let text = String::from_utf8(text.to_vec())
                .map_err(|_| AdminError::BadBody("function.toml must be UTF-8".into()))?;
            FunctionConfig::parse(&text, Path::new("function.toml"))
                .map_err(|e| ControlError::Invalid(e.to_string()))?;
            let reason = format!("function.toml changed through {}", fleet.node());
            let (d, revision) = fleet.configure(name, &reason, text).await?;
            Ok(deployed(d.deployment, revision))
        }
        (&Method::PUT, ["functions", name, "deployment"]) => {
            let text = body(req, MAX_BODY).await?;
            let wanted: Deployment = serde_json::from_slice(&text)
                .map_err(|e| AdminError::BadBody(format!("bad deployment JSON: {e}")))?;
            let reason = format!("deployment set through {}", fleet.node());
            let (d, revision) = fleet.deploy(name, &reason, |_| Ok(wanted.clone())).await?;
            Ok(deployed(d.deployment, revision))
        }
        (&Method::POST, ["functions", name, "promote"]) => {
            let reason = format!("promoted through {}", fleet.node());
            let (d, revision) = fleet
                .deploy(name, &reason, |d| d.deployment.promoted(name))
                .await?;
            Ok(deployed(d.deployment, revision))
        }
        (&Method::POST, ["functions", name, "rollback"]) => {
            let reason = format!("rolled back through {}", fleet.node());
            let (d, revision) = fleet
                .deploy(name, &reason, |d| d.deployment.rolled_back(name))
                .await?;
            Ok(deployed(d.deployment, revision))
        }
        _ => Err(AdminError::NoRoute),
    }
}

fn ok(value: &impl serde::Serialize) -> Response<Body> {
    json(StatusCode::OK, value)
}

fn deployed(deployment: Deployment, revision: i64) -> Response<Body> {
    ok(&api::FleetDeployment {
        deployment,
        revision,
    })
}
