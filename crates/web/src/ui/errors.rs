//! Error pages of the web UI in the frame and style of every page: unknown paths (404) and
//! other failures ([`page`]). API paths (`/api/...`) keep their
//! JSON error bodies.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::{SCRIPT, STYLESHEET};
use crate::http::ApiError;

/// Where an operator can go from an error page.
const LINKS: [(&str, &str); 4] =
    [("Dashboard", "/"), ("Analytics", "/analytics"), ("Policies", "/policies"), ("Alarms", "/alarms")];

/// An error page: the header of every page, then the status, a title, what happened and where
/// to go. `detail` is shown as text (escaped).
pub fn page(status: StatusCode, title: &str, detail: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tollgate" }
                link rel="stylesheet" href=(STYLESHEET);
                script src=(SCRIPT) defer {}
            }
            body {
                header {
                    span.brand { "tollgate" }
                    nav { @for (name, href) in LINKS { a href=(href) { (name) } } }
                }
                main #main {
                    div.card.error-page #error-page data-status=(status.as_u16()) {
                        p.code { (status.as_u16()) }
                        h1 { (title) }
                        (detail)
                        p { a href="/" id="home" { "Go to the Dashboard" } " · " a href="/login" { "Log in" } }
                    }
                }
            }
        }
    }
}

/// The answer to a path no route knows: JSON under `/api/`, the designed page elsewhere.
pub async fn not_found(req: Request) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/api/") {
        return ApiError::not_found(format!("no API route {path}; see GET /api/v1/version and docs/API.md"))
            .into_response();
    }
    let detail = html! {
        p { "There is no page at " code #missing-path { (path) } " on this server." }
        p.muted { "Check the address, or start from one of the pages above." }
    };
    (StatusCode::NOT_FOUND, Html(page(StatusCode::NOT_FOUND, "Page not found", detail).into_string())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    async fn text(r: Response) -> String {
        String::from_utf8(axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn unknown_pages_get_the_designed_page_and_unknown_api_paths_json() {
        let r = not_found(Request::get("/no/such-page").body(Body::empty()).unwrap()).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = text(r).await;
        assert!(body.starts_with("<!DOCTYPE html>") && body.contains("href=\"/static/tollgate.css\""), "{body}");
        assert!(
            body.contains("Page not found") && body.contains("<code id=\"missing-path\">/no/such-page</code>"),
            "{body}"
        );
        let r = not_found(Request::get("/api/v1/nothing").body(Body::empty()).unwrap()).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = text(r).await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "not_found", "{body}");
    }
}
