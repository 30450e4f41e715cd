//! The runtime's decisions, in-process: a fake replicated state (named counters), a fake
//! service (a flag) and a channel for the forced-standby flag. A lone chassis runs on tokio's
//! paused clock; a pair talks over a real loopback link in real time (short intervals).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::config::ChassisMode;

mod tls;

const KEY: &str = "tollgate-srp-runtime-test-key-0123";
const CMD: CmdId = 1;

/// Counter values, and the keys changed since the last snapshot.
type Values = (BTreeMap<String, u32>, Vec<String>);

/// Named counters, the changes since the last snapshot tracked.
#[derive(Clone, Default)]
struct Counters(Arc<Mutex<Values>>);

impl Counters {
    fn set(&self, key: &str, n: u32) {
        let mut g = self.0.lock().unwrap();
        g.0.insert(key.to_string(), n);
        g.1.push(key.to_string());
    }

    fn get(&self, key: &str) -> Option<u32> {
        self.0.lock().unwrap().0.get(key).copied()
    }
}

fn from_store(store: &SessionStore) -> BTreeMap<String, u32> {
    store.iter().filter_map(|(k, e)| Some((k.to_string(), serde_json::from_slice::<u32>(&e.value).ok()?))).collect()
}

impl ReplicatedState for Counters {
    fn commands(&self) -> Vec<(CmdId, &'static str)> {
        vec![(CMD, "counter")]
    }

    fn snapshot_micro(&mut self, store: &mut SessionStore, now: Instant) {
        let mut g = self.0.lock().unwrap();
        for key in std::mem::take(&mut g.1) {
            let n = g.0[&key];
            store.upsert_json(CMD, &key, &n, now).unwrap();
        }
    }

    fn snapshot_full(&mut self, store: &mut SessionStore, now: Instant) {
        let mut g = self.0.lock().unwrap();
        g.1.clear();
        for (key, n) in &g.0 {
            if store.get_json::<u32>(key).ok().flatten() != Some(*n) {
                store.upsert_json(CMD, key, n, now).unwrap();
            }
        }
    }

    fn apply_full(&mut self, store: &SessionStore) -> usize {
        let copy = from_store(store);
        let n = copy.len();
        self.0.lock().unwrap().0 = copy;
        n
    }

    fn purge(&mut self) {}

    fn len(&self) -> usize {
        self.0.lock().unwrap().0.len()
    }

    fn view(&self, view: SrpView, copy: Option<&SessionStore>) -> Option<(String, SrpData)> {
        (view == SrpView::Concurrent).then(|| {
            let all = copy.map_or_else(|| self.0.lock().unwrap().0.clone(), from_store);
            let rows = all.into_iter().map(|(source, calls)| ConcurrentCalls { source, calls }).collect();
            (String::new(), SrpData::Concurrent(rows))
        })
    }
}

/// The service: a flag the test watches.
struct Flag(watch::Sender<bool>);

impl ServiceAddress for Flag {
    async fn claim(&mut self) -> Result<(), String> {
        self.0.send_replace(true);
        Ok(())
    }

    async fn release(&mut self) {
        self.0.send_replace(false);
    }
}

/// A chassis under test.
struct Running {
    handle: SrpHandle,
    serving: watch::Receiver<bool>,
    counters: Counters,
    forced: watch::Sender<bool>,
}

impl Running {
    async fn info(&self) -> SrpInfo {
        match self.handle.request(SrpRequest::Show(SrpView::Info)).await.unwrap().data {
            SrpData::Info(i) => i,
            other => panic!("{other:?}"),
        }
    }

    async fn copy(&self) -> Vec<ConcurrentCalls> {
        match self.handle.request(SrpRequest::Show(SrpView::Concurrent)).await.unwrap().data {
            SrpData::Concurrent(c) => c,
            other => panic!("{other:?}"),
        }
    }

    async fn call_loss(&self) -> Vec<CallLossRecord> {
        match self.handle.request(SrpRequest::Show(SrpView::CallLossStatistics)).await.unwrap().data {
            SrpData::CallLoss(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn serving(&self) -> bool {
        *self.serving.borrow()
    }
}

fn free_port() -> SocketAddrV4 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    match l.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    }
}

use std::net::SocketAddrV4;

fn config(node: &str, mode: ChassisMode, priority: u8, bind: SocketAddrV4, peer: SocketAddrV4) -> SrpConfig {
    let mut c = SrpConfig::new(node, bind.into(), peer.into(), KEY, mode, priority);
    c.hello_interval_ms = 100;
    c.dead_interval_ms = 300;
    c.guard_period_secs = 0;
    c
}

async fn run(config: SrpConfig, held: bool) -> Running {
    run_with(config, held, LinkSecurity::Plain { allow_plaintext: false }).await
}

async fn run_with(config: SrpConfig, held: bool, link_security: LinkSecurity) -> Running {
    let (serving_tx, serving) = watch::channel(false);
    let (forced, forced_rx) = watch::channel(false);
    if held {
        forced.send_replace(true);
    }
    let counters = Counters::default();
    let node = config.node_id.clone();
    let (handle, _) = start(Chassis {
        config,
        state: counters.clone(),
        service: Flag(serving_tx),
        forced_standby: forced_rx,
        alarms: Arc::new(Alarms::default()),
        node,
        corrupt_every: None,
        link_security,
    })
    .await
    .unwrap();
    Running { handle, serving, counters, forced }
}

/// Waits (up to `secs`, on whichever clock runs) until `what` holds.
async fn until<Fut: Future<Output = bool>>(secs: u64, what: &str, mut f: impl FnMut() -> Fut) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_lone_chassis_takes_the_service_once_its_mate_is_not_heard() {
    let (a, b) = (free_port(), free_port());
    let lone = run(config("lone", ChassisMode::Backup, 2, a, b), false).await;
    assert!(!lone.serving(), "not before the election");
    until(60, "the lone chassis serves", || async { lone.serving() }).await;
    assert_eq!(lone.info().await.chassis_state, State::Active);
    let record = lone.call_loss().await;
    assert_eq!(record.len(), 1, "{record:?}");
    assert_eq!((record[0].sessions_recovered, record[0].sessions_lost), (0, 0));
    // Every view answers, and its answer decodes back by the view's type (what the CLI does).
    for view in SrpView::all() {
        let reply = lone.handle.request(SrpRequest::Show(*view)).await.unwrap();
        let json = serde_json::to_string(&reply).unwrap();
        assert_eq!(SrpData::decode_reply(*view, &json).unwrap(), reply, "{view}: {json}");
    }
    // An audit needs the mate.
    let refused = lone.handle.request(SrpRequest::InitiateAudit).await.unwrap_err();
    assert!(refused.to_string().contains("mate connected"), "{refused}");
    lone.handle.stop().await;
    assert!(!lone.serving(), "stopping releases the service");
    assert_eq!(lone.handle.request(SrpRequest::Show(SrpView::Info)).await.unwrap_err(), SrpError::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_chassis_held_in_forced_standby_takes_no_service_until_released() {
    let (a, b) = (free_port(), free_port());
    let held = run(config("held", ChassisMode::Primary, 1, a, b), true).await;
    // Ten dead intervals and more: nobody serves, and this chassis does not take over.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!held.serving(), "a held chassis takes no service");
    let info = held.info().await;
    assert!(info.forced_standby, "{info:?}");
    assert_eq!(info.chassis_state, State::Standby);

    // The flag released: it takes over at once (nobody serves).
    held.forced.send_replace(false);
    until(5, "released, it serves", || async { held.serving() }).await;
    assert!(!held.info().await.forced_standby);

    // The operator's command holds too; while serving alone it keeps serving.
    let reply = held.handle.request(SrpRequest::ForcedStandby { on: true }).await.unwrap();
    assert!(reply.text.contains("forced standby on"), "{}", reply.text);
    assert!(matches!(reply.data, SrpData::ForcedStandby(ForcedStandbySet { forced_standby: true, .. })));
    assert!(held.info().await.forced_standby);
    held.handle.stop().await;
}

/// A service whose claims answer as `script` says, one entry per try (an error naming what
/// does not serve, or none: it serves); past the script every try serves. Every try is counted.
struct Flaky {
    script: Vec<Option<&'static str>>,
    tries: Arc<Mutex<usize>>,
}

impl ServiceAddress for Flaky {
    async fn claim(&mut self) -> Result<(), String> {
        let mut tries = self.tries.lock().unwrap();
        *tries += 1;
        match self.script.get(*tries - 1).copied().flatten() {
            Some(error) => Err(error.to_string()),
            None => Ok(()),
        }
    }

    async fn release(&mut self) {}
}

#[tokio::test(start_paused = true)]
async fn an_active_that_cannot_serve_its_address_alarms_and_retries_until_it_serves() {
    let (a, b) = (free_port(), free_port());
    let tries = Arc::new(Mutex::new(0));
    let alarms = Arc::new(Alarms::default());
    let (_forced, forced_rx) = watch::channel(false);
    // Both parts fail, then only ENUM, then everything serves.
    let script = vec![Some("ENUM: address in use; SIP: address in use"), Some("ENUM: address in use")];
    let (handle, _) = start(Chassis {
        config: config("flaky", ChassisMode::Backup, 2, a, b),
        state: Counters::default(),
        service: Flaky { script, tries: tries.clone() },
        forced_standby: forced_rx,
        alarms: alarms.clone(),
        node: "flaky".into(),
        corrupt_every: None,
        link_security: LinkSecurity::Plain { allow_plaintext: false },
    })
    .await
    .unwrap();
    let detail =
        || alarms.active().into_iter().find(|a| a.def.id == alarms::SRP_SERVICE_ADDRESS_FAILED.id).map(|a| a.detail);
    until(60, "the first claim fails", || async { *tries.lock().unwrap() == 1 }).await;
    assert_eq!(detail().as_deref(), Some("ENUM: address in use; SIP: address in use"), "raised, naming both parts");

    // Not retried at once: every CLAIM_RETRY.
    tokio::time::sleep(CLAIM_RETRY / 2).await;
    assert_eq!(*tries.lock().unwrap(), 1, "no retry before CLAIM_RETRY");
    until(60, "the second try", || async { *tries.lock().unwrap() == 2 }).await;
    assert_eq!(detail().as_deref(), Some("ENUM: address in use"), "still raised, naming what still fails");

    // The third try serves: the alarm clears and no more tries follow.
    until(60, "the third try", || async { *tries.lock().unwrap() == 3 }).await;
    until(5, "the alarm clears", || async { detail().is_none() }).await;
    tokio::time::sleep(CLAIM_RETRY * 3).await;
    assert_eq!(*tries.lock().unwrap(), 3, "no retry once the service is whole");
    assert_eq!(handle_state(&handle).await, State::Active);
    let raises = alarms.history().iter().filter(|e| e.raised && e.id == alarms::SRP_SERVICE_ADDRESS_FAILED.id).count();
    assert_eq!(raises, 1, "one raise, its detail updated, then one clear");
    handle.stop().await;
}

async fn handle_state(handle: &SrpHandle) -> State {
    match handle.request(SrpRequest::Show(SrpView::Info)).await.unwrap().data {
        SrpData::Info(i) => i.chassis_state,
        other => panic!("{other:?}"),
    }
}

/// A primary (Active) and a backup (Standby) over a loopback link, synchronised.
async fn pair() -> (Running, Running) {
    let (pa, pb) = (free_port(), free_port());
    let a = run(config("engine-a", ChassisMode::Primary, 1, pa, pb), false).await;
    let b = run(config("engine-b", ChassisMode::Backup, 2, pb, pa), false).await;
    until(20, "engine-a Active, engine-b a synchronised Standby", || async {
        a.serving() && !b.serving() && b.info().await.chassis_state == State::Standby && b.info().await.ready
    })
    .await;
    (a, b)
}

#[tokio::test]
async fn the_standby_takes_over_with_the_replicated_state_when_the_active_is_gone() {
    let (a, b) = pair().await;
    a.counters.set("+12125550100", 3);
    a.counters.set("+12125550101", 1);
    until(10, "the counters checkpointed to the standby", || async { b.copy().await.len() == 2 }).await;
    assert_eq!(b.counters.get("+12125550100"), None, "a Standby keeps a copy, it does not apply it");

    // The Active is gone: its mate takes over with the copy.
    a.handle.stop().await;
    assert!(!a.serving());
    until(10, "engine-b serves", || async { b.serving() }).await;
    assert_eq!(b.info().await.chassis_state, State::Active);
    assert_eq!(b.counters.get("+12125550100"), Some(3), "the copy is applied on taking over");
    let record = b.call_loss().await;
    let last = record.last().unwrap();
    assert_eq!((last.sessions_recovered, last.sessions_lost), (2, 0), "{record:?}");
    assert!(last.synchronised, "{record:?}");
    b.handle.stop().await;
}

#[tokio::test]
async fn a_manual_switchover_hands_the_service_to_a_ready_standby_and_refuses_a_held_one() {
    let (a, b) = pair().await;
    let valid = a.handle.request(SrpRequest::ValidateSwitchover).await.unwrap();
    assert_eq!(valid.data, SrpData::SwitchoverValidated(SwitchoverValidated { valid: true }));
    let done = a.handle.request(SrpRequest::InitiateSwitchover { force: false }).await.unwrap();
    assert_eq!(done.data, SrpData::SwitchoverDone(SwitchoverDone { state: State::Standby }));
    until(10, "engine-b serves, engine-a does not", || async { b.serving() && !a.serving() }).await;
    until(10, "engine-a a synchronised Standby", || async { a.info().await.ready }).await;

    // engine-a held in forced standby by its agent: no switchover towards it, not even forced.
    a.forced.send_replace(true);
    until(5, "engine-b sees its mate held", || async { b.info().await.peer_forced_standby }).await;
    // (Once the switchover just done has settled.)
    until(10, "validation refused for the held mate", || async {
        let r = b.handle.request(SrpRequest::ValidateSwitchover).await;
        r.is_err_and(|e| e.to_string().contains("forced standby"))
    })
    .await;
    for force in [false, true] {
        let refused = b.handle.request(SrpRequest::InitiateSwitchover { force }).await.unwrap_err();
        assert!(refused.to_string().contains("forced standby"), "force={force}: {refused}");
    }
    assert!(b.serving(), "a refused switchover changes nothing");
    a.handle.stop().await;
    b.handle.stop().await;
}

#[tokio::test]
async fn nack_settings_are_checked_and_answered_typed() {
    let (a, b) = (free_port(), free_port());
    let c = run(config("nack", ChassisMode::Primary, 1, a, b), false).await;
    let r = c.handle.request(SrpRequest::Nack { cmd: CMD.into(), enable: false }).await.unwrap();
    assert_eq!(r.data, SrpData::Nack(NackSet { cmd: CMD.into(), nack_enabled: false }));
    assert!(r.text.contains("NACK disabled for micro-chkpt-cmd 1"), "{}", r.text);
    let refused = c.handle.request(SrpRequest::Nack { cmd: 0, enable: true }).await.unwrap_err();
    assert!(matches!(refused, SrpError::Refused(_)), "{refused:?}");
    let valid = c.handle.request(SrpRequest::ValidateConfiguration).await.unwrap();
    assert_eq!(valid.data, SrpData::Configuration(ConfigurationValid { valid: true, peer_config_matches: None }));
    c.handle.stop().await;
}

#[tokio::test]
async fn a_monitor_group_with_every_target_down_hands_the_service_to_the_standby() {
    // engine-a watches one BGP peer (a TCP listener of this test); engine-b watches nothing.
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = peer.local_addr().unwrap().to_string();
    let (pa, pb) = (free_port(), free_port());
    let mut with_monitor = config("engine-a", ChassisMode::Primary, 1, pa, pb);
    let mut group = crate::config::MonitorGroupConfig::new(crate::config::MonitorKind::Bgp, 0, vec![target]);
    (group.interval_ms, group.timeout_ms, group.max_retries) = (50, 200, 2);
    with_monitor.monitors = vec![group];
    let a = run(with_monitor, false).await;
    let b = run(config("engine-b", ChassisMode::Backup, 2, pb, pa), false).await;
    until(20, "engine-a Active, engine-b a synchronised Standby", || async {
        a.serving() && b.info().await.chassis_state == State::Standby && b.info().await.ready
    })
    .await;
    let targets = match a.handle.request(SrpRequest::Show(SrpView::Monitor)).await.unwrap().data {
        SrpData::Monitor(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(targets.len(), 1);

    // The BGP peer goes away: engine-a's only group is down, engine-b takes over.
    drop(peer);
    until(10, "engine-b serves, engine-a does not", || async { b.serving() && !a.serving() }).await;
    let record = b.call_loss().await;
    assert!(record.last().unwrap().reason.contains("monitor"), "{record:?}");
    a.handle.stop().await;
    b.handle.stop().await;
}
