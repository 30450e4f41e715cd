//! What waits for the collector, as an operator sees it, with real processes: an engine whose
//! collector is down counts every answered query in `tollgate_shipper_backlog_records` (and its
//! bytes and the age of the oldest), raises RECORDS_LATE once the oldest is older than
//! `spool.late_after_secs`, keeps both across a kill and restart, and when the collector is
//! back everything drains to zero, the alarm clears and each record is stored once. And a collector's `/metrics` after an ingest:
//! the ingest-time and batch-size histograms and its store's rollup statistics, on SQLite and
//! on PostgreSQL.

mod common;

use common::analytics::{stored_destinations, view};
use common::{Engine, EngineOptions, PgDb, TrackedClient, free_port, metric_sample, scrape, wait_until};

fn collector(node: &str, store: Option<&str>) -> Engine {
    let extra = store.map(|s| format!("[collector]\nstore = \"{s}\"\n")).unwrap_or_default();
    Engine::start(EngineOptions {
        node: node.into(),
        role: "collector",
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        extra_config: extra,
        ..Default::default()
    })
}

fn alarm_active(e: &Engine, name: &str) -> bool {
    e.alarms().active.iter().any(|a| a.def.name == name)
}

#[test]
fn the_backlog_counts_every_answer_while_the_collector_is_down_and_drains_to_zero() {
    let mut c = collector("collector-backlog", None);
    let token = c.ingest_token("engines");
    let e = Engine::start(EngineOptions {
        node: "enum-backlog".into(),
        role: "engine",
        extra_config: format!("[shipper]\ncollector = \"{}\"\ntoken = \"{token}\"\nbatch_records = 50\n", c.api),
        spool: "fsync_ms = 50\nlate_after_secs = 2\n".into(),
        ..Default::default()
    });
    c.kill();

    // Queries answered while the collector is down: every record waits.
    let mut client = TrackedClient::new(e.udp);
    for n in 0..400 {
        client.ask(n);
    }
    let written = e.metric("tollgate_spool_records_total");
    assert!(client.answered.len() > 300, "only {} of 400 queries answered", client.answered.len());
    assert!(written >= client.answered.len() as f64 && written <= 400.0, "{written} records written");
    let records = e.metric("tollgate_shipper_backlog_records");
    assert_eq!(records, written, "every record written waits for the collector");
    let bytes = e.metric("tollgate_shipper_backlog_bytes");
    assert!(bytes > 0.0, "bytes wait too");
    assert_eq!(bytes, e.metric("tollgate_spool_unacked_bytes"));
    let age = e.metric("tollgate_shipper_backlog_oldest_seconds");
    wait_until(30, "the oldest record's age to grow", || {
        e.metric("tollgate_shipper_backlog_oldest_seconds") > age + 1.0
    });
    wait_until(30, "RECORDS_LATE raised on the engine", || alarm_active(&e, "RECORDS_LATE"));
    let unreachable = e.alarms().active.into_iter().find(|a| a.def.name == "COLLECTOR_UNREACHABLE");
    let detail = unreachable.expect("COLLECTOR_UNREACHABLE raised").detail;
    assert!(detail.contains("connection refused") && detail.contains("records wait in the spool"), "{detail}");
    assert_eq!(e.metric("tollgate_shipper_backlog_records"), written, "nothing left while the collector is down");

    // Killed and started again, the engine recounts its backlog from the spool; the age of the
    // oldest is counted from its segment's creation, so it does not start again from zero.
    let age = e.metric("tollgate_shipper_backlog_oldest_seconds");
    let mut e = e;
    e.kill();
    e.start_again();
    wait_until(30, "the backlog recounted after the restart", || {
        e.metric("tollgate_shipper_backlog_records") == written
    });
    assert_eq!(e.metric("tollgate_shipper_backlog_bytes"), bytes);
    assert!(e.metric("tollgate_shipper_backlog_oldest_seconds") >= age, "the oldest is no younger after the restart");
    wait_until(30, "RECORDS_LATE raised by the restarted engine", || alarm_active(&e, "RECORDS_LATE"));

    // The collector is back: the backlog drains to zero and each record is stored once.
    c.start_again();
    wait_until(90, "the backlog to drain", || {
        e.metric("tollgate_shipper_backlog_records") == 0.0
            && e.metric("tollgate_shipper_backlog_bytes") == 0.0
            && e.metric("tollgate_shipper_backlog_oldest_seconds") == 0.0
    });
    assert_eq!(e.metric("tollgate_shipper_records_total"), written, "every record acknowledged once");
    let stored = stored_destinations(&c);
    assert_eq!(stored.len() as f64, written, "every record written is stored, and nothing else");
    assert!(stored.values().all(|&k| k == 1), "no record is stored twice");
    assert!(client.answered.iter().all(|n| stored.get(n) == Some(&1)), "every answered query is stored");
    wait_until(30, "RECORDS_LATE cleared", || !alarm_active(&e, "RECORDS_LATE"));
    // (The restarted process's alarm history.)
    let events: Vec<bool> =
        e.alarms().history.into_iter().filter(|h| h.name == "RECORDS_LATE").map(|h| h.raised).collect();
    assert_eq!(events, vec![true, false], "raised once, cleared once");
}

/// An ENUM record line for ingest, to `destination`.
fn enum_line(id: &str, destination: &str) -> String {
    serde_json::json!({
        "kind": "enum_query", "v": 2, "id": id, "time": chrono::Utc::now().to_rfc3339(),
        "device": "engine-m", "client": "sbc-1", "client_addr": "127.0.0.1:5060", "transport": "udp",
        "source": "+13125550100", "destination": destination, "direction": "inbound", "rule": null,
        "action": "allow", "detail": null, "rcode": "NXDOMAIN", "latency_us": 40, "policy_version": 1
    })
    .to_string()
}

fn collector_metrics(store: Option<&str>, backend: &str) {
    let c = collector("collector-metrics", store);
    let token = c.ingest_token("metrics");
    let post = |lines: std::ops::Range<u32>| {
        let body: String =
            lines.map(|i| enum_line(&format!("01ARZ3NDEKTSV4RRFFQ69G{i:04}"), "+12125550100") + "\n").collect();
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/api/v1/ingest", c.api))
            .bearer_auth(&token)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    };
    post(0..3);
    post(3..8);
    let text = scrape(&c.api);
    let sample = |series: &str| metric_sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(sample("tollgate_collector_ingest_seconds_count"), 2.0, "two batches acknowledged");
    assert!(sample("tollgate_collector_ingest_seconds_sum") > 0.0);
    assert_eq!(sample("tollgate_collector_batch_records_count"), 2.0);
    assert_eq!(sample("tollgate_collector_batch_records_sum"), 8.0, "3 and 5 lines");
    assert_eq!(sample("tollgate_collector_batch_records_bucket{le=\"4.0\"}"), 1.0, "the batch of 3");
    assert_eq!(sample("tollgate_collector_batch_records_bucket{le=\"8.0\"}"), 2.0, "and the batch of 5");
    let store = |name: &str| format!("{name}{{backend=\"{backend}\"}}");
    sample(&store("tollgate_store_rollup_flushes_total"));
    sample(&store("tollgate_store_rollup_flush_seconds_total"));
    sample(&store("tollgate_store_last_flush_keys"));
    sample(&store("tollgate_store_number_folded_hours_total"));
    sample(&store("tollgate_store_number_fold_seconds_total"));
    // Reading analytics applies pending rollups first: nothing is pending afterwards, and the
    // view counts every record.
    assert_eq!(view(&c, "ENUM", "Average CPS", "All")["total"].as_u64(), Some(8));
    let text = scrape(&c.api);
    assert_eq!(metric_sample(&text, &store("tollgate_store_pending_rollup_records")), Some(0.0), "{text}");
}

#[test]
fn collector_metrics_show_ingest_time_batch_sizes_and_the_store_on_sqlite() {
    collector_metrics(None, "sqlite");
}

#[test]
fn collector_metrics_show_ingest_time_batch_sizes_and_the_store_on_postgres() {
    let db = PgDb::create();
    collector_metrics(Some(&db.url), "postgres");
}

/// Each thread of `pid` as (name, nice value), from /proc.
fn threads_nice(pid: u32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let (Ok(comm), Ok(stat)) =
            (std::fs::read_to_string(task.path().join("comm")), std::fs::read_to_string(task.path().join("stat")))
        else {
            continue; // the thread ended
        };
        // The fields after the name (in parentheses, which may hold spaces): nice is field 19.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let nice: i32 = after.split(' ').nth(16).unwrap().parse().unwrap();
        out.push((comm.trim().to_string(), nice));
    }
    out
}

#[test]
fn in_serve_the_record_path_runs_at_background_priority_and_the_answer_path_does_not() {
    let e = Engine::start(EngineOptions { node: "serve-priority".into(), ..Default::default() });
    let mut client = TrackedClient::new(e.udp);
    for n in 0..200 {
        client.ask(n);
    }
    // The records were shipped to the collector of the same process and stored.
    wait_until(60, "every answered query stored", || stored_destinations(&e).len() >= client.answered.len());
    let pid = e.pid().unwrap();
    let threads = threads_nice(pid);
    let nice_of = |name: &str| threads.iter().filter(|(n, _)| n == name).map(|(_, v)| *v).collect::<Vec<_>>();
    assert_eq!(nice_of("spool-shipper"), vec![10], "{threads:?}");
    assert_eq!(nice_of("sqlite-rollups"), vec![10], "{threads:?}");
    // The runtime's threads: the workers answering queries keep the process's priority; the
    // blocking thread that stored the batches was lowered.
    let runtime = nice_of("tollgate");
    assert!(runtime.contains(&0), "answering threads at nice 0: {threads:?}");
    assert!(runtime.contains(&10), "the ingesting thread at nice 10: {threads:?}");
    // The spool's fsync thread keeps its priority: durability does not wait for idle CPU.
    assert_eq!(nice_of("spool-fsync"), vec![0], "{threads:?}");
}
