//! Spool append rate: records written before an answer is sent, with fsync batched by the
//! background thread (the default, every 200 ms) against an fsync after every record.
//!
//! Also: opening a spool that holds a backlog (it recounts bytes and records from the segments).
//!
//! `cargo bench -p tollgate-records --bench spool`

use std::hint::black_box;
use std::time::Duration;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_records::spool::{Spool, SpoolOptions};
use tollgate_records::{EnumQueryRecord, Record, Transport};

fn record() -> Record {
    Record::enum_query(EnumQueryRecord {
        id: ulid::Ulid::new(),
        time: Utc::now(),
        device: "engine-1".into(),
        client: "sbc-nyc-1".into(),
        client_addr: "10.10.0.5:5060".parse().unwrap(),
        transport: Transport::Udp,
        source: "+13125550666".parse().ok(),
        destination: "+12125550100".parse().unwrap(),
        direction: "inbound".into(),
        rule: Some("reject-known-robocallers".into()),
        action: "terminate".into(),
        detail: Some("reject 603".into()),
        rcode: "NOERROR".into(),
        fail_open: false,
        latency_us: 85,
        stale: false,
        policy_version: Some(7),
        protocol: Default::default(),
    })
}

fn spool(c: &mut Criterion) {
    let mut group = c.benchmark_group("spool-append");
    group.throughput(Throughput::Elements(1));
    let r = record();

    let dir = tempfile::tempdir().unwrap();
    let batched =
        Spool::open(dir.path(), SpoolOptions { fsync_interval: Duration::from_millis(200), ..Default::default() })
            .unwrap();
    let mut lane = batched.lane("bench").unwrap();
    group.bench_function("fsync batched every 200 ms", |b| b.iter(|| lane.append(black_box(&r)).unwrap()));

    let dir2 = tempfile::tempdir().unwrap();
    let each =
        Spool::open(dir2.path(), SpoolOptions { fsync_interval: Duration::from_secs(3600), ..Default::default() })
            .unwrap();
    let mut lane2 = each.lane("bench").unwrap();
    group.sample_size(20);
    group.bench_function("fsync after every record", |b| {
        b.iter(|| {
            lane2.append(black_box(&r)).unwrap();
            each.sync();
        })
    });
    group.finish();
}

/// Encoding one ENUM query record as the spool stores it: serde's derived JSON against the
/// direct writer the spool uses (`tollgate_records::json`, the same bytes), and a batch of 32
/// appended with one write against 32 single appends.
fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("spool-encode");
    group.throughput(Throughput::Elements(1));
    let r = record();
    let mut out = Vec::with_capacity(1024);
    group.bench_function("serde_json", |b| {
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&r)).unwrap();
        })
    });
    group.bench_function("direct (json::write_record)", |b| {
        b.iter(|| {
            out.clear();
            tollgate_records::json::write_record(black_box(&r), &mut out).unwrap();
        })
    });
    group.finish();

    let mut group = c.benchmark_group("spool-append-32");
    group.throughput(Throughput::Elements(32));
    let batch: Vec<Record> = (0..32).map(|_| record()).collect();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    let mut lane = spool.lane("bench").unwrap();
    group.bench_function("one append_batch (one write)", |b| {
        b.iter(|| assert_eq!(lane.append_batch(black_box(&batch), |e| panic!("{e}")), 32))
    });
    group.bench_function("32 appends (32 writes)", |b| {
        b.iter(|| {
            for r in black_box(&batch) {
                lane.append(r).unwrap();
            }
        })
    });
    group.finish();
}

/// Opening a spool holding 200,000 unacknowledged records (about 70 MB in 4 lanes): what a
/// restart after an outage costs before the engine answers.
fn reopen(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        let mut lanes: Vec<_> = (0..4).map(|i| spool.lane(&format!("udp0_{i}")).unwrap()).collect();
        let r = record();
        for i in 0..200_000 {
            lanes[i % 4].append(&r).unwrap();
        }
    }
    let mut group = c.benchmark_group("spool-open");
    group.sample_size(10);
    group.bench_function("200k unacknowledged records", |b| {
        b.iter(|| black_box(Spool::open(dir.path(), SpoolOptions::default()).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, spool, encode, reopen);
criterion_main!(benches);
