//! The errors of this crate, each naming the file or the certificate at fault.

use std::path::PathBuf;

/// What went wrong with TLS material or the CA.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable of the kind expected.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// A certificate could not be read, or does not fit its use.
    #[error("{0}")]
    Certificate(String),
    /// Generating or signing a certificate failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the material.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// The CA directory already holds a CA (it is never overwritten).
    #[error("{0} already exists: a CA is never overwritten (move it away to start a new one)")]
    CaExists(PathBuf),
    /// An argument is not usable.
    #[error("{0}")]
    Invalid(String),
}

impl TlsError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> TlsError {
        TlsError::Io { path: path.into(), source }
    }
}
