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
//! Each request carries [`axum::extract::ConnectInfo`]`<SocketAddr>` (the client address), so
//! handlers can extract it from a plain [`Router`].
//!
//! HTTP/1.1 only: every tollgate client (browsers over `http://`, the CLI, shippers, the
//! manager) speaks it.

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
use tower::Service;

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
#[derive(Debug)]
pub struct HttpServer {
    listener: LimitedListener,
    idle_timeout: Duration,
}

impl HttpServer {
    /// A server on the bound `listener`, named `name` in metrics and logs, counting into
    /// `stats`.
    pub fn new(listener: TcpListener, name: &str, limits: HttpLimits, stats: ListenerStats) -> Self {
        HttpServer {
            listener: LimitedListener::new(listener, name, limits.max_connections, stats).refuse_with(REFUSED),
            idle_timeout: limits.idle_timeout.max(Duration::from_millis(1)),
        }
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
        let HttpServer { mut listener, idle_timeout } = self;
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
}

impl Connection {
    async fn run(self, stream: TcpStream, slot: ConnectionSlot) {
        let Connection { router, peer, idle_timeout, stats, mut stop } = self;
        let _slot = slot;
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(WatchedIo { inner: stream, activity: activity.clone() });
        let service = {
            let activity = activity.clone();
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                handle(router.clone(), activity.clone(), peer, request)
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
    request: hyper::Request<Incoming>,
) -> Result<axum::response::Response<ResponseBody>, Infallible> {
    let work = ServerWork::begin(activity.clone());
    let mut request =
        request.map(|body| Body::new(RequestBody { inner: body, activity: activity.clone(), waiting: false }));
    request.extensions_mut().insert(ConnectInfo(peer));
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

/// The connection's stream, noting every read and write that moves bytes.
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
}
