//! The engine's SIP redirect server: SBCs, softswitches and PBXs that do not speak ENUM send
//! the call's INVITE and follow the answer, as they do with a routing server (RFC 3261 section
//! 8.1.3.4 redirects, 21.3 3xx responses). The decision is the same policy's, through the ENUM
//! responder ([`tollgate_enum::Responder`]): the same rules, intercepts, device names,
//! velocity counters (checkpointed by SRP, shared through Redis) and records (the ENUM dataset,
//! [`tollgate_records::Protocol::Sip`]).
//!
//! What this crate owns:
//! * [`config`]: the `[sip_redirect]` section: listen addresses, the clients allowed to ask
//!   (others get 403), the answer per action (a 3xx with a Contact template, or a final
//!   error), the retransmission window and the listeners' limits;
//! * [`respond`]: one SIP message's bytes in, the response's bytes and the decision's record
//!   out, with no I/O: INVITE decided and answered; its retransmissions answered with the same
//!   bytes and no second record; ACK absorbed; CANCEL, OPTIONS and other methods answered;
//!   fail-open (the allow answer) on any internal failure;
//! * [`server`]: the UDP and TCP listeners (tokio), writing each decision's record to the
//!   spool before the answer is sent;
//! * [`metrics`]: Prometheus counters.
//!
//! What it must not do: parse SIP itself (the probe's parser, `tollgate-sip`, reads every
//! message), decide anything the policy does not say, or keep dialog state: it is a stateless
//! server whose only memory is the bounded window of answers to repeat for retransmissions.
//!
//! Wiring: `tollgate engine` (and `serve`) build a [`respond::Redirector`] on the engine's
//! responder and start a [`server::RedirectServer`] beside the ENUM listeners, on the same
//! spool; an SRP pair binds both only on the Active (the service address).

#![warn(missing_docs)]

pub mod config;
pub mod fuzzing;
pub mod metrics;
pub mod respond;
pub mod server;

pub use config::RedirectConfig;
pub use respond::{Handled, Outcome, Redirector, RequestContext};
