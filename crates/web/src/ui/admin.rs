//! Alarms (everyone) and Users (admins): users, roles and API tokens.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{Auth, AuthError, Role, parse_expiry};
use crate::session::{UiForm, UiUser};

/// Alarms, active and history. The served script refreshes the tables in place every 10 s
/// (`GET /alarms?part=live`, which does not extend the login session).
pub(super) async fn alarms(
    State(state): State<Arc<AppState>>,
    user: UiUser,
    Query(part): Query<super::Part>,
) -> Response {
    let tables = alarm_tables(&state);
    if let Some(only) = part.live_only(&tables) {
        return only;
    }
    let body = html! {
        p.muted.live-note #live-note { "Live: refreshed every 10 seconds while this page is open." }
        div #live data-refresh="/alarms?part=live" data-every="10" { (tables) }
    };
    super::page("Alarms", "Alarms", &user, None, body).into_response()
}

/// The active alarms and the history, newest first.
fn alarm_tables(state: &AppState) -> Markup {
    let active = state.alarms.active();
    let history = state.alarms.history();
    html! {
        div.card {
            h2 { "Active" }
            table {
                thead { tr { th { "Severity" } th { "ID" } th { "Name" } th { "Scope" } th { "Raised (UTC)" } th { "Meaning" } th { "Detail" } } }
                tbody {
                    @for a in &active { tr {
                        td { span class=(format!("sev sev-{}", a.def.severity)) { (a.def.severity) } }
                        td { (a.def.id) } td { (a.def.name) } td { (a.scope) } td { (a.raised_at.format("%Y-%m-%d %H:%M:%S")) } td { (a.def.text) } td { (a.detail) }
                    } }
                    @if active.is_empty() { tr { td colspan="7" .ok { "No active alarms." } } }
                }
            }
        }
        div.card {
            h2 { "History" }
            table {
                thead { tr { th { "When (UTC)" } th { "Event" } th { "ID" } th { "Name" } th { "Scope" } th { "Detail" } } }
                tbody { @for e in history.iter().rev() { tr {
                    td { (e.at.format("%Y-%m-%d %H:%M:%S")) } td { (if e.raised { "raised" } else { "cleared" }) } td { (e.id) } td { (e.name) } td { (e.scope) } td { (e.detail) }
                } } }
            }
        }
    }
}

/// The Users page's cards, on the collector and on the manager console: the outcome of the
/// last change (`message`: ok, text), the users and tokens of `auth` with their forms (posting
/// to `/users`, read by [`act`]), the roles a new token may have, and an optional note.
pub(crate) fn users_cards(
    auth: &Auth,
    user: &UiUser,
    token_roles: &[&str],
    note: Option<&str>,
    message: Option<&(bool, String)>,
) -> Markup {
    let users = auth.users();
    let tokens = auth.tokens();
    let now = chrono::Utc::now();
    html! {
        @if let Some((ok, m)) = message { div.card { p class=(if *ok { "ok" } else { "err" }) id="message" { (m) } } }
        div.card {
            h2 { "Users" }
            table id="users" { thead { tr { th { "Name" } th { "Role" } th { "Created (UTC)" } th {} } }
                tbody { @for u in &users { tr data-user=(u.name) {
                    td { (u.name) } td { (u.role.as_str()) } td { (u.created_at.format("%Y-%m-%d %H:%M")) }
                    td { form method="post" action="/users" {
                        (super::csrf_field(user))
                        input type="hidden" name="kind" value="remove-user";
                        input type="hidden" name="name" value=(u.name);
                        button.danger type="submit" id=(format!("remove-user-{}", u.name)) { "Remove" }
                    } }
                } } } }
            h2 { "Add a user, change a role or set a password" }
            form.selectors method="post" action="/users" {
                (super::csrf_field(user))
                input type="hidden" name="kind" value="user";
                label { "Name" input name="name" required; }
                label { "Role" select name="role" { option { "viewer" } option { "operator" } option { "admin" } } }
                label { "Password (10+ characters; empty keeps an existing user's)" input name="password" type="password" autocomplete="new-password"; }
                button.primary type="submit" id="save-user" { "Save user" }
            }
            @if let Some(n) = note { p.muted { (n) } }
        }
        div.card {
            h2 { "API tokens" }
            table id="tokens" { thead { tr { th { "Name" } th { "Role" } th { "Created (UTC)" } th { "Expires (UTC)" } th {} } }
                tbody { @for t in &tokens { tr {
                    td { (t.name) } td { (t.role.as_str()) } td { (t.created_at.format("%Y-%m-%d %H:%M")) }
                    td { @match t.expires_at {
                        Some(at) if t.expired(now) => span.err { (at.format("%Y-%m-%d %H:%M")) " (expired)" },
                        Some(at) => (at.format("%Y-%m-%d %H:%M")),
                        None => span.muted { "never" },
                    } }
                    td { form method="post" action="/users" {
                        (super::csrf_field(user))
                        input type="hidden" name="kind" value="revoke-token";
                        input type="hidden" name="name" value=(t.name);
                        button.danger type="submit" id=(format!("revoke-token-{}", t.name)) { "Revoke" }
                    } }
                } } } }
            h2 { "Create a token" }
            form.selectors method="post" action="/users" {
                (super::csrf_field(user))
                input type="hidden" name="kind" value="token";
                label { "Name" input name="name" required; }
                label { "Role" select name="role" { @for r in token_roles { option { (r) } } } }
                label { "Expires (e.g. 90d, 12h, 2026-12-31; empty: never)" input name="expires"; }
                button.primary type="submit" { "Create token" }
            }
        }
    }
}

fn users_page(state: &AppState, user: &UiUser, message: Option<(bool, String)>) -> Response {
    if !user.who.role.allows(Role::Admin) {
        return super::page(
            "Users",
            "Users",
            user,
            None,
            html! { div.card { p.err { "Managing users needs the admin role." } } },
        )
        .into_response();
    }
    let body = users_cards(&state.auth, user, &["ingest", "viewer", "operator", "admin"], None, message.as_ref());
    super::page("Users", "Users", user, None, body).into_response()
}

pub(super) async fn users(State(state): State<Arc<AppState>>, user: UiUser) -> Response {
    users_page(&state, &user, None)
}

/// One Users form: `kind` is `user` (add, or change role / password), `remove-user`, `token`
/// (create) or `revoke-token` (also used by the manager console's Users page).
#[derive(Deserialize)]
pub(crate) struct UserForm {
    pub(crate) kind: String,
    pub(crate) name: String,
    role: Option<String>,
    password: Option<String>,
    expires: Option<String>,
}

/// What one Users form asks for.
pub(crate) fn act(auth: &crate::auth::Auth, f: &UserForm) -> Result<String, AuthError> {
    let role = || crate::auth::role_named(f.role.as_deref().unwrap_or_default());
    match f.kind.as_str() {
        "remove-user" => {
            auth.remove_user(&f.name).map(|()| format!("User {} removed; their sessions have ended.", f.name))
        }
        "revoke-token" => auth.revoke_token(&f.name).map(|()| format!("Token {} revoked.", f.name)),
        "token" => {
            let role = role()?;
            let expires = match f.expires.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
                Some(e) => Some(parse_expiry(e, chrono::Utc::now())?),
                None => None,
            };
            let secret = auth.create_token(&f.name, role, expires)?;
            Ok(format!("Token {} ({}) created. Copy it now, it is not shown again: {secret}", f.name, role.as_str()))
        }
        _ => {
            let role = role()?;
            match f.password.as_deref().filter(|p| !p.is_empty()) {
                Some(p) => {
                    auth.set_user(&f.name, role, p).map(|()| format!("User {} saved ({}).", f.name, role.as_str()))
                }
                None => auth
                    .set_role(&f.name, role)
                    .map(|()| format!("User {} is now {} (password kept).", f.name, role.as_str())),
            }
        }
    }
}

pub(super) async fn submit(State(state): State<Arc<AppState>>, UiForm(user, f): UiForm<UserForm>) -> Response {
    if !user.who.role.allows(Role::Admin) {
        return users_page(&state, &user, None);
    }
    let actor = user.who.name.clone();
    let message = match state.auth.hashing(move |auth| (act(auth, &f), f)).await {
        Ok((Ok(m), f)) => {
            tracing::info!(kind = %f.kind, name = %f.name, by = %actor, "users changed");
            (true, m)
        }
        Ok((Err(e), _)) | Err(e) => (false, e.to_string()),
    };
    users_page(&state, &user, Some(message))
}
