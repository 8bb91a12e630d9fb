//! The fleet's modules in an OCI registry (`[cluster] registry`), through the
//! `oci-client` crate.
//!
//! A module is an artifact in the wasm OCI format: one layer
//! (`application/vnd.wasm.content.layer.v1+wasm`) holding the module's bytes,
//! tagged `<function>.<label>` for people and pulled by its layer's digest
//! (sha256), which is checked on arrival. Compiled code is an artifact of its
//! own, tagged by the module's digest and the engine that compiled it.

use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciDescriptor, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use crate::config::ClusterConfig;

/// The media type of a layer of compiled code.
const COMPILED_LAYER_MEDIA_TYPE: &str = "application/vnd.wedge.compiled.v1";

/// How long one registry call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The registry could not be reached or answered with an error.
    #[error("registry {registry}: {message}")]
    Registry { registry: String, message: String },
    /// What arrived is not what was asked for.
    #[error("registry {registry}: module {digest} arrived with sha256:{actual}")]
    Digest {
        registry: String,
        digest: String,
        actual: String,
    },
    /// `registry_credentials_file` could not be read.
    #[error("cannot read cluster.registry_credentials_file: {0}")]
    Credentials(String),
}

/// One registry repository.
pub struct Registry {
    client: Client,
    auth: RegistryAuth,
    /// `host[:port]/path`.
    repository: String,
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A tag from free text: what the OCI grammar allows, at most 128 characters.
fn tag(text: &str) -> String {
    let mut tag: String = text
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '_',
        })
        .take(128)
        .collect();
    if tag.starts_with(['.', '-']) {
        tag.replace_range(0..1, "_");
    }
    tag
}

impl Registry {
    /// The registry of `cluster`.
    pub fn new(cluster: &ClusterConfig) -> Result<Self, OciError> {
        let auth = match cluster.registry_credentials_file.as_os_str().is_empty() {
            true => RegistryAuth::Anonymous,
            false => {
                let text = std::fs::read_to_string(&cluster.registry_credentials_file)
                    .map_err(|e| OciError::Credentials(e.to_string()))?;
                let (user, password) = text
                    .trim()
                    .split_once(':')
                    .ok_or_else(|| OciError::Credentials("it must hold user:password".into()))?;
                RegistryAuth::Basic(user.into(), password.into())
            }
        };
        // reqwest takes rustls's process-wide provider: wedge's, ring. (Another
        // part of the process may have installed it first.)
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = match cluster.registry_insecure {
            true => ClientProtocol::Http,
            false => ClientProtocol::Https,
        };
        let client = Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(5)),
            read_timeout: Some(CALL_TIMEOUT),
            ..ClientConfig::default()
        });
        Ok(Self {
            client,
            auth,
            repository: cluster.registry.clone(),
        })
    }

    fn reference(&self, tag: &str) -> Result<Reference, OciError> {
        format!("{}:{tag}", self.repository)
            .parse()
            .map_err(|e| self.error(format!("bad reference: {e}")))
    }

    fn error(&self, message: impl std::fmt::Display) -> OciError {
        OciError::Registry {
            registry: self.repository.clone(),
            message: message.to_string(),
        }
    }

    /// Pushes one artifact of `layer` and `config`, tagged `tag`.
    async fn push(&self, tag: &str, layer: ImageLayer, config: Config) -> Result<(), OciError> {
        let reference = self.reference(tag)?;
        tokio::time::timeout(
            CALL_TIMEOUT,
            self.client
                .push(&reference, &[layer], config, &self.auth, None),
        )
        .await
        .map_err(|_| self.error("push timed out"))?
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Pushes `module`, tagged `<function>.<label>`; returns its digest.
    pub async fn push_module(
        &self,
        function: &str,
        label: &str,
        module: &[u8],
    ) -> Result<String, OciError> {
        let digest = digest_of(module);
        let layer = ImageLayer::new(module.to_vec(), WASM_LAYER_MEDIA_TYPE.into(), None);
        let config = Config::new(b"{}".to_vec(), WASM_CONFIG_MEDIA_TYPE.into(), None);
        self.push(&tag(&format!("{function}.{label}")), layer, config)
            .await?;
        Ok(digest)
    }

    /// Pulls the blob `digest` (`sha256:<hex>`) and checks it.
    pub async fn pull(&self, digest: &str, size: Option<u64>) -> Result<Vec<u8>, OciError> {
        let reference = self.reference("pull")?;
        let descriptor = OciDescriptor {
            digest: digest.to_string(),
            size: size.map_or(0, |s| s as i64),
            media_type: WASM_LAYER_MEDIA_TYPE.into(),
            ..OciDescriptor::default()
        };
        let mut bytes = Vec::new();
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        tokio::time::timeout(
            CALL_TIMEOUT,
            self.client.pull_blob(&reference, &descriptor, &mut bytes),
        )
        .await
        .map_err(|_| self.error("pull timed out"))?
        .map_err(|e| self.error(e))?;
        let actual = digest_of(&bytes);
        if actual != digest {
            return Err(OciError::Digest {
                registry: self.repository.clone(),
                digest: digest.to_string(),
                actual: actual.trim_start_matches("sha256:").to_string(),
            });
        }
        Ok(bytes)
    }

    /// The tag of the code `engine` compiled from module `digest`.
    fn compiled_tag(digest: &str, engine: &str) -> String {
        let module = digest.trim_start_matches("sha256:");
        tag(&format!(
            "compiled-{}-{}",
            &module[..module.len().min(32)],
            &engine[..engine.len().min(32)]
        ))
    }

    /// Pushes `code`, compiled by `engine` from module `digest`.
    pub async fn push_compiled(
        &self,
        digest: &str,
        engine: &str,
        code: Vec<u8>,
    ) -> Result<(), OciError> {
        let layer = ImageLayer::new(code, COMPILED_LAYER_MEDIA_TYPE.into(), None);
        let config = Config::new(
            format!("{{\"module\":\"{digest}\",\"engine\":\"{engine}\"}}").into_bytes(),
            "application/vnd.wedge.compiled.config.v1+json".into(),
            None,
        );
        self.push(&Self::compiled_tag(digest, engine), layer, config)
            .await
    }

    /// The code `engine` compiled from module `digest`, when some node pushed it.
    pub async fn pull_compiled(
        &self,
        digest: &str,
        engine: &str,
    ) -> Result<Option<Vec<u8>>, OciError> {
        let reference = self.reference(&Self::compiled_tag(digest, engine))?;
        let pulled = tokio::time::timeout(
            CALL_TIMEOUT,
            self.client
                .pull(&reference, &self.auth, vec![COMPILED_LAYER_MEDIA_TYPE]),
        )
        .await
        .map_err(|_| self.error("pull timed out"))?;
        match pulled {
            Ok(image) => Ok(image.layers.into_iter().next().map(|l| l.data.to_vec())),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }
}

/// Whether the registry said it holds no such manifest (or repository).
fn not_found(e: &OciDistributionError) -> bool {
    use oci_client::errors::OciErrorCode::{ManifestUnknown, NameUnknown, NotFound};
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, ManifestUnknown | NameUnknown | NotFound)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_the_oci_grammar() {
        assert_eq!(tag("hello.v2"), "hello.v2");
        assert_eq!(tag("-odd name"), "_odd_name");
        assert_eq!(tag(&"x".repeat(300)).len(), 128);
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
