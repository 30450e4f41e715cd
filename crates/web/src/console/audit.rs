//! Audit: who asked the manager to do what, newest first, with the person's name even when a
//! shared token was used (`X-Actor`: "alice via cli-token"), and whether it was carried out.
//! The entries are the manager's audit log ([`tollgate_manager::ops::audit`]), replicated to
//! the standby manager with the rest of its state.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use tollgate_manager::ops;
use tollgate_upgrade::director::AuditOutcome;

use super::{ConsoleUser, frame, respond};
use crate::manager_api::ManagerApi;

/// `?user=`: only the entries of people whose name contains it.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditFilter {
    #[serde(default)]
    user: Option<String>,
}

/// `GET /audit`.
pub(super) async fn page(
    State(s): State<Arc<ManagerApi>>,
    user: ConsoleUser,
    Query(f): Query<AuditFilter>,
) -> Response {
    let wanted = f.user.as_deref().map(str::trim).filter(|u| !u.is_empty()).map(str::to_lowercase);
    let mut entries = ops::audit(&s.manager);
    entries.reverse();
    let entries: Vec<_> =
        entries.into_iter().filter(|e| wanted.as_ref().is_none_or(|w| e.user.to_lowercase().contains(w))).collect();
    let body = html! {
        form.filters method="get" action="/audit" {
            label { "Who" input name="user" value=(f.user.as_deref().unwrap_or("")) placeholder="name"; }
            button.primary type="submit" { "Filter" }
        }
        p.muted { (entries.len()) " entries, newest first. With a shared token, the person named in its "
            code { "X-Actor" } " header is recorded as " em { "person via token" } "." }
        table #audit {
            thead { tr { th { "When (UTC)" } th { "Who" } th { "What" } th { "Outcome" } th { "Detail" } } }
            tbody {
                @for e in &entries {
                    tr data-user=(e.user) data-operation=(e.operation) {
                        td { (e.at.format("%Y-%m-%d %H:%M:%S")) }
                        td.who { (e.user) }
                        td.what { (e.operation) }
                        td { @match e.outcome { AuditOutcome::Accepted => span.ok { "Accepted" }, AuditOutcome::Refused => span.err { "Refused" } } }
                        td { (e.detail) }
                    }
                }
                @if entries.is_empty() { tr { td colspan="5" .muted { "Nothing recorded." } } }
            }
        }
    };
    respond(StatusCode::OK, None, frame("Audit", "Audit", Some(&user), body, None))
}
