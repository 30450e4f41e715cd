//! The exchange against a real redis-server (Debian's `redis-server`, installed by
//! scripts/install-test-deps.sh): counts cross between engines, calls in progress come from a
//! probe and leave with it, and a Redis killed with kill -9 raises the alarm, then the calls
//! counted meanwhile reach the other engine when it is back.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_alarms::Alarms;
use tollgate_number::E164;
use tollgate_policy::velocity::VelocityCounters;
use tollgate_policy::{Velocity, VelocityTable};
use tollgate_shared_counters::{RedisTls, SharedCounters, SharedState, SyncSettings};

const V: Velocity = Velocity { calls: 10, window_secs: 600 };

struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut r = Redis { port, child: None };
        r.restart();
        r
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (apt install redis-server; scripts/install-test-deps.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn settings(port: u16, node: &str, read: bool, publish_in_progress: bool) -> SyncSettings {
    SyncSettings {
        url: format!("redis://127.0.0.1:{port}/0"),
        shown_url: format!("redis://127.0.0.1:{port}/0"),
        tls: RedisTls::default(),
        namespace: "test".into(),
        node: node.into(),
        interval: Duration::from_millis(10),
        history: Duration::from_secs(600),
        probe_ttl: Duration::from_secs(2),
        timeout: Duration::from_millis(500),
        max_pending: 10_000,
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
    let table = Arc::new(VelocityTable::new(10_000, false).with_sharing());
    let alarms = Arc::new(Alarms::default());
    let shared = SharedCounters::start(settings(port, node, true, false), table.clone(), alarms.clone()).unwrap();
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
    assert_eq!(a.table.window_count("robo", robo, now(), V), 6, "A counts on its own");
    assert_eq!(b.table.window_count("robo", robo, now(), V), 4, "B has not heard yet");
    assert!(a.shared.status().errors() > 0);
    redis.restart();
    wait_until(60, "alarm cleared on A and B", || !alarm_active(&a.alarms) && !alarm_active(&b.alarms)).await;
    wait_until(30, "B sees the calls A counted while Redis was down", || {
        b.table.window_count("robo", robo, now(), V) == 6
    })
    .await;
    // The restarted Redis holds only what was sent since: nothing is counted twice.
    assert_eq!(a.table.window_count("robo", robo, now(), V), 6);
}
