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
use serde::de::DeserializeOwned;

use crate::admin::api::{
    DeploymentReply, ErrorBody, FleetDeployment, FleetPushed, FleetRemoved, FleetState,
    FunctionList, FunctionState, ReclaimReply, Stored, Uploaded,
};
use crate::config::Deployment;

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
    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<T> {
        let (status, body) = self.call(method, path, body).await?;
        if !status.is_success() {
            bail!("{} ({status})", error_message(&body));
        }
        serde_json::from_slice(&body).map_err(|e| {
            anyhow!(
                "the admin API at {} answered what this wedge cannot read ({e}); \
                 is it the same version?",
                self.base
            )
        })
    }

    /// Every function's state.
    pub async fn functions(&self) -> anyhow::Result<Vec<FunctionState>> {
        let list: FunctionList = self
            .json(Method::GET, "/v1/functions", Bytes::new())
            .await?;
        Ok(list.functions)
    }

    /// Uploads `module` as `name`/`label`.
    pub async fn upload(
        &self,
        name: &str,
        label: &str,
        module: Vec<u8>,
    ) -> anyhow::Result<Uploaded> {
        self.json(
            Method::PUT,
            &format!("/v1/functions/{name}/versions/{label}"),
            module.into(),
        )
        .await
    }

    /// Sets a function's deployment.
    pub async fn deploy(&self, name: &str, deployment: &Deployment) -> anyhow::Result<Deployment> {
        let reply: DeploymentReply = self
            .json(
                Method::PUT,
                &format!("/v1/functions/{name}/deployment"),
                serde_json::to_vec(deployment)?.into(),
            )
            .await?;
        Ok(reply.deployment)
    }

    /// `promote` or `rollback`, on this node or (`fleet`) the whole fleet.
    pub async fn action(
        &self,
        name: &str,
        action: &str,
        fleet: bool,
    ) -> anyhow::Result<Deployment> {
        let path = format!("/v1/functions/{name}/{action}");
        match fleet {
            true => {
                let reply: FleetDeployment = self
                    .json(Method::POST, &format!("/v1/fleet{path}"), Bytes::new())
                    .await?;
                Ok(reply.deployment)
            }
            false => {
                let reply: DeploymentReply = self.json(Method::POST, &path, Bytes::new()).await?;
                Ok(reply.deployment)
            }
        }
    }

    /// The fleet: desired state, every node's report, who lags.
    pub async fn fleet(&self) -> anyhow::Result<FleetState> {
        self.json(Method::GET, "/v1/fleet", Bytes::new()).await
    }

    /// Pushes `module` as `name`/`label` to the fleet.
    pub async fn fleet_push(
        &self,
        name: &str,
        label: &str,
        module: Vec<u8>,
    ) -> anyhow::Result<FleetPushed> {
        let path = format!("/v1/fleet/functions/{name}/versions/{label}");
        self.json(Method::PUT, &path, module.into()).await
    }

    /// Sets `name`'s `function.toml` for the fleet.
    pub async fn fleet_config(&self, name: &str, toml: String) -> anyhow::Result<FleetDeployment> {
        let path = format!("/v1/fleet/functions/{name}/config");
        self.json(Method::PUT, &path, toml.into()).await
    }

    /// Sets `name`'s deployment for the fleet.
    pub async fn fleet_deploy(
        &self,
        name: &str,
        deployment: &Deployment,
    ) -> anyhow::Result<FleetDeployment> {
        let path = format!("/v1/fleet/functions/{name}/deployment");
        self.json(Method::PUT, &path, serde_json::to_vec(deployment)?.into())
            .await
    }

    /// Takes `name` out of the fleet.
    pub async fn fleet_remove(&self, name: &str) -> anyhow::Result<FleetRemoved> {
        let path = format!("/v1/fleet/functions/{name}");
        self.json(Method::DELETE, &path, Bytes::new()).await
    }

    /// A key's value, or `None`.
    pub async fn kv_get(&self, store: &str, key: &str) -> anyhow::Result<Option<Bytes>> {
        let (status, body) = self
            .call(Method::GET, &kv_path(store, key), Bytes::new())
            .await?;
        match status {
            StatusCode::OK => Ok(Some(body)),
            StatusCode::NOT_FOUND if error_message(&body) == "no such key" => Ok(None),
            _ => bail!("{} ({status})", error_message(&body)),
        }
    }

    /// Sets a key.
    pub async fn kv_set(&self, store: &str, key: &str, value: Bytes) -> anyhow::Result<()> {
        let _: Stored = self.json(Method::PUT, &kv_path(store, key), value).await?;
        Ok(())
    }

    /// Deletes a key; whether it existed.
    pub async fn kv_del(&self, store: &str, key: &str) -> anyhow::Result<bool> {
        let (status, body) = self
            .call(Method::DELETE, &kv_path(store, key), Bytes::new())
            .await?;
        match status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND if error_message(&body) == "no such key" => Ok(false),
            _ => bail!("{} ({status})", error_message(&body)),
        }
    }
}

impl AdminClient {
    /// Gives a dead node's escrowed units back (`wedge kv reclaim`).
    pub async fn kv_reclaim(&self, node: &str) -> anyhow::Result<ReclaimReply> {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        let path = format!(
            "/v1/kv-reclaim/{}",
            utf8_percent_encode(node, NON_ALPHANUMERIC)
        );
        self.json(Method::POST, &path, Bytes::new()).await
    }
}

/// The message of an error answer, or its text when it is not the admin API's JSON.
fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.error,
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
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
        .find(|f| f.name == name && f.loaded);
    let labels: Vec<&str> = existing
        .iter()
        .flat_map(|f| &f.versions)
        .map(|v| v.label.as_str())
        .collect();
    let label = label.unwrap_or_else(|| next_label(labels.into_iter()));
    let uploaded = client.upload(name, &label, bytes).await?;
    let sha: String = uploaded.sha256.chars().take(12).collect();
    let stable = existing
        .and_then(|f| f.deployment)
        .map(|d| d.stable)
        .filter(|s| *s != label);
    let (deployment, summary) = moved_to(&label, stable, canary);
    client.deploy(name, &deployment).await?;
    Ok(format!("deployed {name} {label} (sha256 {sha}) {summary}"))
}

/// The deployment that gives `label` the traffic: a canary share next to
/// `stable`, or all of it (remembering `stable` for a rollback); and a few
/// words saying which.
fn moved_to(label: &str, stable: Option<String>, canary: Option<u8>) -> (Deployment, String) {
    match (stable, canary) {
        (Some(stable), Some(percent)) => (
            Deployment {
                stable: stable.clone(),
                canary: Some(label.to_string()),
                canary_percent: percent,
                previous_stable: None,
            },
            format!("as canary at {percent}% (stable {stable})"),
        ),
        (previous, _) => (
            Deployment {
                stable: label.to_string(),
                canary: None,
                canary_percent: 0,
                previous_stable: previous,
            },
            "as stable at 100%".to_string(),
        ),
    }
}

/// `wedge deploy --fleet`: push to the registry through the node, then move
/// the fleet's traffic as `deploy` does on one node.
pub async fn deploy_fleet(
    client: &AdminClient,
    name: &str,
    module: &Path,
    label: Option<String>,
    canary: Option<u8>,
    function_toml: Option<&Path>,
) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(module).with_context(|| format!("cannot read {}", module.display()))?;
    let toml = function_toml
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()?;
    let state = client.fleet().await?;
    let existing = state.desired.get(name);
    let label = label.unwrap_or_else(|| {
        next_label(
            existing
                .iter()
                .flat_map(|f| f.versions.keys().map(String::as_str)),
        )
    });
    let stable = existing
        .map(|f| f.deployment.stable.clone())
        .filter(|s| *s != label);
    let pushed = client.fleet_push(name, &label, bytes).await?;
    if let Some(toml) = toml {
        client.fleet_config(name, toml).await?;
    }
    let (deployment, summary) = moved_to(&label, stable, canary);
    let done = client.fleet_deploy(name, &deployment).await?;
    let sha: String = pushed
        .digest
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect();
    Ok(format!(
        "deployed {name} {label} (sha256 {sha}) to the fleet {summary}; desired state at revision {}",
        done.revision
    ))
}

/// `wedge status`: one line per function.
pub fn status_table(functions: &[FunctionState]) -> String {
    let mut out = format!(
        "{:<20} {:<20} {:<14} {:<10} {:<14} {:>10} {:>8}  {}\n",
        "FUNCTION", "ROUTE", "FORMAT", "STABLE", "CANARY", "REQUESTS", "ERRORS", "LAST ERROR"
    );
    for f in functions {
        let sum = |field: fn(&crate::admin::api::VersionState) -> Option<u64>| {
            f.versions.iter().filter_map(field).sum::<u64>()
        };
        let d = f.deployment.as_ref();
        let canary = match d.and_then(|d| Some((d.canary.as_ref()?, d.canary_percent))) {
            Some((c, percent)) => format!("{c} {percent}%"),
            None => "-".into(),
        };
        // The stable version's format, and the canary's after it when it differs.
        let format_of = |label: &str| {
            f.versions
                .iter()
                .find(|v| v.label == label)
                .and_then(|v| v.format.as_deref())
        };
        let format = match d.map(|d| {
            (
                format_of(&d.stable),
                d.canary.as_deref().and_then(format_of),
            )
        }) {
            Some((Some(stable), Some(canary))) if stable != canary => format!("{stable}>{canary}"),
            Some((Some(stable), _)) => stable.to_string(),
            _ => "-".into(),
        };
        let stable = match f.starting {
            true => "starting",
            false => d.map_or("-", |d| d.stable.as_str()),
        };
        out += &format!(
            "{:<20} {:<20} {:<14} {:<10} {:<14} {:>10} {:>8}  {}\n",
            f.name,
            f.route.as_deref().unwrap_or("-"),
            format,
            stable,
            canary,
            sum(|v| v.requests),
            sum(|v| v.errors),
            f.last_error.as_ref().map_or("-", |e| e.message.as_str()),
        );
    }
    out
}

/// `wedge status --fleet`: the desired state, then one line per node and
/// function, then who lags.
pub fn fleet_table(state: &FleetState) -> String {
    let mut out = format!(
        "JUDGE {}\n\nDESIRED\n",
        state.judge.as_deref().unwrap_or("(none elected)")
    );
    out += &format!(
        "{:<20} {:<10} {:<14} {:>9}  {}\n",
        "FUNCTION", "STABLE", "CANARY", "REVISION", "LAST CHANGE"
    );
    for (name, f) in &state.desired {
        out += &format!(
            "{:<20} {:<10} {:<14} {:>9}  {}\n",
            name,
            f.deployment.stable,
            canary_text(&f.deployment),
            f.revision,
            f.reason
        );
    }
    out += &format!(
        "\nNODES\n{:<16} {:<10} {:<20} {:<10} {:<14} {:>10} {:>8} {:>9} {:>9}  {}\n",
        "NODE",
        "REGION",
        "FUNCTION",
        "STABLE",
        "CANARY",
        "REQUESTS",
        "ERRORS",
        "P50",
        "P99",
        "STATE"
    );
    for (node, report) in &state.nodes {
        for (name, f) in &report.functions {
            let serving = f.deployment.as_ref();
            let (requests, errors) = f
                .versions
                .values()
                .fold((0, 0), |(r, e), v| (r + v.requests, e + v.errors));
            let worst = |q: fn(&crate::admin::api::NodeVersion) -> Option<u64>| {
                f.versions
                    .values()
                    .filter_map(q)
                    .max()
                    .map_or("-".to_string(), |us| format!("{:.1}ms", us as f64 / 1000.0))
            };
            let in_step = state
                .desired
                .get(name)
                .is_some_and(|d| f.applied_revision >= d.revision);
            let step = match (&f.error, in_step) {
                (Some(e), _) => format!("behind: {e}"),
                (None, true) => "in step".to_string(),
                (None, false) => "behind".to_string(),
            };
            out += &format!(
                "{:<16} {:<10} {:<20} {:<10} {:<14} {:>10} {:>8} {:>9} {:>9}  {}\n",
                node,
                report.region,
                name,
                serving.map_or("-", |d| d.stable.as_str()),
                serving.map_or("-".to_string(), canary_text),
                requests,
                errors,
                worst(|v| v.p50_us),
                worst(|v| v.p99_us),
                step
            );
        }
    }
    if !state.lagging.is_empty() {
        out += "\nLAGGING\n";
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for lag in &state.lagging {
            let since = lag.since_ms.map_or("-".to_string(), |ms| {
                format!("{:.1}s", now.saturating_sub(ms) as f64 / 1000.0)
            });
            let error = lag
                .error
                .as_ref()
                .map_or(String::new(), |e| format!(": {e}"));
            out += &format!(
                "{} {} at revision {} of {} for {since}{error}\n",
                lag.node, lag.function, lag.applied_revision, lag.desired_revision,
            );
        }
    }
    out
}

fn canary_text(d: &Deployment) -> String {
    match &d.canary {
        Some(c) => format!("{c} {}%", d.canary_percent),
        None => "-".into(),
    }
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
