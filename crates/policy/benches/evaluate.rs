//! Evaluation cost against policy size: the compiled indexes should keep the cost flat from ten
//! rules to a hundred thousand, and a list of a million numbers should cost one hash lookup.
//!
//! Run: `cargo bench -p tollgate-policy --bench evaluate`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::Write;

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tollgate_number::{DialingPlan, E164};
use tollgate_policy::{CallQuery, CompileOptions, CompiledPolicy, PolicySource, compile};

/// A policy of `n` rules: exact destinations, prefix rules every 10th, and a final catch-all
/// in a time window (so unmatched calls visit the any/any rules too).
fn policy_text(n: usize) -> String {
    let mut text = String::from("schema = 1\n[[internal]]\nprefix = \"+1212\"\n");
    for i in 0..n {
        if i % 10 == 9 {
            text.push_str(&format!(
                "[[rule]]\nname = \"p{i}\"\ndestination = \"+1646{:04}*\"\naction = \"terminate\"\ncause = 486\n",
                i % 10_000
            ));
        } else {
            text.push_str(&format!(
                "[[rule]]\nname = \"r{i}\"\ndestination = \"+1212{:07}\"\ndirection = \"inbound\"\naction = \"redirect\"\ntarget = \"+12125550199\"\n",
                i
            ));
        }
    }
    text.push_str("[[rule]]\nname = \"night\"\ntime = { hours = \"02:00-03:00\", zone = \"UTC\" }\naction = \"terminate\"\ncause = 480\n");
    text
}

fn build(n: usize) -> CompiledPolicy {
    let plan = DialingPlan::nanp();
    compile(
        &PolicySource::from_text("bench.toml", policy_text(n), BTreeMap::new()),
        CompileOptions { plan: &plan, intercepts: None },
    )
    .expect("bench policy compiles")
}

fn n(s: &str) -> E164 {
    s.parse().unwrap()
}

fn evaluate(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(1));
    for size in [10usize, 1_000, 100_000] {
        let policy = build(size);
        let hit = CallQuery {
            source: Some(n("+14155550000")),
            destination: n(&format!("+1212{:07}", size / 2 - 1)),
            at: Utc::now(),
        };
        let miss = CallQuery { source: Some(n("+14155550000")), destination: n("+13125550000"), at: Utc::now() };
        assert!(policy.evaluate(&hit).rule.is_some());
        group.bench_with_input(BenchmarkId::new("matching-rule", size), &hit, |b, q| {
            b.iter(|| policy.evaluate(black_box(q)))
        });
        group.bench_with_input(BenchmarkId::new("no-rule", size), &miss, |b, q| {
            b.iter(|| policy.evaluate(black_box(q)))
        });
    }
    group.finish();
}

fn lists(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("million.txt");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..1_000_000u64 {
            writeln!(f, "+1312{:07}", i * 7).unwrap();
        }
    }
    std::fs::write(
        dir.path().join("p.toml"),
        "schema = 1\n[lists]\nrobo = \"million.txt\"\n[[rule]]\nname = \"robo\"\nsource = \"list:robo\"\naction = \"terminate\"\ncause = 603\n",
    )
    .unwrap();
    let plan = DialingPlan::nanp();
    let source = PolicySource::from_path(&dir.path().join("p.toml")).unwrap();
    let mut group = c.benchmark_group("list-1M");
    group.sample_size(10);
    group.bench_function("compile (load 1M numbers)", |b| {
        b.iter(|| compile(&source, CompileOptions { plan: &plan, intercepts: None }).unwrap())
    });
    let policy = compile(&source, CompileOptions { plan: &plan, intercepts: None }).unwrap();
    let listed = CallQuery { source: Some(n("+13120000007")), destination: n("+12125550100"), at: Utc::now() };
    assert!(policy.evaluate(&listed).rule.is_some());
    group.sample_size(100);
    group.throughput(Throughput::Elements(1));
    group.bench_function("evaluate (listed caller)", |b| b.iter(|| policy.evaluate(black_box(&listed))));
    group.finish();
}

criterion_group!(benches, evaluate, lists);
criterion_main!(benches);
