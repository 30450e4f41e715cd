//! Two SRP links over real TCP on 127.0.0.1: handshake, compression agreement, checkpoint
//! replication (micro and full), a corrupted checkpoint NACKed and resynchronised, a wrong key
//! rejected and counted, reconnection, and an election run over the link.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tollgate_srp::audit;
use tollgate_srp::checkpoint::{Checkpointer, NackKind, ReceiveOutcome};
use tollgate_srp::compress::Compression;
use tollgate_srp::config::{ChassisMode, SrpConfig};
use tollgate_srp::election::{self, Action, Event, Machine, Params, State};
use tollgate_srp::frame::{Frame, HEADER_LEN};
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
        tls: None,
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

/// Both sides send hellos, so the link outlives the dead interval.
fn keep_alive(a: &Link, d: &Link) {
    a.set_hello(Machine::new(Params::from_config(&srp_config("n-acceptor"))).0.status());
    d.set_hello(Machine::new(Params::from_config(&srp_config("n-dialer"))).0.status());
}

/// Reads one whole frame (header, payload and tag) off a raw socket, as it crossed the wire.
async fn read_raw_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut header = [0u8; HEADER_LEN];
    s.read_exact(&mut header).await?;
    let h = Frame::parse_header(&header).map_err(std::io::Error::other)?;
    let mut rest = vec![0; h.frame_len() - HEADER_LEN];
    s.read_exact(&mut rest).await?;
    Ok([header.to_vec(), rest].concat())
}

/// A dialer's handshake as it crosses the wire: a real dialer with the shared key, pointed at a
/// recorder instead of its mate.
async fn record_handshake(node: &str) -> Vec<u8> {
    let recorder = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = recorder.local_addr().unwrap();
    let (d, _de) = Link::start(link_config(node, LinkRole::Dial, addr, KEY, Compression::Zlib)).await.unwrap();
    let (mut s, _) = timeout(WAIT, recorder.accept()).await.expect("the dialer connects").unwrap();
    let bytes = timeout(WAIT, read_raw_frame(&mut s)).await.expect("a handshake frame").unwrap();
    d.shutdown().await;
    bytes
}

/// Replays `handshake` against `addr` until `until`, from `at_once` connections at a time (from
/// 127.0.0.1), each worker at most one connection per 5 ms: each sends the recorded bytes, reads
/// what the acceptor answers, then closes (even workers) or holds the connection until the
/// acceptor closes it (odd ones). Returns how many connections were made.
async fn replay(addr: SocketAddr, handshake: Vec<u8>, at_once: usize, until: Instant) -> u64 {
    let handshake = std::sync::Arc::new(handshake);
    let made = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..at_once {
        let (handshake, made) = (handshake.clone(), made.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let Ok(mut s) = TcpStream::connect(addr).await else { continue };
                made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if s.write_all(&handshake).await.is_err() {
                    continue;
                }
                let mut buf = vec![0u8; 4096];
                if worker % 2 == 0 {
                    let _ = timeout(Duration::from_millis(500), s.read(&mut buf)).await;
                } else {
                    // Held open: only the acceptor's handshake deadline ends it.
                    let _ = timeout(WAIT, async { while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {} }).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    made.load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn a_replayed_handshake_never_replaces_the_live_link() {
    let recorded = record_handshake("n-dialer").await;
    let (a, mut ae, d, mut de) = pair(Compression::Zlib, Compression::Zlib).await;
    keep_alive(&a, &d);
    connected(&mut ae).await;
    connected(&mut de).await;
    let addr = a.local_addr().unwrap();
    let before = a.statistics();

    let replays = replay(addr, recorded, 12, Instant::now() + Duration::from_secs(3)).await;
    assert!(replays >= 12, "{replays}");

    // The live link was never replaced: no connect, no disconnect on either side.
    let (sa, sd) = (a.statistics(), d.statistics());
    assert_eq!((sa.connects, sa.reconnects, sa.disconnects), (1, 0, 0), "acceptor: {sa:?}");
    assert_eq!((sd.connects, sd.reconnects, sd.disconnects), (1, 0, 0), "dialer: {sd:?}");
    // Every replay is counted as a failed handshake.
    let deadline = Instant::now() + WAIT;
    while a.statistics().handshake_failures < before.handshake_failures + replays {
        assert!(Instant::now() < deadline, "every replay is a failed handshake ({replays}): {:?}", a.statistics());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.connection().map(|c| c.peer_node_id), Some("n-dialer".to_string()));
    while let Ok(e) = ae.try_recv() {
        assert!(!matches!(e, LinkEvent::Connected(_) | LinkEvent::Disconnected { .. }), "acceptor: {e:?}");
    }
    while let Ok(e) = de.try_recv() {
        assert!(!matches!(e, LinkEvent::Connected(_) | LinkEvent::Disconnected { .. }), "dialer: {e:?}");
    }
    // And it still carries messages.
    d.send(Message::FullCheckpointRequest).await.unwrap();
    next_matching(&mut ae, "a request on the live link", |e| *e == LinkEvent::FullCheckpointRequest).await;
    a.shutdown().await;
    d.shutdown().await;
}

#[tokio::test]
async fn a_restarted_mate_links_while_replays_flood_the_acceptor() {
    let recorded = record_handshake("n-dialer").await;
    // The mate dials from 127.0.0.2 (its configured address); the flood comes from 127.0.0.1.
    let mut acceptor =
        link_config("n-acceptor", LinkRole::Accept, "127.0.0.2:9".parse().unwrap(), KEY, Compression::Zlib);
    acceptor.bind_address = "127.0.0.1:0".parse().unwrap();
    let (a, mut ae) = Link::start(acceptor).await.unwrap();
    a.set_hello(previous_release::status("n-acceptor"));
    let addr = a.local_addr().unwrap();
    let flood = tokio::spawn(replay(addr, recorded, 20, Instant::now() + Duration::from_secs(4)));
    let mate = || {
        let mut c = link_config("n-dialer", LinkRole::Dial, addr, KEY, Compression::Zlib);
        c.bind_address = "127.0.0.2:0".parse().unwrap();
        c
    };
    let (d, mut de) = Link::start(mate()).await.unwrap();
    d.set_hello(previous_release::status("n-dialer"));
    connected(&mut de).await;
    assert_eq!(connected(&mut ae).await.peer_node_id, "n-dialer");
    // The mate restarts in the middle of the flood, and links again.
    d.shutdown().await;
    next_matching(&mut ae, "Disconnected", |e| matches!(e, LinkEvent::Disconnected { .. })).await;
    let (d2, mut de2) = Link::start(mate()).await.unwrap();
    d2.set_hello(previous_release::status("n-dialer"));
    connected(&mut de2).await;
    assert_eq!(connected(&mut ae).await.peer_node_id, "n-dialer");
    let replays = flood.await.unwrap();
    let s = a.statistics();
    assert_eq!((s.connects, s.reconnects), (2, 1), "only the mate's connections: {s:?}");
    assert!(replays >= 100 && s.handshake_failures >= 100, "{replays} replays: {s:?}");
    d2.shutdown().await;
    a.shutdown().await;
}

/// A raw acceptor or dialer of the release before key confirmation: its messages as JSON,
/// without the `key_confirmation` field it did not know.
mod previous_release {
    use super::*;
    use tollgate_srp::frame::{FrameKey, FrameType};

    pub const DIALER_NONCE: &str = "00112233445566778899aabbccddeeff";
    pub const ACCEPTOR_NONCE: &str = "ffeeddccbbaa99887766554433221100";

    pub fn handshake(node: &str) -> Vec<u8> {
        let hs = serde_json::json!({
            "protocol": 1, "node_id": node, "compression": "zlib", "config_digest": "same", "nonce": DIALER_NONCE,
        });
        frame(FrameType::Handshake, 0, &FrameKey::new(KEY), serde_json::to_vec(&hs).unwrap())
    }

    pub fn ack(node: &str, dialer_nonce: &str) -> Vec<u8> {
        let ack = serde_json::json!({
            "protocol": 1, "node_id": node, "compression": "zlib", "agreed": "zlib", "config_digest": "same",
            "nonce": ACCEPTOR_NONCE, "dialer_nonce": dialer_nonce,
        });
        frame(FrameType::HandshakeAck, 0, &FrameKey::new(KEY), serde_json::to_vec(&ack).unwrap())
    }

    pub fn hello(node: &str, seq: u64, key: &FrameKey) -> Vec<u8> {
        let e = Message::Hello(status(node)).encode(Compression::Zlib);
        frame(e.frame_type, seq, key, e.payload)
    }

    pub fn status(node: &str) -> tollgate_srp::election::PeerStatus {
        Machine::new(Params::from_config(&srp_config(node))).0.status()
    }

    fn frame(frame_type: FrameType, seq: u64, key: &FrameKey, payload: Vec<u8>) -> Vec<u8> {
        Frame { frame_type, seq, payload }.encode(key).unwrap()
    }

    /// Reads and authenticates one frame.
    pub async fn read(s: &mut TcpStream, key: &FrameKey) -> Frame {
        let bytes = timeout(WAIT, read_raw_frame(s)).await.expect("a frame").unwrap();
        Frame::decode(&bytes, key).expect("an authentic frame").0
    }
}

#[tokio::test]
async fn a_dialer_of_the_previous_release_links_after_its_first_frame_and_its_replay_does_not() {
    use tollgate_srp::frame::{FrameKey, FrameType};
    let unused: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (a, mut ae) =
        Link::start(link_config("n-acceptor", LinkRole::Accept, unused, KEY, Compression::Zlib)).await.unwrap();
    a.set_hello(previous_release::status("n-acceptor"));
    let addr = a.local_addr().unwrap();
    let mut old = TcpStream::connect(addr).await.unwrap();
    old.write_all(&previous_release::handshake("n-old")).await.unwrap();
    let ack = previous_release::read(&mut old, &FrameKey::new(KEY)).await;
    assert_eq!((ack.frame_type, ack.seq), (FrameType::HandshakeAck, 0));
    let ack: serde_json::Value = serde_json::from_slice(&ack.payload).unwrap();
    assert_eq!(ack["dialer_nonce"], previous_release::DIALER_NONCE);
    let acceptor_nonce = ack["nonce"].as_str().unwrap().to_string();
    let key = FrameKey::session(KEY, previous_release::DIALER_NONCE.as_bytes(), acceptor_nonce.as_bytes());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!a.is_connected(), "not the link's before the dialer proves the session key");

    // Its first frame (its Hello, sequence 1, on the session key) is the proof, and is delivered.
    old.write_all(&previous_release::hello("n-old", 1, &key)).await.unwrap();
    assert_eq!(connected(&mut ae).await.peer_node_id, "n-old");
    let h = next_matching(&mut ae, "the old dialer's hello", |e| matches!(e, LinkEvent::Hello(_))).await;
    assert_eq!(h, LinkEvent::Hello(previous_release::status("n-old")));
    let f = previous_release::read(&mut old, &key).await;
    assert_eq!((f.frame_type, f.seq), (FrameType::Hello, 1), "the acceptor speaks on the session key");
    old.write_all(&previous_release::hello("n-old", 2, &key)).await.unwrap();
    next_matching(&mut ae, "the next hello", |e| matches!(e, LinkEvent::Hello(_))).await;

    // Its recorded handshake and hello, replayed: another nonce, so the hello fails authentication.
    let before = a.statistics();
    let mut replay = TcpStream::connect(addr).await.unwrap();
    replay.write_all(&previous_release::handshake("n-old")).await.unwrap();
    previous_release::read(&mut replay, &FrameKey::new(KEY)).await;
    replay.write_all(&previous_release::hello("n-old", 1, &key)).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while a.statistics().handshake_failures == before.handshake_failures {
        assert!(Instant::now() < deadline, "the replay is rejected: {:?}", a.statistics());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = a.statistics();
    assert_eq!((s.connects, s.disconnects), (1, 0), "{s:?}");
    assert_eq!(s.auth_failures, before.auth_failures + 1, "{s:?}");
    assert_eq!(a.connection().map(|c| c.peer_address), Some(old.local_addr().unwrap()));
    a.shutdown().await;
}

#[tokio::test]
async fn this_dialer_links_with_an_acceptor_of_the_previous_release() {
    use tollgate_srp::frame::{FrameKey, FrameType};
    let old = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (d, mut de) =
        Link::start(link_config("n-dialer", LinkRole::Dial, old.local_addr().unwrap(), KEY, Compression::Zlib))
            .await
            .unwrap();
    d.set_hello(previous_release::status("n-dialer"));
    let (mut s, _) = timeout(WAIT, old.accept()).await.unwrap().unwrap();
    let hs = previous_release::read(&mut s, &FrameKey::new(KEY)).await;
    assert_eq!((hs.frame_type, hs.seq), (FrameType::Handshake, 0));
    let hs: serde_json::Value = serde_json::from_slice(&hs.payload).unwrap();
    let dialer_nonce = hs["nonce"].as_str().unwrap().to_string();
    s.write_all(&previous_release::ack("n-old", &dialer_nonce)).await.unwrap();
    let key = FrameKey::session(KEY, dialer_nonce.as_bytes(), previous_release::ACCEPTOR_NONCE.as_bytes());
    assert_eq!(connected(&mut de).await.peer_node_id, "n-old");
    // No confirmation (that release closes the connection on a frame type it does not know): the
    // next frame is the first of the session.
    let f = previous_release::read(&mut s, &key).await;
    assert_eq!(f.seq, 1, "{f:?}");
    assert_ne!(f.frame_type, FrameType::HandshakeConfirm);
    s.write_all(&previous_release::hello("n-old", 1, &key)).await.unwrap();
    let h = next_matching(&mut de, "the old acceptor's hello", |e| matches!(e, LinkEvent::Hello(_))).await;
    assert_eq!(h, LinkEvent::Hello(previous_release::status("n-old")));
    assert_eq!(d.statistics().handshake_failures, 0);
    d.shutdown().await;
}
