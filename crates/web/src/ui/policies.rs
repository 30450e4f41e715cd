//! The Policies page: the policy in force, upload with inline validation, install, uninstall,
//! and the history with a diff between versions.

use std::sync::Arc;

use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use tollgate_policy::Diagnostic;
use tollgate_policy::service::{InstallError, PolicyService};
use tollgate_policy::store::HistoryEvent;

use crate::AppState;
use crate::api::policy_diff;
use crate::auth::Role;
use crate::multipart::{UploadError, read_upload};
use crate::session::{UiForm, UiUser};

/// What the last action did, shown above the page.
enum Outcome {
    Installed(u64, String),
    Valid(String),
    Invalid(Vec<Diagnostic>),
    Uninstalled(Option<u64>),
    Failed(String),
}

fn outcome_box(o: &Outcome) -> Markup {
    html! {
        div.card id="outcome" {
            @match o {
                Outcome::Installed(v, name) => p.ok { "Installed version " (v) " (" (name) "). It is in force for the next query." }
                Outcome::Valid(name) => p.ok { (name) " is valid. Nothing was installed." }
                Outcome::Uninstalled(Some(v)) => p.ok { "Uninstalled version " (v) ": every call is now allowed." }
                Outcome::Uninstalled(None) => p.ok { "No policy was installed." }
                Outcome::Failed(m) => p.err { (m) }
                Outcome::Invalid(diags) => {
                    p.err { "The policy is invalid; nothing was changed." }
                    table.diags {
                        thead { tr { th { "File" } th { "Line" } th { "Field" } th { "Problem" } } }
                        tbody { @for d in diags { tr { td { (d.file) } td { (d.line.map(|l| l.to_string()).unwrap_or_default()) } td { (d.field) } td { (d.message) } } } }
                    }
                }
            }
        }
    }
}

/// The words an operator ticks to uninstall: what an uninstall does.
pub const UNINSTALL_CONFIRMATION: &str = "every call is allowed";

/// The notice of a server managed by the console at `url`.
fn managed_notice(url: &str) -> Markup {
    html! {
        div.card #managed {
            p { "This server is managed by the console at " a href=(url) { (url) } ": policies are changed there, "
                "for every engine cluster at once. This page shows the policy in force and its history." }
        }
    }
}

/// The refusal of a change on the local page of a managed server.
fn managed_refusal(url: &str) -> Response {
    let detail =
        html! { p.err #why { "Policies of this server are changed on the console at " a href=(url) { (url) } "." } };
    (StatusCode::FORBIDDEN, super::errors::page(StatusCode::FORBIDDEN, "Managed by the console", detail))
        .into_response()
}

fn render(svc: &PolicyService, user: &UiUser, outcome: Option<Outcome>, console: Option<&str>) -> Markup {
    let who = &user.who;
    let current = svc.current();
    let history = svc.history().unwrap_or_default();
    let operator = who.role.allows(Role::Operator) && console.is_none();
    let body = html! {
        @if let Some(url) = console { (managed_notice(url)) }
        @if let Some(o) = &outcome { (outcome_box(o)) }
        div.card {
            h2 { "In force" }
            @match &current {
                Ok(c) if c.version.is_some() => {
                    p { "Version " strong id="version" { (c.version.unwrap_or(0)) } " — " (c.meta.name) " · " (c.meta.rules) " rules · sha256 " code { (&c.meta.sha256[..12]) }
                        @if let Some(info) = &c.info { " · installed " (info.installed_at.format("%Y-%m-%d %H:%M UTC")) " by " (info.actor) } }
                    @if !c.meta.lists.is_empty() { p.muted { "Lists: " @for (n, size) in &c.meta.lists { (n) " (" (size) " numbers) " } } }
                    table {
                        thead { tr { th { "#" } th { "Line" } th { "Rule" } th { "Action" } } }
                        tbody { @for r in &c.rules { tr class=[(!r.enabled).then_some("muted")] {
                            td.n { (r.index) } td.n { (r.line) } td { (r.name) @if !r.enabled { " (disabled)" } } td { (r.action) }
                        } } }
                    }
                    @if operator {
                        form.confirm method="post" action="/policies/uninstall" {
                            (super::csrf_field(user))
                            p { label { input type="checkbox" name="confirm" value=(UNINSTALL_CONFIRMATION) id="uninstall-confirm" required;
                                " Uninstall: no rule applies any more, " strong { (UNINSTALL_CONFIRMATION) } "." } }
                            p { button.danger type="submit" id="uninstall" { "Uninstall" } }
                        }
                    }
                }
                Ok(_) => { p id="version" { "No policy installed: every call is allowed." } }
                Err(e) => { p.err { (e) } }
            }
        }
        @if console.is_none() { div.card {
            h2 { "Upload a policy" }
            form method="post" action="/policies" enctype="multipart/form-data" {
                (super::csrf_field(user))
                label { "Policy file (TOML)" input type="file" name="policy" id="policy-file" accept=".toml,text/plain" required; }
                label { "Number lists (files named LIST.txt, as the policy's [lists] names them)" input type="file" name="lists" id="list-files" multiple; }
                p {
                    button.primary type="submit" name="action" value="check" id="check" { "Check" } " "
                    @if operator { button.primary type="submit" name="action" value="install" id="install" { "Install" } }
                    @else { span.muted { " Installing needs the operator role." } }
                }
            }
        } }
        div.card {
            h2 { "History" }
            table {
                thead { tr { th { "When (UTC)" } th { "Event" } th { "Version" } th { "Was" } th { "By" } th { "Diff" } } }
                tbody { @for h in history.iter().rev() { tr {
                    td { (h.at.format("%Y-%m-%d %H:%M:%S")) }
                    td { (match h.event { HistoryEvent::Install => "install", HistoryEvent::Uninstall => "uninstall" }) }
                    td { (h.version.map(|v| v.to_string()).unwrap_or_default()) }
                    td { (h.previous.map(|v| v.to_string()).unwrap_or_default()) }
                    td { (h.actor) }
                    td { @if let Some(v) = h.version { a href=(format!("/policies/diff?from={}&to={v}", h.previous.unwrap_or(0))) { "diff" } } }
                } } }
            }
        }
    };
    super::page("Policies", "Policies", user, None, body)
}

fn no_engine(user: &UiUser) -> Response {
    super::page(
        "Policies",
        "Policies",
        user,
        None,
        html! { div.card.muted { "This server runs no engine, so it has no policy." } },
    )
    .into_response()
}

pub(super) async fn page(State(state): State<Arc<AppState>>, user: UiUser) -> Response {
    let Some(svc) = state.policy.clone() else { return no_engine(&user) };
    let console = state.console.clone();
    tokio::task::spawn_blocking(move || render(&svc, &user, None, console.as_deref()).into_response())
        .await
        .unwrap_or_else(|e| e.to_string().into_response())
}

pub(super) async fn submit(State(state): State<Arc<AppState>>, user: UiUser, multipart: Multipart) -> Response {
    let Some(svc) = state.policy.clone() else { return no_engine(&user) };
    if let Some(url) = &state.console {
        return managed_refusal(url);
    }
    let upload = read_upload(multipart, user.expected_csrf()).await;
    let status = match &upload {
        Err(UploadError::Csrf) => return crate::security::csrf_refused(),
        Err(e) => e.status(),
        Ok(_) => StatusCode::OK,
    };
    tokio::task::spawn_blocking(move || {
        let who = &user.who;
        let outcome = match upload {
            Err(e) => Outcome::Failed(e.to_string()),
            Ok(u) => match u.fields.get("action").map(String::as_str) {
                Some("install") if !who.role.allows(Role::Operator) => {
                    Outcome::Failed("Installing needs the operator role.".into())
                }
                Some("install") => match svc.install(&u.source, &who.name) {
                    Ok(info) => Outcome::Installed(info.version, info.name),
                    Err(InstallError::Invalid(e)) => Outcome::Invalid(e.diagnostics),
                    Err(InstallError::Io(e)) => Outcome::Failed(e.to_string()),
                },
                _ => match svc.check(&u.source) {
                    Ok(p) => Outcome::Valid(p.meta().name.clone()),
                    Err(e) => Outcome::Invalid(e.diagnostics),
                },
            },
        };
        (status, render(&svc, &user, Some(outcome), None)).into_response()
    })
    .await
    .unwrap_or_else(|e| e.to_string().into_response())
}

/// The uninstall form: `confirm` must hold [`UNINSTALL_CONFIRMATION`].
#[derive(serde::Deserialize)]
pub(super) struct UninstallForm {
    #[serde(default)]
    confirm: String,
}

pub(super) async fn uninstall(
    State(state): State<Arc<AppState>>,
    UiForm(user, form): UiForm<UninstallForm>,
) -> Response {
    let Some(svc) = state.policy.clone() else { return no_engine(&user) };
    if let Some(url) = &state.console {
        return managed_refusal(url);
    }
    let who = &user.who;
    let (status, outcome) = if !who.role.allows(Role::Operator) {
        (StatusCode::FORBIDDEN, Outcome::Failed("Uninstalling needs the operator role.".into()))
    } else if form.confirm != UNINSTALL_CONFIRMATION {
        (
            StatusCode::BAD_REQUEST,
            Outcome::Failed(format!(
                "Nothing uninstalled: tick the box that says {UNINSTALL_CONFIRMATION:?} (without a policy, no rule applies)."
            )),
        )
    } else {
        match svc.uninstall(&who.name) {
            Ok(v) => (StatusCode::OK, Outcome::Uninstalled(v)),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Outcome::Failed(e.to_string())),
        }
    };
    (status, render(&svc, &user, Some(outcome), None)).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct DiffParams {
    from: u64,
    to: u64,
}

pub(super) async fn diff(State(state): State<Arc<AppState>>, user: UiUser, Query(p): Query<DiffParams>) -> Response {
    let Some(svc) = state.policy.clone() else { return no_engine(&user) };
    let body = match policy_diff(&svc, p.from, p.to) {
        Ok(text) => html! {
            p { a href="/policies" { "← Policies" } }
            pre.diff id="diff" { @for line in text.lines() {
                @if line.starts_with('+') && !line.starts_with("+++") { span.add { (line) } "\n" }
                @else if line.starts_with('-') && !line.starts_with("---") { span.del { (line) } "\n" }
                @else { (line) "\n" }
            } }
        },
        Err(e) => html! { p.err { (e) } },
    };
    super::page(&format!("Policy diff: version {} → {}", p.from, p.to), "Policies", &user, None, body).into_response()
}
