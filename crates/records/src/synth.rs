//! Synthetic ENUM query records with a realistic mix, for benchmarks: the store benchmark
//! (crates/store/benches/store.rs) and `tollgate generate records` (the end-to-end ingest
//! benchmark) make the same records from here.
//!
//! The mix: COUNT ENUM queries spread evenly over the 24 hours before `end`, answered by 4
//! engines (`enum-1` to `enum-4`), calling numbers drawn log-uniformly from 100,000 (a few heavy
//! callers, a long tail), called numbers log-uniformly from 50,000, one query in 20 terminated
//! by rule `block`.
//!
//! Record `k` (0 <= k < COUNT) is a pure function of (seed, k, COUNT, end): its numbers come
//! from a generator seeded with the seed and `k`, its time is `end - 24 h + k * 24 h / COUNT`
//! and its id is a ULID of that time whose random part holds the seed and `k`. So any slice of
//! the indexes holds exactly the records the whole would hold there, and no two share an id.

use chrono::{DateTime, Duration, Utc};

use crate::{EnumQueryRecord, Record, Transport};

/// The engines the records name (`enum-1` ... `enum-4`).
pub const ENGINES: u64 = 4;
/// Distinct calling numbers (log-uniform).
pub const CALLERS: u64 = 100_000;
/// Distinct called numbers (log-uniform).
pub const CALLED: u64 = 50_000;
/// First calling number (`+14150000000`).
const FIRST_CALLER: u64 = 14_150_000_000;
/// First called number (`+12120000000`).
const FIRST_CALLED: u64 = 12_120_000_000;
/// The span the records cover before `end`, microseconds (24 hours).
pub const SPAN_US: i64 = 86_400_000_000;

/// Record `k` of `count` records seeded with `seed`, ending before `end` (see the module doc).
pub fn enum_query(seed: u64, k: u64, count: u64, end: DateTime<Utc>) -> Record {
    let mut rng = Rng::new(seed, k);
    let start = end - Duration::microseconds(SPAN_US);
    let step = SPAN_US / count.max(1) as i64;
    let time = start + Duration::microseconds(step * k as i64);
    let src = FIRST_CALLER + rng.log_uniform(CALLERS);
    let dst = FIRST_CALLED + rng.log_uniform(CALLED);
    let blocked = k.is_multiple_of(20);
    // 80 random bits: 16 of the seed, 64 of the index; unique within and across slices.
    let random = (u128::from(seed & 0xffff) << 64) | u128::from(k);
    Record::enum_query(EnumQueryRecord {
        id: ulid::Ulid::from_parts(time.timestamp_millis() as u64, random),
        time,
        device: format!("enum-{}", k % ENGINES + 1),
        client: "sbc-1".into(),
        client_addr: std::net::SocketAddr::from(([10, 0, 0, 1], 5060)),
        transport: Transport::Udp,
        source: tollgate_number::E164::from_u64(src),
        destination: tollgate_number::E164::from_u64(dst).expect("an 11-digit number is an E.164 number"),
        direction: "inbound".into(),
        rule: blocked.then(|| "block".to_string()),
        action: if blocked { "terminate".into() } else { "allow".into() },
        detail: None,
        rcode: if blocked { "NOERROR".into() } else { "NXDOMAIN".into() },
        fail_open: false,
        latency_us: 150,
        stale: false,
        policy_version: Some(1),
        protocol: Default::default(),
    })
}

/// xorshift64, seeded per record through splitmix64 (so record `k` does not depend on the
/// records before it).
struct Rng(u64);

impl Rng {
    fn new(seed: u64, k: u64) -> Rng {
        let mut z = seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Log-uniform index in 0..n: index i has weight ~ 1/(i+1).
    fn log_uniform(&mut self, n: u64) -> u64 {
        ((n as f64).powf(self.unit()) as u64).saturating_sub(1).min(n - 1)
    }
}
