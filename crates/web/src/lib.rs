//! The tollgate HTTP API and web UI (axum, server-rendered HTML).
//!
//! What this crate owns: HTTP. Login, roles and API tokens ([`auth`]); the JSON API
//! ([`api`]): policies, lookup, record ingest, analytics, CSV export, alarms, users; the web
//! UI ([`ui`]): Dashboard, Analytics, Policies, Alarms, Users, with charts drawn on the server
//! as SVG (one small script served from here, no external resource); the manager's console
//! ([`console`]) in the same design.
//!
//! What it must not do: decide policy, speak DNS, or know SQL; it calls the policy service,
//! the responder and the store.

#![warn(missing_docs)]
// UI handlers use axum's `Response` as the error of `Result`, as axum does; it is large, but
// boxing it would only add an allocation on the error path.
#![allow(clippy::result_large_err)]

pub mod agent_api;
pub mod api;
pub mod auth;
pub mod console;
pub mod http;
pub mod limits;
pub mod manager_api;
mod multipart;
pub mod quarantine;
pub mod security;
pub mod server;
pub mod session;
pub mod ui;

use std::sync::Arc;

use axum::Router;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tollgate_alarms::Alarms;
use tollgate_enum::Responder;
use tollgate_policy::service::PolicyService;
use tollgate_store::Store;

use crate::auth::Auth;

/// Counters of record ingest (the collector role).
#[derive(Debug)]
pub struct IngestMetrics {
    /// Batches received.
    pub batches: Counter,
    /// Records stored for the first time.
    pub inserted: Counter,
    /// Records received again and ignored.
    pub duplicates: Counter,
    /// Lines that were not valid records, kept in the quarantine directory.
    pub quarantined: Counter,
    /// Batches refused because the quarantine had no room for their bad lines.
    pub refused_quarantine_full: Counter,
    /// Seconds from a batch's arrival (its body read) to its acknowledgement (records durably
    /// stored), for stored batches.
    pub ingest_seconds: Histogram,
    /// Lines per stored batch.
    pub batch_records: Histogram,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        IngestMetrics {
            batches: Counter::default(),
            inserted: Counter::default(),
            duplicates: Counter::default(),
            quarantined: Counter::default(),
            refused_quarantine_full: Counter::default(),
            // 0.25 ms to about 8 s.
            ingest_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 16)),
            // 1 to 131,072 lines.
            batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 18)),
        }
    }
}

impl IngestMetrics {
    /// A stored batch of `lines` lines that arrived at `arrived`.
    pub fn observe_batch(&self, arrived: std::time::Instant, lines: usize) {
        self.ingest_seconds.observe(arrived.elapsed().as_secs_f64());
        self.batch_records.observe(lines as f64);
    }

    /// Creates the counters and registers them.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = IngestMetrics::default();
        registry.register("tollgate_collector_batches", "Record batches received", m.batches.clone());
        registry.register(
            "tollgate_collector_records_inserted",
            "Records stored for the first time",
            m.inserted.clone(),
        );
        registry.register(
            "tollgate_collector_records_duplicate",
            "Records received again and ignored",
            m.duplicates.clone(),
        );
        registry.register(
            "tollgate_collector_lines_quarantined",
            "Received lines that were not records",
            m.quarantined.clone(),
        );
        registry.register(
            "tollgate_collector_batches_refused_quarantine_full",
            "Batches refused (left in the sender's spool) because the quarantine had no room for their bad lines",
            m.refused_quarantine_full.clone(),
        );
        registry.register(
            "tollgate_collector_ingest_seconds",
            "Seconds from a batch's arrival to its acknowledgement (records durably stored)",
            m.ingest_seconds.clone(),
        );
        registry.register("tollgate_collector_batch_records", "Lines per stored batch", m.batch_records.clone());
        Arc::new(m)
    }
}

/// A status line for the dashboard (e.g. the spool's backlog).
pub type StatusFn = Arc<dyn Fn() -> Vec<(String, String)> + Send + Sync>;

/// The TLS material in force, as `GET /api/v1/tls` reports it (taken at each request).
pub type TlsStatusFn = Arc<dyn Fn() -> tollgate_api::tls::TlsStatus + Send + Sync>;

/// A running probe's messages of the call with this Call-ID, if it holds the call
/// (`GET /api/v1/probe/calls/{call_id}/messages`; called off the async threads).
pub type CallMessagesFn = Arc<dyn Fn(&str) -> Option<tollgate_api::probe::CallMessages> + Send + Sync>;

/// Everything the API and UI serve from. Roles this process does not run are `None`.
pub struct AppState {
    /// This server's node name.
    pub node: String,
    /// Policy management (engine role).
    pub policy: Option<Arc<PolicyService>>,
    /// The ENUM responder (engine role), for `lookup`.
    pub responder: Option<Arc<Responder>>,
    /// The record store (collector role).
    pub store: Option<Arc<dyn Store>>,
    /// Metrics registry, rendered at `/metrics`.
    pub registry: Arc<Registry>,
    /// Users, sessions, tokens.
    pub auth: Arc<Auth>,
    /// Alarms of this process.
    pub alarms: Arc<Alarms>,
    /// Where received lines that are not valid records are kept.
    pub quarantine: Arc<quarantine::Quarantine>,
    /// Ingest counters.
    pub ingest: Arc<IngestMetrics>,
    /// Extra status lines for the dashboard.
    pub status: Option<StatusFn>,
    /// The SRP chassis (engine role with `[srp]`).
    pub srp: Option<tollgate_srp::runtime::SrpHandle>,
    /// Recent calls' SIP messages (probe role with `probe.ladder_calls` above 0).
    pub probe_calls: Option<CallMessagesFn>,
    /// The release this server runs.
    pub release: ReleaseInfo,
    /// The TLS material in force (`None`: no `[tls]`).
    pub tls: Option<TlsStatusFn>,
    /// The manager console that manages this server (`[api] console`): the local pages are
    /// then read-only and link there (`None`: a server on its own, the full local UI).
    pub console: Option<String>,
}

/// The release a server runs (`GET /api/v1/version`).
pub use tollgate_api::web::ReleaseInfo;

/// Builds the router: API under `/api/v1`, UI pages at the root, `/metrics`, `/healthz`;
/// every route refuses cross-site changes and answers with the security headers
/// ([`security::guard`]) and the API version ([`http::api_version`]); each route's body limit
/// is in [`limits::BODY_LIMITS`].
pub fn router(state: Arc<AppState>) -> Router {
    api::routes()
        .merge(ui::routes())
        .fallback(ui::errors::not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(security::guard))
        .layer(axum::middleware::from_fn(http::api_version))
}
