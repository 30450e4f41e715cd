//! Live sources: a UDP port receiving mirrored SIP datagrams, HEP v2/v3 over UDP and over TCP,
//! and (feature `live-capture`) a network interface through libpcap. All feed one [`Probe`];
//! a timer closes calls whose timeouts pass. HEP/TCP listeners hold a bounded number of senders
//! and disconnect idle ones ([`HepTcpLimits`]).

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
    /// Packets the kernel dropped before libpcap read them.
    pub kernel_drops: AtomicU64,
    /// Datagrams the kernel dropped because a mirror or HEP socket's receive buffer was full.
    pub socket_drops: AtomicU64,
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
    fn feed(&self, d: &Datagram<'_>) {
        let reports = self.probe.lock().unwrap_or_else(|e| e.into_inner()).on_datagram(d);
        for r in reports {
            (self.sink)(r);
        }
    }

    /// A captured packet: UDP as it is, TCP through the probe's stream reassembly.
    #[cfg(feature = "live-capture")]
    fn feed_packet(&self, p: &crate::decode::Packet<'_>) {
        let reports = self.probe.lock().unwrap_or_else(|e| e.into_inner()).on_packet(p);
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
    /// listener holds at most `hep_tcp_limits.max_connections` senders at once.
    pub async fn start(
        shared: Shared,
        mirror: &[SocketAddr],
        hep_udp: &[SocketAddr],
        hep_tcp: &[SocketAddr],
        hep_tcp_limits: HepTcpLimits,
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
        let mut hep_listeners = Vec::new();
        for a in hep_tcp {
            hep_listeners.push(TcpListener::bind(a).await.map_err(|e| bind_err("HEP/TCP port", a, e))?);
        }
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

async fn expiry(shared: Shared, udp_ports: Vec<u16>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if !udp_ports.is_empty() {
            shared.stats.socket_drops.store(udp_socket_drops(&udp_ports), Ordering::Relaxed);
        }
        let reports = shared.probe.lock().unwrap_or_else(|e| e.into_inner()).expire(now_us());
        for r in reports {
            (shared.sink)(r);
        }
    }
}

async fn mirror_loop(socket: UdpSocket, shared: Shared) {
    let local = socket.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else { continue };
        shared.stats.mirrored.fetch_add(1, Ordering::Relaxed);
        shared.feed(&Datagram {
            ts_us: now_us(),
            src: peer,
            dst: local,
            transport: Transport::Udp,
            payload: &buf[..n],
        });
    }
}

fn feed_hep(shared: &Shared, bytes: &[u8]) {
    shared.stats.hep.fetch_add(1, Ordering::Relaxed);
    match hep::decode(bytes) {
        Ok(p) if p.protocol_type == 1 => {
            let transport = if p.ip_protocol == 6 { Transport::Tcp } else { Transport::Udp };
            let ts_us = if p.ts_us > 0 { p.ts_us } else { now_us() };
            shared.feed(&Datagram { ts_us, src: p.src, dst: p.dst, transport, payload: p.payload });
        }
        Ok(_) => {
            shared.stats.hep_not_sip.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            shared.stats.hep_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn hep_udp_loop(socket: UdpSocket, shared: Shared) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((n, _)) = socket.recv_from(&mut buf).await else { continue };
        feed_hep(&shared, &buf[..n]);
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

/// Captures from a network interface through libpcap on a thread of its own, until the
/// returned flag is set. `filter` is a BPF expression (e.g. `udp or tcp`).
#[cfg(feature = "live-capture")]
pub fn capture_interface(
    shared: Shared,
    interface: &str,
    filter: &str,
) -> Result<(Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<()>), String> {
    use crate::decode::Decoder;
    let mut cap = pcap::Capture::from_device(interface)
        .map_err(|e| format!("interface {interface}: {e}"))?
        .promisc(true)
        .snaplen(65_535)
        // In immediate mode libpcap gives every packet a slot of the snap length (64 KiB): the
        // default 2 MiB ring held 32 packets, and a capture thread kept off the CPU for a
        // moment (a loaded server) dropped packets at once. 32 MiB holds about 500.
        .buffer_size(32 << 20)
        .timeout(200)
        .immediate_mode(true)
        .open()
        .map_err(|e| format!("cannot capture on {interface}: {e} (capturing needs root or CAP_NET_RAW)"))?;
    cap.filter(filter, true).map_err(|e| format!("filter {filter:?}: {e}"))?;
    let linktype = cap.get_datalink().0;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::Builder::new()
        .name(format!("capture-{interface}"))
        .spawn(move || {
            let mut decoder = Decoder::default();
            let mut stats_at = std::time::Instant::now();
            while !flag.load(Ordering::Relaxed) {
                match cap.next_packet() {
                    Ok(p) => {
                        // time_t and suseconds_t are i64 here but i32 on 32-bit targets.
                        #[allow(clippy::unnecessary_cast)]
                        let ts = p.header.ts.tv_sec as i64 * 1_000_000 + p.header.ts.tv_usec as i64;
                        decoder.decode(ts, linktype, p.data, |packet| shared.feed_packet(&packet));
                    }
                    Err(pcap::Error::TimeoutExpired) => {}
                    Err(_) => break,
                }
                if stats_at.elapsed() >= Duration::from_secs(1) {
                    stats_at = std::time::Instant::now();
                    if let Ok(s) = cap.stats() {
                        let dropped = u64::from(s.dropped) + u64::from(s.if_dropped);
                        shared.stats.kernel_drops.store(dropped, Ordering::Relaxed);
                    }
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok((stop, handle))
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
    async fn a_bound_socket_is_found_in_proc_net_udp() {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = s.local_addr().unwrap().port();
        let text = std::fs::read_to_string("/proc/net/udp").unwrap();
        assert!(text.contains(&format!(":{port:04X} ")), "port {port} in /proc/net/udp");
        assert_eq!(udp_socket_drops(&[port]), 0);
    }
}
