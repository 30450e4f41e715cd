//! Checkpointer tests: an Active and a Standby checkpointer wired back to back, with the wire
//! encoding in between.

use std::time::{Duration, Instant};

use super::*;
use crate::audit;
use crate::compress::Compression;
use crate::config::{ChassisMode, SrpConfig};

fn config(delay_secs: u32) -> SrpConfig {
    let mut c = SrpConfig::new(
        "n-a",
        "192.0.2.1:7500".parse().unwrap(),
        "192.0.2.2:7500".parse().unwrap(),
        "0123456789abcdef",
        ChassisMode::Primary,
        1,
    );
    c.checkpoint.delay_secs = delay_secs;
    c
}

/// Through the wire form, as the link would carry it.
fn wire(cp: &Checkpoint) -> Result<Checkpoint, CheckpointDecodeError> {
    Checkpoint::decode(&cp.encode(Compression::Zlib).bytes, Compression::Zlib)
}

struct Pair {
    active: Checkpointer,
    standby: Checkpointer,
    a: SessionStore,
    s: SessionStore,
    t: Instant,
}

impl Pair {
    fn new(delay_secs: u32) -> Pair {
        let t = Instant::now();
        let mut p = Pair {
            active: Checkpointer::new(&config(delay_secs)),
            standby: Checkpointer::new(&config(delay_secs)),
            a: SessionStore::new(),
            s: SessionStore::new(),
            t,
        };
        p.active.on_connected(t);
        p.standby.on_connected(t);
        p
    }

    fn deliver(&mut self, cps: Vec<Checkpoint>) -> Vec<Receipt> {
        cps.iter().map(|cp| self.standby.receive(&mut self.s, wire(cp), self.t)).collect()
    }

    fn in_sync(&self) -> bool {
        audit::compare_stores(&self.a, &self.s, self.t, Duration::ZERO).is_clean()
    }
}

#[test]
fn full_then_micro_checkpoints_keep_the_standby_identical() {
    let mut p = Pair::new(0);
    for i in 0..50 {
        p.a.upsert(1 + (i % 3) as u8, &format!("call-{i}"), format!("v{i}").into_bytes(), p.t).unwrap();
    }
    let full = p.active.full_checkpoint(&mut p.a, p.t);
    let r = p.deliver(full);
    assert!(matches!(r.last().unwrap().outcome, ReceiveOutcome::FullApplied { sessions: 50 }));
    assert!(p.standby.is_synchronised());
    assert!(p.in_sync());

    p.a.upsert(1, "call-1", b"changed".to_vec(), p.t).unwrap();
    p.a.remove("call-2");
    p.a.upsert(2, "call-new", b"n".to_vec(), p.t).unwrap();
    let micro = p.active.micro_checkpoints(&mut p.a, p.t);
    assert_eq!(micro.len(), 3, "one per command id: {micro:?}");
    for r in p.deliver(micro) {
        assert!(matches!(r.outcome, ReceiveOutcome::MicroApplied { .. }), "{r:?}");
        assert!(r.nack.is_none());
    }
    assert!(p.in_sync());
    assert!(p.active.micro_checkpoints(&mut p.a, p.t).is_empty(), "nothing pending");
    assert_eq!(p.standby.statistics().current_pre_allocated_calls, 50);
    assert_eq!(p.active.statistics().micro_checkpoints_sent, 3);
    assert_eq!(p.standby.statistics().micro_checkpoints_applied, 3);
}

#[test]
fn large_full_checkpoints_are_split_and_reassembled() {
    let mut p = Pair::new(0);
    p.active.set_batch_bytes(1000);
    for i in 0..100 {
        p.a.upsert(1, &format!("k{i:03}"), vec![i as u8; 100], p.t).unwrap();
    }
    let full = p.active.full_checkpoint(&mut p.a, p.t);
    assert!(full.len() > 5);
    let receipts = p.deliver(full);
    assert!(receipts[..receipts.len() - 1].iter().all(|r| r.outcome == ReceiveOutcome::FullPartStaged));
    assert!(p.in_sync());
    assert_eq!(p.active.statistics().full_checkpoints_sent, 1);
}

#[test]
fn a_corrupt_micro_checkpoint_nacks_and_a_full_checkpoint_resyncs() {
    let mut p = Pair::new(0);
    p.a.upsert(5, "x", b"1".to_vec(), p.t).unwrap();
    let full = p.active.full_checkpoint(&mut p.a, p.t);
    p.deliver(full);
    p.a.upsert(5, "x", b"2".to_vec(), p.t).unwrap();
    let mut micro = p.active.micro_checkpoints(&mut p.a, p.t);
    micro[0].checksum ^= 0xdead;
    let r = p.deliver(micro);
    let nack = r[0].nack.clone().expect("a NACK");
    assert_eq!(nack.kind, NackKind::Micro);
    assert_eq!(nack.cmd, Some(5));
    assert!(matches!(nack.reason, NackReason::Corrupt { .. }));
    assert!(!p.standby.is_synchronised());
    assert!(!p.in_sync());
    // The Active answers the NACK with a full checkpoint.
    let full = p.active.handle_nack(&nack, &mut p.a, p.t);
    p.deliver(full);
    assert!(p.standby.is_synchronised());
    assert!(p.in_sync());
    assert_eq!(p.standby.statistics().checkpoint_failures, 1);
    assert_eq!(p.standby.statistics().nacks_sent, 1);
    assert_eq!(p.active.statistics().nacks_received, 1);
    assert!(p.standby.poll_standby(p.t + Duration::from_secs(3600)).is_none(), "nothing pending any more");
}

#[test]
fn a_lost_micro_checkpoint_is_a_sequence_gap() {
    let mut p = Pair::new(0);
    let full = p.active.full_checkpoint(&mut p.a, p.t);
    p.deliver(full);
    p.a.upsert(1, "lost", b"1".to_vec(), p.t).unwrap();
    let _lost = p.active.micro_checkpoints(&mut p.a, p.t);
    p.a.upsert(1, "next", b"2".to_vec(), p.t).unwrap();
    let next = p.active.micro_checkpoints(&mut p.a, p.t);
    let r = p.deliver(next);
    let nack = r[0].nack.clone().unwrap();
    assert!(matches!(nack.reason, NackReason::SequenceGap { .. }), "{nack:?}");
    assert!(p.s.get("next").is_some(), "applied anyway, best effort");
    assert_eq!(p.standby.statistics().sequence_gaps, 1);
    // Duplicates are dropped.
    let dup = Checkpoint::new(CheckpointKind::Micro { cmd: 1 }, 1, vec![]);
    assert_eq!(p.standby.receive(&mut p.s, Ok(dup), p.t).outcome, ReceiveOutcome::Duplicate);
}

#[test]
fn nacks_repeat_until_max_response_per_window() {
    let mut p = Pair::new(0);
    let full = p.active.full_checkpoint(&mut p.a, p.t);
    p.deliver(full);
    let bad = Err(CheckpointDecodeError { seq: None, kind: None, fault: CheckpointFault::Truncated("test") });
    assert!(p.standby.receive(&mut p.s, bad, p.t).nack.is_some());
    let retry = config(0).dead_interval();
    assert!(p.standby.poll_standby(p.t + retry / 2).is_none(), "not before the retry interval");
    assert!(p.standby.poll_standby(p.t + retry).is_some());
    assert!(p.standby.poll_standby(p.t + retry * 2).is_some());
    assert!(p.standby.poll_standby(p.t + retry * 3).is_none(), "max-response 3 reached");
    assert_eq!(p.standby.statistics().nacks_sent, 3);
    assert!(p.standby.poll_standby(p.t + NACK_WINDOW + retry).is_some(), "next window");
}

#[test]
fn nacks_can_be_disabled_per_command_id_and_by_kind() {
    let mut p = Pair::new(0);
    let full = p.active.full_checkpoint(&mut p.a, p.t);
    p.deliver(full);
    p.standby.disable_nack(9).unwrap();
    assert!(p.standby.disable_nack(0).is_err());
    assert!(p.standby.disable_nack(256).is_err());
    p.a.upsert(9, "k", b"1".to_vec(), p.t).unwrap();
    let mut micro = p.active.micro_checkpoints(&mut p.a, p.t);
    micro[0].checksum ^= 1;
    assert!(p.deliver(micro)[0].nack.is_none());
    assert_eq!(p.standby.statistics().nacks_disabled, 1);
    let info = p.standby.info();
    assert_eq!(info.iter().find(|i| i.cmd_id == 9).map(|i| (i.nack_enabled, i.failed)), Some((false, 1)));
    p.standby.enable_nack(9).unwrap();
    p.a.upsert(9, "k", b"2".to_vec(), p.t).unwrap();
    let mut micro = p.active.micro_checkpoints(&mut p.a, p.t);
    micro[0].checksum ^= 1;
    assert!(p.deliver(micro)[0].nack.is_some());

    let mut c = config(0);
    c.checkpoint.nack.micro = false;
    let mut standby = Checkpointer::new(&c);
    let bad = Err(CheckpointDecodeError {
        seq: Some(3),
        kind: Some(CheckpointKind::Micro { cmd: 1 }),
        fault: CheckpointFault::Truncated("test"),
    });
    assert!(standby.receive(&mut SessionStore::new(), bad, p.t).nack.is_none());
}

#[test]
fn checkpoint_delay_holds_young_sessions_back() {
    let mut p = Pair::new(60);
    p.a.upsert(1, "old", b"1".to_vec(), p.t).unwrap();
    p.t += Duration::from_secs(61);
    p.a.upsert(1, "young", b"2".to_vec(), p.t).unwrap();
    let full = p.active.full_checkpoint(&mut p.a, p.t);
    p.deliver(full);
    assert!(p.s.get("old").is_some());
    assert!(p.s.get("young").is_none());
    assert_eq!(p.active.statistics().sessions_delayed, 1);
    assert!(p.active.micro_checkpoints(&mut p.a, p.t).is_empty());
    p.t += Duration::from_secs(60);
    let micro = p.active.micro_checkpoints(&mut p.a, p.t);
    p.deliver(micro);
    assert!(p.s.get("young").is_some());
    assert!(p.in_sync());
    // Ages survive replication (a later switchover keeps applying the delay correctly).
    let age = p.t.saturating_duration_since(p.s.get("old").unwrap().created_at);
    assert!(age >= Duration::from_secs(121), "{age:?}");
}

#[test]
fn periodic_full_checkpoints() {
    let mut p = Pair::new(0);
    let first = p.active.poll_active(&mut p.a, p.t);
    assert!(matches!(first[0].kind, CheckpointKind::Full { first: true, last: true }));
    assert!(p.active.poll_active(&mut p.a, p.t + Duration::from_secs(60)).is_empty());
    let later = p.active.poll_active(&mut p.a, p.t + Duration::from_secs(45 * 60));
    assert_eq!(later.len(), 1);
    assert_eq!(p.active.statistics().periodic_full_checkpoints_sent, 2);
}

#[test]
fn an_interrupted_full_checkpoint_is_nacked() {
    let mut p = Pair::new(0);
    p.active.set_batch_bytes(10);
    for i in 0..3 {
        p.a.upsert(1, &format!("k{i}"), vec![0; 20], p.t).unwrap();
    }
    let mut parts = p.active.full_checkpoint(&mut p.a, p.t);
    assert_eq!(parts.len(), 3);
    parts.remove(1);
    let r = p.deliver(parts);
    assert_eq!(r[0].outcome, ReceiveOutcome::FullPartStaged);
    assert!(r[1].nack.as_ref().is_some_and(|n| n.reason == NackReason::IncompleteFull));
    assert!(!p.standby.is_synchronised());
}

#[test]
fn a_fresh_standby_asks_for_a_full_checkpoint_when_none_comes() {
    let mut c = Checkpointer::new(&config(0));
    let t = Instant::now();
    c.on_connected(t);
    assert!(c.poll_standby(t).is_none());
    let n = c.poll_standby(t + config(0).dead_interval()).unwrap();
    assert_eq!(n.reason, NackReason::NotSynchronised);
}

#[test]
fn statistics_render_with_seed_names() {
    let p = Pair::new(0);
    let text = p.standby.statistics().to_string();
    assert!(text.contains("Current pre-allocated calls"));
    assert!(text.contains("NACKs sent"));
}
