//! Release bundles: what seed 000 calls the ISO (§1.4.6 "Deploy Policy Management Upgrade
//! Software", §1.3.1.3 "The ISO Select").
//!
//! A bundle is a gzip-compressed tar archive holding
//! * `manifest.toml` ([`Manifest`]): application type, release, the releases it upgrades from,
//!   a description, and the size and sha256 of every payload file;
//! * `manifest.sig`: one line `ed25519 <public key hex> <signature hex>`, an ed25519 signature
//!   over the exact bytes of `manifest.toml`;
//! * `payload/...`: the files it installs (the `tollgate` binary).
//!
//! [`verify`] authenticates a bundle BEFORE anything in it is used: the signer must be one of the
//! configured [`TrustedKeys`] and the signature must hold, then every payload file must have the
//! manifest's size and digest and no file may be unlisted. [`VerifiedBundle::check_applies_to`]
//! then checks the application type and the upgrade path. [`preflight`] is seed 000's staging
//! rule: exactly one staged bundle, of the server's application type.
//!
//! Verification works on bytes; the file helpers ([`build_file`], [`verify_file`],
//! [`preflight_dir`], [`VerifiedBundle::extract_to`]) are this crate's only I/O.

mod archive;
mod files;
pub mod manifest;
mod preflight;

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

pub use files::{build_file, bundles_in, peek_manifest, preflight_dir, staged_files, verify_file};
pub use manifest::{Manifest, PayloadFile};
pub use preflight::{PreflightError, preflight};

use crate::release::{Release, ReleasePattern};
use crate::topology::AppType;

/// The manifest's name in the archive.
pub const MANIFEST_FILE: &str = "manifest.toml";
/// The signature's name in the archive.
pub const SIGNATURE_FILE: &str = "manifest.sig";
/// Directory of the payload in the archive.
pub const PAYLOAD_DIR: &str = "payload";

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Not a readable (gzip-compressed) tar archive.
    #[error("not a valid bundle archive: {0}")]
    Archive(String),
    /// Beyond the size or file-count limits.
    #[error("the bundle exceeds the limit of {limit} bytes (or of files)")]
    TooLarge {
        /// The byte limit that applied.
        limit: u64,
    },
    /// An archive path is absolute, escapes with `..` or is not printable ASCII.
    #[error("unsafe path in the archive: {0:?}")]
    UnsafePath(String),
    /// A path appears twice.
    #[error("{0:?} appears twice in the archive")]
    DuplicateEntry(String),
    /// A link, device or other non-regular entry.
    #[error("{path:?} is a {kind} entry; only regular files are allowed")]
    UnsupportedEntry {
        /// The entry.
        path: String,
        /// Its tar type.
        kind: String,
    },
    /// No `manifest.toml`.
    #[error("the bundle has no manifest.toml")]
    MissingManifest,
    /// No `manifest.sig`.
    #[error("the bundle is not signed (no manifest.sig)")]
    MissingSignature,
    /// `manifest.sig` is not `ed25519 <key hex> <signature hex>`.
    #[error("manifest.sig is malformed: {0}")]
    MalformedSignature(String),
    /// Signed by a key that is not trusted.
    #[error("the bundle is signed by an unknown key {key}; it is not among the trusted keys")]
    UnknownSigner {
        /// The signer's public key, hex.
        key: String,
    },
    /// The signature does not match the manifest (the manifest was altered, or forged).
    #[error("bad signature: manifest.toml does not match the signature by trusted key {key}")]
    BadSignature {
        /// The (trusted) key named by the signature.
        key: String,
    },
    /// The manifest does not parse or is inconsistent.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// A listed payload file is missing.
    #[error("payload file {0:?} listed in the manifest is missing")]
    MissingPayload(String),
    /// A payload file does not have the manifest's size.
    #[error("payload file {path:?} is {actual} bytes, the manifest says {expected}")]
    SizeMismatch {
        /// The file.
        path: String,
        /// Size in the manifest.
        expected: u64,
        /// Size found.
        actual: u64,
    },
    /// A payload file does not have the manifest's digest.
    #[error("bad checksum: payload file {path:?} has sha256 {actual}, the manifest says {expected}")]
    ChecksumMismatch {
        /// The file.
        path: String,
        /// Digest in the manifest.
        expected: String,
        /// Digest found.
        actual: String,
    },
    /// A file the manifest does not list.
    #[error("{0:?} is in the archive but not listed in the manifest")]
    UnlistedFile(String),
    /// The bundle is for another application type.
    #[error("wrong application type: the bundle is for {bundle}, the server runs {server}")]
    WrongApplication {
        /// The bundle's type.
        bundle: AppType,
        /// The server's type.
        server: AppType,
    },
    /// The bundle does not upgrade the running release.
    #[error(
        "not an upgrade from the running release: {version} upgrades from [{upgrades_from}], the server runs {running}"
    )]
    NotAnUpgradeFrom {
        /// The bundle's release.
        version: Release,
        /// The server's release.
        running: Release,
        /// The bundle's upgrade paths.
        upgrades_from: String,
    },
    /// A key in the configuration is not 32 bytes of hex or not a valid ed25519 point.
    #[error("invalid ed25519 key: {0}")]
    InvalidKey(String),
    /// [`build`] was given something it cannot package.
    #[error("cannot build the bundle: {0}")]
    InvalidSpec(String),
}

/// Limits [`verify`] applies before reading more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyLimits {
    /// Largest archive file.
    pub max_archive_bytes: u64,
    /// Largest total of the files' contents.
    pub max_unpacked_bytes: u64,
    /// Most files.
    pub max_files: usize,
}

impl Default for VerifyLimits {
    fn default() -> Self {
        VerifyLimits { max_archive_bytes: 512 << 20, max_unpacked_bytes: 1 << 30, max_files: 1024 }
    }
}

/// The public keys bundles may be signed with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys(Vec<VerifyingKey>);

impl TrustedKeys {
    /// Trusts `keys`.
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        TrustedKeys(keys.into_iter().collect())
    }

    /// Trusts keys given as 64 hex digits each (the configuration's form).
    pub fn from_hex<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> Result<Self, BundleError> {
        keys.into_iter().map(|k| parse_public_key(k.as_ref())).collect::<Result<Vec<_>, _>>().map(TrustedKeys)
    }

    /// Whether `key` is trusted.
    pub fn contains(&self, key: &VerifyingKey) -> bool {
        self.0.contains(key)
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.0
    }
}

fn hex32(text: &str) -> Result<[u8; 32], BundleError> {
    let bytes = hex::decode(text.trim()).map_err(|e| BundleError::InvalidKey(format!("{text:?}: {e}")))?;
    bytes.try_into().map_err(|_| BundleError::InvalidKey(format!("{text:?}: not 32 bytes")))
}

/// Parses a public key written as 64 hex digits.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, BundleError> {
    VerifyingKey::from_bytes(&hex32(text)?).map_err(|e| BundleError::InvalidKey(format!("{text:?}: {e}")))
}

/// Parses a signing key written as 64 hex digits (its 32-byte seed).
pub fn parse_signing_key(text: &str) -> Result<SigningKey, BundleError> {
    Ok(SigningKey::from_bytes(&hex32(text)?))
}

/// The signing key from a 32-byte seed (generate the seed with a cryptographic RNG).
pub fn signing_key_from_seed(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&seed)
}

/// A public key as 64 hex digits.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

/// sha256 of `data`, lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// What a bundle declares; [`build`] adds the payload digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSpec {
    /// Application type.
    pub application: AppType,
    /// Release.
    pub version: Release,
    /// Releases it upgrades from.
    pub upgrades_from: Vec<ReleasePattern>,
    /// Description.
    pub description: String,
    /// Newest policy schema the release reads, if it declares one.
    pub max_policy_schema: Option<i64>,
}

/// A file to put in a bundle, or one taken out of a verified bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    /// Path relative to the payload root.
    pub path: String,
    /// Contents.
    pub data: Vec<u8>,
    /// Installed executable.
    pub executable: bool,
}

/// Builds a signed bundle: the manifest lists each file's size and sha256 and is signed with
/// `key`. The archive is deterministic for the same input.
pub fn build(spec: &BundleSpec, payload: &[BundleFile], key: &SigningKey) -> Result<Vec<u8>, BundleError> {
    let manifest = Manifest {
        application: spec.application,
        version: spec.version.clone(),
        upgrades_from: spec.upgrades_from.clone(),
        description: spec.description.clone(),
        max_policy_schema: spec.max_policy_schema,
        payload: payload
            .iter()
            .map(|f| PayloadFile {
                path: f.path.clone(),
                size: f.data.len() as u64,
                sha256: sha256_hex(&f.data),
                executable: f.executable,
            })
            .collect(),
    };
    manifest.check().map_err(BundleError::InvalidSpec)?;
    let manifest_text = toml::to_string(&manifest).map_err(|e| BundleError::InvalidSpec(e.to_string()))?;
    let signature: Signature = key.sign(manifest_text.as_bytes());
    let sig_line = format!("ed25519 {} {}\n", public_key_hex(&key.verifying_key()), hex::encode(signature.to_bytes()));
    let mut entries: Vec<(String, &[u8], u32)> = vec![
        (MANIFEST_FILE.to_string(), manifest_text.as_bytes(), 0o644),
        (SIGNATURE_FILE.to_string(), sig_line.as_bytes(), 0o644),
    ];
    for f in payload {
        entries.push((format!("{PAYLOAD_DIR}/{}", f.path), &f.data, if f.executable { 0o755 } else { 0o644 }));
    }
    archive::write(&entries).map_err(|e| BundleError::InvalidSpec(e.to_string()))
}

/// A bundle whose signature, digests and contents were checked.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedBundle {
    /// Its manifest.
    pub manifest: Manifest,
    /// The key that signed it.
    pub signer: VerifyingKey,
    /// Its payload files, in manifest order.
    pub files: Vec<BundleFile>,
}

impl fmt::Debug for VerifiedBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedBundle")
            .field("manifest", &self.manifest)
            .field("signer", &public_key_hex(&self.signer))
            .field("files", &self.files.iter().map(|f| (&f.path, f.data.len())).collect::<Vec<_>>())
            .finish()
    }
}

impl VerifiedBundle {
    /// Checks that the bundle is for `application` and upgrades a server that runs `running`.
    pub fn check_applies_to(&self, application: AppType, running: &Release) -> Result<(), BundleError> {
        let m = &self.manifest;
        if m.application != application {
            return Err(BundleError::WrongApplication { bundle: m.application, server: application });
        }
        if !m.upgrades(running) {
            return Err(BundleError::NotAnUpgradeFrom {
                version: m.version.clone(),
                running: running.clone(),
                upgrades_from: m.upgrades_from.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "),
            });
        }
        Ok(())
    }

    /// A payload file by path.
    pub fn file(&self, path: &str) -> Option<&BundleFile> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// Verifies `archive` against `trusted` with the default [`VerifyLimits`].
pub fn verify(archive: &[u8], trusted: &TrustedKeys) -> Result<VerifiedBundle, BundleError> {
    verify_with_limits(archive, trusted, &VerifyLimits::default())
}

/// Verifies `archive` against `trusted`, then checks it applies to a server of `application`
/// that runs `running`.
pub fn verify_for(
    archive: &[u8],
    trusted: &TrustedKeys,
    application: AppType,
    running: &Release,
) -> Result<VerifiedBundle, BundleError> {
    let bundle = verify(archive, trusted)?;
    bundle.check_applies_to(application, running)?;
    Ok(bundle)
}

fn check_signature(manifest: &[u8], sig_file: &[u8], trusted: &TrustedKeys) -> Result<VerifyingKey, BundleError> {
    let malformed = |why: &str| BundleError::MalformedSignature(why.to_string());
    let text = std::str::from_utf8(sig_file).map_err(|_| malformed("not UTF-8"))?;
    let mut words = text.split_whitespace();
    let (Some("ed25519"), Some(key_hex), Some(sig_hex), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(malformed("expected \"ed25519 <public key hex> <signature hex>\""));
    };
    let key = parse_public_key(key_hex).map_err(|e| BundleError::MalformedSignature(e.to_string()))?;
    if !trusted.contains(&key) {
        return Err(BundleError::UnknownSigner { key: public_key_hex(&key) });
    }
    let sig_bytes: [u8; 64] = hex::decode(sig_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed("the signature is not 64 bytes of hex"))?;
    key.verify_strict(manifest, &Signature::from_bytes(&sig_bytes))
        .map_err(|_| BundleError::BadSignature { key: public_key_hex(&key) })?;
    Ok(key)
}

/// Verifies `archive`: signature by a trusted key over `manifest.toml` first, then the manifest,
/// then every payload file's size and sha256; files the manifest does not list are refused.
pub fn verify_with_limits(
    archive: &[u8],
    trusted: &TrustedKeys,
    limits: &VerifyLimits,
) -> Result<VerifiedBundle, BundleError> {
    let mut entries = archive::read(archive, limits)?;
    let mut take = |name: &str| entries.iter().position(|e| e.path == name).map(|i| entries.swap_remove(i).data);
    let manifest_bytes = take(MANIFEST_FILE).ok_or(BundleError::MissingManifest)?;
    let sig_file = take(SIGNATURE_FILE).ok_or(BundleError::MissingSignature)?;
    let signer = check_signature(&manifest_bytes, &sig_file, trusted)?;
    let manifest = Manifest::parse(&manifest_bytes).map_err(BundleError::InvalidManifest)?;
    let mut files = Vec::with_capacity(manifest.payload.len());
    for listed in &manifest.payload {
        let name = format!("{PAYLOAD_DIR}/{}", listed.path);
        let data = take(&name).ok_or_else(|| BundleError::MissingPayload(listed.path.clone()))?;
        if data.len() as u64 != listed.size {
            return Err(BundleError::SizeMismatch {
                path: listed.path.clone(),
                expected: listed.size,
                actual: data.len() as u64,
            });
        }
        let actual = sha256_hex(&data);
        if actual != listed.sha256 {
            return Err(BundleError::ChecksumMismatch {
                path: listed.path.clone(),
                expected: listed.sha256.clone(),
                actual,
            });
        }
        files.push(BundleFile { path: listed.path.clone(), data, executable: listed.executable });
    }
    if let Some(extra) = entries.first() {
        return Err(BundleError::UnlistedFile(extra.path.clone()));
    }
    Ok(VerifiedBundle { manifest, signer, files })
}

#[cfg(test)]
mod tests;
