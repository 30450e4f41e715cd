//! Checkpoint encoding with zlib and with LZ4: bytes on the wire and CPU per checkpoint, for a
//! full checkpoint of 10,000 velocity counters and a micro-checkpoint of 50 changes (what a
//! busy Active sends every 10 ms). Prints the sizes; criterion measures encode and decode.
//!
//! `cargo bench -p tollgate-srp --bench checkpoint`

use criterion::{Criterion, criterion_group, criterion_main};
use tollgate_srp::checkpoint::{Checkpoint, CheckpointKind};
use tollgate_srp::compress::Compression;
use tollgate_srp::session::Change;

/// A velocity counter as the engine checkpoints it (JSON of rule, number, window, call times).
fn velocity_change(i: u64) -> Change {
    let value = format!(
        r#"{{"rule":"robocall-velocity","source":"+1312555{:04}","window_us":600000000,"times":[{},{},{}]}}"#,
        i % 10_000,
        1_795_668_827_118_447u64 + i * 1_013,
        1_795_668_827_132_134u64 + i * 1_013,
        1_795_668_827_155_552u64 + i * 1_013
    );
    Change::Upsert {
        cmd: 1,
        key: format!("velocity/robocall-velocity/+1312555{:04}", i % 10_000),
        version: i + 1,
        age_ms: 1_000 + i % 60_000,
        value: value.into_bytes(),
    }
}

fn bench(c: &mut Criterion) {
    let full = Checkpoint::new(
        CheckpointKind::Full { first: true, last: true },
        1,
        (0..10_000).map(velocity_change).collect(),
    );
    let micro = Checkpoint::new(CheckpointKind::Micro { cmd: 1 }, 2, (0..50).map(velocity_change).collect());
    for (name, cp) in [("full, 10,000 counters", &full), ("micro, 50 changes", &micro)] {
        for algo in [Compression::Zlib, Compression::Lz4] {
            let e = cp.encode(algo);
            println!(
                "{name}: {algo}: {} bytes uncompressed -> {} bytes on the wire ({:.1}%)",
                e.uncompressed_len,
                e.bytes.len(),
                100.0 * e.bytes.len() as f64 / e.uncompressed_len.max(1) as f64
            );
            c.bench_function(&format!("encode {name} {algo}"), |b| b.iter(|| cp.encode(algo)));
            let bytes = e.bytes.clone();
            c.bench_function(&format!("decode {name} {algo}"), |b| {
                b.iter(|| Checkpoint::decode(&bytes, algo).expect("decodes"))
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
