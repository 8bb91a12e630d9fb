//! The admin API's routes. Each answers with a type from [`crate::admin::api`], or
//! an [`AdminError`].

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;

use super::{AdminError, json, text};
use crate::admin::api;
use crate::config::Deployment;
use crate::control::catalogue::LoadFailure;
use crate::control::{Control, ControlError};
use crate::node::function::Function;
use crate::request::error::Body;
use crate::store::OpId;

/// Largest request body other than a module (deployments, key-value values).
const MAX_BODY: usize = 2 << 20;

type Reply = Result<Response<Body>, AdminError>;

pub async fn route(control: &Control, req: Request<Incoming>, path: &str) -> Reply {
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["readyz"]) => Ok(readyz(control, req.uri().query())),
        (&Method::GET, ["metrics"]) => {
            let mut r = text(StatusCode::OK, super::metrics::render(control));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Ok(r)
        }
        (&Method::GET, ["v1", "functions"]) => Ok(ok(&functions(control))),
        (&Method::PUT, ["v1", "functions", name, "versions", label]) => {
            let max_module = control.catalogue().max_module_size();
            let bytes = body(req, max_module).await?;
            let v = control.upload(name, label, bytes.to_vec()).await?;
            let state = control
                .node()
                .snapshot()
                .get(name)
                .map(|f| describe(f, control.catalogue().failure(name)));
            Ok(ok(&api::Uploaded {
                function: name.to_string(),
                label: v.label.to_string(),
                sha256: v.sha256.clone(),
                size: v.size,
                state,
            }))
        }
        (&Method::PUT, ["v1", "functions", name, "deployment"]) => {
            let bytes = body(req, MAX_BODY).await?;
            let deployment: Deployment = serde_json::from_slice(&bytes)
                .map_err(|e| AdminError::BadBody(format!("bad deployment JSON: {e}")))?;
            deployed(control.set_deployment(name, deployment).await)
        }
        (&Method::POST, ["v1", "functions", name, "promote"]) => {
            deployed(control.promote(name).await)
        }
        (&Method::POST, ["v1", "functions", name, "rollback"]) => {
            deployed(control.rollback(name).await)
        }
        (&Method::POST, ["v1", "kv-reclaim", node]) => {
            let node = percent_decode_str(node).decode_utf8_lossy().into_owned();
            let done = control.node().kv().reclaim(&node).await?;
            let reclaimed = done
                .into_iter()
                .map(|r| api::ReclaimedCounter {
                    store: r.store,
                    key: String::from_utf8_lossy(&r.key).into_owned(),
                    units: r.units,
                })
                .collect();
            Ok(ok(&api::ReclaimReply { node, reclaimed }))
        }
        (_, ["v1", "kv", store, key @ ..]) if !key.is_empty() => {
            let key = percent_decode_str(&key.join("/")).collect::<Vec<u8>>();
            let store = percent_decode_str(store).decode_utf8_lossy().into_owned();
            kv(control, req, &store, &key).await
        }
        _ => Err(AdminError::NoRoute),
    }
}

fn ok(value: &impl serde::Serialize) -> Response<Body> {
    json(StatusCode::OK, value)
}

/// Ready when the key-value store takes writes; otherwise 503 saying what is
/// wrong. Functions go live one by one as they compile, so the answer also
/// says how many are still compiling before they first serve; with
/// `?all=1` it is 503 until none is.
fn readyz(control: &Control, query: Option<&str>) -> Response<Body> {
    let pending = control.pending();
    if let Some(problem) = control.node().kv().health().problem() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the key-value store cannot write: {problem}\npending: {pending}\n"),
        );
    }
    let all = query.is_some_and(|q| q.split('&').any(|p| p == "all=1" || p == "all=true"));
    match (pending, all) {
        (0, _) => text(StatusCode::OK, "ready\npending: 0\n"),
        (n, false) => text(StatusCode::OK, format!("ready\npending: {n}\n")),
        (n, true) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {n} functions still compiling\npending: {n}\n"),
        ),
    }
}

/// The request body, up to `limit` bytes.
pub(super) async fn body(req: Request<Incoming>, limit: usize) -> Result<Bytes, AdminError> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(AdminError::BodyTooLarge(limit))
        }
        Err(e) => Err(AdminError::BadBody(format!("cannot read body: {e}"))),
    }
}

fn functions(control: &Control) -> api::FunctionList {
    let snapshot = control.node().snapshot();
    let mut failures = control.catalogue().failures();
    let mut functions: Vec<api::FunctionState> = snapshot
        .functions()
        .map(|f| describe(f, failures.remove(&*f.name)))
        .collect();
    // Functions whose first code is still compiling.
    for s in snapshot.starting_functions() {
        functions.push(api::FunctionState {
            name: s.name.to_string(),
            starting: true,
            route: Some(s.route.clone()),
            host: s.host.clone(),
            last_error: failures.remove(&*s.name).map(failure_state),
            ..Default::default()
        });
    }
    // Functions that failed before they ever loaded.
    for (name, failure) in failures {
        functions.push(api::FunctionState {
            name,
            last_error: Some(failure_state(failure)),
            ..Default::default()
        });
    }
    api::FunctionList { functions }
}

fn failure_state(failure: LoadFailure) -> api::LoadFailure {
    api::LoadFailure {
        path: failure.path.display().to_string(),
        message: failure.message,
    }
}

fn describe(f: &Function, last_error: Option<LoadFailure>) -> api::FunctionState {
    let versions = f
        .labels
        .iter()
        .map(|label| {
            let loaded = f.versions.get(label);
            let totals = loaded.map(|v| v.stats.totals());
            api::VersionState {
                label: label.clone(),
                loaded: loaded.is_some(),
                sha256: loaded.map(|v| v.sha256.clone()),
                size: loaded.map(|v| v.size),
                tier: loaded.map(|v| v.compiled.tier.as_str().to_string()),
                format: loaded.map(|v| v.compiled.handler.format().as_str().to_string()),
                requests: totals.map(|t| t.0),
                errors: totals.map(|t| t.1),
            }
        })
        .collect();
    api::FunctionState {
        name: f.name.to_string(),
        loaded: true,
        starting: false,
        route: Some(f.route.clone()),
        host: f.host.clone(),
        versions,
        deployment: Some(f.deployment.clone()),
        pinned: f.pinned,
        last_error: last_error.map(failure_state),
    }
}

fn deployed(result: Result<Deployment, ControlError>) -> Reply {
    Ok(ok(&api::DeploymentReply {
        deployment: result?,
    }))
}

async fn kv(control: &Control, req: Request<Incoming>, store: &str, key: &[u8]) -> Reply {
    let store = control.node().kv().open(store)?;
    match *req.method() {
        Method::GET => {
            let value = store.get(key).await?.ok_or(AdminError::NoKey)?;
            let mut r = text(StatusCode::OK, value);
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/octet-stream"),
            );
            Ok(r)
        }
        Method::PUT => {
            let value = body(req, MAX_BODY).await?;
            store.set(OpId::random(), key, &value).await?;
            store.durable().await?;
            Ok(ok(&api::Stored {
                stored: value.len(),
            }))
        }
        Method::DELETE => {
            if !store.delete(OpId::random(), key).await? {
                return Err(AdminError::NoKey);
            }
            store.durable().await?;
            Ok(ok(&api::Deleted { deleted: true }))
        }
        _ => Err(AdminError::Method("GET, PUT or DELETE")),
    }
}
