//! The wire between shipper and collector, per core: decoding an NDJSON batch as the collector
//! does (`serde_json` into [`Record`] and [`Record::validate`] per line, as `read_batch` of
//! `POST /api/v1/ingest`), and compressing / decompressing a batch with zstd.
//!
//! `cargo bench -p tollgate-records --bench wire` (prints the compression ratio first)

use std::hint::black_box;
use std::time::Duration;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_records::{EnumQueryRecord, Record, Transport, wire};

/// A batch of 2000 ENUM records as the shipper sends it: callers and called numbers varied.
fn batch() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..2000u64 {
        let r = Record::enum_query(EnumQueryRecord {
            id: ulid::Ulid::new(),
            time: Utc::now(),
            device: "engine-1".into(),
            client: "sbc-nyc-1".into(),
            client_addr: "10.10.0.5:5060".parse().unwrap(),
            transport: Transport::Udp,
            source: format!("+1312555{:04}", (i * 7919) % 10_000).parse().ok(),
            destination: format!("+1212555{:04}", (i * 104_729) % 10_000).parse().unwrap(),
            direction: "inbound".into(),
            rule: (i % 3 == 0).then(|| "reject-known-robocallers".into()),
            action: if i % 3 == 0 { "terminate".into() } else { "allow".into() },
            detail: None,
            rcode: "NXDOMAIN".into(),
            fail_open: false,
            latency_us: 40 + (i % 200) as u32,
            stale: false,
            policy_version: Some(7),
            protocol: Default::default(),
        });
        out.extend_from_slice(&serde_json::to_vec(&r).unwrap());
        out.push(b'\n');
    }
    out
}

fn wire_bench(c: &mut Criterion) {
    let plain = batch();
    for level in [1, 3] {
        let packed = wire::compress(&plain, level).unwrap();
        eprintln!(
            "zstd level {level}: {} -> {} bytes per 2000 records ({:.1}:1, {:.0} bytes/record on the wire)",
            plain.len(),
            packed.len(),
            plain.len() as f64 / packed.len() as f64,
            packed.len() as f64 / 2000.0
        );
    }
    let mut group = c.benchmark_group("wire");
    group.measurement_time(Duration::from_secs(4)).sample_size(20);
    group.throughput(Throughput::Elements(2000));
    group.bench_function("decode-json-2000", |b| {
        b.iter(|| {
            let now = Utc::now();
            let mut ok = 0;
            for line in plain.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let r: Record = serde_json::from_slice(line).unwrap();
                ok += usize::from(r.validate(now).is_ok());
            }
            black_box(ok)
        })
    });
    for level in [1, 3] {
        group.bench_function(format!("zstd-{level}-compress-2000"), |b| {
            b.iter(|| black_box(wire::compress(&plain, level).unwrap()))
        });
    }
    let packed = wire::compress(&plain, wire::LEVEL).unwrap();
    group
        .bench_function("zstd-decompress-2000", |b| b.iter(|| black_box(wire::decompress(&packed, 64 << 20).unwrap())));
    group.finish();
}

criterion_group!(benches, wire_bench);
criterion_main!(benches);
