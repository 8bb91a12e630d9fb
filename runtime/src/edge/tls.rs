//! TLS on the public listener (`[server.tls]`): rustls with the ring provider,
//! ALPN offering h2 and http/1.1, and the certificate chain and key read from
//! PEM files that are watched and reloaded.
//!
//! A reload swaps the certificate that new handshakes see; connections already
//! open keep theirs and are never dropped. A new pair that does not load (a
//! bad PEM, a key that does not match the certificate, the key file not yet
//! written) leaves the old certificate serving and is logged; the next change
//! to either file tries again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// Quiet time after a change to the files before they are read: a certificate
/// and key written one after the other load as one pair.
const SETTLE: Duration = Duration::from_millis(100);

/// The TLS side of the public listener.
pub struct Tls {
    acceptor: TlsAcceptor,
    /// Keeps the watch on the files' directories alive.
    _watcher: RecommendedWatcher,
}

impl Tls {
    /// Loads the pair `config` names and starts watching it. Fails when the
    /// pair does not load: a node never starts without its certificate.
    pub fn start(config: &TlsConfig) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let first = load(&config.cert, &config.key, &provider)?;
        let resolver = Arc::new(Resolver {
            current: ArcSwap::from_pointee(first),
        });
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("cannot set up TLS")?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let changed = Arc::new(Notify::new());
        let mut watcher = {
            let changed = changed.clone();
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Any change in the files' directories: Kubernetes, for one,
                // replaces secrets by swapping a symlink next to them. A change
                // that leaves the pair as it was reloads nothing.
                if event.is_ok_and(|e| !e.kind.is_access()) {
                    changed.notify_one();
                }
            })?
        };
        for dir in watched_dirs(config) {
            watcher
                .watch(&dir, RecursiveMode::NonRecursive)
                .with_context(|| format!("cannot watch {}", dir.display()))?;
        }
        tokio::spawn(reload_on_change(
            changed,
            resolver,
            provider,
            config.cert.clone(),
            config.key.clone(),
        ));
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            _watcher: watcher,
        })
    }

    /// Accepts TLS connections with the current certificate.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

/// The directories holding the certificate and the key, each once.
fn watched_dirs(config: &TlsConfig) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = [&config.cert, &config.key]
        .iter()
        .map(|p| match p.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        })
        .collect();
    dirs.dedup();
    dirs
}

/// Hands every handshake the certificate loaded last.
#[derive(Debug)]
struct Resolver {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Reloads the pair after each change, keeping the old one when the new one
/// does not load.
async fn reload_on_change(
    changed: Arc<Notify>,
    resolver: Arc<Resolver>,
    provider: Arc<CryptoProvider>,
    cert: PathBuf,
    key: PathBuf,
) {
    loop {
        changed.notified().await;
        tokio::time::sleep(SETTLE).await;
        let (cert, key, provider) = (cert.clone(), key.clone(), provider.clone());
        let loaded = tokio::task::spawn_blocking(move || {
            let pair = load(&cert, &key, &provider);
            (pair, cert)
        })
        .await;
        let Ok((pair, cert)) = loaded else { continue };
        match pair {
            Ok(pair) => {
                if pair.cert == resolver.current.load().cert {
                    continue;
                }
                resolver.current.store(Arc::new(pair));
                tracing::info!(target: "wedge::tls", cert = %cert.display(), "certificate reloaded");
            }
            Err(e) => tracing::error!(
                target: "wedge::tls",
                cert = %cert.display(),
                "the new certificate does not load; the old one keeps serving: {e:#}"
            ),
        }
    }
}

/// Reads a PEM chain and key and checks that they belong together.
pub fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the certificate chain {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no certificate", cert.display());
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read the private key {}", key.display()))?;
    CertifiedKey::from_der(chain, private, provider).with_context(|| {
        format!(
            "{} and {} do not make a usable pair",
            cert.display(),
            key.display()
        )
    })
}
