//! A collector of the previous release refuses batches holding SIP redirect decisions (record
//! format 3) with a 409: those wait in the spool until it is upgraded, while the ENUM records
//! (format 2) of the other lanes keep shipping. The SIP server's lanes (`sip_udp*`, `sip_tcp*`)
//! sort before ENUM's (`tcp*`, `udp*`), so a pass that ended at the first refusal would never
//! reach them (the bug this guards against).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tollgate_records::ship::{DeliveryError, PassError, ShipperOptions, ShipperStats, Uplink, ship_pass};
use tollgate_records::spool::{Spool, SpoolOptions, read_segment, segments};
use tollgate_records::{EnumQueryRecord, Protocol, Record, Transport};

/// A decision of engine `e1` for the called number `+1212555<i>` (i < 10,000), answered over
/// `protocol`.
fn decision(i: u64, protocol: Protocol) -> Record {
    Record::enum_query(EnumQueryRecord {
        id: ulid::Ulid::new(),
        time: chrono::Utc::now(),
        device: "e1".into(),
        client: "sbc".into(),
        client_addr: "127.0.0.1:1".parse().unwrap(),
        transport: Transport::Udp,
        source: None,
        destination: format!("+1212555{i:04}").parse().unwrap(),
        direction: "inbound".into(),
        rule: None,
        action: "allow".into(),
        detail: None,
        rcode: "NXDOMAIN".into(),
        fail_open: false,
        latency_us: 1,
        stale: false,
        policy_version: None,
        protocol,
    })
}

/// A collector stand-in that, until upgraded, refuses a whole batch holding a line of record
/// format 3 (as a collector that reads up to 2 does: 409, nothing stored), and stores the
/// others by id (a primary key: stored once however often sent).
#[derive(Default)]
struct Collector {
    upgraded: AtomicBool,
    /// Times each id was stored (sent in an accepted batch).
    stored: Mutex<HashMap<String, usize>>,
    /// Batches refused.
    refused: AtomicUsize,
}

impl Uplink for Collector {
    fn deliver(&self, ndjson: &[u8], records: usize) -> Result<(), DeliveryError> {
        let lines: Vec<&[u8]> = ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), records);
        let newer = lines.iter().any(|l| l.windows(5).any(|w| w == br#""v":3"#));
        if newer && !self.upgraded.load(Ordering::Relaxed) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(DeliveryError::RefusedNewer(
                "records of format version 3 come from a newer release; this collector reads versions 1 to 2".into(),
            ));
        }
        let mut stored = self.stored.lock().unwrap();
        for l in lines {
            let r: Record = serde_json::from_slice(l).unwrap();
            *stored.entry(r.id().to_string()).or_default() += 1;
        }
        Ok(())
    }
}

impl Collector {
    fn ids(&self) -> HashSet<String> {
        self.stored.lock().unwrap().keys().cloned().collect()
    }
}

fn ids(records: &[Record]) -> HashSet<String> {
    records.iter().map(|r| r.id().to_string()).collect()
}

/// The ids still in the spool's segments of `lane`, in order.
fn spooled(dir: &std::path::Path, lane: &str) -> Vec<String> {
    segments(dir)
        .unwrap()
        .iter()
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&format!("{lane}-")))
        .flat_map(|p| read_segment(p).unwrap().records)
        .map(|r| r.id().to_string())
        .collect()
}

#[test]
fn enum_records_ship_while_an_old_collector_refuses_sip_decisions_which_wait_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments: every lane spans several.
    let spool = Spool::open(dir.path(), SpoolOptions { segment_bytes: 4096, ..Default::default() }).unwrap();
    let collector = Collector::default();
    let stats = ShipperStats::default();
    // Several batches in flight; refused lanes tried again at every pass.
    let opts = ShipperOptions { batch_records: 7, in_flight: 4, refused_retry: Duration::ZERO, ..Default::default() };
    let (mut sip_udp, mut sip_tcp) = (spool.lane("sip_udp0_0").unwrap(), spool.lane("sip_tcp0").unwrap());
    let (mut udp, mut tcp) = (spool.lane("udp0_0").unwrap(), spool.lane("tcp0").unwrap());
    let (mut sip_written, mut enum_written) = (Vec::new(), Vec::new());
    let mut sip_by_lane: HashMap<&str, Vec<String>> = HashMap::new();
    for round in 0..4u64 {
        for i in 0..30 {
            let n = round * 100 + i;
            for (name, lane) in [("sip_udp0_0", &mut sip_udp), ("sip_tcp0", &mut sip_tcp)] {
                let r = decision(n, Protocol::Sip);
                assert_eq!(r.version(), 3);
                lane.append(&r).unwrap();
                sip_by_lane.entry(name).or_default().push(r.id().to_string());
                sip_written.push(r);
            }
            for lane in [&mut udp, &mut tcp] {
                let r = decision(n, Protocol::Enum);
                lane.append(&r).unwrap();
                enum_written.push(r);
            }
        }
        let result = ship_pass(&spool, &collector, &opts, &stats);
        match &result {
            Err(PassError::RefusedNewer { shipped, error }) => {
                assert_eq!(*shipped, 60, "pass {round}: this round's ENUM records, behind the refused SIP lanes");
                assert!(error.contains("format version 3"), "{error}");
            }
            other => panic!("pass {round}: {other:?}"),
        }
        assert_eq!(collector.ids(), ids(&enum_written), "pass {round}: every ENUM record stored, no SIP one");
        assert_eq!(spool.backlog().records, sip_written.len() as u64, "pass {round}: only the SIP decisions wait");
        assert!(stats.connected.load(Ordering::Relaxed), "the collector answered: it is not unreachable");
        assert_eq!(stats.failures.load(Ordering::Relaxed), 0, "a refusal is not a failed delivery");
        assert!(stats.holding_newer.load(Ordering::Relaxed));
        let last = stats.last_error.lock().unwrap().clone().unwrap();
        assert!(last.contains("newer release"), "{last}");
    }
    assert!(stats.refused_newer.load(Ordering::Relaxed) >= 8, "each SIP lane refused at every pass");
    // Nothing of a SIP lane was acknowledged: each is still whole in the spool, in order.
    for (lane, written) in &sip_by_lane {
        assert_eq!(&spooled(dir.path(), lane), written, "{lane}");
    }
    assert!(spooled(dir.path(), "udp0_0").len() < 120, "acknowledged ENUM segments were removed");

    // The collector is upgraded: the SIP decisions follow.
    collector.upgraded.store(true, Ordering::Relaxed);
    drop((sip_udp, sip_tcp, udp, tcp));
    let mut passes = 0;
    while ship_pass(&spool, &collector, &opts, &stats).unwrap() > 0 {
        passes += 1;
        assert!(passes < 100);
    }
    let all: HashSet<String> = ids(&sip_written).union(&ids(&enum_written)).cloned().collect();
    assert_eq!(collector.ids(), all, "every record stored");
    let stored = collector.stored.lock().unwrap();
    assert!(
        stored.values().all(|n| *n == 1),
        "each record sent in an accepted batch once (nothing was lost in flight)"
    );
    assert_eq!(spool.backlog().records, 0);
    assert!(segments(dir.path()).unwrap().is_empty(), "every segment acknowledged and removed");
    assert!(!stats.holding_newer.load(Ordering::Relaxed));
}

#[test]
fn a_refused_batch_holds_back_the_rest_of_its_lane_and_the_lane_waits_out_its_pause() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolOptions { segment_bytes: 4096, ..Default::default() }).unwrap();
    let collector = Collector::default();
    let stats = ShipperStats::default();
    let opts = ShipperOptions {
        batch_records: 7,
        in_flight: 4,
        refused_retry: Duration::from_secs(3600),
        ..Default::default()
    };
    // One lane: ENUM records with one SIP decision among them (the 11th, in the second batch).
    let mut mixed = spool.lane("mixed").unwrap();
    let written: Vec<Record> =
        (0..50).map(|i| decision(i, if i == 10 { Protocol::Sip } else { Protocol::Enum })).collect();
    written.iter().for_each(|r| mixed.append(r).unwrap());
    let mut other = spool.lane("other").unwrap();
    let others: Vec<Record> = (0..20).map(|i| decision(i, Protocol::Enum)).collect();
    others.iter().for_each(|r| other.append(r).unwrap());
    drop((mixed, other));

    let r = ship_pass(&spool, &collector, &opts, &stats);
    assert!(matches!(r, Err(PassError::RefusedNewer { shipped: 27, .. })), "{r:?}");
    // Acknowledged: the first batch of `mixed` and all of `other`; from the refused batch on,
    // `mixed` waits (a batch after it already in flight may have been stored, not acknowledged).
    assert_eq!(spool.backlog().records, 43);
    assert!(ids(&written[..7]).is_subset(&collector.ids()) && ids(&others).is_subset(&collector.ids()));
    let want: Vec<String> = written[7..].iter().map(|r| r.id().to_string()).collect();
    let left: Vec<String> = spooled(dir.path(), "mixed");
    assert_eq!(left[left.len() - want.len()..], want[..], "the lane waits from the refused batch on, in order");
    assert!(spooled(dir.path(), "other").is_empty());

    // Within its pause the lane is not offered again (no refused batch re-sent every pass).
    let refused = collector.refused.load(Ordering::Relaxed);
    assert_eq!(ship_pass(&spool, &collector, &opts, &stats).unwrap(), 0);
    assert_eq!(collector.refused.load(Ordering::Relaxed), refused);
    assert!(stats.holding_newer.load(Ordering::Relaxed));

    // Upgraded, and the pause over: the rest of the lane, each record stored once.
    collector.upgraded.store(true, Ordering::Relaxed);
    let opts = ShipperOptions { refused_retry: Duration::ZERO, ..opts };
    let stats = ShipperStats::default();
    assert_eq!(ship_pass(&spool, &collector, &opts, &stats).unwrap(), 43);
    let all: HashSet<String> = ids(&written).union(&ids(&others)).cloned().collect();
    assert_eq!(collector.ids(), all);
    assert!(segments(dir.path()).unwrap().is_empty());
}

#[test]
fn an_unreachable_collector_still_ends_the_pass() {
    struct Down;
    impl Uplink for Down {
        fn deliver(&self, _: &[u8], _: usize) -> Result<(), DeliveryError> {
            Err(DeliveryError::Failed("cannot reach the collector: connection refused".into()))
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    let stats = ShipperStats::default();
    for lane in ["sip_udp0_0", "udp0_0"] {
        let mut l = spool.lane(lane).unwrap();
        (0..5).for_each(|i| l.append(&decision(i, Protocol::Enum)).unwrap());
    }
    let r = ship_pass(&spool, &Down, &ShipperOptions { batch_records: 7, ..Default::default() }, &stats);
    assert!(matches!(r, Err(PassError::Delivery(_))), "{r:?}");
    assert_eq!(stats.failures.load(Ordering::Relaxed), 1, "the pass ended at the first failure");
    assert!(!stats.connected.load(Ordering::Relaxed));
    assert_eq!(stats.refused_newer.load(Ordering::Relaxed), 0);
    assert_eq!(spool.backlog().records, 10);
}
