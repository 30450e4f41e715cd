//! Shared counters: velocity counts and calls in progress exchanged between every engine and
//! probe of a namespace through Redis (or Valkey), so `velocity` and `concurrent` rules count
//! a caller's calls network-wide, not per engine process.
//!
//! What this crate owns:
//! * the batch format in Redis ([`wire::Batch`]: JSON in one field of a stream entry, checked
//!   field by field when read, fuzzed);
//! * the sync task ([`SharedCounters`]): every `interval`, one pipelined round trip that appends
//!   the calls this engine counted (and, from a probe, its calls in progress) to the stream
//!   `<namespace>:events` (trimmed to `history`) and reads what the others appended since;
//! * its state for `lookup`, the metrics ([`status::SyncCollector`]) and alarm 72016
//!   SHARED_COUNTERS_UNREACHABLE.
//!
//! The bound: an engine decides from its own calls at once and from the others' once they are
//! read, so a decision misses at most the calls the other engines counted in about the last two
//! intervals (one to send, one to read) plus one Redis round trip.
//!
//! What it must not do: sit on the answer path. Engines count in their own
//! [`tollgate_policy::VelocityTable`] without waiting; this task only drains and merges. When
//! Redis does not answer, the engine answers from its own counts, the alarm is raised, the
//! calls counted meanwhile are kept (up to `max_pending`) and sent when Redis returns.
//!
//! How to wire it: make the engine's table with
//! [`tollgate_policy::VelocityTable::with_sharing`], then [`SharedCounters::start`] with the
//! settings of `[shared_counters]` on the tokio runtime; register
//! [`status::SyncCollector`] with the metrics registry and hand [`SharedCounters::status`] to
//! `lookup`. A probe in its own process uses a table of its own (its calls in progress) with
//! `publish_in_progress` on and `read` off.

#![warn(missing_docs)]

pub mod fuzzing;
pub mod status;
pub mod sync;
pub mod wire;

pub use status::{SyncCollector, SyncStatus};
pub use sync::{RedisTls, SharedCounters, SyncSettings};
pub use tollgate_policy::velocity::{SharedState, SharedView};
