//! What the collector has not acknowledged yet: records, bytes and the age of the oldest.
//!
//! Bytes and records are counted exactly: a lane reserves both before it writes a frame (and
//! gives them back if the write fails), the shipper releases them when the collector
//! acknowledges a batch, and [`Spool::open`](super::Spool::open) recounts them from the
//! segments and their `.ack` files: bytes at once, records by their frame headers on a thread
//! of its own (about a second per GiB of backlog, so a restart during an outage does not wait
//! for it; [`Spool::wait_recounted`](super::Spool::wait_recounted)). So the backlog includes
//! records in open segments that the shipper has not read yet, and it moves batch by batch
//! while a shipping pass runs.
//!
//! **Age.** Frames carry no time, so each segment keeps [`Marks`]: the wall-clock time at which
//! the frame starting at a given offset was appended, taken at most once per [`MARK_EVERY`]
//! per lane (and for the first frame of every segment). The oldest unacknowledged record of a
//! segment was appended no earlier than the last mark at or before the acknowledged offset, so
//! the reported age is an upper bound, too old by less than the spacing of marks (one second,
//! more for segments older than [`MAX_MARKS`] seconds, whose marks are thinned out). Segments
//! found on disk at open have one mark: the file's creation time (its modification time where
//! the file system keeps no creation time).

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

/// Least spacing of marks within one lane.
pub const MARK_EVERY: Duration = Duration::from_secs(1);
/// Most marks a segment keeps; beyond that every other one is dropped.
pub const MAX_MARKS: usize = 4096;

/// The records not yet acknowledged by the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Records written to the spool and not acknowledged.
    pub records: u64,
    /// Their bytes (frames; torn bytes of a failed write included until set aside).
    pub bytes: u64,
    /// When the oldest of them was appended (an upper bound on its age, see the module docs);
    /// `None` when there are none.
    pub oldest: Option<SystemTime>,
}

impl Backlog {
    /// The age of the oldest unacknowledged record at `now` (zero when there is none).
    pub fn oldest_age(&self, now: SystemTime) -> Duration {
        self.oldest.map_or(Duration::ZERO, |t| now.duration_since(t).unwrap_or_default())
    }
}

/// Append times of a segment's frames, by offset, oldest first.
#[derive(Debug, Default)]
pub struct Marks {
    marks: VecDeque<(u64, SystemTime)>,
}

impl Marks {
    /// Marks for a segment found on disk: everything in it is as old as `created`.
    pub fn found(header_len: u64, created: SystemTime) -> Marks {
        Marks { marks: VecDeque::from([(header_len, created)]) }
    }

    /// The frame at `offset` is appended at `at`.
    pub fn push(&mut self, offset: u64, at: SystemTime) {
        if self.marks.len() >= MAX_MARKS {
            // Keep the first (it bounds the oldest unacknowledged frame) and every other one.
            let mut i = 0;
            self.marks.retain(|_| {
                i += 1;
                i % 2 == 1
            });
        }
        self.marks.push_back((offset, at));
    }

    /// Everything before `offset` is acknowledged: drops the marks no longer needed (all but
    /// the last one at or before `offset`).
    pub fn acknowledge(&mut self, offset: u64) {
        while self.marks.len() >= 2 && self.marks[1].0 <= offset {
            self.marks.pop_front();
        }
    }

    /// When the first frame at or after the acknowledged offset was appended, at the earliest.
    pub fn oldest(&self) -> Option<SystemTime> {
        self.marks.front().map(|m| m.1)
    }

    /// How many marks are kept.
    pub fn len(&self) -> usize {
        self.marks.len()
    }

    /// No marks.
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn the_oldest_is_the_last_mark_at_or_before_the_acknowledged_offset() {
        let mut m = Marks::default();
        m.push(8, t(100));
        m.push(500, t(101));
        m.push(900, t(102));
        assert_eq!(m.oldest(), Some(t(100)));
        m.acknowledge(499);
        assert_eq!(m.oldest(), Some(t(100)), "the frame at 499 was appended between 100 and 101");
        m.acknowledge(500);
        assert_eq!(m.oldest(), Some(t(101)));
        m.acknowledge(10_000);
        assert_eq!(m.oldest(), Some(t(102)), "the last mark stays for frames appended later");
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn thinning_keeps_the_first_mark_and_bounds_memory() {
        let mut m = Marks::default();
        for i in 0..(MAX_MARKS as u64 * 3) {
            m.push(8 + i * 100, t(1000 + i));
        }
        assert!(m.len() <= MAX_MARKS, "{}", m.len());
        assert_eq!(m.oldest(), Some(t(1000)));
        m.acknowledge(8 + 100 * (MAX_MARKS as u64 * 2));
        let oldest = m.oldest().unwrap();
        assert!(oldest <= t(1000 + MAX_MARKS as u64 * 2), "never younger than the frame: {oldest:?}");
    }

    #[test]
    fn the_age_of_no_backlog_is_zero() {
        let b = Backlog::default();
        assert_eq!(b.oldest_age(SystemTime::now()), Duration::ZERO);
        let b = Backlog { records: 1, bytes: 10, oldest: Some(t(10)) };
        assert_eq!(b.oldest_age(t(15)), Duration::from_secs(5));
        assert_eq!(b.oldest_age(t(5)), Duration::ZERO, "a clock stepped back reads zero, not a panic");
    }
}
