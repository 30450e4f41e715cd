//! Live sources: a UDP port receiving mirrored SIP datagrams, HEP v2/v3 over UDP and over TCP,
//! and (feature `live-capture`, in [`crate::interface`]) a network interface through libpcap.
//! All feed one [`Probe`]; a timer closes calls whose timeouts pass. HEP/TCP listeners hold a
//! bounded number of senders and disconnect idle ones ([`HepTcpLimits`]). The UDP ports (mirror
//! and HEP) are read in batches with `recvmmsg`, each batch fed to the probe under one lock,
//! from sockets with a large receive buffer ([`tollgate_udp::buffer`]).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tollgate_listener::{LimitedListener, ListenerStats};

use crate::decode::{Datagram, Transport};
use crate::hep;
use crate::pipeline::{CallReport, Probe};
use tollgate_udp::RecvBatch;

/// Most datagrams one `recvmmsg` reads from a HEP or mirror port: twice the ENUM server's
/// batch, since a probe's datagrams come in bursts from few senders and need no answer.
const UDP_BATCH: usize = 64;

/// Where finished calls go.
pub type CallSink = Arc<dyn Fn(CallReport) + Send + Sync>;

/// Counters of the live sources.
#[derive(Debug, Default)]
pub struct LiveStats {
    /// Datagrams received on mirror ports.
    pub mirrored: AtomicU64,
    /// HEP packets received.
    pub hep: AtomicU64,
    /// HEP packets that did not decode.
    pub hep_errors: AtomicU64,
    /// HEP packets of other protocols than SIP (ignored).
    pub hep_not_sip: AtomicU64,
    /// Frames read from the capture interface (those its filter let through).
    pub captured: AtomicU64,
    /// Packets the kernel dropped before the interface capture read them: libpcap's
    /// `ps_drop` (its buffer was full) plus `ps_ifdrop` (the interface dropped them).
    pub kernel_drops: AtomicU64,
    /// The interface capture: none, running, or stopped by itself and why.
    pub capture: Mutex<CaptureState>,
    /// Datagrams the kernel dropped because a mirror or HEP socket's receive buffer was full.
    pub socket_drops: AtomicU64,
    /// The smallest receive buffer the kernel granted a mirror or HEP/UDP socket, bytes as
    /// `getsockopt(SO_RCVBUF)` reports it (twice what was asked for when fully granted); 0
    /// without UDP sockets.
    pub udp_receive_buffer: AtomicU64,
    /// `net.core.rmem_max` when the UDP sockets were bound (0 when unknown).
    pub rmem_max: AtomicU64,
}

/// The state of the interface capture (feature `live-capture`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CaptureState {
    /// No interface is captured.
    #[default]
    None,
    /// Capturing on this interface.
    Running {
        /// The interface.
        interface: String,
    },
    /// The capture ended by itself (the interface went away or failed): nothing is seen
    /// from it any more.
    Stopped {
        /// The interface.
        interface: String,
        /// Why, as libpcap said.
        error: String,
    },
}

impl LiveStats {
    /// The interface capture's state now.
    pub fn capture_state(&self) -> CaptureState {
        self.capture.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the interface capture's state.
    pub fn set_capture_state(&self, state: CaptureState) {
        *self.capture.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }
}

/// Receive-buffer drops of the UDP sockets bound to `ports`, as the kernel counts them
/// (`drops`, the last column of `/proc/net/udp` and `/proc/net/udp6`). 0 where there is no
/// procfs.
pub fn udp_socket_drops(ports: &[u16]) -> u64 {
    let mut total = 0;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        total += drops_in_table(&text, ports);
    }
    total
}

fn drops_in_table(text: &str, ports: &[u16]) -> u64 {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields.get(1)?.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok())?;
            let drops = fields.last()?.parse::<u64>().ok()?;
            ports.contains(&port).then_some(drops)
        })
        .sum()
}

/// The probe shared by the sources.
#[derive(Clone)]
pub struct Shared {
    /// The probe.
    pub probe: Arc<Mutex<Probe>>,
    /// Where calls go.
    pub sink: CallSink,
    /// Counters.
    pub stats: Arc<LiveStats>,
}

impl Shared {
    /// Feeds one payload to the probe; finished calls go to the sink.
    pub(crate) fn feed(&self, d: &Datagram<'_>) {
        let reports = crate::pipeline::lock(&self.probe).on_datagram(d);
        for r in reports {
            (self.sink)(r);
        }
    }

    /// Feeds every datagram under one lock of the probe; the calls they finish go to the sink
    /// after the lock is released.
    fn feed_all<'a>(&self, datagrams: impl Iterator<Item = Datagram<'a>>) {
        let mut reports = Vec::new();
        {
            let mut probe = crate::pipeline::lock(&self.probe);
            for d in datagrams {
                reports.extend(probe.on_datagram(&d));
            }
        }
        for r in reports {
            (self.sink)(r);
        }
    }

    /// A captured packet: UDP as it is, TCP through the probe's stream reassembly.
    #[cfg(feature = "live-capture")]
    pub(crate) fn feed_packet(&self, p: &crate::decode::Packet<'_>) {
        let reports = crate::pipeline::lock(&self.probe).on_packet(p);
        for r in reports {
            (self.sink)(r);
        }
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Limits of the HEP/TCP listeners.
#[derive(Debug, Clone)]
pub struct HepTcpLimits {
    /// Most senders connected at once, per listener; more are closed at once and counted.
    pub max_connections: usize,
    /// A sender that sends nothing for this long is disconnected (it reconnects when it has
    /// something to send).
    pub idle_timeout: Duration,
    /// Connection counters (listener `hep_tcp`).
    pub stats: ListenerStats,
}

impl Default for HepTcpLimits {
    fn default() -> Self {
        HepTcpLimits { max_connections: 64, idle_timeout: Duration::from_secs(300), stats: ListenerStats::default() }
    }
}

/// Running live sources; dropping it stops them.
pub struct LiveProbe {
    /// Bound mirror addresses.
    pub mirror_addrs: Vec<SocketAddr>,
    /// Bound HEP/UDP addresses.
    pub hep_udp_addrs: Vec<SocketAddr>,
    /// Bound HEP/TCP addresses.
    pub hep_tcp_addrs: Vec<SocketAddr>,
    tasks: JoinSet<()>,
}

impl LiveProbe {
    /// Binds every address, then starts the sources and the expiry timer. Each HEP/TCP
    /// listener holds at most `hep_tcp_limits.max_connections` senders at once. Each UDP
    /// socket (mirror, HEP) asks for a receive buffer of `udp_receive_buffer` bytes; what the
    /// kernel granted is logged and kept in [`LiveStats::udp_receive_buffer`].
    pub async fn start(
        shared: Shared,
        mirror: &[SocketAddr],
        hep_udp: &[SocketAddr],
        hep_tcp: &[SocketAddr],
        hep_tcp_limits: HepTcpLimits,
        udp_receive_buffer: usize,
    ) -> io::Result<Self> {
        let bind_err =
            |what: &str, a: &SocketAddr, e: io::Error| io::Error::new(e.kind(), format!("cannot bind {what} {a}: {e}"));
        let mut mirror_sockets = Vec::new();
        for a in mirror {
            mirror_sockets.push(UdpSocket::bind(a).await.map_err(|e| bind_err("SIP mirror port", a, e))?);
        }
        let mut hep_sockets = Vec::new();
        for a in hep_udp {
            hep_sockets.push(UdpSocket::bind(a).await.map_err(|e| bind_err("HEP/UDP port", a, e))?);
        }
        // Every socket is bound before any is tuned and logged: a pair's chassis retries the
        // whole start while its mate still holds a port, and logs once, when all are bound.
        let mut hep_listeners = Vec::new();
        for a in hep_tcp {
            hep_listeners.push(TcpListener::bind(a).await.map_err(|e| bind_err("HEP/TCP port", a, e))?);
        }
        let mut smallest = None::<usize>;
        for (what, s) in
            mirror_sockets.iter().map(|s| ("SIP mirror port", s)).chain(hep_sockets.iter().map(|s| ("HEP/UDP port", s)))
        {
            let granted = receive_buffer(what, s, udp_receive_buffer)?;
            smallest = Some(smallest.map_or(granted, |g| g.min(granted)));
        }
        shared.stats.udp_receive_buffer.store(smallest.unwrap_or(0) as u64, Ordering::Relaxed);
        shared.stats.rmem_max.store(tollgate_udp::rmem_max().unwrap_or(0), Ordering::Relaxed);
        let mut live = LiveProbe {
            mirror_addrs: mirror_sockets.iter().map(|s| s.local_addr()).collect::<io::Result<_>>()?,
            hep_udp_addrs: hep_sockets.iter().map(|s| s.local_addr()).collect::<io::Result<_>>()?,
            hep_tcp_addrs: hep_listeners.iter().map(|l| l.local_addr()).collect::<io::Result<_>>()?,
            tasks: JoinSet::new(),
        };
        for s in mirror_sockets {
            live.tasks.spawn(mirror_loop(s, shared.clone()));
        }
        for s in hep_sockets {
            live.tasks.spawn(hep_udp_loop(s, shared.clone()));
        }
        for l in hep_listeners {
            let l = LimitedListener::new(l, "hep_tcp", hep_tcp_limits.max_connections, hep_tcp_limits.stats.clone())
                .limit_setting("probe.hep_tcp_max_connections");
            live.tasks.spawn(hep_tcp_accept(l, hep_tcp_limits.idle_timeout, shared.clone()));
        }
        let udp_ports: Vec<u16> = live.mirror_addrs.iter().chain(&live.hep_udp_addrs).map(|a| a.port()).collect();
        live.tasks.spawn(expiry(shared, udp_ports));
        Ok(live)
    }

    /// Runs `task` alongside the sources; it stops with them.
    pub fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Stops every source.
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Asks for a receive buffer of `bytes` on a UDP socket and logs what the kernel granted (a
/// warning when it gave less); returns the granted size.
fn receive_buffer(what: &str, socket: &UdpSocket, bytes: usize) -> io::Result<usize> {
    let local = socket.local_addr()?;
    let b = tollgate_udp::set_receive_buffer(socket, bytes)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot set the receive buffer of {what} {local}: {e}")))?;
    let rmem_max = b.rmem_max.map_or_else(|| "unknown".to_string(), |m| m.to_string());
    let how = if b.forced { "SO_RCVBUFFORCE" } else { "SO_RCVBUF" };
    if b.capped() {
        tracing::warn!(
            address = %local, requested = b.requested, granted = b.granted, rmem_max,
            "{what}: the kernel granted a smaller receive buffer than probe.udp_receive_buffer_mb asks for \
             ({how}, capped by net.core.rmem_max; run as root or raise the sysctl): bursts may be dropped"
        );
    } else {
        tracing::info!(address = %local, requested = b.requested, granted = b.granted, rmem_max, "{what}: receive buffer set with {how}");
    }
    Ok(b.granted)
}

async fn expiry(shared: Shared, udp_ports: Vec<u16>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if !udp_ports.is_empty() {
            shared.stats.socket_drops.store(udp_socket_drops(&udp_ports), Ordering::Relaxed);
        }
        let reports = crate::pipeline::lock(&shared.probe).expire(now_us());
        for r in reports {
            (shared.sink)(r);
        }
    }
}

/// Reads mirrored SIP datagrams a batch at a time; each batch is fed under one lock.
async fn mirror_loop(socket: UdpSocket, shared: Shared) {
    let local = socket.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut batch = RecvBatch::with_batch(UDP_BATCH);
    loop {
        let Ok(n) = batch.receive(&socket).await else { continue };
        shared.stats.mirrored.fetch_add(n as u64, Ordering::Relaxed);
        let ts_us = now_us();
        shared.feed_all(batch.datagrams().map(|(payload, d)| Datagram {
            ts_us,
            src: d.peer.unwrap_or(unknown),
            dst: local,
            transport: Transport::Udp,
            payload,
        }));
    }
}

/// Counts one HEP packet and decodes it: the SIP datagram it carries, or none (counted as an
/// error or as another protocol).
fn hep_datagram<'a>(stats: &LiveStats, bytes: &'a [u8]) -> Option<Datagram<'a>> {
    stats.hep.fetch_add(1, Ordering::Relaxed);
    match hep::decode(bytes) {
        Ok(p) if p.protocol_type == 1 => {
            let transport = if p.ip_protocol == 6 { Transport::Tcp } else { Transport::Udp };
            let ts_us = if p.ts_us > 0 { p.ts_us } else { now_us() };
            Some(Datagram { ts_us, src: p.src, dst: p.dst, transport, payload: p.payload })
        }
        Ok(_) => {
            stats.hep_not_sip.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(_) => {
            stats.hep_errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

fn feed_hep(shared: &Shared, bytes: &[u8]) {
    if let Some(d) = hep_datagram(&shared.stats, bytes) {
        shared.feed(&d);
    }
}

/// Reads HEP packets a batch at a time; each batch is fed under one lock.
async fn hep_udp_loop(socket: UdpSocket, shared: Shared) {
    let mut batch = RecvBatch::with_batch(UDP_BATCH);
    loop {
        if batch.receive(&socket).await.is_err() {
            continue;
        }
        let stats = &shared.stats;
        shared.feed_all(batch.datagrams().filter_map(|(bytes, _)| hep_datagram(stats, bytes)));
    }
}

async fn hep_tcp_accept(mut listener: LimitedListener, idle: Duration, shared: Shared) {
    let mut conns = JoinSet::new();
    loop {
        let (stream, _, slot) = listener.accept().await;
        let shared = shared.clone();
        let stats = listener.stats().clone();
        conns.spawn(async move {
            if let HepStreamEnd::Idle = hep_tcp_stream(stream, idle, &shared).await {
                stats.idle_closed.inc();
            }
            drop(slot);
        });
        while conns.try_join_next().is_some() {}
    }
}

/// Why a HEP/TCP connection was closed.
enum HepStreamEnd {
    /// The sender closed it, it failed, or it sent something that is not HEP3.
    Ended,
    /// Nothing arrived for the idle timeout.
    Idle,
}

/// Reads HEP3 packets from one sender until it closes, errs, sends something else, or sends
/// nothing for `idle`.
async fn hep_tcp_stream(mut stream: TcpStream, idle: Duration, shared: &Shared) -> HepStreamEnd {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = match tokio::time::timeout(idle, stream.read(&mut chunk)).await {
            Err(_) => return HepStreamEnd::Idle,
            Ok(Ok(0) | Err(_)) => return HepStreamEnd::Ended,
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        // Frame by the HEP3 length; anything else on a TCP stream is a protocol error.
        loop {
            match hep::hep3_frame_len(&buf) {
                Some(len) if len < 6 => return HepStreamEnd::Ended,
                Some(len) if buf.len() >= len => {
                    feed_hep(shared, &buf[..len]);
                    buf.drain(..len);
                }
                Some(_) => break,
                None if buf.len() >= 6 => {
                    shared.stats.hep_errors.fetch_add(1, Ordering::Relaxed);
                    return HepStreamEnd::Ended;
                }
                None => break,
            }
        }
        if buf.len() > 1 << 20 {
            return HepStreamEnd::Ended;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_drops_are_read_from_the_kernel_table() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
             1: 0100007F:2384 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 123 2 0000000000000000 17\n\
             2: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 124 2 0000000000000000 5\n";
        assert_eq!(drops_in_table(table, &[9092]), 17);
        assert_eq!(drops_in_table(table, &[9092, 53]), 22);
        assert_eq!(drops_in_table(table, &[5060]), 0);
    }

    #[tokio::test]
    async fn a_port_held_elsewhere_fails_the_start_before_any_socket_is_tuned() {
        // A pair's chassis retries the whole start every 5 ms while its mate holds a port:
        // nothing may be tuned (and logged) until every socket is bound.
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stats = Arc::new(LiveStats::default());
        let shared = Shared {
            probe: Arc::new(Mutex::new(Probe::new(crate::fuzzing::example_settings("held")))),
            sink: Arc::new(|_| {}),
            stats: stats.clone(),
        };
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let tcp = [held.local_addr().unwrap()];
        let e = LiveProbe::start(shared, &[any], &[any], &tcp, HepTcpLimits::default(), 1 << 20).await.err().unwrap();
        assert!(e.to_string().starts_with(&format!("cannot bind HEP/TCP port {}", tcp[0])), "{e}");
        assert_eq!(stats.udp_receive_buffer.load(Ordering::Relaxed), 0, "no UDP socket tuned");
    }

    #[tokio::test]
    async fn a_bound_socket_is_found_in_proc_net_udp() {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = s.local_addr().unwrap().port();
        let text = std::fs::read_to_string("/proc/net/udp").unwrap();
        assert!(text.contains(&format!(":{port:04X} ")), "port {port} in /proc/net/udp");
        assert_eq!(udp_socket_drops(&[port]), 0);
    }
}
