//! The admin API client behind the CLI's client commands: `deploy`, `promote`,
//! `rollback`, `status`, `kv`.

use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// Talks to one node's admin API.
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl AdminClient {
    /// A client for the admin API at `base` (`http://127.0.0.1:9090`). The token
    /// comes from `token_file` when given, else from `WEDGE_ADMIN_TOKEN`.
    pub fn new(base: &str, token_file: Option<&Path>) -> anyhow::Result<Self> {
        let token = match token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read token file {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            None => std::env::var("WEDGE_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        };
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| anyhow!("bad admin URL {url}: {e}"))?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| anyhow!("cannot reach the admin API at {}: {e}", self.base))?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// A JSON call that must succeed; a failure carries the server's message.
    async fn json(&self, method: Method, path: &str, body: Bytes) -> anyhow::Result<Value> {
        let (status, body) = self.call(method, path, body).await?;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
            bail!("{} ({})", message, status);
        }
        Ok(value)
    }

    /// Every function's state.
    pub async fn functions(&self) -> anyhow::Result<Vec<Value>> {
        let v = self
            .json(Method::GET, "/v1/functions", Bytes::new())
            .await?;
        Ok(v["functions"].as_array().cloned().unwrap_or_default())
    }

    /// Uploads `module` as `name`/`label`.
    pub async fn upload(&self, name: &str, label: &str, module: Vec<u8>) -> anyhow::Result<Value> {
        self.json(
            Method::PUT,
            &format!("/v1/functions/{name}/versions/{label}"),
            module.into(),
        )
        .await
    }

    /// Sets a function's deployment.
    pub async fn deploy(&self, name: &str, deployment: &Value) -> anyhow::Result<Value> {
        self.json(
            Method::PUT,
            &format!("/v1/functions/{name}/deployment"),
            deployment.to_string().into(),
        )
        .await
    }

    /// `promote` or `rollback`.
    pub async fn action(&self, name: &str, action: &str) -> anyhow::Result<Value> {
        self.json(
            Method::POST,
            &format!("/v1/functions/{name}/{action}"),
            Bytes::new(),
        )
        .await
    }

    /// A key's value, or `None`.
    pub async fn kv_get(&self, store: &str, key: &str) -> anyhow::Result<Option<Bytes>> {
        let (status, body) = self
            .call(Method::GET, &kv_path(store, key), Bytes::new())
            .await?;
        match status {
            StatusCode::OK => Ok(Some(body)),
            StatusCode::NOT_FOUND if body.starts_with(b"{\"error\":\"no such key") => Ok(None),
            _ => bail!("{} ({status})", String::from_utf8_lossy(&body).trim()),
        }
    }

    /// Sets a key.
    pub async fn kv_set(&self, store: &str, key: &str, value: Bytes) -> anyhow::Result<()> {
        self.json(Method::PUT, &kv_path(store, key), value)
            .await
            .map(|_| ())
    }

    /// Deletes a key; whether it existed.
    pub async fn kv_del(&self, store: &str, key: &str) -> anyhow::Result<bool> {
        let (status, body) = self
            .call(Method::DELETE, &kv_path(store, key), Bytes::new())
            .await?;
        match status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => bail!("{} ({status})", String::from_utf8_lossy(&body).trim()),
        }
    }
}

impl AdminClient {
    /// Gives a dead node's escrowed units back (`wedge kv reclaim`).
    pub async fn kv_reclaim(&self, node: &str) -> anyhow::Result<Value> {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        let path = format!(
            "/v1/kv-reclaim/{}",
            utf8_percent_encode(node, NON_ALPHANUMERIC)
        );
        self.json(Method::POST, &path, Bytes::new()).await
    }
}

fn kv_path(store: &str, key: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    format!(
        "/v1/kv/{}/{}",
        utf8_percent_encode(store, NON_ALPHANUMERIC),
        utf8_percent_encode(key, NON_ALPHANUMERIC)
    )
}

/// The label after the highest `v<N>` among `labels`: `v1` when there is none.
pub fn next_label<'a>(labels: impl Iterator<Item = &'a str>) -> String {
    let highest = labels
        .filter_map(|l| l.strip_prefix('v').and_then(|n| n.parse::<u64>().ok()))
        .max()
        .unwrap_or(0);
    format!("v{}", highest + 1)
}

/// `wedge deploy`: upload, then 100 % (or `canary` percent) for the new version.
pub async fn deploy(
    client: &AdminClient,
    name: &str,
    module: &Path,
    label: Option<String>,
    canary: Option<u8>,
) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(module).with_context(|| format!("cannot read {}", module.display()))?;
    let existing = client
        .functions()
        .await?
        .into_iter()
        .find(|f| f["name"] == name && f["loaded"] == true);
    let labels: Vec<String> = existing
        .as_ref()
        .and_then(|f| f["versions"].as_array())
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v["label"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let label = label.unwrap_or_else(|| next_label(labels.iter().map(String::as_str)));
    let uploaded = client.upload(name, &label, bytes).await?;
    let sha = uploaded["sha256"]
        .as_str()
        .unwrap_or("")
        .chars()
        .take(12)
        .collect::<String>();
    let stable = existing
        .as_ref()
        .and_then(|f| f["deployment"]["stable"].as_str())
        .map(str::to_string);
    let (deployment, summary) = match (stable, canary) {
        (Some(stable), Some(percent)) if stable != label => (
            json!({ "stable": stable, "canary": label, "canary_percent": percent }),
            format!("as canary at {percent}% (stable {stable})"),
        ),
        (previous, _) => {
            let mut d = json!({ "stable": label });
            if let Some(previous) = previous.filter(|p| *p != label) {
                d["previous_stable"] = json!(previous);
            }
            (d, "as stable at 100%".to_string())
        }
    };
    client.deploy(name, &deployment).await?;
    Ok(format!("deployed {name} {label} (sha256 {sha}) {summary}"))
}

/// `wedge status`: one line per function.
pub fn status_table(functions: &[Value]) -> String {
    let mut out = format!(
        "{:<20} {:<20} {:<10} {:<14} {:>10} {:>8}  {}\n",
        "FUNCTION", "ROUTE", "STABLE", "CANARY", "REQUESTS", "ERRORS", "LAST ERROR"
    );
    for f in functions {
        let versions = f["versions"].as_array().cloned().unwrap_or_default();
        let sum = |field: &str| {
            versions
                .iter()
                .filter_map(|v| v[field].as_u64())
                .sum::<u64>()
        };
        let canary = match f["deployment"]["canary"].as_str() {
            Some(c) => format!("{c} {}%", f["deployment"]["canary_percent"]),
            None => "-".into(),
        };
        out += &format!(
            "{:<20} {:<20} {:<10} {:<14} {:>10} {:>8}  {}\n",
            f["name"].as_str().unwrap_or("?"),
            f["route"].as_str().unwrap_or("-"),
            f["deployment"]["stable"].as_str().unwrap_or("-"),
            canary,
            sum("requests"),
            sum("errors"),
            f["last_error"]["message"].as_str().unwrap_or("-"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::next_label;

    #[test]
    fn next_label_follows_the_highest() {
        assert_eq!(next_label([].into_iter()), "v1");
        assert_eq!(next_label(["v1", "v9", "v10", "beta"].into_iter()), "v11");
    }
}
