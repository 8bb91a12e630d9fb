//! The admin API's routes.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use serde_json::json;

use super::{error, json, text};
use crate::config::Deployment;
use crate::control::{Control, ControlError};
use crate::error::Body;
use crate::function::Function;
use crate::kv::{KvError, OpId};
use crate::registry::LoadFailure;

/// Largest request body other than a module (deployments, key-value values).
const MAX_BODY: usize = 2 << 20;

pub async fn route(control: &Control, req: Request<Incoming>, path: &str) -> Response<Body> {
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["readyz"]) => readyz(control),
        (&Method::GET, ["metrics"]) => {
            let mut r = text(StatusCode::OK, super::metrics::render(control));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        (&Method::GET, ["v1", "functions"]) => functions(control),
        (&Method::PUT, ["v1", "functions", name, "versions", label]) => {
            let max_module = control.registry().max_module_size();
            let bytes = match body(req, max_module).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match control.upload(name, label, bytes.to_vec()).await {
                Ok(v) => {
                    let snapshot = control.app().snapshot();
                    let f = snapshot
                        .get(name)
                        .map(|f| describe(f, control.registry().failure(name)));
                    json(
                        StatusCode::OK,
                        &json!({ "function": name, "label": &*v.label, "sha256": v.sha256, "size": v.size, "state": f }),
                    )
                }
                Err(e) => control_error(e),
            }
        }
        (&Method::PUT, ["v1", "functions", name, "deployment"]) => {
            let bytes = match body(req, MAX_BODY).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let deployment: Deployment = match serde_json::from_slice(&bytes) {
                Ok(d) => d,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("bad deployment JSON: {e}"),
                    );
                }
            };
            deployment_result(control.set_deployment(name, deployment).await)
        }
        (&Method::POST, ["v1", "functions", name, "promote"]) => {
            deployment_result(control.promote(name).await)
        }
        (&Method::POST, ["v1", "functions", name, "rollback"]) => {
            deployment_result(control.rollback(name).await)
        }
        (&Method::POST, ["v1", "kv-reclaim", node]) => {
            let node = percent_decode_str(node).decode_utf8_lossy().into_owned();
            match control.app().kv().reclaim(&node).await {
                Ok(done) => {
                    let counters: Vec<_> = done
                        .iter()
                        .map(|r| {
                            json!({
                                "store": r.store,
                                "key": String::from_utf8_lossy(&r.key),
                                "units": r.units,
                            })
                        })
                        .collect();
                    json(
                        StatusCode::OK,
                        &json!({ "node": node, "reclaimed": counters }),
                    )
                }
                Err(e) => kv_error(e),
            }
        }
        (_, ["v1", "kv", store, key @ ..]) if !key.is_empty() => {
            let key = percent_decode_str(&key.join("/")).collect::<Vec<u8>>();
            let store = percent_decode_str(store).decode_utf8_lossy().into_owned();
            kv(control, req, &store, &key).await
        }
        _ => error(StatusCode::NOT_FOUND, "no such admin route"),
    }
}

/// Ready when the functions are loaded (always, once this listener answers)
/// and the key-value store takes writes; otherwise 503 saying what is wrong.
fn readyz(control: &Control) -> Response<Body> {
    match control.app().kv().health().problem() {
        None => text(StatusCode::OK, "ready\n"),
        Some(problem) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the key-value store cannot write: {problem}\n"),
        ),
    }
}

async fn body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Response<Body>> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body larger than {limit} bytes"),
        )),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("cannot read body: {e}"),
        )),
    }
}

fn functions(control: &Control) -> Response<Body> {
    let snapshot = control.app().snapshot();
    let mut failures = control.registry().failures();
    let mut list: Vec<serde_json::Value> = snapshot
        .functions()
        .map(|f| describe(f, failures.remove(&*f.name)))
        .collect();
    // Functions that failed before they ever loaded.
    for (name, failure) in failures {
        list.push(json!({
            "name": name,
            "loaded": false,
            "last_error": { "path": failure.path.display().to_string(), "message": failure.message },
        }));
    }
    json(StatusCode::OK, &json!({ "functions": list }))
}

fn describe(f: &Function, last_error: Option<LoadFailure>) -> serde_json::Value {
    let versions: Vec<serde_json::Value> = f
        .labels
        .iter()
        .map(|label| match f.versions.get(label) {
            Some(v) => {
                let (requests, errors) = v.stats.totals();
                json!({ "label": label, "sha256": v.sha256, "size": v.size, "loaded": true,
                        "requests": requests, "errors": errors })
            }
            None => json!({ "label": label, "loaded": false }),
        })
        .collect();
    let last_error =
        last_error.map(|e| json!({ "path": e.path.display().to_string(), "message": e.message }));
    json!({
        "name": &*f.name,
        "loaded": true,
        "route": f.route,
        "host": f.host,
        "versions": versions,
        "deployment": f.deployment,
        "pinned": f.pinned,
        "last_error": last_error,
    })
}

fn deployment_result(result: Result<Deployment, ControlError>) -> Response<Body> {
    match result {
        Ok(d) => json(StatusCode::OK, &json!({ "deployment": d })),
        Err(e) => control_error(e),
    }
}

fn control_error(e: ControlError) -> Response<Body> {
    let status = match &e {
        ControlError::NoFunction(_) => StatusCode::NOT_FOUND,
        ControlError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ControlError::Conflict(_) => StatusCode::CONFLICT,
        ControlError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &e.to_string())
}

async fn kv(control: &Control, req: Request<Incoming>, store: &str, key: &[u8]) -> Response<Body> {
    let backend = control.app().kv().clone();
    let store = match backend.open(store) {
        Ok(s) => s,
        Err(e) => return kv_error(e),
    };
    match *req.method() {
        Method::GET => match store.get(key).await {
            Ok(Some(v)) => {
                let mut r = text(StatusCode::OK, v);
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/octet-stream"),
                );
                r
            }
            Ok(None) => error(StatusCode::NOT_FOUND, "no such key"),
            Err(e) => kv_error(e),
        },
        Method::PUT => {
            let value = match body(req, MAX_BODY).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match store.set(OpId::random(), key, &value).await {
                Ok(()) => match store.durable().await {
                    Ok(()) => json(StatusCode::OK, &json!({ "stored": value.len() })),
                    Err(e) => kv_error(e),
                },
                Err(e) => kv_error(e),
            }
        }
        Method::DELETE => match store.delete(OpId::random(), key).await {
            Ok(true) => match store.durable().await {
                Ok(()) => json(StatusCode::OK, &json!({ "deleted": true })),
                Err(e) => kv_error(e),
            },
            Ok(false) => error(StatusCode::NOT_FOUND, "no such key"),
            Err(e) => kv_error(e),
        },
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "use GET, PUT or DELETE"),
    }
}

fn kv_error(e: KvError) -> Response<Body> {
    let status = match e {
        KvError::NotFound => StatusCode::NOT_FOUND,
        KvError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        KvError::Invalid(_) | KvError::OutOfRange(_) | KvError::AccessDenied => {
            StatusCode::BAD_REQUEST
        }
        KvError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &e.to_string())
}
