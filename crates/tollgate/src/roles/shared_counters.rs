//! `[shared_counters]`: starts the exchange of a velocity table's counts through Redis, with
//! its metrics and alarm.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tollgate_alarms::Alarms;
use tollgate_policy::VelocityTable;
use tollgate_shared_counters::{RedisTls, SharedCounters, SyncSettings};

use crate::config::Config;

/// A velocity table for this configuration: `max_entries` counters, changes tracked for SRP
/// checkpoints when `track_changes`, and kept for the other engines when counters are shared.
pub fn table(config: &Config, max_entries: usize, track_changes: bool) -> VelocityTable {
    let table = VelocityTable::new(max_entries, track_changes);
    if config.shared_counters.enabled() { table.with_sharing() } else { table }
}

/// Starts sharing `table` when `[shared_counters]` names a Redis: `read` the other engines'
/// batches (an engine), `publish_in_progress` the calls in progress of this process's probe.
pub fn start(
    config: &Config,
    table: Arc<VelocityTable>,
    alarms: &Arc<Alarms>,
    registry: &mut Registry,
    read: bool,
    publish_in_progress: bool,
) -> anyhow::Result<Option<SharedCounters>> {
    let c = &config.shared_counters;
    if !c.enabled() {
        return Ok(None);
    }
    let settings = SyncSettings {
        url: c.url.clone(),
        // Checked when the configuration was loaded: every entry reads.
        sentinels: c.sentinels.iter().filter_map(|a| tollgate_config::shared_counters::sentinel_address(a)).collect(),
        sentinel_master: c.sentinel_master.clone(),
        shown_url: c.shown_target(),
        tls: redis_tls(config)?,
        namespace: c.namespace.clone(),
        node: config.node.name.clone(),
        interval: Duration::from_millis(c.interval_ms),
        history: Duration::from_secs(c.history_secs),
        probe_ttl: Duration::from_secs(c.probe_ttl_secs),
        timeout: Duration::from_millis(c.timeout_ms),
        max_pending: c.max_pending as usize,
        publish_in_progress,
        read,
    };
    let shared = SharedCounters::start(settings, table.clone(), alarms.clone())
        .with_context(|| format!("shared_counters: {}", c.shown_target()))?;
    crate::roles::metrics::register_shared_counters(registry, shared.status().clone(), table);
    tracing::info!(redis = %c.shown_target(), namespace = %c.namespace, "sharing velocity counters and calls in progress");
    Ok(Some(shared))
}

/// For `rediss://`: `[tls] ca` as the root Redis's certificate must chain to, and this
/// server's `[tls] cert` and `key` for Redis configured to require client certificates.
fn redis_tls(config: &Config) -> anyhow::Result<RedisTls> {
    if !config.shared_counters.url.starts_with("rediss://") {
        return Ok(RedisTls::default());
    }
    let read = |p: &std::path::Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let t = &config.tls;
    let root_pem = t.ca.as_deref().map(read).transpose()?;
    let client = match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
        _ => None,
    };
    Ok(RedisTls { root_pem, client })
}
