//! TCP listeners within limits.
//!
//! What this crate owns: accepting TCP connections so that a flood of connections, or a process
//! out of file descriptors, cannot take a listener (or the rest of the process) down.
//!
//! - A cap on the connections one listener holds at once. Beyond it a connection is accepted and
//!   closed at once (after a short refusal message when the protocol has one, e.g. an HTTP 503),
//!   so refusing leaves nothing waiting in the kernel's queue. Every refusal is counted.
//!   A refusal with a message closes gracefully: the message and a FIN are sent, then what the
//!   client still sends (its request) is read and dropped until it closes, for at most
//!   [`LINGER_FOR`] and [`LINGER_BYTES`]. Closing with the request unread would send a TCP reset
//!   instead, which can reach the client before it reads the refusal: it would see a broken
//!   connection, not a 503 with `Retry-After`. At most [`LINGER_MAX`] refused connections
//!   linger at once per listener; beyond that a refusal is a plain close.
//! - A cap per source address ([`PerSourceLimit`]), for listeners whose clients are few and
//!   known (the SIP redirect server's SBCs), so one of them cannot hold every slot.
//! - Accept errors that are not about one connection (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`)
//!   make the listener back off, 10 ms doubling to 1 s, instead of retrying in a hot loop;
//!   each is counted and logged through [`LogThrottle`] (one line per 10 s saying how many were
//!   left out).
//! - Per-listener metrics ([`ConnectionMetrics`]): connections open, accepted, refused, closed
//!   for idleness (counted by the protocol server, which owns its idle timeout), accept errors.
//!
//! What it must not do: speak any protocol or decide when a connection is idle; the HTTP server
//! (`tollgate-web`) and the HEP receiver (`tollgate-probe`) do, on the streams accepted here.

#![warn(missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tollgate_logthrottle::LogThrottle;

/// Longest a refused connection lingers, reading and dropping what the client sends, before
/// it is closed.
pub const LINGER_FOR: Duration = Duration::from_secs(2);
/// Most bytes read and dropped from one refused connection before it is closed.
pub const LINGER_BYTES: usize = 64 * 1024;
/// Most refused connections lingering at once on one listener (each holds a descriptor for at
/// most [`LINGER_FOR`]; they count against `PROCESS_RESERVE`'s spare descriptors).
pub const LINGER_MAX: usize = 32;

/// The pause between accept attempts while they fail: 10 ms after the first error, doubling
/// with each further one up to 1 s, back to 10 ms after an accept succeeds. Shared by every
/// tollgate listener (also the ENUM TCP acceptor, which keeps its own per-source limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptBackoff(Duration);

impl AcceptBackoff {
    /// First pause after an accept error; it doubles on every further error.
    pub const FIRST: Duration = Duration::from_millis(10);
    /// Longest pause between accept attempts while they keep failing.
    pub const MAX: Duration = Duration::from_secs(1);

    /// The pause to take after a failed accept.
    pub fn pause(&mut self) -> Duration {
        let pause = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        pause
    }

    /// After a successful accept: the next error pauses [`AcceptBackoff::FIRST`] again.
    pub fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff(Self::FIRST)
    }
}
/// One log line per this many milliseconds for each repeated condition of a listener.
const LOG_INTERVAL_MS: u64 = 10_000;

/// The `listener` label of the connection metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: String,
}

/// The connection metric families of a process, one series per listener name.
#[derive(Debug, Clone, Default)]
pub struct ConnectionMetrics {
    open: Family<ListenerLabel, Gauge>,
    accepted: Family<ListenerLabel, Counter>,
    refused: Family<ListenerLabel, Counter>,
    idle_closed: Family<ListenerLabel, Counter>,
    accept_errors: Family<ListenerLabel, Counter>,
    tls_failed: Family<ListenerLabel, Counter>,
}

impl ConnectionMetrics {
    /// Creates the families and registers them (`tollgate_connections_*`, label `listener`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = ConnectionMetrics::default();
        registry.register("tollgate_connections_open", "TCP connections open, per listener", m.open.clone());
        registry.register(
            "tollgate_connections_accepted",
            "TCP connections accepted, per listener",
            m.accepted.clone(),
        );
        registry.register(
            "tollgate_connections_refused",
            "TCP connections closed at once because the listener was at its connection limit",
            m.refused.clone(),
        );
        registry.register(
            "tollgate_connections_idle_closed",
            "TCP connections closed by the server after its idle timeout",
            m.idle_closed.clone(),
        );
        registry.register(
            "tollgate_connections_accept_errors",
            "Failed accepts (e.g. no file descriptors left); the listener backs off after each",
            m.accept_errors.clone(),
        );
        registry.register(
            "tollgate_connections_tls_failed",
            "TLS handshakes that failed (no TLS spoken, a certificate refused), per listener",
            m.tls_failed.clone(),
        );
        m
    }

    /// The counters of the listener named `name` (listeners sharing a name share counters).
    pub fn listener(&self, name: &str) -> ListenerStats {
        let label = ListenerLabel { listener: name.to_string() };
        ListenerStats {
            open: self.open.get_or_create(&label).clone(),
            accepted: self.accepted.get_or_create(&label).clone(),
            refused: self.refused.get_or_create(&label).clone(),
            idle_closed: self.idle_closed.get_or_create(&label).clone(),
            accept_errors: self.accept_errors.get_or_create(&label).clone(),
            tls_failed: self.tls_failed.get_or_create(&label).clone(),
        }
    }
}

/// The counters of one listener. Clones share the values.
#[derive(Debug, Clone, Default)]
pub struct ListenerStats {
    /// Connections open now.
    pub open: Gauge,
    /// Connections accepted and served.
    pub accepted: Counter,
    /// Connections refused at the connection limit.
    pub refused: Counter,
    /// Connections the protocol server closed after its idle timeout.
    pub idle_closed: Counter,
    /// Failed accepts (no descriptors, no buffers): each one made the listener pause.
    pub accept_errors: Counter,
    /// TLS handshakes that failed: a client that does not speak TLS, or whose certificate the
    /// listener refused (another CA, a role not accepted, none where one is required).
    pub tls_failed: Counter,
}

impl ListenerStats {
    /// Connections refused plus failed accepts so far: while it grows, the listener turns
    /// clients away (what the CONNECTION_LIMIT alarm watches).
    pub fn turned_away(&self) -> u64 {
        self.refused.get() + self.accept_errors.get()
    }
}

/// A listener's hold on one connection slot; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// A TCP listener that holds at most `max_connections` connections at once and backs off on
/// accept errors. See the crate documentation.
#[derive(Debug)]
pub struct LimitedListener {
    inner: TcpListener,
    name: String,
    setting: String,
    max_connections: usize,
    permits: Arc<Semaphore>,
    stats: ListenerStats,
    refusal: Option<&'static [u8]>,
    lingering: Arc<Semaphore>,
    refused_log: LogThrottle,
    error_log: LogThrottle,
}

impl LimitedListener {
    /// Wraps `listener`, named `name` in metrics and log lines, holding at most
    /// `max_connections` connections at once (at least 1).
    pub fn new(listener: TcpListener, name: &str, max_connections: usize, stats: ListenerStats) -> Self {
        let max_connections = max_connections.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        LimitedListener {
            inner: listener,
            name: name.to_string(),
            setting: String::new(),
            max_connections,
            permits: Arc::new(Semaphore::new(max_connections)),
            stats,
            refusal: None,
            lingering: Arc::new(Semaphore::new(LINGER_MAX)),
            refused_log: LogThrottle::new(LOG_INTERVAL_MS),
            error_log: LogThrottle::new(LOG_INTERVAL_MS),
        }
    }

    /// Names the configuration field of the limit in log lines (e.g. `api.max_connections`).
    pub fn limit_setting(mut self, setting: &str) -> Self {
        self.setting = setting.to_string();
        self
    }

    /// Bytes written (without waiting) to a connection refused at the limit before it is closed,
    /// e.g. an HTTP 503 response.
    pub fn refuse_with(mut self, message: &'static [u8]) -> Self {
        self.refusal = Some(message);
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The listener's counters.
    pub fn stats(&self) -> &ListenerStats {
        &self.stats
    }

    /// The most connections held at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The next connection within the limit, with its slot (hold it as long as the connection
    /// is open). Connections beyond the limit are refused and accept errors waited out inside;
    /// this never returns an error. Cancel-safe: no connection is lost when the future is
    /// dropped.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr, ConnectionSlot) {
        let mut backoff = AcceptBackoff::default();
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    backoff.reset();
                    match self.permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            self.stats.accepted.inc();
                            self.stats.open.inc();
                            return (stream, peer, ConnectionSlot { _permit: permit, open: self.stats.open.clone() });
                        }
                        Err(_) => self.refuse(stream, peer),
                    }
                }
                Err(e) if is_about_one_connection(&e) => {}
                Err(e) => {
                    self.stats.accept_errors.inc();
                    let pause = backoff.pause();
                    if let Some(left_out) = self.error_log.allow() {
                        tracing::error!(
                            listener = %self.name,
                            error = %e,
                            "cannot accept connections{}; pausing {} ms between attempts",
                            since_last_line(left_out, "similar errors"),
                            pause.as_millis()
                        );
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    fn refuse(&self, stream: TcpStream, peer: SocketAddr) {
        self.stats.refused.inc();
        if let Some(message) = self.refusal {
            match self.lingering.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(refuse_gracefully(stream, message, permit));
                }
                Err(_) => {
                    // Never waits: a client that does not read gets the close alone.
                    let _ = stream.try_write(message);
                }
            }
        }
        if let Some(left_out) = self.refused_log.allow() {
            let setting = if self.setting.is_empty() { String::new() } else { format!(" ({})", self.setting) };
            tracing::warn!(
                listener = %self.name,
                %peer,
                "at its limit of {} connections{setting}: refusing new connections{}",
                self.max_connections,
                since_last_line(left_out, "more refused")
            );
        }
    }

    /// Stops listening (the socket is closed at once) and returns a handle that waits until
    /// every connection accepted so far has ended.
    pub fn close(self) -> Drained {
        let LimitedListener { inner, permits, max_connections, .. } = self;
        drop(inner);
        Drained { permits, max_connections }
    }
}

/// A closed listener whose connections may still be open; see [`LimitedListener::close`].
#[derive(Debug)]
pub struct Drained {
    permits: Arc<Semaphore>,
    max_connections: usize,
}

impl Drained {
    /// Connections still open.
    pub fn open(&self) -> usize {
        self.max_connections - self.permits.available_permits()
    }

    /// Waits until every connection has released its slot.
    pub async fn wait(self) {
        let _ = self.permits.acquire_many(self.max_connections as u32).await;
    }
}

/// The tail of a throttled log line: how many occurrences the previous lines left out.
fn since_last_line(left_out: u64, what: &str) -> String {
    if left_out == 0 { String::new() } else { format!(" ({left_out} {what} since the last line)") }
}

/// Sends `message` and a FIN, then reads and drops what the client sends until it closes (at
/// most [`LINGER_BYTES`] for at most [`LINGER_FOR`]), so that its unread request does not turn
/// the close into a reset that could destroy the message before the client reads it.
async fn refuse_gracefully(mut stream: TcpStream, message: &'static [u8], _permit: OwnedSemaphorePermit) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(LINGER_FOR, async {
        // The message fits the send buffer of a fresh connection: this does not wait for the
        // client to read.
        stream.write_all(message).await?;
        stream.shutdown().await?;
        let mut buf = [0u8; 4096];
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match stream.read(&mut buf).await? {
                0 => break,
                n => dropped += n,
            }
        }
        io::Result::Ok(())
    })
    .await;
}

/// Errors `accept` reports about one connection that failed before it was accepted: skip it and
/// accept the next one at once (accept(2): Linux passes pending network errors this way).
fn is_about_one_connection(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted
            | ConnectionReset
            | ConnectionRefused
            | Interrupted
            | WouldBlock
            | NetworkDown
            | NetworkUnreachable
            | HostUnreachable
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn bound(max: usize) -> LimitedListener {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        LimitedListener::new(tcp, "test", max, ListenerStats::default())
    }

    #[test]
    fn failed_accepts_pause_longer_up_to_a_second_and_reset() {
        let mut b = AcceptBackoff::default();
        let pauses: Vec<u128> = (0..9).map(|_| b.pause().as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.pause(), Duration::from_millis(10));
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_are_refused_with_the_message_and_counted() {
        let mut listener = bound(2).await.refuse_with(b"busy\n");
        let addr = listener.local_addr().unwrap();
        let stats = listener.stats().clone();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let first = listener.accept().await;
            let _second = listener.accept().await;
            // The third connection is refused inside this accept, which returns nothing.
            tokio::select! {
                _ = listener.accept() => panic!("accepted beyond the limit"),
                _ = released => {}
            }
            drop(first);
            let again = listener.accept().await;
            assert_eq!(listener.stats().open.get(), 2, "the freed slot was taken again");
            again
        });
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let mut refused = TcpStream::connect(addr).await.unwrap();
        let mut text = String::new();
        refused.read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "busy\n", "the refused client reads the message, then the close");
        assert_eq!(stats.refused.get(), 1);
        release.send(()).unwrap();
        let _fourth = TcpStream::connect(addr).await.unwrap();
        let _again = server.await.unwrap();
        assert_eq!(stats.accepted.get(), 3);
        assert_eq!(stats.turned_away(), 1);
    }

    /// A client that sends its request in pieces, as browsers and HTTP libraries may, still
    /// reads the whole refusal: the server's close is a FIN after the message, never a reset
    /// provoked by the request it did not read.
    #[tokio::test]
    async fn a_refused_client_still_sending_its_request_reads_the_message_not_a_reset() {
        use tokio::io::AsyncWriteExt;
        let mut listener = bound(1).await.refuse_with(b"HTTP/1.1 503 busy\r\n\r\n");
        let addr = listener.local_addr().unwrap();
        let _held = TcpStream::connect(addr).await.unwrap();
        // Holds the first connection; refuses the others inside `accept`, which never returns.
        let server = tokio::spawn(async move {
            let _held = listener.accept().await;
            listener.accept().await
        });
        for _ in 0..8 {
            let mut refused = TcpStream::connect(addr).await.unwrap();
            let mut text = String::new();
            // The refusal arrives whole, then the server's end of the stream.
            refused.read_to_string(&mut text).await.unwrap();
            assert_eq!(text, "HTTP/1.1 503 busy\r\n\r\n");
            // The request goes on arriving after the server closed its side: with a plain
            // close, the first piece draws a reset and a later write fails.
            for piece in 0..4 {
                refused.write_all(b"POST /login HTTP/1.1\r\n").await.unwrap_or_else(|e| panic!("piece {piece}: {e}"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            drop(refused);
        }
        server.abort();
    }

    #[tokio::test]
    async fn closing_waits_for_open_connections_only() {
        let mut listener = bound(4).await;
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (_stream, _peer, slot) = listener.accept().await;
        let drained = listener.close();
        assert!(TcpStream::connect(addr).await.is_err(), "a closed listener accepts nothing");
        assert_eq!(drained.open(), 1);
        let waiting = tokio::spawn(drained.wait());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a connection is still open");
        drop(slot);
        waiting.await.unwrap();
    }

    #[test]
    fn per_connection_errors_do_not_pause_the_listener_but_descriptor_exhaustion_does() {
        assert!(is_about_one_connection(&io::Error::from(io::ErrorKind::ConnectionAborted)));
        // EMFILE and ENFILE (Linux numbers): the process or system is out of descriptors.
        assert!(!is_about_one_connection(&io::Error::from_raw_os_error(24)));
        assert!(!is_about_one_connection(&io::Error::from_raw_os_error(23)));
    }
}

/// Limits of one HTTP listener (set from `[api]`; used by `tollgate_web::server::HttpServer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections open at once; more are refused with 503.
    pub max_connections: usize,
    /// A connection making no progress for this long (keep-alive idle, unfinished headers, a
    /// stalled body) is closed.
    pub idle_timeout: std::time::Duration,
}

/// Connections held at once per source address, on top of a [`LimitedListener`]'s total: so
/// one client (or one attacker) cannot take every slot of a listener. Entries exist only for
/// sources with open connections, so the table holds at most as many entries as connections.
#[derive(Debug)]
pub struct PerSourceLimit {
    max: usize,
    table: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// A connection's hold on its source's share; dropping it gives the share back.
#[derive(Debug)]
pub struct SourceSlot {
    limit: Arc<PerSourceLimit>,
    ip: std::net::IpAddr,
}

impl PerSourceLimit {
    /// At most `max` connections (at least 1) from one source address.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(PerSourceLimit { max: max.max(1), table: Default::default() })
    }

    /// The most connections one source holds at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for one more connection from `ip`, or none when it holds `max` already.
    pub fn take(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<SourceSlot> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let held = table.entry(ip).or_insert(0);
        if *held >= self.max {
            return None;
        }
        *held += 1;
        Some(SourceSlot { limit: self.clone(), ip })
    }

    /// Sources holding connections now.
    pub fn sources(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut table = self.limit.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = table.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                table.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod per_source_tests {
    use super::*;

    #[test]
    fn each_source_holds_at_most_its_share_and_gives_it_back() {
        let limit = PerSourceLimit::new(2);
        let a: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = limit.take(a).unwrap();
        let a2 = limit.take(a).unwrap();
        assert!(limit.take(a).is_none(), "a third from one source");
        let b1 = limit.take(b).unwrap();
        drop(a1);
        let a3 = limit.take(a).unwrap();
        drop((a2, a3, b1));
        assert_eq!(limit.sources(), 0, "nothing kept for sources without connections");
    }
}
