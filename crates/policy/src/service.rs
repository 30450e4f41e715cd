//! Installing and uninstalling policies on a running engine: compile, store, swap.
//!
//! A policy is compiled (and so fully validated) before anything is written; only a valid
//! policy is stored and then swapped in. An invalid one leaves the store and the policy in
//! force untouched.

use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tollgate_number::DialingPlan;

use crate::compile::{CompileOptions, CompiledPolicy, PolicyMeta, RuleSummary, compile};
use crate::error::PolicyError;
use crate::installed::InstalledPolicy;
use crate::source::PolicySource;
use crate::store::{HistoryEntry, PolicyStore, StoreError, VersionInfo};

/// Why an install did not happen.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The policy is invalid; nothing was changed.
    #[error("{0}")]
    Invalid(PolicyError),
    /// The store could not be written; the policy in force is unchanged.
    #[error("policy store: {0}")]
    Io(#[from] io::Error),
}

/// The policy in force, as shown to operators.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurrentPolicy {
    /// Stored version, `None` when nothing is installed.
    pub version: Option<u64>,
    /// Stored facts about that version.
    pub info: Option<VersionInfo>,
    /// Facts about the compiled policy.
    pub meta: PolicyMeta,
    /// Its rules.
    pub rules: Vec<RuleSummary>,
    /// Its text (empty when nothing is installed).
    pub text: String,
}

/// Called with the time each successful install took (see [`PolicyService::on_install`]).
pub type InstallObserver = Box<dyn Fn(Duration) + Send + Sync>;

/// Policy management of one engine.
pub struct PolicyService {
    store: PolicyStore,
    installed: Arc<InstalledPolicy>,
    plan: DialingPlan,
    intercepts: Vec<String>,
    changes: Mutex<()>,
    load_error: Option<String>,
    /// The newest policy schema this engine's release reads (lower than
    /// [`crate::SCHEMA_VERSION`] when it emulates an older release, as in a mixed-version
    /// cluster during an upgrade).
    max_schema: i64,
    /// Told how long each successful install took (e.g. a metric's histogram).
    install_observer: OnceLock<InstallObserver>,
}

impl PolicyService {
    /// Opens the store and puts its current version in force. If the stored version no longer
    /// compiles (say, an intercept was removed from the configuration), the engine starts with
    /// the default (allow) and [`PolicyService::load_error`] says why.
    pub fn open(store: PolicyStore, plan: DialingPlan, intercepts: Vec<String>) -> io::Result<Self> {
        let mut service = PolicyService {
            store,
            installed: Arc::new(InstalledPolicy::default()),
            plan,
            intercepts,
            changes: Mutex::new(()),
            load_error: None,
            max_schema: crate::SCHEMA_VERSION,
            install_observer: OnceLock::new(),
        };
        match service.store.load_current(service.options()) {
            Ok(Some((version, policy))) => {
                service.installed.replace(Some(version), policy);
            }
            Ok(None) => {}
            Err(StoreError::Io(e)) => return Err(e),
            Err(e @ StoreError::Invalid { .. }) => service.load_error = Some(e.to_string()),
        }
        Ok(service)
    }

    fn options(&self) -> CompileOptions<'_> {
        CompileOptions { plan: &self.plan, intercepts: Some(&self.intercepts) }
    }

    /// Why the stored policy could not be put in force at start, if it could not.
    pub fn load_error(&self) -> Option<&str> {
        self.load_error.as_deref()
    }

    /// The handle query handlers evaluate against.
    pub fn installed(&self) -> &Arc<InstalledPolicy> {
        &self.installed
    }

    /// The store.
    pub fn store(&self) -> &PolicyStore {
        &self.store
    }

    /// The dialing plan numbers are normalised with.
    pub fn plan(&self) -> &DialingPlan {
        &self.plan
    }

    /// Limits the policy schema this engine accepts (a release older than this build).
    pub fn with_max_schema(mut self, max: i64) -> Self {
        self.max_schema = max.clamp(crate::OLDEST_SCHEMA_VERSION, crate::SCHEMA_VERSION);
        self
    }

    /// The newest policy schema this engine accepts.
    pub fn max_schema(&self) -> i64 {
        self.max_schema
    }

    /// Validates a policy against this engine (including its intercept names and the schema
    /// its release reads) without installing it.
    pub fn check(&self, source: &PolicySource) -> Result<CompiledPolicy, PolicyError> {
        let compiled = compile(source, self.options())?;
        let schema = compiled.meta().schema;
        if schema > self.max_schema {
            return Err(PolicyError::single(
                &source.file,
                source.text.lines().position(|l| l.trim_start().starts_with("schema")).map(|i| i + 1),
                "schema",
                format!(
                    "schema {schema} needs a newer release: this engine reads schemas up to {} (finish the upgrade first)",
                    self.max_schema
                ),
            ));
        }
        Ok(compiled)
    }

    /// Sets what is told how long each successful install took, from the start of
    /// compilation to the new policy being in force (the policy it replaced freed). Only the
    /// first observer set is kept; `false` when one was set already.
    pub fn on_install(&self, observer: InstallObserver) -> bool {
        self.install_observer.set(observer).is_ok()
    }

    /// Validates, stores and puts `source` in force.
    ///
    /// The policy in force answers every query until the new one replaces it in one atomic
    /// swap; it is freed after the swap (once the last query evaluating it is done).
    pub fn install(&self, source: &PolicySource, actor: &str) -> Result<VersionInfo, InstallError> {
        let started = Instant::now();
        let compiled = self.check(source).map_err(InstallError::Invalid)?;
        let _guard = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let info = self.store.install(source, &compiled, actor)?;
        drop(self.installed.replace(Some(info.version), compiled));
        if let Some(observe) = self.install_observer.get() {
            observe(started.elapsed());
        }
        Ok(info)
    }

    /// Removes the policy in force; calls are allowed by default afterwards.
    pub fn uninstall(&self, actor: &str) -> io::Result<Option<u64>> {
        let _guard = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let previous = self.store.uninstall(actor)?;
        self.installed.clear();
        Ok(previous)
    }

    /// The policy in force.
    pub fn current(&self) -> io::Result<CurrentPolicy> {
        let active = self.installed.snapshot();
        let (info, text) = match active.version {
            Some(v) => (Some(self.store.version_info(v)?), self.store.version_source(v)?.text),
            None => (None, String::new()),
        };
        Ok(CurrentPolicy {
            version: active.version,
            info,
            meta: active.policy.meta().clone(),
            rules: active.policy.rules(),
            text,
        })
    }

    /// The install/uninstall history, oldest first.
    pub fn history(&self) -> io::Result<Vec<HistoryEntry>> {
        self.store.history()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn the_install_observer_hears_of_each_successful_install() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(dir.path()).unwrap();
        let service = PolicyService::open(store, DialingPlan::nanp(), vec!["default".into()]).unwrap();
        let installs = Arc::new(AtomicUsize::new(0));
        let counted = installs.clone();
        assert!(service.on_install(Box::new(move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        })));
        assert!(!service.on_install(Box::new(|_| {})), "only the first observer is kept");
        let policy = |text: &str| PolicySource::from_text("p.toml", text, BTreeMap::new());
        let good =
            "schema = 2\n[[rule]]\nname = \"a\"\nsource = \"+13125550666\"\naction = \"terminate\"\ncause = 603\n";
        service.install(&policy(good), "test").unwrap();
        assert!(matches!(service.install(&policy("schema = 2\n[[rule]]\n"), "test"), Err(InstallError::Invalid(_))));
        assert_eq!(installs.load(Ordering::Relaxed), 1);
        assert_eq!(service.installed().snapshot().version, Some(1));
    }
}
