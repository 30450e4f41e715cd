//! Audit: do the Active and Standby copies of the session state agree?
//!
//! `srp initiate-audit manual-with-sync` and the scheduled audit (`audit daily-start-time`,
//! `audit periodicity`; see [`AuditConfig::minutes_until_next`](crate::config::AuditConfig::minutes_until_next))
//! compare a [`StoreDigest`] of each copy (key, command id, version, CRC-32 of the value, age):
//! the Standby sends its digest to the Active (or the other way) and [`compare`] lists the
//! discrepancies. Sessions younger than the checkpoint delay are legitimately missing on the Standby
//! and are skipped. Flush pending micro-checkpoints before auditing, or recent changes show up as
//! version mismatches; "with sync" means: on discrepancies, send a full checkpoint.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::session::{CmdId, SessionStore};

/// One session in a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    /// Session key.
    pub key: String,
    /// Command id.
    pub cmd: CmdId,
    /// Version.
    pub version: u64,
    /// CRC-32 of the value.
    pub crc32: u32,
    /// Age of the session when the digest was taken, milliseconds.
    pub age_ms: u64,
}

/// A compact summary of a store, sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreDigest {
    /// Every session.
    pub entries: Vec<DigestEntry>,
}

impl StoreDigest {
    /// The digest of `store` at `now`.
    pub fn of(store: &SessionStore, now: Instant) -> StoreDigest {
        let mut entries: Vec<DigestEntry> = store
            .iter()
            .map(|(key, e)| DigestEntry {
                key: key.to_string(),
                cmd: e.cmd,
                version: e.version,
                crc32: crc32fast::hash(&e.value),
                age_ms: u64::try_from(now.saturating_duration_since(e.created_at).as_millis()).unwrap_or(u64::MAX),
            })
            .collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        StoreDigest { entries }
    }
}

/// One disagreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Discrepancy {
    /// The Active has the session, the Standby not.
    MissingOnStandby {
        /// Session key.
        key: String,
    },
    /// The Standby has a session the Active does not.
    MissingOnActive {
        /// Session key.
        key: String,
    },
    /// Both have it, at different versions.
    VersionMismatch {
        /// Session key.
        key: String,
        /// Active's version.
        active: u64,
        /// Standby's version.
        standby: u64,
    },
    /// Same version, different value (corruption) or command id.
    ValueMismatch {
        /// Session key.
        key: String,
        /// The version.
        version: u64,
    },
}

impl fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Discrepancy::MissingOnStandby { key } => write!(f, "{key}: missing on the standby"),
            Discrepancy::MissingOnActive { key } => write!(f, "{key}: missing on the active"),
            Discrepancy::VersionMismatch { key, active, standby } => {
                write!(f, "{key}: version {active} on the active, {standby} on the standby")
            }
            Discrepancy::ValueMismatch { key, version } => write!(f, "{key}: values differ at version {version}"),
        }
    }
}

/// The result of one audit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Sessions compared.
    pub compared: usize,
    /// Active sessions skipped because they are younger than the checkpoint delay.
    pub skipped_young: usize,
    /// What disagrees, in key order.
    pub discrepancies: Vec<Discrepancy>,
}

impl AuditReport {
    /// No discrepancy.
    pub fn is_clean(&self) -> bool {
        self.discrepancies.is_empty()
    }
}

/// Compares the Active's digest with the Standby's, skipping Active sessions younger than
/// `ignore_younger_than` (the checkpoint delay).
pub fn compare(active: &StoreDigest, standby: &StoreDigest, ignore_younger_than: Duration) -> AuditReport {
    let min_age = u64::try_from(ignore_younger_than.as_millis()).unwrap_or(u64::MAX);
    let standby: BTreeMap<&str, &DigestEntry> = standby.entries.iter().map(|e| (e.key.as_str(), e)).collect();
    let mut report = AuditReport::default();
    let mut seen = std::collections::BTreeSet::new();
    for a in &active.entries {
        seen.insert(a.key.as_str());
        let s = standby.get(a.key.as_str());
        if a.age_ms < min_age {
            report.skipped_young += 1;
            continue;
        }
        report.compared += 1;
        match s {
            None => report.discrepancies.push(Discrepancy::MissingOnStandby { key: a.key.clone() }),
            Some(s) if s.version != a.version => report.discrepancies.push(Discrepancy::VersionMismatch {
                key: a.key.clone(),
                active: a.version,
                standby: s.version,
            }),
            Some(s) if s.crc32 != a.crc32 || s.cmd != a.cmd => {
                report.discrepancies.push(Discrepancy::ValueMismatch { key: a.key.clone(), version: a.version })
            }
            Some(_) => {}
        }
    }
    for (key, _) in standby.iter().filter(|(k, _)| !seen.contains(*k)) {
        report.compared += 1;
        report.discrepancies.push(Discrepancy::MissingOnActive { key: key.to_string() });
    }
    report.discrepancies.sort_by(|a, b| disc_key(a).cmp(disc_key(b)));
    report
}

fn disc_key(d: &Discrepancy) -> &str {
    match d {
        Discrepancy::MissingOnStandby { key }
        | Discrepancy::MissingOnActive { key }
        | Discrepancy::VersionMismatch { key, .. }
        | Discrepancy::ValueMismatch { key, .. } => key,
    }
}

/// Compares two stores held in the same process.
pub fn compare_stores(
    active: &SessionStore,
    standby: &SessionStore,
    now: Instant,
    ignore_younger_than: Duration,
) -> AuditReport {
    compare(&StoreDigest::of(active, now), &StoreDigest::of(standby, now), ignore_younger_than)
}

/// `show srp audit-statistics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStatistics {
    /// Audits run.
    pub audits: u64,
    /// Audits that found no discrepancy.
    pub clean_audits: u64,
    /// Discrepancies found, over all audits.
    pub discrepancies: u64,
    /// Discrepancies of the last audit.
    pub last_discrepancies: u64,
}

impl AuditStatistics {
    /// Counts one audit.
    pub fn record(&mut self, report: &AuditReport) {
        self.audits += 1;
        let n = report.discrepancies.len() as u64;
        if n == 0 {
            self.clean_audits += 1;
        }
        self.discrepancies += n;
        self.last_discrepancies = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_kind_of_discrepancy_and_skips_young_sessions() {
        let t = Instant::now();
        let mut a = SessionStore::new();
        let mut s = SessionStore::new();
        for k in ["same", "changed", "corrupt", "only-a"] {
            a.upsert(1, k, k.as_bytes().to_vec(), t).unwrap();
        }
        let snap = a.snapshot(t, Duration::ZERO);
        s.replace_all(snap, t);
        a.upsert(1, "changed", b"new".to_vec(), t).unwrap();
        s.apply(
            crate::session::Change::Upsert {
                cmd: 1,
                key: "corrupt".into(),
                version: a.get("corrupt").unwrap().version,
                age_ms: 0,
                value: b"bad".to_vec(),
            },
            t,
        );
        s.apply(crate::session::Change::Remove { cmd: 1, key: "only-a".into(), version: 100 }, t);
        s.apply(
            crate::session::Change::Upsert { cmd: 1, key: "only-s".into(), version: 101, age_ms: 0, value: vec![] },
            t,
        );
        let later = t + Duration::from_secs(120);
        a.upsert(1, "young", vec![], later).unwrap();
        let r = compare_stores(&a, &s, later, Duration::from_secs(60));
        assert_eq!(r.skipped_young, 1);
        let texts: Vec<String> = r.discrepancies.iter().map(|d| d.to_string()).collect();
        assert_eq!(texts.len(), 4, "{texts:?}");
        assert!(matches!(&r.discrepancies[0], Discrepancy::VersionMismatch { key, .. } if key == "changed"));
        assert!(matches!(&r.discrepancies[1], Discrepancy::ValueMismatch { key, .. } if key == "corrupt"));
        assert!(matches!(&r.discrepancies[2], Discrepancy::MissingOnStandby { key } if key == "only-a"));
        assert!(matches!(&r.discrepancies[3], Discrepancy::MissingOnActive { key } if key == "only-s"));
        let mut stats = AuditStatistics::default();
        stats.record(&r);
        stats.record(&compare_stores(&a, &a, later, Duration::ZERO));
        assert_eq!((stats.audits, stats.clean_audits, stats.discrepancies, stats.last_discrepancies), (2, 1, 4, 0));
        // Digests travel as JSON.
        let d = StoreDigest::of(&a, later);
        assert_eq!(serde_json::from_str::<StoreDigest>(&serde_json::to_string(&d).unwrap()).unwrap(), d);
    }
}
