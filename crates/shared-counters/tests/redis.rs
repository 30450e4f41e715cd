//! The exchange against a real redis-server (Debian's `redis-server`, installed by
//! scripts/install-test-deps.sh): counts cross between engines, calls in progress come from a
//! probe and leave with it, and a Redis killed with kill -9 raises the alarm, then the calls
//! counted meanwhile reach the other engine when it is back.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_alarms::Alarms;
use tollgate_number::E164;
use tollgate_policy::velocity::VelocityCounters;
use tollgate_policy::{Velocity, VelocityTable};
use tollgate_shared_counters::{RedisTls, SharedCounters, SharedState, SyncSettings};

const V: Velocity = Velocity { calls: 10, window_secs: 600 };

// The tollgate suites' Redis harness, one way of running Redis for both.
#[path = "../../tollgate/tests/common/redis.rs"]
#[allow(dead_code)] // this suite uses part of it
mod redis_server;
use redis_server::Redis;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn settings(port: u16, node: &str, read: bool, publish_in_progress: bool) -> SyncSettings {
    SyncSettings {
        url: format!("redis://127.0.0.1:{port}/0"),
        sentinels: Vec::new(),
        sentinel_master: String::new(),
        shown_url: format!("redis://127.0.0.1:{port}/0"),
        tls: RedisTls::default(),
        namespace: "test".into(),
        node: node.into(),
        interval: Duration::from_millis(10),
        history: Duration::from_secs(600),
        probe_ttl: Duration::from_secs(2),
        timeout: Duration::from_millis(500),
        max_pending: 100_000,
        publish_in_progress,
        read,
    }
}

async fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Engine {
    table: Arc<VelocityTable>,
    alarms: Arc<Alarms>,
    shared: SharedCounters,
}

fn engine(port: u16, node: &str) -> Engine {
    engine_with(settings(port, node, true, false))
}

fn engine_with(settings: SyncSettings) -> Engine {
    let table = Arc::new(VelocityTable::new(200_000, false).with_sharing());
    let alarms = Arc::new(Alarms::default());
    let shared = SharedCounters::start(settings, table.clone(), alarms.clone()).unwrap();
    Engine { table, alarms, shared }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn alarm_active(alarms: &Alarms) -> bool {
    alarms.active().iter().any(|a| a.def.name == "SHARED_COUNTERS_UNREACHABLE")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_count_together_probes_add_calls_in_progress_and_a_dead_redis_loses_nothing() {
    let mut redis = Redis::start();
    let robo: E164 = "+13125550666".parse().unwrap();
    let a = engine(redis.port, "enum-a");
    let b = engine(redis.port, "enum-b");

    // Three calls on A, one on B: both see four.
    for _ in 0..3 {
        a.table.count("robo", robo, now(), V);
    }
    b.table.count("robo", robo, now(), V);
    wait_until(20, "both engines see 4 calls", || {
        a.table.window_count("robo", robo, now(), V) == 4 && b.table.window_count("robo", robo, now(), V) == 4
    })
    .await;
    assert_eq!(a.shared.status().view(now()).state, SharedState::InStep);
    assert_eq!(a.table.shared_view(now()).state, SharedState::InStep, "lookup reads it through the table");

    // Anyone who can write to the Redis: entries that are not batches are refused and counted;
    // a batch appended again (replayed) changes no count.
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", redis.port)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let entries: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg("test:events").arg("-").arg("+").query_async(&mut conn).await.unwrap();
    let replayed: Vec<u8> = entries.ids.first().and_then(|e| e.get("d")).expect("a batch in the stream");
    for (field, value) in [("d", b"not json".to_vec()), ("x", b"y".to_vec()), ("d", replayed.clone()), ("d", replayed)]
    {
        let _: String =
            redis::cmd("XADD").arg("test:events").arg("*").arg(field).arg(value).query_async(&mut conn).await.unwrap();
    }
    wait_until(20, "both refused entries counted on B", || b.shared.status().refused() >= 2).await;
    b.table.count("robo", robo, now(), V);
    wait_until(20, "A sees B's fifth call after the hostile entries", || {
        a.table.window_count("robo", robo, now(), V) == 5
    })
    .await;
    assert_eq!(b.table.window_count("robo", robo, now(), V), 5, "the replayed batch counted nothing twice");

    // A probe in another process: two calls in progress reach the engines; when it stops
    // (its task gone, as after kill -9), they are forgotten after probe_ttl.
    let probe_table = Arc::new(VelocityTable::new(16, false).with_sharing());
    let probe = SharedCounters::start(
        settings(redis.port, "probe-1", false, true),
        probe_table.clone(),
        Arc::new(Alarms::default()),
    )
    .unwrap();
    probe_table.call_started(robo);
    probe_table.call_started(robo);
    wait_until(20, "engine A sees 2 calls in progress", || a.table.concurrent(robo) == 2).await;
    probe_table.call_ended(robo);
    wait_until(20, "engine B sees 1 call in progress", || b.table.concurrent(robo) == 1).await;
    drop(probe);
    wait_until(30, "the silent probe's call is forgotten", || {
        a.table.concurrent(robo) == 0 && b.table.concurrent(robo) == 0
    })
    .await;

    // Redis killed: A keeps counting alone, raises the alarm; back: B gets A's calls.
    redis.kill9();
    wait_until(30, "alarm raised on A", || alarm_active(&a.alarms)).await;
    assert_eq!(a.shared.status().view(now()).state, SharedState::Unreachable);
    a.table.count("robo", robo, now(), V);
    a.table.count("robo", robo, now(), V);
    // And 50,000 more callers: more than one stream entry holds, sent over several round trips.
    let many: Vec<E164> = (0..50_000u64).map(|i| E164::from_u64(14_155_500_000 + i).unwrap()).collect();
    for caller in &many {
        a.table.count("burst", *caller, now(), V);
    }
    let received_before = b.shared.status().received();
    assert_eq!(a.table.window_count("robo", robo, now(), V), 7, "A counts on its own");
    assert_eq!(b.table.window_count("robo", robo, now(), V), 5, "B has not heard yet");
    assert!(a.shared.status().errors() > 0);
    redis.restart();
    wait_until(60, "alarm cleared on A and B", || !alarm_active(&a.alarms) && !alarm_active(&b.alarms)).await;
    wait_until(30, "B sees the calls A counted while Redis was down", || {
        b.table.window_count("robo", robo, now(), V) == 7
    })
    .await;
    // The restarted Redis holds only what was sent since: nothing is counted twice.
    assert_eq!(a.table.window_count("robo", robo, now(), V), 7);
    wait_until(60, "B received every call A kept while Redis was down", || {
        b.shared.status().received() >= received_before + 50_002
    })
    .await;
    assert!(many.iter().all(|c| b.table.window_count("burst", *c, now(), V) == 1), "each caller once on B");
    assert_eq!(a.shared.status().dropped(), 0, "nothing kept was dropped");
}

/// Redis Sentinel: a master, its replica and a sentinel. The engines follow the master the
/// sentinel names; when the master is killed with kill -9 and the sentinel promotes the
/// replica, they connect to it, and the calls counted meanwhile reach the other engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_follow_a_sentinel_failover() {
    let mut master = Redis::start();
    let _replica = Redis::start_with(vec!["--replicaof".into(), "127.0.0.1".into(), master.port.to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "sentinel monitor tg 127.0.0.1 {} 1\nsentinel down-after-milliseconds tg 500\nsentinel failover-timeout tg 3000\n",
            master.port
        ),
    )
    .unwrap();
    let sentinel = Redis::start_with(vec![conf.display().to_string(), "--sentinel".into()]);
    let with_sentinel = |node: &str| SyncSettings {
        url: "redis://sentinel-named-master/0".into(),
        sentinels: vec![("127.0.0.1".to_string(), sentinel.port)],
        sentinel_master: "tg".into(),
        ..settings(0, node, true, false)
    };
    let a = engine_with(with_sentinel("enum-a"));
    let b = engine_with(with_sentinel("enum-b"));
    let robo: E164 = "+13125550666".parse().unwrap();
    a.table.count("robo", robo, now(), V);
    wait_until(20, "B sees A's call through the master", || b.table.window_count("robo", robo, now(), V) == 1).await;

    master.kill9();
    a.table.count("robo", robo, now(), V);
    a.table.count("robo", robo, now(), V);
    wait_until(60, "B sees the calls A counted across the failover", || {
        b.table.window_count("robo", robo, now(), V) == 3
    })
    .await;
    wait_until(30, "both in step with the new master", || {
        a.shared.status().is_up() && b.shared.status().is_up() && !alarm_active(&a.alarms)
    })
    .await;
    b.table.count("robo", robo, now(), V);
    wait_until(20, "A sees B's call through the new master", || a.table.window_count("robo", robo, now(), V) == 4)
        .await;
}

/// TLS on the link: Redis with `tls-auth-clients yes` and a certificate of tollgate's CA. An
/// engine with `[tls]`'s CA and its own certificate exchanges; one without a client
/// certificate, or trusting another CA, is refused and raises the alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_tollgate_certificates_and_refusals() {
    use tollgate_tls::Role;
    use tollgate_tls::pki::{Ca, IssueRequest};
    let dir = tempfile::tempdir().unwrap();
    let issue = |ca: &Ca, host: &str| {
        ca.issue(&IssueRequest {
            role: Role::Engine,
            host: host.into(),
            ips: Vec::new(),
            dns_names: Vec::new(),
            validity: Duration::from_secs(3600),
        })
        .unwrap()
    };
    let ca = Ca::init(&dir.path().join("ca"), "test CA", Duration::from_secs(86_400)).unwrap();
    let other_ca = Ca::init(&dir.path().join("other"), "another CA", Duration::from_secs(86_400)).unwrap();
    let server = issue(&ca, "127.0.0.1");
    let (cert, key, ca_file) = (dir.path().join("r.crt"), dir.path().join("r.key"), dir.path().join("ca.crt"));
    server.write(&cert, &key).unwrap();
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let port = free_port();
    let _redis = Redis::start_with(vec![
        "--tls-port".into(),
        port.to_string(),
        "--tls-cert-file".into(),
        cert.display().to_string(),
        "--tls-key-file".into(),
        key.display().to_string(),
        "--tls-ca-cert-file".into(),
        ca_file.display().to_string(),
        "--tls-auth-clients".into(),
        "yes".into(),
    ]);
    let tls_settings = |node: &str, tls: RedisTls| SyncSettings {
        url: format!("rediss://127.0.0.1:{port}/0"),
        tls,
        ..settings(0, node, true, false)
    };
    let engine_cert = |ca: &Ca| {
        let c = issue(ca, "enum-a");
        Some((c.cert_pem.into_bytes(), c.key_pem.into_bytes()))
    };
    let good = || RedisTls { root_pem: Some(ca.cert_pem().as_bytes().to_vec()), client: engine_cert(&ca) };
    let a = engine_with(tls_settings("enum-a", good()));
    let b = engine_with(tls_settings("enum-b", good()));
    let robo: E164 = "+13125550666".parse().unwrap();
    a.table.count("robo", robo, now(), V);
    wait_until(20, "B sees A's call over TLS", || b.table.window_count("robo", robo, now(), V) == 1).await;

    let no_client_cert = engine_with(tls_settings(
        "enum-c",
        RedisTls { root_pem: Some(ca.cert_pem().as_bytes().to_vec()), client: None },
    ));
    let wrong_ca = engine_with(tls_settings(
        "enum-d",
        RedisTls { root_pem: Some(other_ca.cert_pem().as_bytes().to_vec()), client: engine_cert(&ca) },
    ));
    wait_until(20, "refused: no client certificate", || alarm_active(&no_client_cert.alarms)).await;
    wait_until(20, "refused: Redis's certificate is not of the trusted CA", || alarm_active(&wrong_ca.alarms)).await;
    assert_eq!(no_client_cert.table.window_count("robo", robo, now(), V), 0);
    assert_eq!(wrong_ca.table.window_count("robo", robo, now(), V), 0);
    assert!(wrong_ca.shared.status().last_error().contains("127.0.0.1"), "{}", wrong_ca.shared.status().last_error());
}
