//! Checkpointing: keeping the Standby's [`SessionStore`] a copy of the Active's.
//!
//! On the Active chassis the [`Checkpointer`] turns pending store changes into micro-checkpoints
//! (batched per command id, at each [`Checkpointer::poll_active`]) and the whole store into a full
//! (macro) checkpoint: when the link connects, every `periodic-interval`, and on a NACK or a full
//! checkpoint request. Only sessions at least `checkpoint delay` old are checkpointed.
//!
//! On the Standby it applies what arrives ([`Checkpointer::receive`]), checking sequence numbers
//! and checksums. A gap or a corrupt checkpoint makes the copy unsynchronised and produces a NACK
//! (unless NACKs are off for that kind, that command id, or `max-response` NACKs were sent in the
//! current 10-minute window); [`Checkpointer::poll_standby`] repeats the NACK until a full checkpoint
//! is applied. Micro-checkpoints keep being applied meanwhile (the copy stays as fresh as it can).
//!
//! Counters follow `show srp checkpoint statistics`; [`Checkpointer::info`] is `show srp checkpoint
//! info` (CMD ID, name, current status).

mod codec;
mod nack;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use codec::{
    Checkpoint, CheckpointDecodeError, CheckpointFault, CheckpointKind, EncodedCheckpoint, HEADER_LEN, MAX_BODY_LEN,
};
pub use nack::{NACK_WINDOW, Nack, NackKind, NackLimiter, NackReason};

use crate::config::{NackConfig, SrpConfig};
use crate::session::{Change, CmdId, SessionStore};

/// Most uncompressed change bytes in one checkpoint message (larger batches are split).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// `show srp checkpoint statistics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointStatistics {
    /// Full checkpoints sent (all parts of one count once).
    pub full_checkpoints_sent: u64,
    /// Of which sent because the periodic interval elapsed.
    pub periodic_full_checkpoints_sent: u64,
    /// Of which sent on connect, on a full checkpoint request or on a NACK.
    pub on_demand_full_checkpoints_sent: u64,
    /// Micro-checkpoints sent.
    pub micro_checkpoints_sent: u64,
    /// Session changes sent (in micro and full checkpoints).
    pub changes_sent: u64,
    /// Full checkpoints received and applied.
    pub full_checkpoints_applied: u64,
    /// Micro-checkpoints received and applied.
    pub micro_checkpoints_applied: u64,
    /// Checkpoints that did not decode, or whose checksum did not match.
    pub checkpoint_failures: u64,
    /// Sequence gaps detected.
    pub sequence_gaps: u64,
    /// Checkpoints older than the expected sequence, dropped.
    pub duplicates_dropped: u64,
    /// NACKs sent.
    pub nacks_sent: u64,
    /// NACKs received.
    pub nacks_received: u64,
    /// NACKs not sent because `max-response` was reached in the window.
    pub nacks_rate_limited: u64,
    /// NACKs not sent because NACKs are off for that kind or command id.
    pub nacks_disabled: u64,
    /// Sessions held on this chassis as Standby (the seed's "Current pre-allocated calls").
    pub current_pre_allocated_calls: u64,
    /// Sessions waiting for the checkpoint delay before their first checkpoint (Active side).
    pub sessions_delayed: u64,
}

impl fmt::Display for CheckpointStatistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: [(&str, u64); 16] = [
            ("Full checkpoints sent", self.full_checkpoints_sent),
            ("  Periodic", self.periodic_full_checkpoints_sent),
            ("  On connect, request or NACK", self.on_demand_full_checkpoints_sent),
            ("Micro checkpoints sent", self.micro_checkpoints_sent),
            ("Session changes sent", self.changes_sent),
            ("Full checkpoints applied", self.full_checkpoints_applied),
            ("Micro checkpoints applied", self.micro_checkpoints_applied),
            ("Checkpoint failures", self.checkpoint_failures),
            ("Sequence gaps", self.sequence_gaps),
            ("Duplicates dropped", self.duplicates_dropped),
            ("NACKs sent", self.nacks_sent),
            ("NACKs received", self.nacks_received),
            ("NACKs rate limited", self.nacks_rate_limited),
            ("NACKs disabled", self.nacks_disabled),
            ("Current pre-allocated calls", self.current_pre_allocated_calls),
            ("Sessions delayed", self.sessions_delayed),
        ];
        for (name, v) in rows {
            writeln!(f, "{name:<32}{v}")?;
        }
        Ok(())
    }
}

/// One line of `show srp checkpoint info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCmdInfo {
    /// CMD ID.
    pub cmd_id: CmdId,
    /// Name given by the role that registered it.
    pub name: String,
    /// Whether NACKs are sent when it fails (`srp disable|enable nack micro-chkpt-cmd`).
    pub nack_enabled: bool,
    /// Micro-checkpoints of this id sent.
    pub sent: u64,
    /// Micro-checkpoints of this id applied.
    pub applied: u64,
    /// Micro-checkpoints of this id that failed.
    pub failed: u64,
}

/// What happened to a received checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiveOutcome {
    /// A micro-checkpoint was applied.
    MicroApplied {
        /// Changes applied.
        changes: usize,
    },
    /// A part of a full checkpoint was kept until the last part.
    FullPartStaged,
    /// A full checkpoint was applied: the copy is synchronised.
    FullApplied {
        /// Sessions now held.
        sessions: usize,
    },
    /// The checkpoint was older than expected and dropped.
    Duplicate,
    /// The checkpoint failed (corrupt, gap, incomplete full checkpoint).
    Failed(String),
}

/// The result of [`Checkpointer::receive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// What happened.
    pub outcome: ReceiveOutcome,
    /// A NACK to send to the Active chassis.
    pub nack: Option<Nack>,
}

/// `srp disable|enable nack micro-chkpt-cmd N` with N out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("micro-chkpt-cmd must be 1..=255 (got {0})")]
pub struct BadCmdId(pub u16);

#[derive(Debug, Clone, Default)]
struct CmdCounters {
    sent: u64,
    applied: u64,
    failed: u64,
}

#[derive(Debug, Clone)]
struct Staging {
    next_seq: u64,
    changes: Vec<Change>,
}

/// Both ends of checkpointing for one chassis (the sending half is used while Active, the
/// receiving half while Standby).
#[derive(Debug, Clone)]
pub struct Checkpointer {
    delay: Duration,
    periodic: Duration,
    nack_config: NackConfig,
    nack_retry: Duration,
    batch_bytes: usize,
    // Sending.
    next_seq: u64,
    last_full_at: Option<Instant>,
    // Receiving.
    expected_seq: Option<u64>,
    staging: Option<Staging>,
    synchronised: bool,
    nack_pending: Option<Nack>,
    last_nack_at: Option<Instant>,
    limiter: NackLimiter,
    nack_disabled: BTreeSet<CmdId>,
    // Reporting.
    names: BTreeMap<CmdId, String>,
    per_cmd: BTreeMap<CmdId, CmdCounters>,
    stats: CheckpointStatistics,
}

impl Checkpointer {
    /// A checkpointer for a configuration. NACKs are repeated every dead interval while no full
    /// checkpoint arrives.
    pub fn new(config: &SrpConfig) -> Checkpointer {
        Checkpointer {
            delay: config.checkpoint_delay(),
            periodic: config.periodic_interval(),
            nack_config: config.checkpoint.nack.clone(),
            nack_retry: config.dead_interval(),
            batch_bytes: MAX_BATCH_BYTES,
            next_seq: 1,
            last_full_at: None,
            expected_seq: None,
            staging: None,
            synchronised: false,
            nack_pending: None,
            last_nack_at: None,
            limiter: NackLimiter::new(config.checkpoint.nack.max_response),
            nack_disabled: BTreeSet::new(),
            names: BTreeMap::new(),
            per_cmd: BTreeMap::new(),
            stats: CheckpointStatistics::default(),
        }
    }

    /// Names a command id for `show srp checkpoint info`.
    pub fn register_cmd(&mut self, cmd: CmdId, name: impl Into<String>) {
        self.names.insert(cmd, name.into());
    }

    /// Splits batches at `bytes` of changes instead of [`MAX_BATCH_BYTES`] (tests, tuning).
    pub fn set_batch_bytes(&mut self, bytes: usize) {
        self.batch_bytes = bytes.max(1);
    }

    /// The SRP link (re)connected: the next checkpoint received starts the sequence; a Standby
    /// without a synchronised copy asks for a full checkpoint after the retry interval. An Active
    /// chassis sends [`Checkpointer::full_checkpoint`] next.
    pub fn on_connected(&mut self, now: Instant) {
        self.expected_seq = None;
        self.staging = None;
        self.last_nack_at = Some(now);
        if !self.synchronised && self.nack_pending.is_none() {
            self.nack_pending =
                Some(Nack { kind: NackKind::Macro, cmd: None, seq: None, reason: NackReason::NotSynchronised });
        }
    }

    /// Whether this chassis holds a synchronised copy (a full checkpoint applied, no failure since).
    pub fn is_synchronised(&self) -> bool {
        self.synchronised
    }

    /// Marks the copy synchronised or not, for a chassis whose store is authoritative (Active) or
    /// was emptied.
    pub fn set_synchronised(&mut self, synchronised: bool) {
        self.synchronised = synchronised;
        if synchronised {
            self.nack_pending = None;
        }
    }

    /// `show srp checkpoint statistics`.
    pub fn statistics(&self) -> &CheckpointStatistics {
        &self.stats
    }

    /// `show srp checkpoint info`: every registered or seen command id.
    pub fn info(&self) -> Vec<CheckpointCmdInfo> {
        let ids: BTreeSet<CmdId> =
            self.names.keys().chain(self.per_cmd.keys()).chain(&self.nack_disabled).copied().collect();
        ids.into_iter()
            .map(|id| {
                let c = self.per_cmd.get(&id).cloned().unwrap_or_default();
                CheckpointCmdInfo {
                    cmd_id: id,
                    name: self.names.get(&id).cloned().unwrap_or_default(),
                    nack_enabled: !self.nack_disabled.contains(&id),
                    sent: c.sent,
                    applied: c.applied,
                    failed: c.failed,
                }
            })
            .collect()
    }

    /// `srp disable nack micro-chkpt-cmd N`.
    pub fn disable_nack(&mut self, cmd: u16) -> Result<(), BadCmdId> {
        let id = cmd_id(cmd)?;
        self.nack_disabled.insert(id);
        Ok(())
    }

    /// `srp enable nack micro-chkpt-cmd N`.
    pub fn enable_nack(&mut self, cmd: u16) -> Result<(), BadCmdId> {
        let id = cmd_id(cmd)?;
        self.nack_disabled.remove(&id);
        Ok(())
    }

    fn seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq = s.wrapping_add(1);
        s
    }

    fn batches(&self, changes: Vec<Change>) -> Vec<Vec<Change>> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        let mut bytes = 0;
        for c in changes {
            let n = codec::change_len(&c);
            if !cur.is_empty() && bytes + n > self.batch_bytes {
                out.push(std::mem::take(&mut cur));
                bytes = 0;
            }
            bytes += n;
            cur.push(c);
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }

    // ---------------------------------------------------------------- Active side

    /// A full checkpoint of `store` (one or more parts), sent on connect, on request or NACK.
    pub fn full_checkpoint(&mut self, store: &mut SessionStore, now: Instant) -> Vec<Checkpoint> {
        self.stats.on_demand_full_checkpoints_sent += 1;
        self.build_full(store, now)
    }

    fn build_full(&mut self, store: &mut SessionStore, now: Instant) -> Vec<Checkpoint> {
        let changes = store.snapshot(now, self.delay);
        self.stats.changes_sent += changes.len() as u64;
        let mut parts = self.batches(changes);
        if parts.is_empty() {
            parts.push(Vec::new());
        }
        let n = parts.len();
        let out = parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let seq = self.seq();
                Checkpoint::new(CheckpointKind::Full { first: i == 0, last: i + 1 == n }, seq, part)
            })
            .collect();
        self.stats.full_checkpoints_sent += 1;
        self.stats.sessions_delayed = store.delayed_sessions(now, self.delay) as u64;
        self.last_full_at = Some(now);
        out
    }

    /// Micro-checkpoints of the pending changes old enough to send, grouped by command id.
    pub fn micro_checkpoints(&mut self, store: &mut SessionStore, now: Instant) -> Vec<Checkpoint> {
        let changes = store.take_changes(now, self.delay);
        self.stats.sessions_delayed = store.delayed_sessions(now, self.delay) as u64;
        if changes.is_empty() {
            return Vec::new();
        }
        self.stats.changes_sent += changes.len() as u64;
        // Group by command id, keeping removals before upserts inside each group (take_changes
        // lists removals first) and the groups in first-seen order.
        let mut order: Vec<CmdId> = Vec::new();
        let mut groups: BTreeMap<CmdId, Vec<Change>> = BTreeMap::new();
        for c in changes {
            let cmd = c.cmd();
            if !groups.contains_key(&cmd) {
                order.push(cmd);
            }
            groups.entry(cmd).or_default().push(c);
        }
        let mut out = Vec::new();
        for cmd in order {
            let group = groups.remove(&cmd).unwrap_or_default();
            for batch in self.batches(group) {
                let seq = self.seq();
                out.push(Checkpoint::new(CheckpointKind::Micro { cmd }, seq, batch));
                self.stats.micro_checkpoints_sent += 1;
                self.per_cmd.entry(cmd).or_default().sent += 1;
            }
        }
        out
    }

    /// Everything due now on the Active chassis: micro-checkpoints, and a periodic full checkpoint
    /// when `periodic-interval` elapsed since the last one.
    pub fn poll_active(&mut self, store: &mut SessionStore, now: Instant) -> Vec<Checkpoint> {
        let mut out = self.micro_checkpoints(store, now);
        let due = self.last_full_at.is_none_or(|t| now.saturating_duration_since(t) >= self.periodic);
        if due {
            out.extend(self.build_full(store, now));
            self.stats.periodic_full_checkpoints_sent += 1;
        }
        out
    }

    /// A NACK arrived: answer with a full checkpoint.
    pub fn handle_nack(&mut self, nack: &Nack, store: &mut SessionStore, now: Instant) -> Vec<Checkpoint> {
        self.stats.nacks_received += 1;
        if let (NackKind::Micro, Some(cmd)) = (nack.kind, nack.cmd) {
            self.per_cmd.entry(cmd).or_default().failed += 1;
        }
        self.full_checkpoint(store, now)
    }

    // ---------------------------------------------------------------- Standby side

    /// Applies a received checkpoint (or handles its decoding failure) to `store`.
    pub fn receive(
        &mut self,
        store: &mut SessionStore,
        received: Result<Checkpoint, CheckpointDecodeError>,
        now: Instant,
    ) -> Receipt {
        let receipt = match received {
            Err(e) => {
                self.stats.checkpoint_failures += 1;
                if let Some(seq) = e.seq
                    && self.expected_seq.is_some_and(|x| seq >= x)
                {
                    self.expected_seq = Some(seq.wrapping_add(1));
                }
                let (kind, cmd) = match e.kind {
                    Some(CheckpointKind::Micro { cmd }) => (NackKind::Micro, Some(cmd)),
                    Some(CheckpointKind::Full { .. }) => {
                        self.staging = None;
                        (NackKind::Macro, None)
                    }
                    None => (NackKind::Micro, None),
                };
                if let Some(cmd) = cmd {
                    self.per_cmd.entry(cmd).or_default().failed += 1;
                }
                let nack = Nack { kind, cmd, seq: e.seq, reason: NackReason::Corrupt { detail: e.fault.to_string() } };
                let out = self.fail(nack, now);
                Receipt { outcome: ReceiveOutcome::Failed(e.to_string()), nack: out }
            }
            Ok(cp) => match cp.kind {
                CheckpointKind::Micro { cmd } => self.receive_micro(store, cmd, cp, now),
                CheckpointKind::Full { first, last } => self.receive_full(store, first, last, cp, now),
            },
        };
        self.stats.current_pre_allocated_calls = store.len() as u64;
        receipt
    }

    fn receive_micro(&mut self, store: &mut SessionStore, cmd: CmdId, cp: Checkpoint, now: Instant) -> Receipt {
        let mut nack = None;
        let mut failed = None;
        match self.expected_seq {
            Some(x) if cp.seq < x => {
                self.stats.duplicates_dropped += 1;
                return Receipt { outcome: ReceiveOutcome::Duplicate, nack: None };
            }
            Some(x) if cp.seq > x => {
                self.stats.sequence_gaps += 1;
                let n = Nack {
                    kind: NackKind::Micro,
                    cmd: None,
                    seq: Some(cp.seq),
                    reason: NackReason::SequenceGap { expected: x, received: cp.seq },
                };
                failed = Some(format!("sequence gap: expected {x}, received {}", cp.seq));
                nack = self.fail(n, now);
            }
            _ => {}
        }
        self.expected_seq = Some(cp.seq.wrapping_add(1));
        // A micro-checkpoint that interrupts a full checkpoint breaks it.
        if self.staging.take().is_some() {
            let n = Nack { kind: NackKind::Macro, cmd: None, seq: Some(cp.seq), reason: NackReason::IncompleteFull };
            failed.get_or_insert_with(|| "full checkpoint interrupted".into());
            nack = nack.or(self.fail(n, now));
        }
        let changes = cp.changes.len();
        for c in cp.changes {
            store.apply(c, now);
        }
        self.stats.micro_checkpoints_applied += 1;
        self.per_cmd.entry(cmd).or_default().applied += 1;
        let outcome = match failed {
            Some(f) => ReceiveOutcome::Failed(format!("{f}; micro-checkpoint applied anyway")),
            None => ReceiveOutcome::MicroApplied { changes },
        };
        Receipt { outcome, nack }
    }

    fn receive_full(
        &mut self,
        store: &mut SessionStore,
        first: bool,
        last: bool,
        cp: Checkpoint,
        now: Instant,
    ) -> Receipt {
        if first {
            self.staging = Some(Staging { next_seq: cp.seq, changes: Vec::new() });
        }
        let contiguous = self.staging.as_ref().is_some_and(|s| s.next_seq == cp.seq);
        if !contiguous {
            self.staging = None;
            self.expected_seq = Some(cp.seq.wrapping_add(1));
            let n = Nack { kind: NackKind::Macro, cmd: None, seq: Some(cp.seq), reason: NackReason::IncompleteFull };
            let nack = self.fail(n, now);
            return Receipt { outcome: ReceiveOutcome::Failed("full checkpoint part out of sequence".into()), nack };
        }
        let Some(mut staging) = self.staging.take() else {
            return Receipt {
                outcome: ReceiveOutcome::Failed("full checkpoint part out of sequence".into()),
                nack: None,
            };
        };
        staging.changes.extend(cp.changes);
        staging.next_seq = cp.seq.wrapping_add(1);
        self.expected_seq = Some(staging.next_seq);
        if !last {
            self.staging = Some(staging);
            return Receipt { outcome: ReceiveOutcome::FullPartStaged, nack: None };
        }
        store.replace_all(staging.changes, now);
        self.stats.full_checkpoints_applied += 1;
        self.synchronised = true;
        self.nack_pending = None;
        self.limiter.reset();
        Receipt { outcome: ReceiveOutcome::FullApplied { sessions: store.len() }, nack: None }
    }

    /// A failure: the copy is no longer synchronised; returns the NACK to send now, if allowed.
    fn fail(&mut self, nack: Nack, now: Instant) -> Option<Nack> {
        self.synchronised = false;
        let enabled = match nack.kind {
            NackKind::Micro => self.nack_config.micro && nack.cmd.is_none_or(|c| !self.nack_disabled.contains(&c)),
            NackKind::Macro => self.nack_config.macro_,
        };
        if !enabled {
            self.stats.nacks_disabled += 1;
            return None;
        }
        self.nack_pending = Some(nack.clone());
        self.try_send_nack(nack, now)
    }

    fn try_send_nack(&mut self, nack: Nack, now: Instant) -> Option<Nack> {
        if self.limiter.allow(now) {
            self.stats.nacks_sent += 1;
            self.last_nack_at = Some(now);
            Some(nack)
        } else {
            self.stats.nacks_rate_limited += 1;
            None
        }
    }

    /// On the Standby, called periodically: repeats the pending NACK every retry interval until a
    /// full checkpoint is applied (within `max-response` per window).
    pub fn poll_standby(&mut self, now: Instant) -> Option<Nack> {
        let nack = self.nack_pending.clone()?;
        if self.synchronised {
            self.nack_pending = None;
            return None;
        }
        if self.last_nack_at.is_some_and(|t| now.saturating_duration_since(t) < self.nack_retry) {
            return None;
        }
        if nack.kind == NackKind::Macro && !self.nack_config.macro_ {
            return None;
        }
        self.last_nack_at = Some(now);
        self.try_send_nack(nack, now)
    }
}

fn cmd_id(cmd: u16) -> Result<CmdId, BadCmdId> {
    match CmdId::try_from(cmd) {
        Ok(id) if id >= 1 => Ok(id),
        _ => Err(BadCmdId(cmd)),
    }
}

#[cfg(test)]
mod tests;
