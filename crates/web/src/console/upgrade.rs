//! The Upgrade Manager page (seed 000's grid, buttons, upgrade log and alarms) in the console's
//! frame. Its script (`upgrade.js`, served at `/static/upgrade.js`) reads and acts through the
//! manager's API with the visitor's login session (the CSRF token is in the page's
//! `csrf-token` meta tag); a visitor without a login may still give an API token of the
//! manager's user database, which follows the operator to the mate manager after a failover.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::{MaybeConsoleUser, frame, respond};
use crate::manager_api::ManagerApi;

/// The grid's column headings (seed 000 §1.2.1).
const GRID_COLUMNS: [&str; 7] =
    ["Name", "Alarm Severity", "Up to Date", "Server Role", "Prev Release", "Running Release", "Upgrade Operation"];

/// `GET /upgrade`.
pub(super) async fn page(State(s): State<Arc<ManagerApi>>, MaybeConsoleUser(user): MaybeConsoleUser) -> Response {
    let logged_in = user.is_some();
    respond(
        StatusCode::OK,
        s.manager.cfg.mate.as_deref(),
        frame("Upgrade Manager", "Upgrade", user.as_ref(), body(logged_in), Some("upgrade.js")),
    )
}

/// The page's body: every id its script and the browser tests use.
pub fn body(logged_in: bool) -> Markup {
    html! {
        div.upgrade {
            div.statusbar {
                span #procedure .muted {}
                span.ha { span #ha {} " " span #conn {} }
            }
            div #notice role="alert" hidden {}
            div #login hidden {
                @if logged_in {
                    p { "Your session has ended: " a href="/login?next=/upgrade" { "log in again" } "." }
                } @else {
                    p { a href="/login?next=/upgrade" id="password-login" { "Log in with your user and password" } "," }
                    p {
                        "or enter an API token of this manager (its " code { "cli-token" }
                        ", or one made with " code { "tollgate token create" } ")."
                    }
                }
                input #token type="password" size="40" aria-label="API token";
                " "
                button #save-token { "Open" }
            }
            div #app hidden {
                div .bar {
                    label.inline {
                        "Current bundle: "
                        select #bundle aria-label="Current bundle" { option value="" { "(none)" } }
                    }
                    button #select-bundle .secondary title="Use this bundle's release as the upgrade procedure" { "Select" }
                    span .muted #selected-cluster { "Select a cluster row." }
                    button #upgrade-button disabled data-state="none" { "Start Upgrade" }
                    button #backout-button disabled data-state="none" .secondary { "Start Rollback" }
                    select #advanced aria-label="Advanced" { option value="" { "Advanced…" } }
                }
                div #advice {}
                div #message role="status" {}
                table #grid {
                    thead { tr { @for c in GRID_COLUMNS { th { (c) } } } }
                    tbody {}
                }
                section {
                    h2 { "Upgrade log " span .muted #log-scope {} }
                    table #log {
                        thead { tr { @for c in tollgate_upgrade::director::UPGRADE_LOG_COLUMNS { th { (c) } } } }
                    }
                    p.muted #log-empty { "No upgrade activity yet." }
                }
                section { h2 { "Active alarms" } ul #alarms {} }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_has_what_its_script_and_the_browser_test_look_for() {
        let page = super::super::frame("Upgrade Manager", "Upgrade", None, super::body(false), Some("upgrade.js"))
            .into_string();
        for id in [
            "procedure",
            "ha",
            "conn",
            "notice",
            "login",
            "token",
            "save-token",
            "app",
            "bundle",
            "select-bundle",
            "selected-cluster",
            "upgrade-button",
            "backout-button",
            "advanced",
            "advice",
            "message",
            "grid",
            "log",
            "log-scope",
            "log-empty",
            "alarms",
        ] {
            assert!(page.contains(&format!("id=\"{id}\"")), "#{id} missing");
        }
        assert!(page.contains(r#"<script src="/static/upgrade.js" defer>"#), "the script is served, not inlined");
        assert!(!page.contains("<style"), "no inline style");
        assert!(page.contains("Upgrade Operation") && page.contains("Parent ID"));
    }
}
