//! Users (admins): the manager's users and API tokens, added, changed, removed and revoked as
//! on the collector's Users page (the same forms, [`crate::ui::admin::act`]); every change is
//! audited with the admin's name, and the active manager copies the user database to its mate.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{ConsoleUser, frame, respond};
use crate::auth::Role;
use crate::manager_api::ManagerApi;
use crate::session::UiForm;
use crate::ui::admin::{UserForm, act, users_cards};

fn render(s: &ManagerApi, user: &ConsoleUser, message: Option<(bool, String)>) -> Response {
    let note = "Users are managed on the active manager, which copies them to its mate.";
    let body = users_cards(&s.auth, &user.0, &["viewer", "operator", "admin"], Some(note), message.as_ref());
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
