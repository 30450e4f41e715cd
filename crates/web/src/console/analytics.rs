//! Analytics: the records and their analytics live on the collectors, whose own pages
//! (Dashboard, Analytics) serve them; until the manager gathers them, this page names the
//! collector clusters and their servers, with their health in the topology.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use tollgate_manager::ops;
use tollgate_upgrade::topology::AppType;

use super::{ConsoleUser, frame, respond};
use crate::manager_api::ManagerApi;

/// `GET /analytics`.
pub(super) async fn page(State(s): State<Arc<ManagerApi>>, user: ConsoleUser) -> Response {
    let status = ops::status(&s.manager);
    let collectors: Vec<_> = status.clusters.iter().filter(|c| c.application == AppType::Collector).collect();
    let body = html! {
        div.card #collectors {
            p { "Records and their analytics (Average CPS, Top 10 Source and Destination, per device) are served by each collector's own web UI, on its API address (" code { "api.listen" } ")." }
            @if collectors.is_empty() {
                p.muted { "This manager's topology has no collector cluster." }
            } @else {
                table {
                    thead { tr { th { "Collector cluster" } th { "Server" } th { "HA state" } th { "Release" } } }
                    tbody {
                        @for c in &collectors {
                            @for sv in &c.servers {
                                tr data-server=(sv.hostname) {
                                    td { (c.name) }
                                    td { a href=(format!("/topology/{}", crate::ui::urlencode(&sv.hostname))) { (sv.hostname) } }
                                    td { (super::topology::ha_state(sv)) }
                                    td { (sv.running_release) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, None, frame("Analytics", "Analytics", Some(&user), body, None))
}
