//! The manager's console: one set of pages for the whole system, in the collector UI's design
//! (the same stylesheet, [`crate::ui::STYLESHEET`], and the same header), behind a login with
//! user and password of the manager's user database ([`crate::manager_api::ManagerApi::auth`]).
//!
//! Pages, one file each: Topology ([`topology`]), Policies ([`policies`]), Analytics over every
//! collector cluster ([`analytics`]), Alarms ([`alarms`]), Upgrade ([`upgrade`]),
//! Audit ([`audit`]), Users ([`users`], admins); a designed page for unknown paths ([`not_found`]) and for refusals
//! ([`forbidden`]). The JSON API under `/api/v1` accepts the same login session (with
//! `X-CSRF-Token` on changes) as well as bearer tokens, so a page's script reads and acts with
//! the visitor's session and no token is ever put in a page.
//!
//! # Adding a page
//! 1. Write `console/<page>.rs` with a handler `pub(super) async fn page(State(s): State<Arc<ManagerApi>>,
//!    user: ConsoleUser) -> Response` that renders its body with [`frame`] (title, the
//!    navigation entry it belongs to, the visitor, the body, and the script it needs if any).
//!    Pages that need more than the viewer role call [`ConsoleUser::require`] first.
//! 2. Add the route in [`routes`] and its body limit in
//!    [`crate::limits::MANAGER_BODY_LIMITS`]; forms carry [`csrf_field`] and are read with
//!    [`crate::session::UiForm`].
//! 3. Styles go into `console.css` (served at [`CONSOLE_CSS`]); a script is a file of this
//!    directory served by [`script`] (the Content-Security-Policy allows only this server's
//!    own scripts, never inline ones).

pub mod alarms;
mod analytics;
pub mod audit;
pub mod policies;
pub mod topology;
pub mod upgrade;
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};

use crate::auth::{Principal, Role};
use crate::manager_api::ManagerApi;
use crate::session::UiUser;

/// Where the console's own styles (topology drawing, upgrade grid) are served, after the
/// common stylesheet.
pub const CONSOLE_CSS: &str = "/static/console.css";

/// The console's styles.
const CSS: &str = include_str!("console.css");

/// The console's navigation: (entry, path). Users is shown to admins only.
pub const NAV: [(&str, &str); 7] = [
    ("Topology", "/topology"),
    ("Policies", "/policies"),
    ("Analytics", "/analytics"),
    ("Alarms", "/alarms"),
    ("Upgrade", "/upgrade"),
    ("Audit", "/audit"),
    ("Users", "/users"),
];

/// The console's scripts: (name under `/static/`, source).
const SCRIPTS: [(&str, &str); 3] = [
    ("upgrade.js", include_str!("upgrade.js")),
    ("tollgate.js", include_str!("../ui/tollgate.js")),
    ("policies.js", include_str!("policies.js")),
];

type ApiState = Arc<ManagerApi>;

/// The console's routes (merged into [`crate::manager_api::router`]); each route's body limit
/// is in [`crate::limits::MANAGER_BODY_LIMITS`].
pub(crate) fn routes(router: Router<ApiState>) -> Router<ApiState> {
    let route =
        |router, path, methods| crate::limits::route_in(crate::limits::MANAGER_BODY_LIMITS, router, path, methods);
    let r = route(router, "/", get(|| async { Redirect::to("/topology") }));
    let r = route(r, crate::ui::STYLESHEET, get(stylesheet));
    let r = route(r, CONSOLE_CSS, get(console_css));
    let r = route(r, "/static/{script}", get(script));
    let r = route(r, "/login", get(crate::ui::login_page).post(crate::ui::login::<ManagerApi>));
    let r = route(r, "/logout", post(crate::ui::logout::<ManagerApi>));
    let r = route(r, "/audit", get(audit::page));
    let r = route(r, "/alarms", get(alarms::page).post(alarms::acknowledge));
    let r = route(r, "/users", get(users::page).post(users::submit));
    let r = route(r, "/analytics", get(analytics::page));
    let r = route(r, "/policies", get(policies::page));
    let r = route(r, "/topology", get(topology::page));
    let r = route(r, "/topology/{server}", get(topology::server_page));
    route(r, "/upgrade", get(upgrade::page))
}

async fn stylesheet() -> Response {
    css(crate::ui::charts::CSS.0)
}

async fn console_css() -> Response {
    css(CSS)
}

fn css(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// `GET /static/{script}`: one of the console's scripts, or the 404 page.
pub(crate) async fn script(Path(name): Path<String>, uri: Uri) -> Response {
    match SCRIPTS.iter().find(|(n, _)| *n == name) {
        Some((_, source)) => {
            ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], *source)
                .into_response()
        }
        None => not_found(uri).await,
    }
}

/// A visitor of the console: logged in (session cookie, or a bearer token for tools) with the
/// viewer role or above. Without a login the browser is sent to the login page (and back
/// after it); a login whose role may not read the console (an ingest token) gets the designed
/// 403 page.
#[derive(Debug, Clone)]
pub struct ConsoleUser(pub UiUser);

impl ConsoleUser {
    /// Who it is.
    pub fn who(&self) -> &Principal {
        &self.0.who
    }

    /// The CSRF token of this visitor's forms and scripts (empty for a bearer token).
    pub fn csrf(&self) -> &str {
        self.0.csrf()
    }

    /// `Ok` if this visitor's role allows `needed`, else the designed 403 page saying which
    /// role it takes.
    pub fn require(&self, needed: Role) -> Result<(), Response> {
        if self.who().role.allows(needed) {
            Ok(())
        } else {
            Err(forbidden(
                Some(self),
                &format!(
                    "{} ({}) may not do this; it needs the {} role.",
                    self.who().name,
                    self.who().role.as_str(),
                    needed.as_str()
                ),
            ))
        }
    }
}

impl FromRequestParts<ApiState> for ConsoleUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let user = UiUser::from_request_parts(parts, state).await?;
        let user = ConsoleUser(user);
        user.require(Role::Viewer)?;
        Ok(user)
    }
}

/// The hidden field carrying `user`'s CSRF token; the first field of every form that changes
/// something.
pub fn csrf_field(user: &ConsoleUser) -> Markup {
    crate::ui::csrf_field(&user.0)
}

/// The Content-Security-Policy of console pages: this server's own stylesheets, images and
/// scripts (no inline ones), requests to this server and to `mate` (the Upgrade page checks
/// that the mate manager answers before it sends the browser there).
pub fn csp(mate: Option<&str>) -> String {
    let mate = mate.and_then(|m| url::Url::parse(m).ok()).map(|u| u.origin().ascii_serialization());
    let connect = match mate.filter(|m| m != "null") {
        Some(m) => format!("'self' {m}"),
        None => "'self'".to_string(),
    };
    format!(
        "default-src 'none'; script-src 'self'; connect-src {connect}; style-src 'self'; img-src 'self' data:; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// A rendered console page with its Content-Security-Policy.
pub fn respond(status: StatusCode, mate: Option<&str>, page: Markup) -> Response {
    let mut resp = (status, page).into_response();
    if let Ok(v) = HeaderValue::from_str(&csp(mate)) {
        resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// The page frame of the console: the common header with the console's navigation (`active`
/// marked), the visitor and Log out (or Log in without a visitor), then `body` under an `h1` of
/// `title`; `script`: a script of this directory to load (served at `/static/<script>`).
pub fn frame(title: &str, active: &str, user: Option<&ConsoleUser>, body: Markup, script: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(u) = user { meta name="csrf-token" content=(u.csrf()); }
                title { (title) " · tollgate manager" }
                link rel="stylesheet" href=(crate::ui::STYLESHEET);
                link rel="stylesheet" href=(CONSOLE_CSS);
                @if let Some(s) = script { script src=(format!("/static/{s}")) defer {} }
            }
            body.console {
                header {
                    span.brand { "tollgate" }
                    nav aria-label="Console" {
                        @for (name, href) in NAV {
                            @if name != "Users" || user.is_some_and(|u| u.who().role.allows(Role::Admin)) {
                                a href=(href) class=[(name == active).then_some("on")] aria-current=[(name == active).then_some("page")] { (name) }
                            }
                        }
                    }
                    span.who {
                        @if let Some(u) = user {
                            span #user { (u.who().name) } " (" (u.who().role.as_str()) ") "
                            form method="post" action="/logout" { (csrf_field(u)) button type="submit" id="logout" { "Log out" } }
                        } @else {
                            a href="/login" id="login-link" { "Log in" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The designed error page: `status`, a heading and what to do, inside the frame.
pub fn error_page(status: StatusCode, user: Option<&ConsoleUser>, heading: &str, detail: Markup) -> Response {
    let body = html! {
        div.card.error-page id="error" data-status=(status.as_u16()) {
            p.code { (status.as_u16()) " · " (status.canonical_reason().unwrap_or("")) }
            h2 { (heading) }
            (detail)
            p { a href="/topology" { "Go to the topology" } " · " a href="/alarms" { "Alarms" } " · " a href="/upgrade" { "Upgrade" } }
        }
    };
    respond(status, None, frame(heading, "", user, body, None))
}

/// The designed 403 page.
pub fn forbidden(user: Option<&ConsoleUser>, why: &str) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        user,
        "Not allowed",
        html! { p.err id="why" { (why) } p.muted { "Ask an admin for a user with the role it takes." } },
    )
}

/// The fallback of the manager's router: the designed 404 page for pages, the JSON error for
/// the API.
pub async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || path.starts_with("/agent/") {
        return crate::http::ApiError::not_found(format!("no such route: {path}")).into_response();
    }
    error_page(
        StatusCode::NOT_FOUND,
        None,
        "There is no such page",
        html! {
            p { "Nothing is served at " code id="path" { (path) } "." }
            p.muted { "The link may be old, or the page was mistyped." }
        },
    )
}

/// The console visitor if there is one (`None`: not logged in, or a role below viewer); for
/// pages that also serve visitors without a login (the Upgrade page, which then takes a token).
pub struct MaybeConsoleUser(pub Option<ConsoleUser>);

impl FromRequestParts<ApiState> for MaybeConsoleUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let user = ConsoleUser::from_request_parts(parts, state).await.ok();
        Ok(MaybeConsoleUser(user))
    }
}
