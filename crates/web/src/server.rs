//! The HTTP server every tollgate HTTP listener runs on (the API and UI, the manager, the
//! agent), hardened against clients that hold connections open.
//!
//! - At most `max_connections` connections at once ([`tollgate_listener::LimitedListener`]):
//!   beyond it a connection gets a `503` and is closed at once; accept errors such as `EMFILE`
//!   back off instead of spinning.
//! - Idle connections are closed after `idle_timeout`: a keep-alive connection between
//!   requests, request headers not finished within the timeout however slowly they trickle
//!   (slowloris; hyper's header read timeout), and a request or response that makes no
//!   progress for the timeout (a body that never comes, a client that does not read). Time the
//!   server itself spends (a handler running, a response body being produced) does not count.
//! - Graceful shutdown: on the signal the listening socket is closed, idle connections are
//!   closed, requests in progress finish; [`HttpServer::serve`] returns when every connection
//!   has ended.
//!
//! - TLS ([`HttpServer::with_tls`]): the handshake runs in the connection's task, bounded by
//!   the idle timeout (a client that opens TCP and never says hello is closed and counted like
//!   an idle one). A failed handshake (plain HTTP to the TLS port, a certificate of another CA
//!   or of a role the listener does not accept) is counted in
//!   `tollgate_connections_tls_failed` and logged at most once per 10 s with how many were
//!   left out. The connection limit counts a connection from its accept, handshake included.
//!
//! Each request carries [`axum::extract::ConnectInfo`]`<SocketAddr>` (the client address) and
//! `Option<`[`PeerIdentity`]`>` (the client certificate's role and host, verified by the
//! handshake; `None` on plain connections and for TLS clients without a certificate), and on
//! TLS connections the [`TlsConnection`] marker, so handlers can extract them from a plain
//! [`Router`] (see [`crate::http::MachinePeer`]).
//!
//! HTTP/1.1 only: every tollgate client (browsers, the CLI, shippers, the manager) speaks it.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tollgate_listener::{ConnectionSlot, LimitedListener, ListenerStats};
use tollgate_logthrottle::LogThrottle;
use tollgate_tls::PeerIdentity;
use tollgate_tls::tokio_rustls::TlsAcceptor;
use tower::Service;

/// One log line per 10 s about failed TLS handshakes, process-wide (each one is counted).
static HANDSHAKE_FAILED: LogThrottle = LogThrottle::new(10_000);

/// The mark of a request that arrived over TLS (a request extension): the session cookie is
/// then `Secure`, and routes for machine peers demand a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsConnection;

/// What a client refused at the connection limit reads before the connection closes.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 51\r\n\
Retry-After: 5\r\n\
Connection: close\r\n\
\r\n\
too many connections to this server; retry shortly\n";

pub use tollgate_listener::HttpLimits;

/// An HTTP listener with its limits; [`HttpServer::serve`] runs it.
pub struct HttpServer {
    listener: LimitedListener,
    idle_timeout: Duration,
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("listener", &self.listener)
            .field("idle_timeout", &self.idle_timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl HttpServer {
    /// A server on the bound `listener`, named `name` in metrics and logs, counting into
    /// `stats`.
    pub fn new(listener: TcpListener, name: &str, limits: HttpLimits, stats: ListenerStats) -> Self {
        HttpServer {
            listener: LimitedListener::new(listener, name, limits.max_connections, stats).refuse_with(REFUSED),
            idle_timeout: limits.idle_timeout.max(Duration::from_millis(1)),
            tls: None,
        }
    }

    /// Serves HTTPS: every connection starts with a TLS handshake through `acceptor` (built
    /// with `tollgate_tls::server_config`, whose client policy decides who may connect).
    pub fn with_tls(mut self, acceptor: TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }

    /// Whether the server speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The URL scheme of the server: `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.is_tls() { "https" } else { "http" }
    }

    /// Names the configuration field of the connection limit in log lines.
    pub fn limit_setting(mut self, setting: &str) -> Self {
        self.listener = self.listener.limit_setting(setting);
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `shutdown` completes, then shuts down gracefully: stops listening,
    /// closes idle connections, lets requests in progress finish, and returns when every
    /// connection has ended.
    pub async fn serve(self, router: Router, shutdown: impl Future<Output = ()>) {
        let HttpServer { mut listener, idle_timeout, tls } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, peer, slot) = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let connection = Connection {
                router: router.clone(),
                peer,
                idle_timeout,
                stats: listener.stats().clone(),
                stop: stop_rx.clone(),
                tls: tls.clone(),
                name: listener.name().to_string(),
            };
            tokio::spawn(connection.run(stream, slot));
        }
        let _ = stop_tx.send(true);
        listener.close().wait().await;
    }
}

/// One accepted connection.
struct Connection {
    router: Router,
    peer: SocketAddr,
    idle_timeout: Duration,
    stats: ListenerStats,
    stop: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
    name: String,
}

impl Connection {
    async fn run(self, stream: TcpStream, slot: ConnectionSlot) {
        let _slot = slot;
        let activity = Arc::new(Activity::new());
        let io = WatchedIo { inner: stream, activity: activity.clone() };
        let Some(acceptor) = self.tls.clone() else {
            return self.serve_http(io, activity, None).await;
        };
        let mut stop = self.stop.clone();
        let handshake = tokio::time::timeout(self.idle_timeout, acceptor.accept(io));
        let tls = tokio::select! {
            outcome = handshake => outcome,
            // Shutting down: a connection still in its handshake has no request to finish.
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match tls {
            Ok(Ok(tls)) => {
                let peer = PeerIdentity::from_chain(tls.get_ref().1.peer_certificates());
                self.serve_http(tls, activity, Some(peer)).await;
            }
            Ok(Err(e)) => {
                self.stats.tls_failed.inc();
                if let Some(left_out) = HANDSHAKE_FAILED.allow() {
                    tracing::warn!(
                        listener = %self.name,
                        peer = %self.peer,
                        error = %e,
                        "TLS handshake failed ({left_out} similar lines left out since the last)"
                    );
                }
            }
            Err(_) => {
                // Opened TCP and never finished saying hello: an idle connection.
                self.stats.idle_closed.inc();
                tracing::debug!(peer = %self.peer, "TLS handshake not finished within the idle timeout");
            }
        }
    }

    /// Serves HTTP/1.1 on `io` (plain, or TLS after the handshake; `tls` holds the client's
    /// certificate identity then).
    async fn serve_http<I>(self, io: I, activity: Arc<Activity>, tls: Option<Option<PeerIdentity>>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection { router, peer, idle_timeout, stats, mut stop, .. } = self;
        let io = TokioIo::new(io);
        let service = {
            let activity = activity.clone();
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                handle(router.clone(), activity.clone(), peer, tls.clone(), request)
            })
        };
        let mut builder = http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(idle_timeout).keep_alive(true);
        let mut conn = std::pin::pin!(builder.serve_connection(io, service));
        let mut idle = std::pin::pin!(idle_expired(&activity, idle_timeout));
        let mut stopping = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    match result {
                        Err(e) if e.is_timeout() => {
                            stats.idle_closed.inc();
                        }
                        Err(e) => tracing::debug!(%peer, error = %e, "HTTP connection ended with an error"),
                        Ok(()) => {}
                    }
                    break;
                }
                () = &mut idle => {
                    // Dropping the connection closes the socket.
                    stats.idle_closed.inc();
                    tracing::debug!(%peer, "HTTP connection closed after the idle timeout");
                    break;
                }
                _ = stop.wait_for(|stop| *stop), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Runs one request through the router, telling `activity` while the server is working on it.
async fn handle(
    router: Router,
    activity: Arc<Activity>,
    peer: SocketAddr,
    tls: Option<Option<PeerIdentity>>,
    request: hyper::Request<Incoming>,
) -> Result<axum::response::Response<ResponseBody>, Infallible> {
    let work = ServerWork::begin(activity.clone());
    let mut request =
        request.map(|body| Body::new(RequestBody { inner: body, activity: activity.clone(), waiting: false }));
    request.extensions_mut().insert(ConnectInfo(peer));
    match tls {
        Some(identity) => {
            request.extensions_mut().insert(TlsConnection);
            request.extensions_mut().insert(identity);
        }
        None => {
            request.extensions_mut().insert(None::<PeerIdentity>);
        }
    }
    let mut router = router;
    let response = match router.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    drop(work);
    Ok(response.map(|body| ResponseBody { inner: body, activity, producing: false }))
}

/// When a connection last moved bytes, and whether the server (not the client) is the one
/// being waited for.
#[derive(Debug)]
struct Activity {
    base: Instant,
    /// Milliseconds from `base` to the last read or write that moved bytes (or the end of
    /// server work).
    last_progress_ms: AtomicU64,
    /// Server work in progress: handlers running (minus those waiting for request body bytes)
    /// plus response bodies being produced. Above 0: the connection is not idle.
    server_work: AtomicI64,
}

impl Activity {
    fn new() -> Self {
        Activity { base: Instant::now(), last_progress_ms: AtomicU64::new(0), server_work: AtomicI64::new(0) }
    }

    fn progress(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_progress_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last_progress(&self) -> Instant {
        self.base + Duration::from_millis(self.last_progress_ms.load(Ordering::Relaxed))
    }

    fn server_working(&self) -> bool {
        self.server_work.load(Ordering::Relaxed) > 0
    }

    fn begin_work(&self) {
        self.server_work.fetch_add(1, Ordering::Relaxed);
    }

    fn end_work(&self) {
        self.server_work.fetch_sub(1, Ordering::Relaxed);
        // The idle time counts from the end of the server's work.
        self.progress();
    }
}

/// Completes once the connection has made no progress for `idle` while the server was not
/// working on it.
async fn idle_expired(activity: &Activity, idle: Duration) {
    loop {
        let deadline = activity.last_progress() + idle;
        if Instant::now() < deadline {
            tokio::time::sleep_until(deadline).await;
        } else if activity.server_working() {
            tokio::time::sleep(idle).await;
        } else {
            return;
        }
    }
}

/// Server work on a request, from the handler's start to its response.
struct ServerWork(Arc<Activity>);

impl ServerWork {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.begin_work();
        ServerWork(activity)
    }
}

impl Drop for ServerWork {
    fn drop(&mut self) {
        self.0.end_work();
    }
}

/// The connection's TCP stream, noting every read and write that moves bytes (below TLS, so
/// handshake and record bytes count as progress).
struct WatchedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.progress();
        }
        result
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.progress();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.progress();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body: while the handler waits for its bytes, the client is the one waited for.
struct RequestBody {
    inner: Incoming,
    activity: Arc<Activity>,
    waiting: bool,
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let result = Pin::new(&mut self.inner).poll_frame(cx);
        let waiting = result.is_pending();
        if waiting != self.waiting {
            self.waiting = waiting;
            if waiting { self.activity.end_work() } else { self.activity.begin_work() }
        }
        result
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if self.waiting {
            self.activity.begin_work();
        }
    }
}

/// A response body: while it is being produced (e.g. a CSV export querying the store), the
/// server is working.
struct ResponseBody {
    inner: Body,
    activity: Arc<Activity>,
    producing: bool,
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let result = Pin::new(&mut self.inner).poll_frame(cx);
        let producing = result.is_pending();
        if producing != self.producing {
            self.producing = producing;
            if producing { self.activity.begin_work() } else { self.activity.end_work() }
        }
        result
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if self.producing {
            self.activity.end_work();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const GET: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

    struct Running {
        addr: SocketAddr,
        stats: ListenerStats,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        done: tokio::task::JoinHandle<()>,
    }

    async fn start(max_connections: usize, idle_ms: u64) -> Running {
        let router = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    "done\n"
                }),
            )
            .route(
                "/stream",
                get(|| async {
                    let chunks = async_stream_after(Duration::from_millis(1500));
                    Body::from_stream(chunks)
                }),
            )
            .route("/big", get(|| async { vec![b'x'; 32 << 20] }))
            .route("/peer", get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }))
            .route("/echo", post(|body: Bytes| async move { body }));
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stats = ListenerStats::default();
        let limits = HttpLimits { max_connections, idle_timeout: Duration::from_millis(idle_ms) };
        let server = HttpServer::new(tcp, "test", limits, stats.clone());
        let addr = server.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(server.serve(router, async move {
            let _ = rx.await;
        }));
        Running { addr, stats, stop: Some(tx), done }
    }

    /// A body stream whose only chunk comes after `delay`.
    fn async_stream_after(delay: Duration) -> tokio_stream::wrappers::ReceiverStream<Result<Bytes, io::Error>> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(1);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Ok(Bytes::from_static(b"late\n"))).await;
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }

    /// Reads until the server closes the connection (or 10 s pass: then `None`).
    async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
        let mut all = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        read.ok().map(|_| String::from_utf8_lossy(&all).into_owned())
    }

    #[test]
    fn the_refusal_is_a_complete_http_response() {
        let text = std::str::from_utf8(REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())), "{head}");
    }

    #[tokio::test]
    async fn beyond_the_limit_a_client_gets_503_and_the_refusal_is_counted() {
        let s = start(2, 10_000).await;
        let _a = TcpStream::connect(s.addr).await.unwrap();
        let _b = TcpStream::connect(s.addr).await.unwrap();
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        let text = read_until_closed(&mut c).await.expect("the refused connection is closed");
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert_eq!(s.stats.refused.get(), 1);
        assert_eq!(s.stats.open.get(), 2);
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
        let s = start(8, 300).await;
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(GET).await.unwrap();
        let text = read_until_closed(&mut c).await.expect("closed after the idle timeout");
        assert!(text.starts_with("HTTP/1.1 200"), "the request was served first: {text}");
        assert_eq!(s.stats.idle_closed.get(), 1);
        assert_eq!(s.stats.open.get(), 0);
    }

    #[tokio::test]
    async fn headers_trickling_byte_by_byte_do_not_keep_a_connection() {
        let s = start(8, 500).await;
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n").await.unwrap();
        let trickle = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if c.write_all(b"X").await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), trickle).await.expect("the server closed the connection");
        assert_eq!(s.stats.idle_closed.get(), 1);
    }

    #[tokio::test]
    async fn a_request_body_that_never_comes_does_not_keep_a_connection() {
        let s = start(8, 300).await;
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly this").await.unwrap();
        assert!(read_until_closed(&mut c).await.is_some(), "closed without the rest of the body");
        assert_eq!(s.stats.idle_closed.get(), 1);
    }

    #[tokio::test]
    async fn a_handler_working_longer_than_the_idle_timeout_is_not_cut_off() {
        let s = start(8, 300).await;
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        let text = read_until_closed(&mut c).await.unwrap();
        assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("done\n"), "{text}");
    }

    #[tokio::test]
    async fn a_response_body_the_server_is_still_producing_is_not_cut_off() {
        let s = start(8, 300).await;
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        let text = read_until_closed(&mut c).await.unwrap();
        assert!(text.contains("late\n"), "{text}");
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_its_response_does_not_keep_a_connection() {
        let s = start(8, 300).await;
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while s.stats.idle_closed.get() == 0 {
            assert!(Instant::now() < deadline, "the stalled connection is still open");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(s.stats.open.get(), 0);
    }

    #[tokio::test]
    async fn handlers_see_the_client_address() {
        let s = start(8, 300).await;
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /peer HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await.unwrap();
        let text = read_until_closed(&mut c).await.unwrap();
        assert!(text.ends_with(&c.local_addr().unwrap().to_string()), "{text}");
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_lets_requests_finish() {
        let mut s = start(8, 60_000).await;
        let mut idle = TcpStream::connect(s.addr).await.unwrap();
        idle.write_all(GET).await.unwrap();
        let mut busy = TcpStream::connect(s.addr).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.stop.take().unwrap().send(()).unwrap();
        let text = read_until_closed(&mut busy).await.expect("closed after its response");
        assert!(text.ends_with("done\n"), "the request in progress finished: {text}");
        assert!(read_until_closed(&mut idle).await.is_some(), "the idle connection was closed");
        tokio::time::timeout(Duration::from_secs(10), s.done).await.expect("serve returned").unwrap();
        assert!(TcpStream::connect(s.addr).await.is_err(), "no longer listening");
    }

    mod tls {
        use super::*;
        use std::path::Path;
        use tollgate_tls::pki::{Ca, DEFAULT_CA_VALIDITY, DEFAULT_CERT_VALIDITY, IssueRequest, issued_paths};
        use tollgate_tls::rustls::pki_types::ServerName;
        use tollgate_tls::tokio_rustls::TlsConnector;
        use tollgate_tls::tokio_rustls::client::TlsStream;
        use tollgate_tls::{
            ClientPolicy, Role, RoleSet, TlsFiles, TlsMaterial, Versions, client_config, server_config,
        };

        fn issue(ca: &Ca, dir: &Path, role: Role, host: &str) -> TlsMaterial {
            let issued = ca
                .issue(&IssueRequest {
                    role,
                    host: host.into(),
                    ips: vec!["127.0.0.1".parse().unwrap()],
                    dns_names: vec![],
                    validity: DEFAULT_CERT_VALIDITY,
                })
                .unwrap();
            let (cert, key) = issued_paths(dir, host);
            issued.write(&cert, &key).unwrap();
            TlsMaterial::load(TlsFiles { ca: dir.join("ca.crt"), cert: Some(cert), key: Some(key) }).unwrap()
        }

        struct Pki {
            _dir: tempfile::TempDir,
            server: TlsMaterial,
            engine: TlsMaterial,
            stranger: TlsMaterial,
        }

        fn pki() -> Pki {
            let dir = tempfile::tempdir().unwrap();
            let ours = dir.path().join("ours");
            let ca = Ca::init(&ours, "test CA", DEFAULT_CA_VALIDITY).unwrap();
            let theirs = dir.path().join("theirs");
            let other = Ca::init(&theirs, "another CA", DEFAULT_CA_VALIDITY).unwrap();
            Pki {
                server: issue(&ca, &ours, Role::Collector, "collector-a"),
                engine: issue(&ca, &ours, Role::Engine, "east-a"),
                stranger: issue(&other, &theirs, Role::Engine, "east-x"),
                _dir: dir,
            }
        }

        async fn start_tls(pki: &Pki, max_connections: usize, idle_ms: u64) -> Running {
            let router = Router::new().route("/healthz", get(|| async { "ok\n" })).route(
                "/whoami",
                get(
                    |axum::Extension(peer): axum::Extension<Option<PeerIdentity>>,
                     tls: Option<axum::Extension<TlsConnection>>| async move {
                        let role = peer.and_then(|p| p.role).map_or("anonymous", |r| r.as_str());
                        format!("{role} tls={}", tls.is_some())
                    },
                ),
            );
            let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let stats = ListenerStats::default();
            let limits = HttpLimits { max_connections, idle_timeout: Duration::from_millis(idle_ms) };
            let config =
                server_config(&pki.server, ClientPolicy::OPTIONAL, Versions::Tls12And13, &[b"http/1.1"]).unwrap();
            let server = HttpServer::new(tcp, "test", limits, stats.clone()).with_tls(TlsAcceptor::from(config));
            assert_eq!(server.scheme(), "https");
            let addr = server.local_addr().unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let done = tokio::spawn(server.serve(router, async move {
                let _ = rx.await;
            }));
            Running { addr, stats, stop: Some(tx), done }
        }

        async fn connect(client: &TlsMaterial, addr: SocketAddr) -> io::Result<TlsStream<TcpStream>> {
            let config = client_config(client, RoleSet::of(&[Role::Collector]), Versions::Tls13, &[b"http/1.1"])
                .map_err(io::Error::other)?;
            let tcp = TcpStream::connect(addr).await?;
            TlsConnector::from(config).connect(ServerName::try_from("127.0.0.1").unwrap(), tcp).await
        }

        async fn get_text(client: &TlsMaterial, addr: SocketAddr, path: &str) -> io::Result<String> {
            let mut tls = connect(client, addr).await?;
            tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).await?;
            let mut all = Vec::new();
            // TLS 1.3: a refused client certificate shows on the first read.
            tls.read_to_end(&mut all).await?;
            Ok(String::from_utf8_lossy(&all).into_owned())
        }

        #[tokio::test]
        async fn handlers_see_the_verified_client_certificate() {
            let pki = pki();
            let s = start_tls(&pki, 8, 10_000).await;
            let text = get_text(&pki.engine, s.addr, "/whoami").await.unwrap();
            assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("engine tls=true"), "{text}");
            assert_eq!(s.stats.tls_failed.get(), 0);
        }

        #[tokio::test]
        async fn a_certificate_of_another_ca_and_plain_http_fail_the_handshake_and_are_counted() {
            let pki = pki();
            let s = start_tls(&pki, 8, 10_000).await;
            assert!(get_text(&pki.stranger, s.addr, "/whoami").await.is_err(), "another CA's certificate");
            let mut plain = TcpStream::connect(s.addr).await.unwrap();
            plain.write_all(GET).await.unwrap();
            let text = read_until_closed(&mut plain).await.expect("the server closed the plain connection");
            assert!(!text.contains("200 OK"), "plain HTTP got an answer: {text}");
            let deadline = Instant::now() + Duration::from_secs(10);
            while s.stats.tls_failed.get() < 2 {
                assert!(Instant::now() < deadline, "failed handshakes counted: {}", s.stats.tls_failed.get());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(s.stats.tls_failed.get(), 2);
            assert_eq!(s.stats.idle_closed.get(), 0);
        }

        #[tokio::test]
        async fn a_client_that_never_says_hello_is_closed_as_idle() {
            let pki = pki();
            let s = start_tls(&pki, 8, 300).await;
            let mut c = TcpStream::connect(s.addr).await.unwrap();
            assert!(read_until_closed(&mut c).await.is_some(), "closed without a hello");
            let deadline = Instant::now() + Duration::from_secs(10);
            while s.stats.open.get() != 0 {
                assert!(Instant::now() < deadline, "the connection still counts as open");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(s.stats.idle_closed.get(), 1);
            assert_eq!(s.stats.tls_failed.get(), 0);
        }

        #[tokio::test]
        async fn headers_trickling_over_tls_do_not_keep_a_connection() {
            let pki = pki();
            let s = start_tls(&pki, 8, 500).await;
            let mut c = connect(&pki.engine, s.addr).await.unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n").await.unwrap();
            let trickle = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if c.write_all(b"X").await.is_err() || c.flush().await.is_err() {
                        return;
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(10), trickle).await.expect("the server closed the connection");
            assert_eq!(s.stats.idle_closed.get(), 1);
        }

        #[tokio::test]
        async fn beyond_the_limit_tls_clients_are_refused_and_counted() {
            let pki = pki();
            let s = start_tls(&pki, 2, 10_000).await;
            let _a = connect(&pki.engine, s.addr).await.unwrap();
            let _b = connect(&pki.engine, s.addr).await.unwrap();
            assert!(get_text(&pki.engine, s.addr, "/healthz").await.is_err(), "the third connection is refused");
            assert_eq!(s.stats.refused.get(), 1);
            assert_eq!(s.stats.open.get(), 2);
        }

        #[tokio::test]
        async fn shutdown_closes_idle_tls_connections_and_returns() {
            let pki = pki();
            let mut s = start_tls(&pki, 8, 60_000).await;
            let mut idle = connect(&pki.engine, s.addr).await.unwrap();
            idle.write_all(GET).await.unwrap();
            let mut hello_only = TcpStream::connect(s.addr).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            s.stop.take().unwrap().send(()).unwrap();
            let mut all = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut all)).await.expect("closed");
            assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"), "served first");
            assert!(read_until_closed(&mut hello_only).await.is_some(), "the connection in its handshake was closed");
            tokio::time::timeout(Duration::from_secs(10), s.done).await.expect("serve returned").unwrap();
        }
    }
}
