//! The Upgrade Manager page (seed 000's grid, buttons, upgrade log and alarms), rendered with
//! maud like the other pages. The page is public: it asks for a token of the manager's user
//! database and reads the manager's API with it (`upgrade.js`), so the same page follows the
//! operator to the mate manager after a failover.

use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The page's style sheet.
const STYLE: &str = include_str!("upgrade.css");
/// The page's script: polls `/api/v1/upgrade/status` and `/api/v1/upgrade/log`, drives the
/// buttons.
const SCRIPT: &str = include_str!("upgrade.js");

/// The grid's column headings (seed 000 §1.2.1).
const GRID_COLUMNS: [&str; 7] =
    ["Name", "Alarm Severity", "Up to Date", "Server Role", "Prev Release", "Running Release", "Upgrade Operation"];

/// `GET /upgrade`.
pub fn upgrade_page() -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "tollgate — Upgrade Manager" }
                meta name="viewport" content="width=device-width, initial-scale=1";
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "tollgate · Upgrade Manager" }
                    span #procedure .muted {}
                    span .ha { span #ha {} span #conn {} }
                }
                main {
                    div #notice role="alert" hidden {}
                    div #login hidden {
                        p {
                            "Enter an API token of this manager (its " code { "cli-token" }
                            ", or one made with " code { "tollgate token create" } ")."
                        }
                        input #token type="password" size="40" aria-label="API token";
                        " "
                        button #save-token { "Open" }
                    }
                    div #app hidden {
                        div .bar {
                            label {
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
                                tbody {}
                            }
                        }
                        section { h2 { "Active alarms" } ul #alarms {} }
                    }
                }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_has_what_its_script_and_the_browser_test_look_for() {
        let page = super::upgrade_page().into_string();
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
            "alarms",
        ] {
            assert!(page.contains(&format!("id=\"{id}\"")), "#{id} missing");
        }
        assert!(page.contains("<script>\"use strict\";"), "the script is inlined unescaped");
        assert!(page.contains("Upgrade Operation") && page.contains("Parent ID"));
    }
}
