//! Account: a user changes their own password (the current one is required; the change ends
//! their other sessions and keeps this one).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::AppState;
use crate::auth::MIN_PASSWORD;
use crate::session::{ClientIp, UiForm, UiUser};

fn render(user: &UiUser, message: Option<(bool, String)>) -> Markup {
    let body = html! {
        @if let Some((ok, m)) = &message { div.card { p class=(if *ok { "ok" } else { "err" }) id="message" { (m) } } }
        div.card {
            h2 { "Change your password" }
            @if user.session_id().is_none() {
                p.muted { "You are signed in with an API token, which has no password." }
            } @else {
                form.selectors method="post" action="/account" {
                    (super::csrf_field(user))
                    label { "Current password" input name="current" type="password" autocomplete="current-password" required; }
                    label { (format!("New password ({MIN_PASSWORD}+ characters)")) input name="new" type="password" autocomplete="new-password" required; }
                    label { "New password again" input name="repeat" type="password" autocomplete="new-password" required; }
                    button.primary type="submit" id="change-password" { "Change password" }
                }
                p.muted { "Your other sessions end when the password changes." }
            }
        }
    };
    super::page("Account", "", user, None, body)
}

pub(super) async fn page(user: UiUser) -> Response {
    render(&user, None).into_response()
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    current: String,
    new: String,
    repeat: String,
}

pub(super) async fn submit(
    State(state): State<Arc<AppState>>,
    ClientIp(client): ClientIp,
    UiForm(user, f): UiForm<PasswordForm>,
) -> Response {
    let Some(session) = user.session_id().map(String::from) else {
        return render(&user, Some((false, "An API token has no password to change.".into()))).into_response();
    };
    if f.new != f.repeat {
        return render(&user, Some((false, "The two new passwords differ; nothing was changed.".into())))
            .into_response();
    }
    match state.auth.change_password(&user.who.name, &f.current, &f.new, client, Some(&session)).await {
        Ok(()) => {
            tracing::info!(user = %user.who.name, "password changed by its user");
            render(&user, Some((true, "Password changed. Your other sessions have ended.".into()))).into_response()
        }
        Err(e) => {
            let message = format!("{e}; nothing was changed.");
            super::password_refusal(&e, render(&user, Some((false, message))))
        }
    }
}
