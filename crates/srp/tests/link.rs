//! Two SRP links over real TCP on 127.0.0.1: handshake, compression agreement, checkpoint
//! replication (micro and full), a corrupted checkpoint NACKed and resynchronised, a wrong key
//! rejected and counted, reconnection, and an election run over the link.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::timeout;
use tollgate_srp::audit;
use tollgate_srp::checkpoint::{Checkpointer, NackKind, ReceiveOutcome};
use tollgate_srp::compress::Compression;
use tollgate_srp::config::{ChassisMode, SrpConfig};
use tollgate_srp::election::{self, Action, Event, Machine, Params, State};
use tollgate_srp::link::{Link, LinkConfig, LinkEvent, LinkRole};
use tollgate_srp::message::Message;
use tollgate_srp::session::SessionStore;

const KEY: &[u8] = b"0123456789abcdef-shared";
const WAIT: Duration = Duration::from_secs(10);

fn link_config(node: &str, role: LinkRole, peer: SocketAddr, key: &[u8], compression: Compression) -> LinkConfig {
    LinkConfig {
        node_id: node.into(),
        bind_address: "127.0.0.1:0".parse().unwrap(),
        peer_address: peer,
        shared_key: key.to_vec(),
        compression,
        config_digest: "same".into(),
        hello_interval: Duration::from_millis(100),
        dead_interval: Duration::from_secs(2),
        role,
    }
}

fn srp_config(node: &str) -> SrpConfig {
    let mut c = SrpConfig::new(
        node,
        "127.0.0.1:7501".parse().unwrap(),
        "127.0.0.1:7502".parse().unwrap(),
        std::str::from_utf8(KEY).unwrap(),
        ChassisMode::Primary,
        1,
    );
    c.checkpoint.delay_secs = 0;
    c
}

/// An acceptor and a dialer, connected.
async fn pair(
    acceptor_compression: Compression,
    dialer_compression: Compression,
) -> (Link, mpsc::Receiver<LinkEvent>, Link, mpsc::Receiver<LinkEvent>) {
    let unused: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (a, a_ev) =
        Link::start(link_config("n-acceptor", LinkRole::Accept, unused, KEY, acceptor_compression)).await.unwrap();
    let addr = a.local_addr().unwrap();
    let (d, d_ev) = Link::start(link_config("n-dialer", LinkRole::Dial, addr, KEY, dialer_compression)).await.unwrap();
    (a, a_ev, d, d_ev)
}

/// The next event matching `pred`, skipping others (hellos, ...).
async fn next_matching(rx: &mut mpsc::Receiver<LinkEvent>, what: &str, pred: impl Fn(&LinkEvent) -> bool) -> LinkEvent {
    let fut = async {
        loop {
            match rx.recv().await {
                Some(e) if pred(&e) => return e,
                Some(_) => {}
                None => panic!("link closed while waiting for {what}"),
            }
        }
    };
    timeout(WAIT, fut).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn connected(rx: &mut mpsc::Receiver<LinkEvent>) -> tollgate_srp::link::ConnectionInfo {
    match next_matching(rx, "Connected", |e| matches!(e, LinkEvent::Connected(_))).await {
        LinkEvent::Connected(info) => info,
        _ => unreachable!(),
    }
}

async fn checkpoint(rx: &mut mpsc::Receiver<LinkEvent>) -> LinkEvent {
    next_matching(rx, "a checkpoint", |e| matches!(e, LinkEvent::Checkpoint(_))).await
}

#[tokio::test]
async fn handshake_agrees_on_lz4_only_when_both_ask_for_it() {
    for (a, d, expected) in [
        (Compression::Lz4, Compression::Lz4, Compression::Lz4),
        (Compression::Lz4, Compression::Zlib, Compression::Zlib),
        (Compression::Zlib, Compression::Lz4, Compression::Zlib),
        (Compression::Zlib, Compression::Zlib, Compression::Zlib),
    ] {
        let (al, mut ae, dl, mut de) = pair(a, d).await;
        let ai = connected(&mut ae).await;
        let di = connected(&mut de).await;
        assert_eq!((ai.compression, di.compression), (expected, expected), "{a} x {d}");
        assert_eq!(ai.peer_node_id, "n-dialer");
        assert_eq!(di.peer_node_id, "n-acceptor");
        assert!(ai.config_matches && di.config_matches);
        assert_eq!(al.connection().map(|c| c.compression), Some(expected));
        al.shutdown().await;
        dl.shutdown().await;
    }
}

#[tokio::test]
async fn hellos_flow_both_ways() {
    let (al, mut ae, dl, mut de) = pair(Compression::Zlib, Compression::Zlib).await;
    connected(&mut ae).await;
    connected(&mut de).await;
    let (m, _) = Machine::new(Params::from_config(&srp_config("n-dialer")));
    dl.set_hello(m.status());
    let (m2, _) = Machine::new(Params::from_config(&srp_config("n-acceptor")));
    al.set_hello(m2.status());
    let h = next_matching(&mut ae, "hello", |e| matches!(e, LinkEvent::Hello(_))).await;
    assert_eq!(h, LinkEvent::Hello(m.status()));
    next_matching(&mut de, "hello", |e| matches!(e, LinkEvent::Hello(_))).await;
    // Periodic: more keep coming.
    for _ in 0..3 {
        next_matching(&mut ae, "hello", |e| matches!(e, LinkEvent::Hello(_))).await;
    }
    assert!(dl.statistics().hello_messages_sent >= 4);
    assert!(al.statistics().hello_messages_received >= 4);
    al.shutdown().await;
    dl.shutdown().await;
}

/// Active on the dialer, Standby on the acceptor.
async fn replicate(compression: Compression) {
    let (standby_link, mut se, active_link, mut ae) = pair(compression, compression).await;
    connected(&mut se).await;
    connected(&mut ae).await;
    let cfg = srp_config("n-a");
    let mut active = Checkpointer::new(&cfg);
    let mut standby = Checkpointer::new(&cfg);
    let mut a_store = SessionStore::new();
    let mut s_store = SessionStore::new();
    let now = Instant::now();
    active.on_connected(now);
    standby.on_connected(now);
    for i in 0..500 {
        let counter = serde_json::json!({ "calls": i, "window": "60s", "source": format!("+1212555{i:04}") });
        a_store.upsert_json(1, &format!("velocity:+1212555{i:04}"), &counter, now).unwrap();
    }

    // Full checkpoint on connect.
    for cp in active.full_checkpoint(&mut a_store, now) {
        active_link.send(Message::Checkpoint(cp)).await.unwrap();
    }
    loop {
        let LinkEvent::Checkpoint(cp) = checkpoint(&mut se).await else { unreachable!() };
        let r = standby.receive(&mut s_store, cp, Instant::now());
        assert!(r.nack.is_none(), "{r:?}");
        if matches!(r.outcome, ReceiveOutcome::FullApplied { .. }) {
            break;
        }
    }
    assert!(standby.is_synchronised());
    assert_eq!(s_store.len(), 500);
    assert!(audit::compare_stores(&a_store, &s_store, now, Duration::ZERO).is_clean());

    // Micro-checkpoints.
    a_store.upsert_json(1, "velocity:+12125550001", &serde_json::json!({ "calls": 99 }), now).unwrap();
    a_store.remove("velocity:+12125550002");
    a_store.upsert(2, "dialog:abc", b"early".to_vec(), now).unwrap();
    let micros = active.micro_checkpoints(&mut a_store, now);
    assert_eq!(micros.len(), 2);
    for cp in micros {
        active_link.send(Message::Checkpoint(cp)).await.unwrap();
    }
    for _ in 0..2 {
        let LinkEvent::Checkpoint(cp) = checkpoint(&mut se).await else { unreachable!() };
        let r = standby.receive(&mut s_store, cp, Instant::now());
        assert!(matches!(r.outcome, ReceiveOutcome::MicroApplied { .. }), "{r:?}");
    }
    assert!(audit::compare_stores(&a_store, &s_store, now, Duration::ZERO).is_clean());
    assert_eq!(
        s_store.get_json::<serde_json::Value>("velocity:+12125550001").unwrap(),
        Some(serde_json::json!({ "calls": 99 }))
    );
    let stats = active_link.statistics();
    assert!(stats.bytes_before_compression > stats.bytes_after_compression * 2, "{stats:?}");
    assert_eq!(active.statistics().micro_checkpoints_sent, 2);
    assert_eq!(standby.statistics().current_pre_allocated_calls, 500);
    standby_link.shutdown().await;
    active_link.shutdown().await;
}

#[tokio::test]
async fn checkpoints_replicate_with_zlib() {
    replicate(Compression::Zlib).await;
}

#[tokio::test]
async fn checkpoints_replicate_with_lz4() {
    replicate(Compression::Lz4).await;
}

#[tokio::test]
async fn a_corrupted_checkpoint_is_nacked_and_a_full_checkpoint_resyncs() {
    let (standby_link, mut se, active_link, mut ae) = pair(Compression::Zlib, Compression::Zlib).await;
    connected(&mut se).await;
    connected(&mut ae).await;
    let cfg = srp_config("n-a");
    let (mut active, mut standby) = (Checkpointer::new(&cfg), Checkpointer::new(&cfg));
    let (mut a_store, mut s_store) = (SessionStore::new(), SessionStore::new());
    let now = Instant::now();
    active.on_connected(now);
    standby.on_connected(now);
    for i in 0..20 {
        a_store.upsert(7, &format!("k{i}"), vec![i; 64], now).unwrap();
    }
    for cp in active.full_checkpoint(&mut a_store, now) {
        active_link.send(Message::Checkpoint(cp)).await.unwrap();
    }
    let LinkEvent::Checkpoint(cp) = checkpoint(&mut se).await else { unreachable!() };
    standby.receive(&mut s_store, cp, Instant::now());
    assert!(standby.is_synchronised());

    // A micro-checkpoint corrupted before it was framed (the frame itself authenticates fine).
    a_store.upsert(7, "k3", b"updated".to_vec(), now).unwrap();
    let mut micro = active.micro_checkpoints(&mut a_store, now);
    micro[0].checksum ^= 0x5a5a;
    active_link.send(Message::Checkpoint(micro.remove(0))).await.unwrap();
    let LinkEvent::Checkpoint(cp) = checkpoint(&mut se).await else { unreachable!() };
    assert!(cp.is_err(), "checksum mismatch detected");
    let receipt = standby.receive(&mut s_store, cp, Instant::now());
    let nack = receipt.nack.expect("NACK");
    assert_eq!((nack.kind, nack.cmd), (NackKind::Micro, Some(7)));
    assert!(!standby.is_synchronised());
    assert!(!audit::compare_stores(&a_store, &s_store, now, Duration::ZERO).is_clean());
    standby_link.send(Message::Nack(nack)).await.unwrap();

    // The Active answers with a full checkpoint.
    let LinkEvent::Nack(nack) = next_matching(&mut ae, "NACK", |e| matches!(e, LinkEvent::Nack(_))).await else {
        unreachable!()
    };
    for cp in active.handle_nack(&nack, &mut a_store, now) {
        active_link.send(Message::Checkpoint(cp)).await.unwrap();
    }
    let LinkEvent::Checkpoint(cp) = checkpoint(&mut se).await else { unreachable!() };
    let r = standby.receive(&mut s_store, cp, Instant::now());
    assert!(matches!(r.outcome, ReceiveOutcome::FullApplied { sessions: 20 }), "{r:?}");
    assert!(standby.is_synchronised());
    assert!(audit::compare_stores(&a_store, &s_store, now, Duration::ZERO).is_clean());
    assert_eq!(standby.statistics().nacks_sent, 1);
    assert_eq!(active.statistics().nacks_received, 1);
    assert_eq!(standby.statistics().checkpoint_failures, 1);
    standby_link.shutdown().await;
    active_link.shutdown().await;
}

#[tokio::test]
async fn a_wrong_key_is_rejected_and_counted() {
    let unused: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (a, mut ae) =
        Link::start(link_config("n-acceptor", LinkRole::Accept, unused, KEY, Compression::Zlib)).await.unwrap();
    let addr = a.local_addr().unwrap();
    let (d, mut de) =
        Link::start(link_config("n-dialer", LinkRole::Dial, addr, b"a-different-shared-key", Compression::Zlib))
            .await
            .unwrap();
    let deadline = Instant::now() + WAIT;
    while a.statistics().auth_failures < 2 {
        assert!(Instant::now() < deadline, "no auth failure counted: {:?}", a.statistics());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = a.statistics();
    assert!(s.handshake_failures >= 2, "{s:?}");
    assert_eq!(s.connects, 0);
    assert!(d.statistics().handshake_failures >= 1, "{:?}", d.statistics());
    assert!(!a.is_connected() && !d.is_connected());
    assert!(ae.try_recv().is_err(), "no event on the acceptor");
    assert!(de.try_recv().is_err(), "no event on the dialer");

    // The right key still gets in while the impostor keeps knocking.
    let (good, mut ge) =
        Link::start(link_config("n-good", LinkRole::Dial, addr, KEY, Compression::Zlib)).await.unwrap();
    connected(&mut ge).await;
    assert_eq!(connected(&mut ae).await.peer_node_id, "n-good");
    d.shutdown().await;
    good.shutdown().await;
    a.shutdown().await;
}

#[tokio::test]
async fn the_dialer_reconnects_and_the_acceptor_takes_the_new_connection() {
    let (a, mut ae, d, mut de) = pair(Compression::Lz4, Compression::Lz4).await;
    connected(&mut ae).await;
    connected(&mut de).await;
    let addr = a.local_addr().unwrap();
    // The dialer "restarts".
    d.shutdown().await;
    next_matching(&mut ae, "Disconnected", |e| matches!(e, LinkEvent::Disconnected { .. })).await;
    let (d2, mut de2) =
        Link::start(link_config("n-dialer", LinkRole::Dial, addr, KEY, Compression::Lz4)).await.unwrap();
    connected(&mut de2).await;
    connected(&mut ae).await;
    assert_eq!(a.statistics().reconnects, 1);
    // Messages flow on the new connection.
    d2.send(Message::FullCheckpointRequest).await.unwrap();
    next_matching(&mut ae, "request", |e| *e == LinkEvent::FullCheckpointRequest).await;
    // Queued while disconnected: dropped, counted.
    a.shutdown().await;
    next_matching(&mut de2, "Disconnected", |e| matches!(e, LinkEvent::Disconnected { .. })).await;
    d2.send(Message::FullCheckpointRequest).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while d2.statistics().messages_dropped == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d2.shutdown().await;
}

/// A minimal owner: feeds link events to the election machine and carries out its actions
/// (timers are not needed while the link is up).
struct Node {
    machine: Machine,
    link: Link,
    events: mpsc::Receiver<LinkEvent>,
    full_checkpoint_requested: bool,
}

impl Node {
    async fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::SendHello => self.link.set_hello(self.machine.status()),
                Action::RequestFullCheckpoint => {
                    self.full_checkpoint_requested = true;
                    let _ = self.link.send(Message::FullCheckpointRequest).await;
                }
                Action::SendSwitchoverRequest { force, reason } => {
                    let _ = self.link.send(Message::SwitchoverRequest { force, reason }).await;
                }
                Action::SendSwitchoverResponse { accepted, refusal } => {
                    let _ = self.link.send(Message::SwitchoverResponse { accepted, refusal }).await;
                }
                _ => {}
            }
        }
    }

    async fn feed(&mut self, e: Event) {
        let (m, actions) = election::step(&self.machine, e);
        self.machine = m;
        self.apply(actions).await;
    }

    /// Handles events for `d`.
    async fn run_for(&mut self, d: Duration) {
        let end = tokio::time::Instant::now() + d;
        while let Ok(Some(ev)) = tokio::time::timeout_at(end, self.events.recv()).await {
            let e = match ev {
                LinkEvent::Connected(_) => Event::LinkUp,
                LinkEvent::Disconnected { .. } => Event::LinkDown,
                LinkEvent::Hello(s) => Event::PeerHello(s),
                LinkEvent::SwitchoverRequest { force, reason } => Event::PeerSwitchoverRequest { force, reason },
                LinkEvent::SwitchoverResponse { accepted, .. } => Event::PeerSwitchoverResponse { accepted },
                LinkEvent::FullCheckpointRequest => continue,
                _ => continue,
            };
            self.feed(e).await;
            if self.machine.state() == State::PendingActive {
                self.feed(Event::PostSwitchoverComplete).await;
            }
        }
    }
}

/// Runs both owners until `done` holds (at most 10 s).
async fn settle(a: &mut Node, d: &mut Node, done: impl Fn(&Node, &Node) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(a, d) {
        assert!(Instant::now() < deadline, "no convergence: {:?} / {:?}", a.machine, d.machine);
        tokio::join!(a.run_for(Duration::from_millis(100)), d.run_for(Duration::from_millis(100)));
    }
}

#[tokio::test]
async fn an_election_over_tcp_elects_one_active_and_switches_over() {
    let (al, ae, dl, de) = pair(Compression::Zlib, Compression::Zlib).await;
    let mut a_cfg = srp_config("n-acceptor");
    a_cfg.chassis_mode = ChassisMode::Backup;
    let mut d_cfg = srp_config("n-dialer");
    d_cfg.chassis_mode = ChassisMode::Primary;
    let (ma, a_start) = Machine::new(Params::from_config(&a_cfg));
    let (md, d_start) = Machine::new(Params::from_config(&d_cfg));
    let mut a = Node { machine: ma, link: al, events: ae, full_checkpoint_requested: false };
    let mut d = Node { machine: md, link: dl, events: de, full_checkpoint_requested: false };
    a.apply(a_start).await;
    d.apply(d_start).await;
    settle(&mut a, &mut d, |a, d| d.machine.state() == State::Active && a.machine.state() == State::Standby).await;
    assert_eq!(d.machine.state(), State::Active, "the primary chassis-mode wins");
    assert!(a.full_checkpoint_requested);
    assert!(d.machine.route_modifier() < a.machine.route_modifier());

    // The standby reports itself synchronised, then an operator switches over.
    a.feed(Event::SyncStatus { ready: true }).await;
    settle(&mut a, &mut d, |_, d| d.machine.peer().is_some_and(|(p, _)| p.ready)).await;
    d.feed(Event::ManualSwitchover { force: false }).await;
    assert_eq!(d.machine.state(), State::PendingStandby);
    settle(&mut a, &mut d, |a, d| a.machine.state() == State::Active && d.machine.state() == State::Standby).await;
    a.link.shutdown().await;
    d.link.shutdown().await;
}
