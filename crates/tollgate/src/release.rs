//! Which release this process is: the version of the release bundle the agent installed
//! (`TOLLGATE_RELEASE`), else this build's; and the newest policy schema it reads
//! (`TOLLGATE_MAX_POLICY_SCHEMA`, from the bundle's manifest: a bundle may declare an older
//! release's capabilities, which is how the lab and the tests run mixed versions).

/// The release of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Release version.
    pub version: String,
    /// Build version (Cargo package version).
    pub build: &'static str,
    /// Newest policy schema read.
    pub max_policy_schema: i64,
}

/// The release from the environment.
pub fn current() -> Release {
    Release {
        version: std::env::var("TOLLGATE_RELEASE")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
        build: env!("CARGO_PKG_VERSION"),
        max_policy_schema: std::env::var("TOLLGATE_MAX_POLICY_SCHEMA")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(tollgate_policy::SCHEMA_VERSION)
            .clamp(tollgate_policy::OLDEST_SCHEMA_VERSION, tollgate_policy::SCHEMA_VERSION),
    }
}
