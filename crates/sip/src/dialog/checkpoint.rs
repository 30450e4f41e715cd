//! An open call as a probe pair checkpoints it to its mate, and the tracker's side of it: which
//! calls changed or closed since the last checkpoint, a copy of every open call, and taking
//! over the calls a mate had open.
//!
//! A call is checkpointed when a SIP message changes it, with its RTP streams as they are then;
//! RTP alone is not checkpointed packet by packet (one checkpoint per message, not per
//! packet). A stream taken over counts the packets the new tracker did not see as unseen, not
//! lost.
//!
//! A recovered call is *unconfirmed* until a message of it reaches this tracker. One that times
//! out unconfirmed is forgotten without a record ([`recovered_unconfirmed`](super::TrackerStats::recovered_unconfirmed)):
//! its end may have been seen, and recorded, by the mate before it failed, in the moment
//! before the mate checkpointed that the call had closed.

use std::net::SocketAddr;

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::{Call, Closed, Open, Tracker};
use crate::rtp::StreamStats;

/// One open call as its mate needs it to go on tracking it: the call so far, where its
/// dialog is, its media endpoints and its RTP streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenCallCheckpoint {
    /// The call so far (its end, close reason and RTP summary are not taken over: they are
    /// made when it ends).
    pub call: Call,
    /// CSeq of the INVITE the call's answer is awaited for.
    pub invite_cseq: u32,
    /// The caller sent CANCEL.
    pub cancelled: bool,
    /// The INVITE was challenged (401/407).
    pub challenged: bool,
    /// Last message, µs since the epoch.
    pub last_us: i64,
    /// Media endpoints from its SDP.
    pub media: Vec<SocketAddr>,
    /// Its RTP streams, as of its last SIP change (RTP alone is not a change to checkpoint):
    /// a mate that takes them over counts the packets it did not see as unseen, not lost
    /// ([`StreamStats::resume`]).
    pub streams: Vec<StreamStats>,
}

impl OpenCallCheckpoint {
    fn of(o: &Open) -> Self {
        OpenCallCheckpoint {
            call: o.call.clone(),
            invite_cseq: o.invite_cseq,
            cancelled: o.cancelled,
            challenged: o.challenged,
            last_us: o.last_us,
            media: o.media.to_vec(),
            streams: o.streams.to_vec(),
        }
    }

    fn into_open(self, key: u64) -> Open {
        Open {
            key,
            call: Call { ended_us: None, closed: Closed::Signalled, rtp: None, ..self.call },
            invite_cseq: self.invite_cseq,
            cancelled: self.cancelled,
            challenged: self.challenged,
            last_us: self.last_us,
            media: self.media.into_iter().take(super::MAX_MEDIA_PER_CALL).collect(),
            streams: self
                .streams
                .into_iter()
                .take(super::MAX_STREAMS_PER_CALL)
                .map(|mut s| {
                    s.resume();
                    s
                })
                .collect::<SmallVec<_>>(),
            recovered: true,
        }
    }
}

/// The Call-IDs of calls changed or closed since the last [`Tracker::drain_checkpoint`].
#[derive(Debug, Default)]
pub(super) struct Changes {
    changed: FxHashSet<Box<str>>,
    closed: FxHashSet<Box<str>>,
}

/// What changed since the last [`Tracker::drain_checkpoint`].
#[derive(Debug, Default)]
pub struct CheckpointChanges {
    /// Calls opened or changed (each once, as it is now).
    pub changed: Vec<OpenCallCheckpoint>,
    /// Call-IDs of calls closed (with or without a record), or forgotten.
    pub closed: Vec<String>,
}

impl Tracker {
    /// Starts or stops noting which calls change, for [`Tracker::drain_checkpoint`] (a probe
    /// pair's chassis). Off, nothing is noted and nothing costs.
    pub fn note_changes(&mut self, on: bool) {
        self.changes = on.then(Changes::default);
    }

    /// Forgets the changes noted so far (the calls they name are gone or were replaced).
    pub fn clear_changes(&mut self) {
        if let Some(c) = self.changes.as_mut() {
            *c = Changes::default();
        }
    }

    /// Notes that open call `call_id` changed.
    pub(super) fn note_changed(&mut self, call_id: &str) {
        if let Some(c) = self.changes.as_mut()
            && !c.changed.contains(call_id)
        {
            c.changed.insert(call_id.into());
        }
    }

    pub(super) fn note_closed(&mut self, call_id: &str) {
        if let Some(c) = self.changes.as_mut() {
            c.changed.remove(call_id);
            c.closed.insert(call_id.into());
        }
    }

    /// The calls opened or changed, and those closed, since the last call (empty unless
    /// [`Tracker::note_changes`] is on).
    pub fn drain_checkpoint(&mut self) -> CheckpointChanges {
        let Some(c) = self.changes.as_mut() else { return CheckpointChanges::default() };
        let Changes { changed, closed } = std::mem::take(c);
        CheckpointChanges {
            changed: changed.iter().filter_map(|id| self.open.get(id)).map(OpenCallCheckpoint::of).collect(),
            closed: closed.into_iter().map(String::from).collect(),
        }
    }

    /// Every open call, as it is now (a full checkpoint).
    pub fn checkpoint_open(&self) -> Vec<OpenCallCheckpoint> {
        self.open.values().map(OpenCallCheckpoint::of).collect()
    }

    /// Takes over the calls a mate had open: each is tracked from here on as if its earlier
    /// messages had been seen here, unconfirmed until one of its messages arrives (see the
    /// module's documentation). Calls open here already are kept as they are; beyond the
    /// open-call cap the rest are left out. Returns the calls taken over, in the order given.
    pub fn restore_open(&mut self, calls: Vec<OpenCallCheckpoint>) -> Vec<OpenCallCheckpoint> {
        let mut restored = Vec::new();
        self.took_over = true;
        for c in calls {
            if self.open.contains_key(c.call.call_id.as_str()) || self.open.len() >= self.config.max_open {
                continue;
            }
            let key = self.next_key;
            self.next_key += 1;
            let id: Box<str> = c.call.call_id.as_str().into();
            let open = c.clone().into_open(key);
            // A Call-ID that also ended here before (this chassis served the call until a
            // switchover) stays remembered as ended, as for a call whose new INVITE opens it
            // again: messages go to the open call first.
            for addr in &open.media {
                self.media.announce(*addr, &id, open.call.invite_us);
            }
            for stream in &open.streams {
                self.media.tie(&open.media, stream.ssrc, &id, stream.max_seq());
            }
            self.by_activity.insert((open.last_us, key), id.clone());
            self.open.insert(id, open);
            restored.push(c);
        }
        restored
    }

    /// Calls recovered from a mate that timed out unconfirmed since the last call (forgotten
    /// without a record; see the module's documentation).
    pub fn drain_unconfirmed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.unconfirmed)
    }
}
