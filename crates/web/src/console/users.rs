//! Users (admins): the manager's users and API tokens, added, changed, removed and revoked as
//! on the collector's Users page (the same forms, [`crate::ui::admin::act`]); every change is
//! audited with the admin's name, and the active manager copies the user database to its mate.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::{ConsoleUser, csrf_field, frame, respond};
use crate::auth::Role;
use crate::manager_api::ManagerApi;
use crate::session::UiForm;
use crate::ui::admin::{UserForm, act};

fn render(s: &ManagerApi, user: &ConsoleUser, message: Option<(bool, String)>) -> Response {
    let users = s.auth.users();
    let tokens = s.auth.tokens();
    let body = html! {
        @if let Some((ok, m)) = &message { div.card { p class=(if *ok { "ok" } else { "err" }) id="message" { (m) } } }
        div.card {
            h2 { "Users" }
            table #users { thead { tr { th { "Name" } th { "Role" } th { "Created (UTC)" } th {} } }
                tbody { @for u in &users { tr data-user=(u.name) {
                    td { (u.name) } td { (u.role.as_str()) } td { (u.created_at.format("%Y-%m-%d %H:%M")) }
                    td { form method="post" action="/users" {
                        (csrf_field(user))
                        input type="hidden" name="kind" value="remove-user";
                        input type="hidden" name="name" value=(u.name);
                        button.danger type="submit" id=(format!("remove-user-{}", u.name)) { "Remove" }
                    } }
                } } } }
            h2 { "Add a user, change a role or set a password" }
            form.selectors method="post" action="/users" {
                (csrf_field(user))
                input type="hidden" name="kind" value="user";
                label { "Name" input name="name" required; }
                label { "Role" select name="role" { option { "viewer" } option { "operator" } option { "admin" } } }
                label { "Password (10+ characters; empty keeps an existing user's)" input name="password" type="password" autocomplete="new-password"; }
                button.primary type="submit" id="save-user" { "Save user" }
            }
            p.muted { "Users are managed on the active manager, which copies them to its mate." }
        }
        div.card {
            h2 { "API tokens" }
            table #tokens { thead { tr { th { "Name" } th { "Role" } th { "Created (UTC)" } th { "Expires (UTC)" } th {} } }
                tbody { @for t in &tokens { tr {
                    td { (t.name) } td { (t.role.as_str()) } td { (t.created_at.format("%Y-%m-%d %H:%M")) }
                    td { @match t.expires_at { Some(at) => (at.format("%Y-%m-%d %H:%M")), None => span.muted { "never" } } }
                    td { form method="post" action="/users" {
                        (csrf_field(user))
                        input type="hidden" name="kind" value="revoke-token";
                        input type="hidden" name="name" value=(t.name);
                        button.danger type="submit" id=(format!("revoke-token-{}", t.name)) { "Revoke" }
                    } }
                } } } }
            h2 { "Create a token" }
            form.selectors method="post" action="/users" {
                (csrf_field(user))
                input type="hidden" name="kind" value="token";
                label { "Name" input name="name" required; }
                label { "Role" select name="role" { option { "viewer" } option { "operator" } option { "admin" } } }
                label { "Expires (e.g. 90d, 12h, 2026-12-31; empty: never)" input name="expires"; }
                button.primary type="submit" { "Create token" }
            }
        }
    };
    respond(StatusCode::OK, None, frame("Users", "Users", Some(user), body, None))
}

/// `GET /users`.
pub(super) async fn page(State(s): State<Arc<ManagerApi>>, user: ConsoleUser) -> Response {
    if let Err(refused) = user.require(Role::Admin) {
        return refused;
    }
    render(&s, &user, None)
}

/// `POST /users`: one change, audited.
pub(super) async fn submit(State(s): State<Arc<ManagerApi>>, UiForm(user, f): UiForm<UserForm>) -> Response {
    let user = ConsoleUser(user);
    if let Err(refused) = user.require(Role::Admin) {
        return refused;
    }
    // The standby takes its users from the active one: a change made here would be overwritten
    // at the next copy, unaudited.
    if !s.manager.is_active() {
        return super::error_page(
            axum::http::StatusCode::CONFLICT,
            Some(&user),
            "Users change on the active manager",
            maud::html! { p.err #why { "This manager is the standby of its pair: it copies its users from the active one. Change users there." } },
        );
    }
    let actor = user.who().name.clone();
    let what = format!("User change: {} {}", f.kind, f.name);
    let result = s.auth.hashing(move |auth| act(auth, &f)).await.and_then(|r| r);
    // The token's secret is shown once to the admin, never written to the audit.
    let audited = result.as_ref().map(|_| "done".to_string()).map_err(|e| e.to_string());
    tollgate_manager::audit::record(&s.manager, &actor, what, audited);
    let message = match result {
        Ok(m) => (true, m),
        Err(e) => (false, e.to_string()),
    };
    render(&s, &user, Some(message))
}
