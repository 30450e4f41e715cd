//! The web UI: server-rendered pages (maud), inline SVG charts, no external resource.
//! Pages: Dashboard, Analytics, Policies, Alarms, Users (admin), Account (own password); login
//! and logout; a designed page for unknown paths and other errors ([`errors`]).
//!
//! One small script, served by this server ([`SCRIPT`]), adds what HTML cannot: the value
//! under the pointer on charts, the Dashboard's live data refreshed in place, and the
//! browser's time zone in the zone selector. Every page works without it.
//!
//! Session cookies are `HttpOnly` and `SameSite=Strict`; beyond that, every form that changes
//! something carries the session's CSRF token ([`crate::session::UiForm`]) and cross-site
//! changes are refused by their `Origin` ([`crate::security`]). Styles come from one served
//! stylesheet ([`STYLESHEET`]), so the Content-Security-Policy allows no inline style or script.

mod account;
pub(crate) mod admin;
pub(crate) mod analytics;
pub mod charts;
mod dashboard;
pub mod errors;
pub mod next;
mod policies;
pub mod stats;

use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use tollgate_logthrottle::LogThrottle;

use crate::AppState;
use crate::auth::{AuthError, Role, retry_after_secs};
use crate::limits::route;
use crate::session::{AuthState, CSRF_FIELD, ClientIp, UiForm, UiUser};

/// Where the stylesheet of every page is served.
pub const STYLESHEET: &str = "/static/tollgate.css";
/// Where the script of every page is served (`script-src 'self'`: no inline script).
pub const SCRIPT: &str = "/static/tollgate.js";
/// The script: chart hover values, the Dashboard's live refresh, the browser's time zone.
const SCRIPT_SOURCE: &str = include_str!("tollgate.js");
/// Header the script sends on its automatic refreshes: such a request does not extend the
/// login session (see [`crate::auth::Auth::session_quiet`]), so a Dashboard left open does
/// not keep a session alive forever.
pub const REFRESH_HEADER: &str = "x-tollgate-refresh";
/// The pages; each route's body limit is in [`crate::limits::BODY_LIMITS`] (forms are small,
/// the policy upload form takes what the API takes: the policy part is bounded on its own,
/// lists are streamed to disk).
pub(crate) fn routes() -> Router<Arc<AppState>> {
    let mut r = Router::new();
    r = route(r, "/", get(dashboard::page));
    r = route(r, STYLESHEET, get(stylesheet));
    r = route(r, SCRIPT, get(script));
    r = route(r, "/login", get(login_page).post(login));
    r = route(r, "/logout", post(logout));
    r = route(r, "/account", get(account::page).post(account::submit));
    r = route(r, "/analytics", get(analytics::page));
    r = route(r, "/analytics.csv", get(analytics::csv));
    r = route(r, "/export.csv", get(analytics::export));
    r = route(r, "/policies", get(policies::page).post(policies::submit));
    r = route(r, "/policies/uninstall", post(policies::uninstall));
    r = route(r, "/policies/diff", get(policies::diff));
    r = route(r, "/alarms", get(admin::alarms));
    r = route(r, "/users", get(admin::users).post(admin::submit));
    r
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        charts::CSS.0,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        SCRIPT_SOURCE,
    )
        .into_response()
}

/// The `tz` query parameter of pages that show times: an IANA zone name, UTC when absent or
/// unknown.
#[derive(Debug, Default, Deserialize)]
pub struct ZoneParam {
    /// The zone's name, e.g. `Europe/Berlin`.
    pub tz: Option<String>,
}

impl ZoneParam {
    /// The zone (UTC when absent or unknown).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.tz.as_deref().and_then(charts::time::zone).unwrap_or(chrono_tz::Tz::UTC)
    }
}

/// The time-zone selector of a form: UTC, the zone in use, and (added by the script) the
/// browser's own zone.
pub fn zone_select(tz: chrono_tz::Tz) -> Markup {
    html! {
        label { "Time zone" select name="tz" id="tz" data-zone=(tz.name()) {
            option value="UTC" selected[tz == chrono_tz::Tz::UTC] { "UTC" }
            @if tz != chrono_tz::Tz::UTC { option value=(tz.name()) selected { (tz.name()) } }
        } }
    }
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

/// `?part=live` on a page with a live part (Dashboard, Alarms): only that part, for the served
/// script's refresh.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Part {
    part: Option<String>,
}

impl Part {
    /// The live part alone (`no-store`) when it was asked for, else `None`: render the page.
    pub(crate) fn live_only(&self, live: &Markup) -> Option<Response> {
        (self.part.as_deref() == Some("live"))
            .then(|| ([(header::CACHE_CONTROL, "no-store")], live.clone()).into_response())
    }
}

/// The hidden field carrying `user`'s CSRF token; the first field of every form that changes
/// something.
pub(crate) fn csrf_field(user: &UiUser) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(user.csrf()); }
}

/// The page frame: header with navigation and the signed-in user, then `body`.
pub(crate) fn page(title: &str, active: &str, user: &UiUser, refresh: Option<u32>, body: Markup) -> Markup {
    let who = &user.who;
    let nav = [("Dashboard", "/"), ("Analytics", "/analytics"), ("Policies", "/policies"), ("Alarms", "/alarms")];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(s) = refresh { meta http-equiv="refresh" content=(s); }
                title { (title) " · tollgate" }
                link rel="stylesheet" href=(STYLESHEET);
                script src=(SCRIPT) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
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
                        a href="/account" id="account" title="Account: change your password" { (who.name) } " (" (who.role.as_str()) ") "
                        form method="post" action="/logout" { (csrf_field(user)) button type="submit" id="logout" { "Log out" } }
                    }
                }
                main #main { h1 { (title) } (body) }
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
            head { meta charset="utf-8"; title { "Log in · tollgate" } link rel="stylesheet" href=(STYLESHEET); }
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

/// `GET /login` (the collector's and the manager's).
pub(crate) async fn login_page(Query(p): Query<NextParam>) -> Markup {
    login_form(next::safe_next(p.next.as_deref()), None)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
}

/// One warning line per 10 s about failed logins, however many there are.
static FAILED_LOGINS: LogThrottle = LogThrottle::new(10_000);

/// The answer to a password check that did not succeed: 401 (wrong), 429 (throttled) or 503
/// (busy), with `Retry-After` when waiting helps.
pub(crate) fn password_refusal(e: &AuthError, page: Markup) -> Response {
    let (status, retry) = match e {
        AuthError::Throttled { retry_after } => (StatusCode::TOO_MANY_REQUESTS, Some(retry_after_secs(*retry_after))),
        AuthError::Busy => (StatusCode::SERVICE_UNAVAILABLE, Some(5)),
        AuthError::WrongPassword => (StatusCode::UNAUTHORIZED, None),
        _ => (StatusCode::BAD_REQUEST, None),
    };
    let mut resp = (status, page).into_response();
    if let Some(secs) = retry {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// `POST /login`: opens a session of `S`'s user database (the collector's or the manager's).
pub(crate) async fn login<S: AuthState>(
    State(state): State<Arc<S>>,
    ClientIp(client): ClientIp,
    tls: Option<axum::Extension<crate::server::TlsConnection>>,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = next::safe_next(f.next.as_deref());
    match state.auth().login(&f.name, &f.password, client).await {
        Ok(id) => {
            tracing::info!(user = %f.name, "logged in");
            let cookie = crate::session::session_cookie(Some(&id), tls.is_some());
            let mut resp = Redirect::to(next).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => {
            if let Some(left_out) = FAILED_LOGINS.allow() {
                let user: String = f.name.chars().take(64).collect();
                let client = client.map(|c| c.to_string()).unwrap_or_else(|| "unknown".into());
                tracing::warn!(%user, %client, reason = %e, "failed login ({left_out} similar lines left out since the last)");
            }
            let message = match &e {
                AuthError::Throttled { .. } | AuthError::Busy => e.to_string(),
                _ => "Wrong user or password.".to_string(),
            };
            password_refusal(&e, login_form(next, Some(&message)))
        }
    }
}

/// `POST /logout`: ends the session (the collector's or the manager's).
pub(crate) async fn logout<S: AuthState>(
    State(state): State<Arc<S>>,
    tls: Option<axum::Extension<crate::server::TlsConnection>>,
    UiForm(user, _): UiForm<serde::de::IgnoredAny>,
) -> Response {
    if let Some(id) = user.session_id() {
        state.auth().logout(id);
    }
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&crate::session::session_cookie(None, tls.is_some())) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// A number with thousands separators.
pub(crate) use charts::thousands;
