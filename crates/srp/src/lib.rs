//! The Service Redundancy Protocol (SRP) core: which of two chassis serves, and how the serving
//! chassis keeps its mate's copy of the session state current.
//!
//! What this crate owns:
//! * [`config`]: the `[srp]` configuration, its seed defaults and validation;
//! * [`election`]: the pure Active/Standby state machine (Init, Active, Standby, Pending-Active,
//!   Pending-Standby), split-brain resolution, switchover, guard and damping rules;
//! * [`monitor`]: monitor groups (AAA, BGP, Diameter targets) turned into group up/down events;
//! * [`frame`], [`message`], [`handshake`], [`admission`], [`link`], [`link_tls`]: the one authenticated TCP
//!   connection between the two chassis (versioned frames, HMAC-SHA256, a challenge-response
//!   handshake that a replay cannot complete, bounded unauthenticated work, compression agreed per
//!   connection, hellos, retry), encrypted with mutual TLS 1.3 when `[tls]` is configured
//!   ([`link_tls`]; plain text only on loopback unless allowed);
//! * [`session`], [`checkpoint`]: the session store roles write to, and its replication to the
//!   Standby by micro and full (macro) checkpoints with sequence numbers, checksums and NACKs;
//! * [`audit`]: comparing two copies of the session state;
//! * [`timer`]: tokio timers that carry out the machine's timer actions without stale expiries;
//! * [`status`]: `show srp info` and `show srp statistics`;
//! * [`probe`]: the monitors' probe clients (TCP connect for BGP, RADIUS Access-Request,
//!   Diameter CER/DWR), reporting each target's up/down changes;
//! * [`runtime`]: the chassis owner loop below, over a [`runtime::ReplicatedState`] (what is
//!   checkpointed), a [`runtime::ServiceAddress`] (how the service is claimed) and a
//!   [`runtime::ForcedStandbySource`], all injected; operators reach it by
//!   [`runtime::SrpHandle`] with the typed requests of `tollgate_api::srp`.
//!
//! What it must not do: decide call policy, know what the service is (the owner claims and
//! releases it through [`runtime::ServiceAddress`]), read clocks inside the state machine, or
//! block a call: failures of SRP are reported (events, statistics, alarms) to the owner, which
//! decides.
//!
//! # Wiring (what the owner's loop does)
//!
//! [`runtime`] is this loop; an owner (the engine) only supplies its state, its service and
//! its forced-standby flag. The steps, for reading it:
//!
//! 1. Validate the [`SrpConfig`]; build a [`Machine`] ([`election::Params::from_config`]), a
//!    [`Link`] ([`LinkConfig::from_config`]), a [`Checkpointer`], a [`SessionStore`], a
//!    [`timer::Timers`] and a [`monitor::MonitorSet`]; carry out the machine's start actions.
//! 2. Feed the machine ([`step`]): [`LinkEvent::Connected`] -> [`Event::LinkUp`],
//!    `Disconnected` -> `LinkDown`, `Hello` -> `PeerHello`, `SwitchoverRequest`/`Response` ->
//!    `PeerSwitchoverRequest`/`Response`, timer expiries via [`timer::Timers::expired`], monitor
//!    changes from [`monitor::MonitorSet::report`], operator commands (`srp initiate-switchover`
//!    -> `ManualSwitchover`, ...), and `SyncStatus` whenever [`Checkpointer::is_synchronised`]
//!    changes.
//! 3. Carry out the actions in order: `SendHello` -> [`Link::set_hello`] with
//!    [`Machine::status`]; `Take`/`ReleaseServiceAddress` -> the service IP (a failed take
//!    raises `SRP_SERVICE_ADDRESS_FAILED` and is retried every [`runtime::CLAIM_RETRY`] while
//!    Active, through [`runtime::ServiceAddress::retry_claim`]); timers ->
//!    [`timer::Timers::apply`]; `RequestFullCheckpoint` -> [`Message::FullCheckpointRequest`];
//!    `FlushCheckpoints` -> send [`Checkpointer::micro_checkpoints`]; switchover messages ->
//!    [`Link::send`].
//! 4. Checkpoints: while Active, on `Connected` and on `FullCheckpointRequest`/`Nack` send
//!    [`Checkpointer::full_checkpoint`] / [`Checkpointer::handle_nack`], and every tick (say every
//!    100 ms) [`Checkpointer::poll_active`]. While Standby, pass `LinkEvent::Checkpoint` to
//!    [`Checkpointer::receive`], send the NACK it returns, and send
//!    [`Checkpointer::poll_standby`]'s NACK each tick. Call [`Checkpointer::on_connected`] on
//!    every `Connected`.

#![warn(missing_docs)]

pub mod admission;
pub mod audit;
pub mod checkpoint;
pub mod compress;
pub mod config;
pub mod election;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod handshake;
pub mod link;
pub mod link_tls;
pub mod message;
pub mod monitor;
pub mod probe;
pub mod runtime;
pub mod session;
pub mod status;
pub mod timer;

pub use checkpoint::{Checkpoint, Checkpointer, Nack};
pub use compress::Compression;
pub use config::{ChassisMode, SrpConfig};
pub use election::{Action, Event, Machine, State, step};
pub use link::{Link, LinkConfig, LinkEvent};
pub use message::Message;
pub use session::SessionStore;
