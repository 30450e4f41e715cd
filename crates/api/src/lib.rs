//! tollgate's control-plane wire contract.
//!
//! What this crate owns: the types that cross tollgate's own HTTP APIs (agent, manager, SRP
//! commands, web API: [`web`]), shared by the servers that answer and the clients that ask, so that
//! both sides are checked by the compiler and a change of the contract is a change of a type;
//! the one error body ([`ErrorBody`]) with its stable machine-readable [`ErrorCode`]; the API
//! version ([`API_VERSION`]) every response carries in the [`VERSION_HEADER`] header and the
//! rule of which versions talk to each other ([`compatible`]); and, with the `client` feature,
//! the one HTTP client of these APIs.
//!
//! What it must not do: decide anything. No handler logic, no state; servers and runtimes
//! live elsewhere (`tollgate-web` holds the routers, the runtimes their own crates).
//!
//! How to wire it: a server answers errors with `ErrorBody` (in `tollgate-web`, `ApiError`
//! converts to it) and sets `VERSION_HEADER`; a client branches on [`ErrorBody::code`], never on
//! the message text.
//!
//! Compatibility: during a rolling upgrade a manager of release N talks to agents of N-1 and
//! N+1. So a field added in release N is `#[serde(default)]` on the reading side (an older
//! peer does not send it), no field is removed or renamed without a release in between that
//! reads both, and unknown fields are ignored (no `deny_unknown_fields` on wire types). Enums
//! that may grow carry an `#[serde(other)]` variant where a reader must survive a newer peer.
//! `tests/compat.rs` holds payloads as an older release sent them and checks they still decode.

#![warn(missing_docs)]

pub mod agent;
#[cfg(feature = "client")]
pub mod client;
pub mod console;
pub mod error;
pub mod log_groups;
pub mod manager;
pub mod probe;
pub mod srp;
pub mod tls;
pub mod version;
pub mod web;

#[cfg(feature = "client")]
pub use client::{BlockingClient, Client, ClientError, TlsConfig, http_builder};
pub use error::{Detail, ErrorBody, ErrorCode};
pub use version::{API_VERSION, VERSION_HEADER, compatible};
