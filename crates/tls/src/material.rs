//! The TLS material of a process (`[tls]`: CA, certificate, key), loaded, checked, and swapped
//! in place when the files change, so certificates rotate without a restart.
//!
//! Every rustls config built from a [`TlsMaterial`] ([`crate::server_config`],
//! [`crate::client_config`]) reads the material current at each handshake: connections made
//! after a [`TlsMaterial::reload`] use the new certificate, connections already open keep
//! theirs. A reload that fails (a half-written file, a key that does not match, a certificate
//! of another CA) keeps the material in force and says what is wrong.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use sha2::{Digest, Sha256};

use crate::error::TlsError;
use crate::inspect::CertInfo;

/// Where a process's TLS material lives (`[tls] ca`, `cert`, `key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate(s) peers must chain to, PEM.
    pub ca: PathBuf,
    /// This process's certificate (chain), PEM; `None` for a client that only verifies
    /// servers (the CLI without a client certificate).
    pub cert: Option<PathBuf>,
    /// The private key of `cert`, PEM.
    pub key: Option<PathBuf>,
}

/// The material as loaded at one moment.
pub(crate) struct Loaded {
    pub(crate) certified: Option<Arc<CertifiedKey>>,
    pub(crate) leaf: Option<CertInfo>,
    pub(crate) ca: Vec<CertInfo>,
    pub(crate) client_verifier: Arc<dyn ClientCertVerifier>,
    pub(crate) server_verifier: Arc<WebPkiServerVerifier>,
    digest: [u8; 32],
}

/// The result of [`TlsMaterial::reload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The files are unchanged; nothing was swapped.
    Unchanged,
    /// New material is in force; the certificate it now presents.
    Changed(Option<Box<CertInfo>>),
}

/// A process's TLS material, shared by every listener and client of the process.
#[derive(Clone)]
pub struct TlsMaterial {
    files: Arc<TlsFiles>,
    pub(crate) current: Arc<ArcSwap<Loaded>>,
    pub(crate) provider: Arc<CryptoProvider>,
    reloads: Arc<AtomicU64>,
    reload_failures: Arc<AtomicU64>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").field("files", &self.files).finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Loads and checks the material: the CA reads, the certificate chains to it, has not
    /// expired, and the key is the certificate's.
    pub fn load(files: TlsFiles) -> Result<TlsMaterial, TlsError> {
        if files.cert.is_some() != files.key.is_some() {
            return Err(TlsError::Invalid("a certificate needs its key, and a key its certificate".into()));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let loaded = load(&files, &provider)?;
        Ok(TlsMaterial {
            files: Arc::new(files),
            current: Arc::new(ArcSwap::from_pointee(loaded)),
            provider,
            reloads: Arc::default(),
            reload_failures: Arc::default(),
        })
    }

    /// Reads the files again; when they changed and are good, the new material is in force
    /// for every new handshake. When they are not good, the old material stays in force.
    pub fn reload(&self) -> Result<Reloaded, TlsError> {
        let digest = match digest_files(&self.files) {
            Ok(d) => d,
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        if digest == self.current.load().digest {
            return Ok(Reloaded::Unchanged);
        }
        match load(&self.files, &self.provider) {
            Ok(loaded) => {
                let leaf = loaded.leaf.clone().map(Box::new);
                self.current.store(Arc::new(loaded));
                self.reloads.fetch_add(1, Ordering::Relaxed);
                Ok(Reloaded::Changed(leaf))
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Checks the files every `interval` and reloads them when they change (a rotated
    /// certificate is in force within one interval, no restart, no SIGHUP needed). Logs each
    /// change and each failure once per distinct failure.
    pub fn spawn_watch(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let material = self.clone();
        tokio::spawn(async move {
            let mut last_error = String::new();
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(50)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let m = material.clone();
                let outcome = tokio::task::spawn_blocking(move || m.reload()).await;
                match outcome {
                    Ok(Ok(Reloaded::Changed(leaf))) => {
                        last_error.clear();
                        material.log_changed(leaf.as_deref());
                    }
                    Ok(Ok(Reloaded::Unchanged)) => last_error.clear(),
                    Ok(Err(e)) => {
                        let text = e.to_string();
                        if text != last_error {
                            tracing::warn!(error = %text, "TLS material not reloaded; the material in force stays");
                            last_error = text;
                        }
                    }
                    Err(_) => return,
                }
            }
        })
    }

    /// Logs that new material is in force.
    pub fn log_changed(&self, leaf: Option<&CertInfo>) {
        match leaf {
            Some(leaf) => tracing::info!(
                subject = %leaf.subject,
                not_after = %crate::format_time(leaf.not_after),
                "TLS certificate reloaded"
            ),
            None => tracing::info!("TLS CA reloaded"),
        }
    }

    /// The files the material is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The certificate this process presents (none for a verify-only client).
    pub fn leaf(&self) -> Option<CertInfo> {
        self.current.load().leaf.clone()
    }

    /// The CA certificates peers must chain to.
    pub fn ca(&self) -> Vec<CertInfo> {
        self.current.load().ca.clone()
    }

    /// Reloads that put new material in force since start.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Reloads that failed since start (the old material stayed).
    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }
}

/// Reads every certificate of a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::io(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { path: path.to_path_buf(), what: format!("unreadable PEM: {e}") })?;
    if certs.is_empty() {
        return Err(TlsError::Pem { path: path.to_path_buf(), what: "holds no certificate".into() });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::io(path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| TlsError::Pem { path: path.to_path_buf(), what: format!("holds no usable private key: {e}") })
}

fn digest_files(files: &TlsFiles) -> Result<[u8; 32], TlsError> {
    let mut hasher = Sha256::new();
    for path in [Some(&files.ca), files.cert.as_ref(), files.key.as_ref()].into_iter().flatten() {
        let bytes = std::fs::read(path).map_err(|e| TlsError::io(path, e))?;
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(hasher.finalize().into())
}

fn load(files: &TlsFiles, provider: &Arc<CryptoProvider>) -> Result<Loaded, TlsError> {
    let digest = digest_files(files)?;
    let ca_certs = read_certs(&files.ca)?;
    let mut roots = RootCertStore::empty();
    let mut ca = Vec::new();
    for der in &ca_certs {
        let info = CertInfo::from_der(der)?;
        if !info.is_ca {
            return Err(TlsError::Certificate(format!(
                "{}: '{}' is not a CA certificate",
                files.ca.display(),
                info.subject
            )));
        }
        roots
            .add(der.clone())
            .map_err(|e| TlsError::Pem { path: files.ca.clone(), what: format!("unusable CA certificate: {e}") })?;
        ca.push(info);
    }
    let roots = Arc::new(roots);
    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Certificate(format!("{}: {e}", files.ca.display())))?;
    let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| TlsError::Certificate(format!("{}: {e}", files.ca.display())))?;
    let (certified, leaf) = match (&files.cert, &files.key) {
        (Some(cert_path), Some(key_path)) => {
            let chain = read_certs(cert_path)?;
            let key = read_key(key_path)?;
            let signing = provider
                .key_provider
                .load_private_key(key)
                .map_err(|e| TlsError::Pem { path: key_path.clone(), what: format!("unusable private key: {e}") })?;
            let certified = CertifiedKey::new(chain.clone(), signing);
            if certified.keys_match().is_err() {
                return Err(TlsError::Certificate(format!(
                    "{} is not the key of {} (was one of them replaced without the other?)",
                    key_path.display(),
                    cert_path.display()
                )));
            }
            let leaf = CertInfo::from_der(&chain[0])?;
            let now = SystemTime::now();
            if leaf.not_after <= now {
                return Err(TlsError::Certificate(format!(
                    "{}: the certificate expired on {}",
                    cert_path.display(),
                    crate::format_time(leaf.not_after)
                )));
            }
            client_verifier.verify_client_cert(&chain[0], &chain[1..], UnixTime::now()).map_err(|e| {
                TlsError::Certificate(format!(
                    "{}: the certificate is not one of the CA in {} ({e})",
                    cert_path.display(),
                    files.ca.display()
                ))
            })?;
            (Some(Arc::new(certified)), Some(leaf))
        }
        _ => (None, None),
    };
    Ok(Loaded { certified, leaf, ca, client_verifier, server_verifier, digest })
}
