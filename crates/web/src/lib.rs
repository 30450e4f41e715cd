//! The tollgate HTTP API (axum).
//!
//! Routes:
//!
//! | method | path | does |
//! |---|---|---|
//! | GET | `/healthz` | `ok` while the process serves |
//! | GET | `/metrics` | Prometheus (OpenMetrics text) |
//! | GET | `/api/v1/policy` | the policy in force: version, facts, rules, text |
//! | POST | `/api/v1/policy` | install (multipart: `policy` file, `list:NAME` files) |
//! | POST | `/api/v1/policy/check` | validate only (same body) |
//! | DELETE | `/api/v1/policy` | uninstall (default allow) |
//! | GET | `/api/v1/policy/history` | installs and uninstalls |
//! | GET | `/api/v1/policy/versions` | stored versions |
//! | GET | `/api/v1/lookup?from=A&to=B` | the decision and NAPTR answer for one call |
//! | GET | `/api/v1/auth` | 200 if the request carries the right token (clients check before uploading) |
//!
//! When a token is configured, changes (POST, DELETE) need `Authorization: Bearer TOKEN`.
//! Invalid policies get `422` with every diagnostic (file, line, field, message).
//!
//! This crate owns HTTP only: it must not decide policy or speak DNS itself.

#![warn(missing_docs)]

mod multipart;
mod routes;

use std::sync::Arc;

use axum::Router;
use prometheus_client::registry::Registry;
use tollgate_enum::Responder;
use tollgate_policy::service::PolicyService;

/// Everything the API serves from.
#[derive(Clone)]
pub struct ApiState {
    /// Policy management of this engine.
    pub policy: Arc<PolicyService>,
    /// The ENUM responder (for `lookup`).
    pub responder: Arc<Responder>,
    /// Metrics registry, rendered at `/metrics`.
    pub registry: Arc<Registry>,
    /// Bearer token required for changes, if any.
    pub token: Option<String>,
}

/// Builds the router.
pub fn router(state: ApiState) -> Router {
    routes::router(state)
}
