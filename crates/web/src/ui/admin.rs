//! Alarms (everyone) and Users (admins): users, roles and API tokens.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Role;
use crate::session::UiUser;

pub(super) async fn alarms(State(state): State<Arc<AppState>>, UiUser(who): UiUser) -> Response {
    let active = state.alarms.active();
    let history = state.alarms.history();
    let body = html! {
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
    };
    super::page("Alarms", "Alarms", &who, Some(10), body).into_response()
}

fn users_page(state: &AppState, who: &crate::auth::Principal, message: Option<(bool, String)>) -> Response {
    if !who.role.allows(Role::Admin) {
        return super::page(
            "Users",
            "Users",
            who,
            None,
            html! { div.card { p.err { "Managing users needs the admin role." } } },
        )
        .into_response();
    }
    let users = state.auth.users();
    let tokens = state.auth.tokens();
    let body = html! {
        @if let Some((ok, m)) = &message { div.card { p class=(if *ok { "ok" } else { "err" }) id="message" { (m) } } }
        div.card {
            h2 { "Users" }
            table { thead { tr { th { "Name" } th { "Role" } th { "Created (UTC)" } } }
                tbody { @for u in &users { tr { td { (u.name) } td { (u.role.as_str()) } td { (u.created_at.format("%Y-%m-%d %H:%M")) } } } } }
            h2 { "Add a user or change a password" }
            form.selectors method="post" action="/users" {
                input type="hidden" name="kind" value="user";
                label { "Name" input name="name" required; }
                label { "Role" select name="role" { option { "viewer" } option { "operator" } option { "admin" } } }
                label { "Password (10+ characters)" input name="password" type="password" required; }
                button.primary type="submit" { "Save user" }
            }
        }
        div.card {
            h2 { "API tokens" }
            table { thead { tr { th { "Name" } th { "Role" } th { "Created (UTC)" } } }
                tbody { @for t in &tokens { tr { td { (t.name) } td { (t.role.as_str()) } td { (t.created_at.format("%Y-%m-%d %H:%M")) } } } } }
            h2 { "Create a token" }
            form.selectors method="post" action="/users" {
                input type="hidden" name="kind" value="token";
                label { "Name" input name="name" required; }
                label { "Role" select name="role" { option { "ingest" } option { "viewer" } option { "operator" } option { "admin" } } }
                button.primary type="submit" { "Create token" }
            }
        }
    };
    super::page("Users", "Users", who, None, body).into_response()
}

pub(super) async fn users(State(state): State<Arc<AppState>>, UiUser(who): UiUser) -> Response {
    users_page(&state, &who, None)
}

#[derive(Deserialize)]
pub(super) struct UserForm {
    kind: String,
    name: String,
    role: String,
    password: Option<String>,
}

pub(super) async fn submit(
    State(state): State<Arc<AppState>>,
    UiUser(who): UiUser,
    Form(f): Form<UserForm>,
) -> Response {
    if !who.role.allows(Role::Admin) {
        return users_page(&state, &who, None);
    }
    let Some(role) = Role::parse(&f.role) else {
        return users_page(&state, &who, Some((false, format!("unknown role {:?}", f.role))));
    };
    let auth = state.auth.clone();
    let message = tokio::task::spawn_blocking(move || match f.kind.as_str() {
        "token" => match auth.create_token(&f.name, role) {
            Ok(secret) => (
                true,
                format!("Token {} ({}) created. Copy it now, it is not shown again: {secret}", f.name, role.as_str()),
            ),
            Err(m) => (false, m),
        },
        _ if role == Role::Ingest => (false, "users are viewers, operators or admins; ingest is for tokens".into()),
        _ => match auth.set_user(&f.name, role, f.password.as_deref().unwrap_or("")) {
            Ok(()) => (true, format!("User {} saved ({}).", f.name, role.as_str())),
            Err(m) => (false, m),
        },
    })
    .await
    .unwrap_or_else(|e| (false, e.to_string()));
    users_page(&state, &who, Some(message))
}
