//! The SIP redirect server's UDP and TCP listeners. Each decision's record is appended to the
//! spool before its answer is sent, so every answered INVITE is on record even if the process
//! is killed right after; a record the spool does not take is counted
//! (`tollgate_records_not_written_total{dataset="ENUM"}`) and logged, and the answer is still
//! sent, exactly as the ENUM listeners do (`tollgate_enum::server`).
//!
//! UDP: as ENUM's workers, with ENUM's batching (`recvmmsg`, one spool write per batch,
//! `sendmmsg`) and kernel receive timestamps; `enum.udp_workers` and `enum.udp_reuseport` apply
//! to these sockets too. A datagram larger than `sip_redirect.max_message_bytes` is dropped
//! unanswered and counted (`tollgate_sip_redirect_dropped_total{reason="oversized"}`). Each
//! response goes where the redirector says (the top Via's address or `rport`).
//!
//! TCP: connections are accepted through [`tollgate_listener::LimitedListener`] (at most
//! `tcp_max_connections` at once; descriptor exhaustion backs off) and at most
//! `tcp_max_connections_per_source` per source address. Messages are framed by
//! [`tollgate_sip::stream::StreamFramer`] (the head's empty line, then Content-Length bytes),
//! and each response is written on the connection the request came on. The connection is
//! closed (and counted in `tollgate_sip_redirect_tcp_closed_total{reason}`):
//! * when a message, or a head still without its empty line, exceeds `max_message_bytes`
//!   (`oversized`), before the rest is read;
//! * when a message has no Content-Length (`no_content_length`: RFC 3261 section 18.3 requires
//!   it on a stream, and without it the next message's start is unknowable, so no answer can
//!   be trusted to belong to the right request) or a Content-Length that is not a number or
//!   conflicts with another (`bad_content_length`);
//! * when what arrives is not SIP at all (`not_sip`);
//! * when no whole message arrived within `tcp_idle_timeout_secs` of the previous one (or of
//!   the connection's start), however many bytes trickled in (`idle`): a slow or silent client
//!   does not keep its slot;
//! * after `tcp_max_connection_secs`, once the answer in progress is written (`lifetime`);
//! * after the 403 to a request from an address in no client (`not_client`, only with
//!   `answer_strangers`: without it such a connection is closed at accept and counted in
//!   `tollgate_sip_redirect_tcp_refused_total{reason="not_client"}`).
//!
//! TLS (`listen_tls`): the same TCP server, one code path generic over the stream, with a
//! TLS 1.2 or 1.3 handshake first ([`TlsListeners`]: `[tls]`'s certificate, no client
//! certificate asked). A handshake not finished within `tcp_idle_timeout_secs` closes the
//! connection (`tcp_closed{reason="handshake_timeout"}`), a failed one too
//! (`tcp_closed{reason="handshake_failed"}`: a client speaking plain SIP or TCP to the TLS
//! port, or refusing the certificate). The client list, limits and framing are TCP's; requests
//! are counted with `transport="tls"`; records say `transport = "tcp"` (the records' transport
//! is the IP protocol), and each response is written on the connection.
//!
//! A panic while handling a message (a bug) is caught, counted
//! (`tollgate_sip_redirect_dropped_total{reason="internal_error"}`) and logged; the message gets
//! no answer and the UDP worker or TCP connection keeps serving.
//!
//! CRLF keepalives between messages are skipped; a double-CRLF ping (RFC 5626 section 3.5.1) is
//! answered with a CRLF pong. Keepalives do not postpone the idle timeout.

use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::timeout_at;
use tollgate_enum::arrival;
use tollgate_enum::server::{RecordSink, append_records, bind_reuseport_group};
use tollgate_listener::{LimitedListener, PerSourceLimit};
use tollgate_logthrottle::LogThrottle;
use tollgate_records::Transport;
use tollgate_records::spool::SpoolLane;
use tollgate_sip::stream::{Frame, StreamFramer, leading_line_ends};
use tollgate_tls::tokio_rustls::TlsAcceptor;
use tollgate_udp::{Outgoing, RecvBatch, enable_receive_timestamps, send_all};

use crate::config::RedirectConfig;
use crate::metrics::{ReasonLabels, RedirectMetrics, TCP_LISTENER, TLS_LISTENER, method_label};
use crate::respond::{Handled, Outcome, Redirector, RequestContext};

static RECEIVE_ERROR_LOG: LogThrottle = LogThrottle::new(10_000);
static SEND_ERROR_LOG: LogThrottle = LogThrottle::new(10_000);
static REFUSED_LOG: LogThrottle = LogThrottle::new(10_000);
static CLOSED_LOG: LogThrottle = LogThrottle::new(10_000);
static PANIC_LOG: LogThrottle = LogThrottle::new(10_000);
static HANDSHAKE_LOG: LogThrottle = LogThrottle::new(10_000);

/// A running SIP redirect server. Dropping it stops every listener.
pub struct RedirectServer {
    /// Bound UDP addresses (with the real port when 0 was asked).
    pub udp_addrs: Vec<SocketAddr>,
    /// Bound TCP addresses.
    pub tcp_addrs: Vec<SocketAddr>,
    /// Bound TLS addresses.
    pub tls_addrs: Vec<SocketAddr>,
    tasks: JoinSet<()>,
}

/// The TLS listen addresses and the acceptor (a rustls server configuration, e.g.
/// [`tollgate_tls::server_config_without_client_auth`] over `[tls]`'s material) they use.
#[derive(Clone)]
pub struct TlsListeners {
    /// Where to listen.
    pub addrs: Vec<SocketAddr>,
    /// The handshake's configuration.
    pub acceptor: TlsAcceptor,
}

impl RedirectServer {
    /// Binds every configured address, then starts serving. Fails (naming the address) if any
    /// address cannot be bound, before serving anything. Spool lanes: `sip_udp<i>_<w>` per UDP
    /// address and worker, `sip_tcp<i>` per TCP listener.
    pub async fn start(
        redirector: Arc<Redirector>,
        sink: RecordSink,
        metrics: Arc<RedirectMetrics>,
        udp: &[SocketAddr],
        tcp: &[SocketAddr],
    ) -> io::Result<Self> {
        Self::start_with_tls(redirector, sink, metrics, udp, tcp, None).await
    }

    /// [`RedirectServer::start`], with TLS listeners too (spool lane `sip_tls<i>` each).
    pub async fn start_with_tls(
        redirector: Arc<Redirector>,
        sink: RecordSink,
        metrics: Arc<RedirectMetrics>,
        udp: &[SocketAddr],
        tcp: &[SocketAddr],
        tls: Option<&TlsListeners>,
    ) -> io::Result<Self> {
        let bind_err = |proto: &str, addr: &SocketAddr, e: io::Error| {
            io::Error::new(e.kind(), format!("cannot bind SIP redirect {proto} listener {addr}: {e}"))
        };
        let workers = redirector.responder().config().udp_worker_count().max(1);
        let reuseport = redirector.responder().config().udp_reuseport;
        let mut udp_groups: Vec<Vec<Arc<UdpSocket>>> = Vec::new();
        for addr in udp {
            let group = if reuseport && workers > 1 {
                bind_reuseport_group(*addr, workers).map_err(|e| bind_err("UDP", addr, e))?
            } else {
                vec![UdpSocket::bind(addr).await.map_err(|e| bind_err("UDP", addr, e))?]
            };
            for s in &group {
                if !enable_receive_timestamps(s) {
                    tracing::warn!(%addr, "no kernel receive timestamps on this SIP socket: latency is measured from when a request is read");
                }
            }
            udp_groups.push(group.into_iter().map(Arc::new).collect());
        }
        let mut tcp_listeners = Vec::new();
        for addr in tcp {
            tcp_listeners.push(TcpListener::bind(addr).await.map_err(|e| bind_err("TCP", addr, e))?);
        }
        let mut tls_listeners = Vec::new();
        for addr in tls.map_or(&[][..], |t| &t.addrs) {
            tls_listeners.push(TcpListener::bind(addr).await.map_err(|e| bind_err("TLS", addr, e))?);
        }
        let mut server = RedirectServer {
            udp_addrs: udp_groups.iter().map(|g| g[0].local_addr()).collect::<io::Result<_>>()?,
            tcp_addrs: tcp_listeners.iter().map(|l| l.local_addr()).collect::<io::Result<_>>()?,
            tls_addrs: tls_listeners.iter().map(|l| l.local_addr()).collect::<io::Result<_>>()?,
            tasks: JoinSet::new(),
        };
        let max_message = redirector.config().max_message_bytes;
        for (i, group) in udp_groups.into_iter().enumerate() {
            for w in 0..workers {
                let lane = sink.lane(&format!("sip_udp{i}_{w}"))?;
                let socket = group[w % group.len()].clone();
                server.tasks.spawn(udp_worker(socket, redirector.clone(), lane, metrics.clone(), max_message));
            }
        }
        let limits = TcpLimits::of(redirector.config());
        for (i, listener) in tcp_listeners.into_iter().enumerate() {
            let lane = Arc::new(Mutex::new(sink.lane(&format!("sip_tcp{i}"))?));
            let listener = LimitedListener::new(listener, TCP_LISTENER, limits.max, metrics.tcp.clone())
                .limit_setting("sip_redirect.tcp_max_connections");
            server.tasks.spawn(tcp_acceptor(listener, None, redirector.clone(), lane, metrics.clone(), limits));
        }
        if let Some(tls) = tls {
            for (i, listener) in tls_listeners.into_iter().enumerate() {
                let lane = Arc::new(Mutex::new(sink.lane(&format!("sip_tls{i}"))?));
                let listener = LimitedListener::new(listener, TLS_LISTENER, limits.max, metrics.tls.clone())
                    .limit_setting("sip_redirect.tcp_max_connections");
                let acceptor = Some(tls.acceptor.clone());
                server.tasks.spawn(tcp_acceptor(listener, acceptor, redirector.clone(), lane, metrics.clone(), limits));
            }
        }
        Ok(server)
    }

    /// Stops every listener and waits for the tasks to end (open TCP connections are closed).
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// A message of a UDP batch handled, until its answer is sent.
struct Pending {
    handled: Handled,
    method: &'static str,
    received: Instant,
}

/// One receive task of a UDP socket: reads what the socket has queued (up to a batch with one
/// system call), handles each datagram, writes the batch's records to its own spool lane with
/// one write, and only then sends the answers.
async fn udp_worker(
    socket: Arc<UdpSocket>,
    redirector: Arc<Redirector>,
    mut lane: Option<SpoolLane>,
    metrics: Arc<RedirectMetrics>,
    max_message: usize,
) {
    let Ok(local) = socket.local_addr() else { return };
    let mut batch = RecvBatch::new();
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        if let Err(e) = batch.receive(&socket).await {
            // ICMP errors from earlier sends surface here on Linux; keep serving.
            metrics.dropped("receive_error");
            if let Some(left_out) = RECEIVE_ERROR_LOG.allow() {
                tracing::debug!(error = %e, left_out, "SIP redirect: UDP receive error");
            }
            continue;
        }
        let (read_at, wall) = (Instant::now(), SystemTime::now());
        for (packet, d) in batch.datagrams() {
            let Some(peer) = d.peer.filter(|_| !packet.is_empty()) else {
                // Empty (a keep-alive of no bytes), or no IP sender: nothing to answer.
                continue;
            };
            if packet.len() > max_message {
                metrics.dropped("oversized");
                continue;
            }
            let (received, now) = arrival(d.kernel_time, read_at, wall);
            let ctx = RequestContext { peer, local, transport: Transport::Udp, received, now };
            let Some(handled) = guarded(|| redirector.handle(packet, &ctx), peer, &metrics) else { continue };
            pending.push(Pending { handled, method: method_label(packet), received });
        }
        append_records(
            &mut lane,
            pending.iter().filter_map(|p| p.handled.record.as_ref()),
            &metrics.records_not_written,
        );
        let outgoing: Vec<Outgoing<'_>> = pending
            .iter()
            .filter_map(|p| p.handled.response.as_ref().map(|(bytes, to)| Outgoing { bytes, peer: *to }))
            .collect();
        send_all(&socket, &outgoing, |o, e| {
            metrics.dropped("send_error");
            if let Some(left_out) = SEND_ERROR_LOG.allow() {
                tracing::debug!(error = %e, peer = %o.peer, left_out, "SIP redirect: UDP send error");
            }
        })
        .await;
        drop(outgoing);
        let sent_at = Instant::now();
        for p in pending.drain(..) {
            let seconds = sent_at.saturating_duration_since(p.received).as_secs_f64();
            metrics.handled("udp", p.method, &p.handled, Some(seconds));
        }
        metrics.sync_evicted(redirector.retransmissions_evicted());
    }
}

/// Runs `handle`; a panic in it (a bug: nothing a client sends should cause one) is counted
/// (`dropped{reason="internal_error"}`) and logged, throttled, and `None` is returned, so the
/// UDP worker or TCP connection keeps serving instead of ending for good.
fn guarded(handle: impl FnOnce() -> Handled, peer: SocketAddr, metrics: &RedirectMetrics) -> Option<Handled> {
    match std::panic::catch_unwind(AssertUnwindSafe(handle)) {
        Ok(handled) => Some(handled),
        Err(panic) => {
            metrics.dropped("internal_error");
            if let Some(left_out) = PANIC_LOG.allow() {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(%peer, panic = %what, left_out, "SIP redirect: a message's handling panicked (a bug); dropped, still serving");
            }
            None
        }
    }
}

/// The limits of one TCP listener, from the configuration (each at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TcpLimits {
    max: usize,
    per_source: usize,
    max_message: usize,
    idle: Duration,
    lifetime: Duration,
}

impl TcpLimits {
    fn of(config: &RedirectConfig) -> Self {
        TcpLimits {
            max: config.tcp_max_connections.max(1),
            per_source: config.tcp_max_connections_per_source.max(1),
            max_message: config.max_message_bytes.max(1),
            idle: Duration::from_secs(config.tcp_idle_timeout_secs.max(1)),
            lifetime: Duration::from_secs(config.tcp_max_connection_secs.max(1)),
        }
    }
}

/// Accepts connections within the listener's total and the per-source limit, and serves each
/// in its own task (after a TLS handshake with `tls`).
async fn tcp_acceptor(
    mut listener: LimitedListener,
    tls: Option<TlsAcceptor>,
    redirector: Arc<Redirector>,
    lane: Arc<Mutex<Option<SpoolLane>>>,
    metrics: Arc<RedirectMetrics>,
    limits: TcpLimits,
) {
    let per_source = PerSourceLimit::new(limits.per_source);
    let answer_strangers = redirector.config().answer_strangers;
    // This listener's own counters (TCP or TLS).
    let stats = listener.stats().clone();
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer, slot) = listener.accept().await;
        if !answer_strangers && redirector.config().client(peer.ip()).is_none() {
            // Not a client: it gets no slot to hold (sip_redirect.answer_strangers answers 403).
            metrics.tcp_refused.get_or_create(&ReasonLabels { reason: "not_client" }).inc();
            if let Some(left_out) = REFUSED_LOG.allow() {
                tracing::warn!(%peer, left_out, "SIP redirect: TCP connection refused: its address is in no [[sip_redirect.clients]]");
            }
            drop((stream, slot));
            continue;
        }
        let Some(source_slot) = per_source.take(peer.ip()) else {
            metrics.tcp_refused.get_or_create(&ReasonLabels { reason: "per_source" }).inc();
            if let Some(left_out) = REFUSED_LOG.allow() {
                tracing::warn!(
                    %peer,
                    left_out,
                    "SIP redirect: TCP connection refused: its source holds sip_redirect.tcp_max_connections_per_source ({}) already",
                    limits.per_source
                );
            }
            drop((stream, slot));
            continue;
        };
        let (redirector, lane, metrics, tls, stats) =
            (redirector.clone(), lane.clone(), metrics.clone(), tls.clone(), stats.clone());
        connections.spawn(async move {
            let closed = serve_connection(stream, tls, peer, &redirector, &lane, &metrics, limits).await;
            if let Some(reason) = closed.reason() {
                metrics.tcp_closed(reason);
                let listener_counter = match closed {
                    Closed::Idle | Closed::HandshakeTimeout => Some(&stats.idle_closed),
                    Closed::HandshakeFailed => Some(&stats.tls_failed),
                    _ => None,
                };
                if let Some(counter) = listener_counter {
                    counter.inc();
                }
                if closed.is_protocol_error()
                    && let Some(left_out) = CLOSED_LOG.allow()
                {
                    tracing::warn!(%peer, reason, left_out, "SIP redirect: TCP connection closed: the client broke SIP framing (RFC 3261 18.3) or the sip_redirect.max_message_bytes limit");
                }
            }
            drop((slot, source_slot));
        });
        while connections.try_join_next().is_some() {}
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    /// The client closed it, or it failed.
    Peer,
    /// No whole message within the idle timeout.
    Idle,
    /// It reached the maximum lifetime.
    Lifetime,
    /// A message (or head) beyond `max_message_bytes`.
    Oversized,
    /// A message without Content-Length.
    NoContentLength,
    /// An unreadable or conflicting Content-Length.
    BadContentLength,
    /// Bytes that are not SIP.
    NotSip,
    /// A request from an address in no client answered 403 (`answer_strangers`).
    NotClient,
    /// No TLS handshake finished within the idle timeout.
    HandshakeTimeout,
    /// The TLS handshake failed (not TLS, or the client refused the certificate).
    HandshakeFailed,
}

impl Closed {
    /// The `reason` label when the server closed it.
    fn reason(self) -> Option<&'static str> {
        Some(match self {
            Closed::Peer => return None,
            Closed::Idle => "idle",
            Closed::Lifetime => "lifetime",
            Closed::Oversized => "oversized",
            Closed::NoContentLength => "no_content_length",
            Closed::BadContentLength => "bad_content_length",
            Closed::NotSip => "not_sip",
            Closed::NotClient => "not_client",
            Closed::HandshakeTimeout => "handshake_timeout",
            Closed::HandshakeFailed => "handshake_failed",
        })
    }

    fn is_protocol_error(self) -> bool {
        matches!(self, Closed::Oversized | Closed::NoContentLength | Closed::BadContentLength | Closed::NotSip)
    }
}

/// Bytes read from a connection at a time.
const READ_CHUNK: usize = 8192;

/// Serves one accepted connection, over TLS when `tls` is given (the handshake must finish
/// within the idle timeout, which counts toward the connection's lifetime); returns why it
/// ended.
async fn serve_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    peer: SocketAddr,
    redirector: &Redirector,
    lane: &Mutex<Option<SpoolLane>>,
    metrics: &RedirectMetrics,
    limits: TcpLimits,
) -> Closed {
    let (Ok(local), Ok(())) = (stream.local_addr(), stream.set_nodelay(true)) else {
        return Closed::Peer;
    };
    let started = tokio::time::Instant::now();
    let Some(acceptor) = tls else {
        return serve(stream, "tcp", peer, local, started, redirector, lane, metrics, limits).await;
    };
    match timeout_at(started + limits.idle, acceptor.accept(stream)).await {
        Err(_) => Closed::HandshakeTimeout,
        Ok(Err(e)) => {
            if let Some(left_out) = HANDSHAKE_LOG.allow() {
                tracing::debug!(%peer, error = %e, left_out, "SIP redirect: TLS handshake failed");
            }
            Closed::HandshakeFailed
        }
        Ok(Ok(stream)) => serve(stream, "tls", peer, local, started, redirector, lane, metrics, limits).await,
    }
}

/// Serves one connection (TCP or TLS: `transport` is the requests' metric label): frames its
/// messages, handles each, spools its record, writes its answer; returns why it ended. Holds
/// at most `max_message + READ_CHUNK` bytes.
#[allow(clippy::too_many_arguments)] // the parts of a connection, each used
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    transport: &'static str,
    peer: SocketAddr,
    local: SocketAddr,
    started: tokio::time::Instant,
    redirector: &Redirector,
    lane: &Mutex<Option<SpoolLane>>,
    metrics: &RedirectMetrics,
    limits: TcpLimits,
) -> Closed {
    let end = started + limits.lifetime;
    let mut idle_end = tokio::time::Instant::now() + limits.idle;
    let mut framer = StreamFramer::new(limits.max_message);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        // Every whole message buffered, in order.
        loop {
            let line_ends = leading_line_ends(&buf);
            if line_ends > 0 {
                let ping = buf[..line_ends].windows(4).any(|w| w == b"\r\n\r\n");
                buf.drain(..line_ends);
                if ping && write(&mut stream, b"\r\n", limits.idle).await.is_err() {
                    return Closed::Peer;
                }
            }
            let length = match framer.next(&buf) {
                Frame::Whole(n) => n,
                Frame::Incomplete => break,
                Frame::TooLarge => {
                    metrics.dropped("oversized");
                    return Closed::Oversized;
                }
                Frame::NoContentLength => {
                    metrics.dropped("no_content_length");
                    return Closed::NoContentLength;
                }
                Frame::BadContentLength => {
                    metrics.dropped("bad_content_length");
                    return Closed::BadContentLength;
                }
            };
            let message = &buf[..length];
            let method = method_label(message);
            if method == "unknown" {
                metrics.dropped("not_sip");
                return Closed::NotSip;
            }
            // Over TCP the receive time is when the whole message was read.
            let ctx =
                RequestContext { peer, local, transport: Transport::Tcp, received: Instant::now(), now: Utc::now() };
            let handled = guarded(|| redirector.handle(message, &ctx), peer, metrics);
            buf.drain(..length);
            let Some(handled) = handled else {
                idle_end = tokio::time::Instant::now() + limits.idle;
                continue;
            };
            if let Some(record) = &handled.record {
                let mut guard = lane.lock().unwrap_or_else(|e| e.into_inner());
                append_records(&mut guard, std::iter::once(record), &metrics.records_not_written);
            }
            let mut seconds = None;
            if let Some((bytes, _)) = &handled.response {
                // A client that does not read its answers does not hold the slot either.
                match write(&mut stream, bytes, limits.idle).await {
                    Ok(()) => seconds = Some(ctx.received.elapsed().as_secs_f64()),
                    Err(WriteFailed::Error) => {
                        metrics.dropped("send_error");
                        metrics.handled(transport, method, &handled, None);
                        return Closed::Peer;
                    }
                    Err(WriteFailed::Timeout) => {
                        metrics.dropped("send_error");
                        metrics.handled(transport, method, &handled, None);
                        return Closed::Idle;
                    }
                }
            }
            metrics.handled(transport, method, &handled, seconds);
            metrics.sync_evicted(redirector.retransmissions_evicted());
            if handled.outcome == Outcome::Forbidden {
                return Closed::NotClient;
            }
            if tokio::time::Instant::now() >= end {
                return Closed::Lifetime;
            }
            idle_end = tokio::time::Instant::now() + limits.idle;
        }
        let (deadline, why) = if idle_end < end { (idle_end, Closed::Idle) } else { (end, Closed::Lifetime) };
        match timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return why,
            Ok(Ok(0) | Err(_)) => return Closed::Peer,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Why a write on a connection failed.
enum WriteFailed {
    Error,
    Timeout,
}

/// Writes `bytes`, waiting at most `patience` for the client to take them.
async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8], patience: Duration) -> Result<(), WriteFailed> {
    match tokio::time::timeout(patience, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(WriteFailed::Error),
        Err(_) => Err(WriteFailed::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_handling_is_counted_and_survived() {
        let metrics = RedirectMetrics::unregistered();
        let peer: SocketAddr = "127.0.0.1:5062".parse().unwrap();
        assert!(guarded(|| panic!("a bug"), peer, &metrics).is_none());
        assert!(guarded(|| panic!("{}", String::from("another")), peer, &metrics).is_none());
        assert_eq!(metrics.dropped.get_or_create(&ReasonLabels { reason: "internal_error" }).get(), 2);
        let fine =
            guarded(|| Handled { outcome: Outcome::Ack, response: None, record: None, decision: None }, peer, &metrics);
        assert!(fine.is_some(), "what does not panic is handled");
    }
}
