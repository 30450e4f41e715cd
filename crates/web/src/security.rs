//! Browser-facing protections of every response and every change.
//!
//! - **Cross-site requests**: a change (any method but GET, HEAD, OPTIONS) whose `Origin`
//!   header, or `Referer` when there is no `Origin`, names another site than the one it was sent
//!   to (`Host`, or `X-Forwarded-Host` from a reverse proxy) is refused with 403 before any
//!   handler runs. Browsers always send `Origin` on cross-site form posts and scripts cannot
//!   forge it; tools (curl, the CLI, shippers) send neither and are judged by their bearer
//!   token. UI forms also carry a per-session CSRF token (see [`crate::session::UiForm`]).
//! - **Headers**: every response says `Content-Security-Policy` (nothing but this server's own
//!   stylesheet, script and images, no inline script or style, forms only to this server,
//!   never framed),
//!   `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff` and
//!   `Referrer-Policy: same-origin`.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use subtle::ConstantTimeEq;
use url::Url;

/// The Content-Security-Policy of every page: scripts and styles only from this server's own
/// files (no inline script or style), requests only to this server, nothing from elsewhere,
/// forms post only here, never framed, no `<base>`.
pub const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; \
                       img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// True if two CSRF tokens are equal (compared in constant time; an empty token never matches).
pub fn tokens_match(sent: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// Where a request says it was sent from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// No `Origin` and no `Referer` (not a browser, or a browser hiding it).
    Unstated,
    /// The same site as the request's host.
    SameOrigin,
    /// Another site (or an opaque `Origin: null`), as stated.
    CrossSite(String),
}

/// Judges the `Origin` (or else `Referer`) of a request against its `Host` and
/// `X-Forwarded-Host`.
pub fn source(headers: &HeaderMap) -> Source {
    let stated = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let Some(stated) = stated else { return Source::Unstated };
    let Ok(from) = Url::parse(stated.trim()) else { return Source::CrossSite(stated) };
    let Some(from_host) = from.host_str() else { return Source::CrossSite(stated) };
    let hosts = [header::HOST.as_str(), "x-forwarded-host"];
    let same = hosts
        .iter()
        .filter_map(|h| headers.get(*h))
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(',').next())
        .filter_map(|authority| Url::parse(&format!("{}://{}/", from.scheme(), authority.trim())).ok())
        .any(|to| {
            to.host_str().is_some_and(|h| h.eq_ignore_ascii_case(from_host))
                && to.port_or_known_default() == from.port_or_known_default()
        });
    if same && matches!(from.scheme(), "http" | "https") { Source::SameOrigin } else { Source::CrossSite(stated) }
}

/// The 403 answer to a form without the session's CSRF token.
pub fn csrf_refused() -> Response {
    refusal(
        "This form did not come from this server's own page",
        "Its security token is missing or belongs to another login session, so nothing was changed. \
         Reload the page and send the form again.",
    )
}

fn refusal(title: &str, detail: &str) -> Response {
    let body = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Refused · tollgate" } link rel="stylesheet" href=(crate::ui::STYLESHEET); }
            body { div.login.card id="refused" { h1 { (title) } p.err { (detail) } p { a href="/" { "Back to tollgate" } } } }
        }
    };
    (StatusCode::FORBIDDEN, Html(body.into_string())).into_response()
}

fn cross_site_refused(path: &str, stated: &str, headers: &HeaderMap) -> Response {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("?");
    let detail = format!(
        "The request came from {stated:?}, not from this server ({host}), so nothing was changed. If a \
         reverse proxy rewrites the Host header, have it pass the original one in X-Forwarded-Host."
    );
    if path.starts_with("/api/") {
        crate::http::ApiError::forbidden(format!("cross-site request refused: {detail}")).into_response()
    } else {
        refusal("Cross-site request refused", &detail)
    }
}

/// The middleware of every route: refuses cross-site changes, adds the security headers.
pub async fn guard(req: Request, next: Next) -> Response {
    if !req.method().is_safe()
        && let Source::CrossSite(stated) = source(req.headers())
    {
        tracing::warn!(path = %req.uri().path(), origin = %stated, "cross-site request refused");
        let mut resp = cross_site_refused(req.uri().path(), &stated, req.headers());
        add_headers(resp.headers_mut());
        return resp;
    }
    let mut resp = next.run(req).await;
    add_headers(resp.headers_mut());
    resp
}

fn add_headers(headers: &mut HeaderMap) {
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in set {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(pairs: &[(&str, &str)]) -> Source {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        source(&h)
    }

    #[test]
    fn only_the_same_site_may_send_changes() {
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(judge(&[host]), Source::Unstated);
        assert_eq!(judge(&[host, ("origin", "http://127.0.0.1:8080")]), Source::SameOrigin);
        assert_eq!(judge(&[host, ("referer", "http://127.0.0.1:8080/policies?x=1")]), Source::SameOrigin);
        assert_eq!(judge(&[("host", "tollgate.example"), ("origin", "https://tollgate.example")]), Source::SameOrigin);
        assert_eq!(
            judge(&[("host", "Tollgate.Example:443"), ("origin", "https://tollgate.example")]),
            Source::SameOrigin
        );
        for evil in [
            "http://evil.example",
            "http://127.0.0.1:8081",
            "null",
            "file:///etc/passwd",
            "http://127.0.0.1:8080.evil.example",
            "not a url",
        ] {
            assert!(matches!(judge(&[host, ("origin", evil)]), Source::CrossSite(_)), "{evil} passed");
        }
        // Origin wins over Referer.
        assert!(matches!(
            judge(&[host, ("origin", "http://evil.example"), ("referer", "http://127.0.0.1:8080/")]),
            Source::CrossSite(_)
        ));
        // Behind a reverse proxy that rewrites Host.
        assert_eq!(
            judge(&[host, ("x-forwarded-host", "tollgate.example"), ("origin", "https://tollgate.example")]),
            Source::SameOrigin
        );
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abd", "abc"));
        assert!(!tokens_match("ab", "abc"));
        assert!(!tokens_match("", ""), "an empty expected token never matches");
    }
}
