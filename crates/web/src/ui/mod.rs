//! The web UI: server-rendered pages (maud), inline SVG charts, no script and no external
//! resource. Pages: Dashboard, Analytics, Policies, Alarms, Users (admin); login and logout.
//! Session cookies are `HttpOnly` and `SameSite=Strict`, so no other site can submit a form
//! with them.

mod admin;
mod analytics;
pub mod charts;
mod dashboard;
mod policies;

use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{Principal, Role};
use crate::session::{SESSION_COOKIE, session_id};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/analytics", get(analytics::page))
        .route("/analytics.csv", get(analytics::csv))
        .route("/export.csv", get(analytics::export))
        .route("/policies", get(policies::page).post(policies::submit))
        .route("/policies/uninstall", post(policies::uninstall))
        .route("/policies/diff", get(policies::diff))
        .route("/alarms", get(admin::alarms))
        .route("/users", get(admin::users).post(admin::submit))
}

/// Percent-encodes a query component.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The page frame: header with navigation and the signed-in user, then `body`.
pub(crate) fn page(title: &str, active: &str, who: &Principal, refresh: Option<u32>, body: Markup) -> Markup {
    let nav = [("Dashboard", "/"), ("Analytics", "/analytics"), ("Policies", "/policies"), ("Alarms", "/alarms")];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(s) = refresh { meta http-equiv="refresh" content=(s); }
                title { (title) " · tollgate" }
                style { (charts::CSS) }
            }
            body {
                header {
                    span.brand { "tollgate" }
                    nav {
                        @for (name, href) in nav {
                            a href=(href) class=[(name == active).then_some("on")] { (name) }
                        }
                        @if who.role.allows(Role::Admin) {
                            a href="/users" class=[("Users" == active).then_some("on")] { "Users" }
                        }
                    }
                    span.who {
                        (who.name) " (" (who.role.as_str()) ") "
                        form method="post" action="/logout" { button type="submit" { "Log out" } }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct NextParam {
    next: Option<String>,
}

fn login_form(next: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Log in · tollgate" } style { (charts::CSS) } }
            body {
                div.login.card {
                    h1 { "tollgate" }
                    @if let Some(e) = error { p.err id="login-error" { (e) } }
                    form method="post" action="/login" {
                        input type="hidden" name="next" value=(next);
                        label { "User" input name="name" autocomplete="username" autofocus required; }
                        label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                        p { button.primary type="submit" id="login" { "Log in" } }
                    }
                }
            }
        }
    }
}

async fn login_page(Query(p): Query<NextParam>) -> Markup {
    login_form(p.next.as_deref().unwrap_or("/"), None)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
}

/// Only local paths may be redirected to after login.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") => n.to_string(),
        _ => "/".into(),
    }
}

async fn login(State(state): State<Arc<AppState>>, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref());
    let auth = state.auth.clone();
    let (name, password) = (f.name.clone(), f.password.clone());
    let session = tokio::task::spawn_blocking(move || auth.login(&name, &password)).await.ok().flatten();
    match session {
        Some(id) => {
            tracing::info!(user = %f.name, "logged in");
            let cookie = format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict");
            let mut resp = Redirect::to(&next).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        None => {
            tracing::warn!(user = %f.name, "failed login");
            (axum::http::StatusCode::UNAUTHORIZED, login_form(&next, Some("Wrong user or password."))).into_response()
        }
    }
}

async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let (mut parts, _) = axum::http::Request::new(()).into_parts();
    parts.headers = headers;
    if let Some(id) = session_id(&parts) {
        state.auth.logout(&id);
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("tollgate_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
    );
    resp
}

/// A number with thousands separators.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
