//! `function.toml` and `deployment.toml`: how one function is served, and
//! which of its versions take traffic.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ByteSize, ConfigError, HumanDuration, parse_toml};

/// `function.toml`: how one function is served. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionConfig {
    /// Path prefix, matched on segment boundaries; defaults to `/<name>`.
    pub route: Option<String>,
    /// Serve only requests for this host (the `Host` header without its port).
    pub host: Option<String>,
    /// Wall-clock limit per request; defaults to `server.request_timeout`.
    pub timeout: Option<HumanDuration>,
    /// Linear memory cap per instance.
    pub memory: Option<ByteSize>,
    /// Largest response (headers and body) the guest may write.
    pub max_response: Option<ByteSize>,
    /// Key-value stores this function may open; defaults to one named after the function.
    pub kv: Option<Vec<String>>,
    /// Static environment, set before the request variables (which win).
    pub env: BTreeMap<String, String>,
    /// Origins the function may call over HTTP(S): `scheme://host[:port]`,
    /// the port `*` for any. None by default.
    pub outbound: Vec<String>,
    /// How long a streamed response may go on after its head; zero (the
    /// default) means the body must end within `timeout`.
    pub max_stream: Option<HumanDuration>,
    /// A streamed body with no new bytes from the guest for this long is cut.
    pub stream_idle: Option<HumanDuration>,
    /// Components only: the request body reaches the guest as it arrives,
    /// under `[server] max_stream_request` and `min_body_rate`.
    pub stream_request: bool,
    /// Gray-release behaviour.
    pub rollout: RolloutConfig,
}

/// `[rollout]` in `function.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutConfig {
    /// `header:<name>` or `cookie:<name>`: requests with the same key see the same version.
    pub sticky: Option<String>,
    /// Take the canary out of traffic when its error rate climbs.
    pub auto_rollback: Option<AutoRollback>,
    /// A canary that stays healthy this long becomes stable on its own.
    pub promote_after: Option<HumanDuration>,
}

/// `auto_rollback` in `[rollout]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoRollback {
    /// Error share (5xx, traps, timeouts) above which the canary is rolled back.
    pub max_error_rate: f64,
    /// Requests the canary must have served in the window before it can be judged.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// The sliding window the rate is measured over.
    #[serde(default = "default_window")]
    pub window: HumanDuration,
}

fn default_min_requests() -> u64 {
    50
}

fn default_window() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

/// Defaults that apply to a function when its `function.toml` is silent.
pub const DEFAULT_MEMORY: ByteSize = ByteSize(64 << 20);
/// Default cap on what a guest may write to stdout.
pub const DEFAULT_MAX_RESPONSE: ByteSize = ByteSize(16 << 20);
/// The largest `memory` a function may ask for.
pub const MAX_MEMORY: ByteSize = ByteSize(4 << 30);
/// `stream_idle` when `function.toml` sets none.
pub const DEFAULT_STREAM_IDLE: Duration = Duration::from_secs(30);

impl FunctionConfig {
    /// Parses `function.toml` text for function `name` and checks its values.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: FunctionConfig = parse_toml(text, path)?;
        if let Some(route) = &config.route {
            validate_route(route).map_err(|m| ConfigError::new(path, m))?;
        }
        if let Some(memory) = config.memory
            && (memory.0 < 64 << 10 || memory > MAX_MEMORY)
        {
            return Err(ConfigError::new(
                path,
                "memory must be between 64KiB and 4GiB",
            ));
        }
        if let Some(timeout) = config.timeout
            && timeout.0.is_zero()
        {
            return Err(ConfigError::new(path, "timeout must be positive"));
        }
        if let Some(idle) = config.stream_idle
            && idle.0.is_zero()
        {
            return Err(ConfigError::new(path, "stream_idle must be positive"));
        }
        for key in config.env.keys() {
            if key.is_empty() || key.contains(['=', '\0']) {
                return Err(ConfigError::new(
                    path,
                    format!("env key `{key}` is not a valid name"),
                ));
            }
        }
        if config.env.values().any(|v| v.contains('\0')) {
            return Err(ConfigError::new(path, "env values cannot contain NUL"));
        }
        super::origins::AllowList::parse(&config.outbound)
            .map_err(|m| ConfigError::new(path, m))?;
        if let Some(rb) = &config.rollout.auto_rollback
            && !(0.0..=1.0).contains(&rb.max_error_rate)
        {
            return Err(ConfigError::new(
                path,
                "max_error_rate must be between 0 and 1",
            ));
        }
        if let Some(sticky) = &config.rollout.sticky {
            validate_sticky(sticky).map_err(|m| ConfigError::new(path, m))?;
        }
        Ok(config)
    }
}

/// Routes are absolute paths without query or fragment.
pub fn validate_route(route: &str) -> Result<(), String> {
    if !route.starts_with('/') {
        return Err(format!("route `{route}` must start with `/`"));
    }
    if route.contains(['?', '#']) || route.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "route `{route}` may not contain `?`, `#` or white space"
        ));
    }
    if route.contains("//") {
        return Err(format!("route `{route}` has an empty segment"));
    }
    Ok(())
}

fn validate_sticky(sticky: &str) -> Result<(), String> {
    match sticky.split_once(':') {
        Some(("header" | "cookie", name)) if !name.is_empty() => Ok(()),
        _ => Err(format!(
            "sticky `{sticky}` must be `header:<name>` or `cookie:<name>`"
        )),
    }
}

/// `deployment.toml`: which versions take traffic.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// The version that takes the traffic the canary does not.
    pub stable: String,
    /// A version taking `canary_percent` of traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// Share of traffic for the canary, 0 to 100.
    #[serde(default)]
    pub canary_percent: u8,
    /// The stable version before the last promote, for a rollback without a canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_stable: Option<String>,
}

impl Deployment {
    /// Parses `deployment.toml` text.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let d: Deployment = parse_toml(text, path)?;
        if d.canary_percent > 100 {
            return Err(ConfigError::new(
                path,
                "canary_percent must be between 0 and 100",
            ));
        }
        Ok(d)
    }

    /// What is wrong with this deployment by itself, if anything.
    pub fn check(&self) -> Result<(), String> {
        if self.canary_percent > 100 {
            return Err("canary_percent must be between 0 and 100".into());
        }
        if self.canary.is_none() && self.canary_percent > 0 {
            return Err("canary_percent needs a canary".into());
        }
        Ok(())
    }

    /// The canary promoted: stable at 100 %, the old stable remembered for a
    /// later rollback. `name` is the function's, for the refusal.
    pub fn promoted(&self, name: &str) -> Result<Self, String> {
        let canary = self
            .canary
            .clone()
            .ok_or_else(|| format!("`{name}` has no canary to promote"))?;
        Ok(Self {
            stable: canary,
            canary: None,
            canary_percent: 0,
            previous_stable: Some(self.stable.clone()),
        })
    }

    /// Rolled back: with a canary taking traffic, the canary gets 0 %;
    /// without one, the stable before the last promote is stable again.
    pub fn rolled_back(&self, name: &str) -> Result<Self, String> {
        if self.canary.is_some() && self.canary_percent > 0 {
            return Ok(Self {
                canary_percent: 0,
                ..self.clone()
            });
        }
        match &self.previous_stable {
            Some(previous) => Ok(Self {
                stable: previous.clone(),
                canary: None,
                canary_percent: 0,
                previous_stable: None,
            }),
            None => Err(format!(
                "`{name}` has no canary taking traffic and no earlier stable to return to"
            )),
        }
    }
}
