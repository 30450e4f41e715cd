//! The Policies page: policy cluster-wide. An operator chooses a policy file and its number
//! lists and the engine clusters, previews it (the engines' validation inline, the rules and
//! list entries it adds, removes and changes per cluster with counts, the mixed-version
//! refusal), confirms and pushes it (each cluster's and server's result), rolls back to any
//! earlier version in one step, and uninstalls behind a confirmation naming the consequence.
//!
//! The page is a frame; its script (`policies.js`, served at `/static/policies.js`) reads and
//! acts through the manager's policy API (`tollgate_api::manager::policy`) with the visitor's
//! login session. Viewers see the versions and may preview; the controls that change anything
//! are rendered for operators only (the API checks the role again).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use tollgate_api::manager::UNINSTALL_CONFIRMATION;
use tollgate_upgrade::topology::AppType;

use super::{ConsoleUser, frame, respond};
use crate::auth::Role;
use crate::manager_api::ManagerApi;

/// `GET /policies`.
pub(super) async fn page(State(s): State<Arc<ManagerApi>>, user: ConsoleUser) -> Response {
    let engines: Vec<(String, Vec<String>)> = s
        .manager
        .cfg
        .clusters
        .iter()
        .filter(|c| c.application == AppType::Engine)
        .map(|c| (c.name.clone(), c.servers.iter().map(|s| s.hostname.clone()).collect()))
        .collect();
    let operator = user.who().role.allows(Role::Operator);
    respond(
        StatusCode::OK,
        None,
        frame("Policies", "Policies", Some(&user), body(&engines, operator), Some("policies.js")),
    )
}

/// Checkboxes for the engine clusters, every one checked; `name` tells the sets apart.
fn cluster_choice(name: &str, engines: &[(String, Vec<String>)], checked: bool) -> Markup {
    html! {
        fieldset.clusters id=(format!("{name}-clusters")) {
            legend { "Engine clusters" }
            @for (cluster, servers) in engines {
                label.inline {
                    input type="checkbox" name=(name) value=(cluster) checked[checked];
                    (cluster) " " span.muted { "(" (servers.join(", ")) ")" }
                }
            }
        }
    }
}

/// The page's body: every id its script and the browser test use.
pub fn body(engines: &[(String, Vec<String>)], operator: bool) -> Markup {
    html! {
        div.policies data-operator=(operator) {
            div #message role="status" {}
            section.card #candidate {
                h2 { "New policy" }
                div.bar {
                    label { "Policy file (TOML) " input #policy-file type="file" accept=".toml,text/plain"; }
                    label { "Number lists (NAME.txt, one number a line) " input #list-files type="file" multiple accept=".txt,text/plain"; }
                }
                (cluster_choice("target", engines, true))
                div.bar {
                    button #preview-button .primary type="button" { "Validate and preview" }
                    span #candidate-summary .muted {}
                }
                div #validation role="alert" {}
                div #refusal .refusal role="alert" hidden {}
                div #preview hidden {
                    h3 { "What changes" }
                    table #preview-table {
                        thead { tr {
                            th { "Engine cluster" } th { "Servers" } th { "Compared with" }
                            th.n { "Rules added" } th.n { "Rules removed" } th.n { "Rules changed" }
                            th.n { "List entries added" } th.n { "List entries removed" }
                        } }
                        tbody {}
                    }
                    div #preview-details {}
                    @if operator {
                        div.bar.confirm {
                            label.inline { input #push-confirm type="checkbox"; " I have read the changes: install this policy on the clusters above" }
                            button #push-button .primary type="button" disabled { "Push" }
                        }
                    }
                }
                div #push-result hidden {
                    h3 { "Result " span #push-version {} }
                    table #push-table { thead { tr { th { "Engine cluster" } th { "Status" } th { "Servers" } } } tbody {} }
                }
            }
            section.card #history {
                h2 { "Versions" }
                div #rollback-confirm .bar hidden {
                    span #rollback-text {}
                    button #rollback-go .danger type="button" { "Roll back" }
                    button #rollback-cancel type="button" { "Cancel" }
                }
                table #versions {
                    thead { tr {
                        th.n { "Version" } th { "What" } th { "Who" } th { "When (UTC)" } th { "Rules" } th { "Clusters" }
                        @if operator { th { "Action" } }
                    } }
                    tbody {}
                }
            }
            @if operator {
                section.card #uninstall {
                    h2 { "Uninstall" }
                    p.err { "Without a policy, " strong { (UNINSTALL_CONFIRMATION) } " on the clusters chosen: nothing is blocked, terminated or redirected." }
                    (cluster_choice("uninstall", engines, false))
                    div.bar {
                        label.inline {
                            input #uninstall-confirm type="checkbox";
                            " I understand: " (UNINSTALL_CONFIRMATION) " on the clusters chosen"
                        }
                        button #uninstall-button .danger type="button" disabled { "Uninstall (" (UNINSTALL_CONFIRMATION) ")" }
                    }
                    div #uninstall-result {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    fn engines() -> Vec<(String, Vec<String>)> {
        vec![("engine-east".into(), vec!["east-a".into()]), ("engine-west".into(), vec!["west-a".into()])]
    }

    #[test]
    fn the_page_has_what_its_script_and_the_browser_test_look_for() {
        let page =
            super::super::frame("Policies", "Policies", None, super::body(&engines(), true), Some("policies.js"))
                .into_string();
        for id in [
            "message",
            "policy-file",
            "list-files",
            "target-clusters",
            "preview-button",
            "validation",
            "refusal",
            "preview-table",
            "push-confirm",
            "push-button",
            "push-table",
            "versions",
            "rollback-confirm",
            "rollback-go",
            "uninstall-clusters",
            "uninstall-confirm",
            "uninstall-button",
        ] {
            assert!(page.contains(&format!("id=\"{id}\"")), "#{id} missing");
        }
        assert!(page.contains(r#"<script src="/static/policies.js" defer>"#), "the script is served, not inlined");
        assert!(!page.contains("<style") && !page.contains("style="), "no inline style");
        assert!(page.contains("every call is allowed"), "the uninstall names its consequence");
    }

    #[test]
    fn a_viewer_gets_no_control_that_changes_anything() {
        let page = super::body(&engines(), false).into_string();
        for id in ["push-button", "uninstall-button", "uninstall-confirm"] {
            assert!(!page.contains(&format!("id=\"{id}\"")), "#{id} shown to a viewer");
        }
        assert!(page.contains("id=\"preview-button\""), "a viewer may preview");
    }
}
