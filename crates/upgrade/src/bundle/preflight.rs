//! The staging rule seed 000 §1.4.1.1 states: "A single image must be deployed ... of each
//! server to be upgraded, where the image is the correct type for that server ... If the
//! deployed image type does not match the existing installed software type, the upgrade fails
//! ... if multiple images are copied into the directory, the upgrade fails."

use crate::release::Release;
use crate::topology::{AppType, StagedBundle};

use super::BundleError;

/// Why a preflight check failed.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// Nothing is staged.
    #[error("preflight failed: no release bundle is staged (exactly one is needed)")]
    NothingStaged,
    /// More than one bundle is staged.
    #[error("preflight failed: {} release bundles are staged ({}); exactly one may be", .0.len(), .0.join(", "))]
    SeveralStaged(Vec<String>),
    /// The staged bundle is for another application type.
    #[error("preflight failed: {file} is a bundle for {staged}, the server runs {server}")]
    WrongApplication {
        /// The staged file.
        file: String,
        /// Its application type.
        staged: AppType,
        /// The server's.
        server: AppType,
    },
    /// The staged bundle installs another release than the procedure's.
    #[error("preflight failed: {file} installs {staged}, the upgrade procedure installs {target}")]
    WrongRelease {
        /// The staged file.
        file: String,
        /// Its release.
        staged: Release,
        /// The procedure's.
        target: Release,
    },
    /// The staged bundle does not verify, or does not upgrade the running release.
    #[error("preflight failed: {file}: {source}")]
    Bundle {
        /// The staged file.
        file: String,
        /// Why.
        source: BundleError,
    },
    /// The staging directory cannot be read.
    #[error("preflight failed: staging directory {dir}: {source}")]
    Io {
        /// The directory.
        dir: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Checks what a server has staged: exactly one bundle, for `application`, installing `target`
/// when a procedure is selected. Returns that bundle.
pub fn preflight<'a>(
    application: AppType,
    staged: &'a [StagedBundle],
    target: Option<&Release>,
) -> Result<&'a StagedBundle, PreflightError> {
    let bundle = match staged {
        [] => return Err(PreflightError::NothingStaged),
        [one] => one,
        many => return Err(PreflightError::SeveralStaged(many.iter().map(|b| b.file_name.clone()).collect())),
    };
    if bundle.application != application {
        return Err(PreflightError::WrongApplication {
            file: bundle.file_name.clone(),
            staged: bundle.application,
            server: application,
        });
    }
    if let Some(t) = target.filter(|t| **t != bundle.release) {
        return Err(PreflightError::WrongRelease {
            file: bundle.file_name.clone(),
            staged: bundle.release.clone(),
            target: t.clone(),
        });
    }
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(file: &str, app: AppType, release: &str) -> StagedBundle {
        StagedBundle { file_name: file.into(), application: app, release: Release::new(release).unwrap() }
    }

    #[test]
    fn exactly_one_bundle_of_the_server_type() {
        let v2 = Release::new("0.2.0").unwrap();
        let good = [staged("engine-0.2.0.tgz", AppType::Engine, "0.2.0")];
        assert_eq!(preflight(AppType::Engine, &good, Some(&v2)).unwrap().file_name, "engine-0.2.0.tgz");
        let e = preflight(AppType::Engine, &[], Some(&v2)).unwrap_err();
        assert!(e.to_string().contains("no release bundle is staged"), "{e}");
        let two = [good[0].clone(), staged("probe.tgz", AppType::Probe, "0.2.0")];
        let e = preflight(AppType::Engine, &two, Some(&v2)).unwrap_err();
        assert!(e.to_string().contains("2 release bundles are staged (engine-0.2.0.tgz, probe.tgz)"), "{e}");
        let e = preflight(AppType::Manager, &good, Some(&v2)).unwrap_err();
        assert!(e.to_string().contains("is a bundle for engine, the server runs manager"), "{e}");
        let e = preflight(AppType::Engine, &good, Some(&Release::new("0.3.0").unwrap())).unwrap_err();
        assert!(e.to_string().contains("installs 0.2.0, the upgrade procedure installs 0.3.0"), "{e}");
        assert!(preflight(AppType::Engine, &good, None).is_ok());
    }
}
