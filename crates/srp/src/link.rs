//! The SRP link: one authenticated TCP connection between the two chassis, kept up for as long as
//! the [`Link`] lives.
//!
//! One side dials and the other accepts ([`LinkRole::for_addresses`]: the lower bind address
//! dials); the dialer retries every hello interval, the acceptor replaces its connection when the
//! mate reconnects (a restarted mate leaves a half-open one behind), but only with a connection
//! whose dialer has proven the session key ([`crate::handshake`]): a replayed handshake never
//! replaces the live connection. Each connection starts with a handshake authenticated with the
//! shared key, which exchanges node ids, random nonces (for the per-connection frame key; the
//! acceptor's is its challenge), configuration digests (`srp validate-configuration`) and
//! configured compression: LZ4 only when both sides ask for it, zlib otherwise, fixed until the
//! connection resets. Unauthenticated work on the acceptor is bounded: handshakes in progress per
//! source address and in all ([`crate::admission`]), each finished within the dead interval or
//! dropped; every rejected or refused handshake is counted (`handshake_failures`) and logged at
//! most once per 10 s, with the number of similar lines left out.
//!
//! Then the link sends the owner's status as a Hello every hello interval (and at once when it
//! changes), sends what the owner queues, and delivers everything received as [`LinkEvent`]s on
//! a channel. A frame that fails authentication is counted and closes the connection (its stream
//! can no longer be trusted); a connection silent for the dead interval is closed.
//!
//! Messages queued while no connection is up are dropped (counted): checkpoint sequences restart
//! with each connection, which starts with a full checkpoint.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, timeout};
use tollgate_logthrottle::LogThrottle;

use crate::admission::{Admission, Limits};
use crate::audit::StoreDigest;
use crate::checkpoint::{Checkpoint, CheckpointDecodeError, Nack};
use crate::compress::Compression;
use crate::config::SrpConfig;
use crate::election::{PeerStatus, Refusal, SwitchoverReason};
use crate::frame::{Frame, FrameError, FrameKey, FrameType, HEADER_LEN, MAX_PAYLOAD_LEN};
use crate::handshake::{self, HandshakeError, Stage};
use crate::link_tls::{self, LinkReader, LinkTls, LinkWriter};
use crate::message::{Message, MessageError};

/// Messages the owner may queue before `send` waits.
const OUTBOUND_QUEUE: usize = 1024;
/// Events the link may queue before it stops reading.
const EVENT_QUEUE: usize = 1024;
/// Bytes a frame read grows its buffer by at first (then by doubling, up to the frame's length):
/// what a peer declares is allocated only as it arrives.
const READ_CHUNK: usize = 64 * 1024;
/// Rejected handshakes (failed, timed out) on the acceptor: one log line per 10 s, its
/// `left_out` field saying how many were not logged since the last.
static HANDSHAKE_REJECTED: LogThrottle = LogThrottle::new(10_000);
/// Failed accepts (out of descriptors): one log line per 10 s.
static ACCEPT_FAILED: LogThrottle = LogThrottle::new(10_000);
/// Handshakes refused because too many are in progress: one log line per 10 s.
static HANDSHAKE_REFUSED: LogThrottle = LogThrottle::new(10_000);
/// Failed TLS handshakes of the dialer (it retries every hello interval): one log line per 10 s.
static DIAL_TLS_FAILED: LogThrottle = LogThrottle::new(10_000);

/// Which side opens the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LinkRole {
    /// Connects to the peer address, retrying.
    Dial,
    /// Listens on the bind address.
    Accept,
}

impl LinkRole {
    /// The chassis with the lower bind address dials; both chassis compute the same answer from
    /// their configurations (each one's `bind_address` is the other's `peer_address`).
    pub fn for_addresses(bind: SocketAddr, peer: SocketAddr) -> LinkRole {
        if bind < peer { LinkRole::Dial } else { LinkRole::Accept }
    }
}

/// What the link needs to know.
#[derive(Clone)]
pub struct LinkConfig {
    /// This chassis' node id.
    pub node_id: String,
    /// Listen address (acceptor).
    pub bind_address: SocketAddr,
    /// The mate's address (dialer).
    pub peer_address: SocketAddr,
    /// The shared key.
    pub shared_key: Vec<u8>,
    /// Configured compression.
    pub compression: Compression,
    /// [`SrpConfig::shared_digest`].
    pub config_digest: String,
    /// Hello period; also the dialer's retry period.
    pub hello_interval: Duration,
    /// A connection silent this long is closed; also bounds connect and handshake.
    pub dead_interval: Duration,
    /// Dial or accept.
    pub role: LinkRole,
    /// TLS of every connection ([`crate::link_tls`]); `None`: plain TCP.
    pub tls: Option<LinkTls>,
}

impl std::fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkConfig")
            .field("node_id", &self.node_id)
            .field("bind_address", &self.bind_address)
            .field("peer_address", &self.peer_address)
            .field("shared_key", &"<redacted>")
            .field("compression", &self.compression)
            .field("config_digest", &self.config_digest)
            .field("hello_interval", &self.hello_interval)
            .field("dead_interval", &self.dead_interval)
            .field("role", &self.role)
            .field("tls", &self.tls)
            .finish()
    }
}

impl LinkConfig {
    /// The link settings of an SRP configuration, in plain TCP (set [`LinkConfig::tls`] for TLS).
    pub fn from_config(c: &SrpConfig) -> LinkConfig {
        LinkConfig {
            node_id: c.node_id.clone(),
            bind_address: c.bind_address,
            peer_address: c.peer_address,
            shared_key: c.shared_key.as_bytes().to_vec(),
            compression: c.checkpoint.compression,
            config_digest: c.shared_digest(),
            hello_interval: c.hello_interval(),
            dead_interval: c.dead_interval(),
            role: LinkRole::for_addresses(c.bind_address, c.peer_address),
            tls: None,
        }
    }
}

/// The current connection (`show srp info`: peer, connection state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// The mate's node id.
    pub peer_node_id: String,
    /// The mate's socket address.
    pub peer_address: SocketAddr,
    /// Compression agreed for this connection.
    pub compression: Compression,
    /// Whether both chassis have the same shared configuration (`srp validate-configuration`).
    pub config_matches: bool,
}

/// What the link delivers to its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// A connection is up and authenticated.
    Connected(ConnectionInfo),
    /// The connection is gone.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// The mate's status.
    Hello(PeerStatus),
    /// A checkpoint, or why it could not be decoded (NACK it).
    Checkpoint(Result<Checkpoint, CheckpointDecodeError>),
    /// The mate could not apply a checkpoint.
    Nack(Nack),
    /// The mate asks for a full checkpoint.
    FullCheckpointRequest,
    /// The mate asks this chassis to take over.
    SwitchoverRequest {
        /// Even when not synchronised.
        force: bool,
        /// Why.
        reason: SwitchoverReason,
    },
    /// The mate's answer to a switchover request.
    SwitchoverResponse {
        /// Whether it takes over.
        accepted: bool,
        /// Why not.
        refusal: Option<Refusal>,
    },
    /// The mate's session digest, for an audit.
    AuditDigest(StoreDigest),
}

/// `show srp statistics` counters of the link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStatistics {
    /// Connections established.
    pub connects: u64,
    /// Connections established after the first.
    pub reconnects: u64,
    /// Connections lost.
    pub disconnects: u64,
    /// Handshakes that failed: on the dialer, an answer missing, wrong or not for this
    /// connection; on the acceptor, a handshake rejected (bad MAC, version, node id), not
    /// confirmed with the session key within the dead interval (a replay), or refused because
    /// too many were in progress. TLS handshakes that failed count here too.
    pub handshake_failures: u64,
    /// TLS handshakes that failed (also in `handshake_failures`): a peer certificate of
    /// another CA, of another role than engine, not valid for the mate's address, or none; or
    /// this chassis' certificate refused by the mate.
    #[serde(default)]
    pub tls_failures: u64,
    /// Frames rejected because their HMAC did not match.
    pub auth_failures: u64,
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames received and authenticated.
    pub frames_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Hello messages sent.
    pub hello_messages_sent: u64,
    /// Hello messages received.
    pub hello_messages_received: u64,
    /// Checkpoint and digest bytes before compression.
    pub bytes_before_compression: u64,
    /// Checkpoint and digest bytes after compression.
    pub bytes_after_compression: u64,
    /// Messages dropped because no connection was up (or too large to frame).
    pub messages_dropped: u64,
    /// Authenticated frames whose payload did not parse (checkpoints excluded: they are NACKed).
    pub malformed_messages: u64,
    /// Connections to a mate whose shared configuration differs.
    pub config_mismatches: u64,
}

#[derive(Default)]
struct Counters {
    connects: AtomicU64,
    reconnects: AtomicU64,
    disconnects: AtomicU64,
    handshake_failures: AtomicU64,
    tls_failures: AtomicU64,
    auth_failures: AtomicU64,
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    hellos_sent: AtomicU64,
    hellos_received: AtomicU64,
    before_compression: AtomicU64,
    after_compression: AtomicU64,
    dropped: AtomicU64,
    malformed: AtomicU64,
    config_mismatches: AtomicU64,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> LinkStatistics {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LinkStatistics {
            connects: g(&self.connects),
            reconnects: g(&self.reconnects),
            disconnects: g(&self.disconnects),
            handshake_failures: g(&self.handshake_failures),
            tls_failures: g(&self.tls_failures),
            auth_failures: g(&self.auth_failures),
            frames_sent: g(&self.frames_sent),
            frames_received: g(&self.frames_received),
            bytes_sent: g(&self.bytes_sent),
            bytes_received: g(&self.bytes_received),
            hello_messages_sent: g(&self.hellos_sent),
            hello_messages_received: g(&self.hellos_received),
            bytes_before_compression: g(&self.before_compression),
            bytes_after_compression: g(&self.after_compression),
            messages_dropped: g(&self.dropped),
            malformed_messages: g(&self.malformed),
            config_mismatches: g(&self.config_mismatches),
        }
    }
}

/// What the link task and its helpers share: counters and the current connection.
pub(crate) struct Shared {
    counters: Counters,
    connection: Mutex<Option<ConnectionInfo>>,
}

impl Shared {
    fn set_connection(&self, c: Option<ConnectionInfo>) {
        if let Ok(mut g) = self.connection.lock() {
            *g = c;
        }
    }
}

/// Errors of the link API.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The bind address cannot be listened on.
    #[error("cannot listen on SRP bind address {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The link task has stopped.
    #[error("the SRP link is shut down")]
    Closed,
}

/// The running link. Dropping it stops it.
pub struct Link {
    out: mpsc::Sender<Message>,
    hello: watch::Sender<Option<PeerStatus>>,
    shutdown: watch::Sender<bool>,
    shared: Arc<Shared>,
    local_addr: Option<SocketAddr>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl Link {
    /// Starts the link (binding the listener first when accepting); returns it and the channel
    /// its events arrive on.
    pub async fn start(config: LinkConfig) -> Result<(Link, mpsc::Receiver<LinkEvent>), LinkError> {
        let listener = match config.role {
            LinkRole::Accept => Some(
                TcpListener::bind(config.bind_address)
                    .await
                    .map_err(|source| LinkError::Bind { address: config.bind_address, source })?,
            ),
            LinkRole::Dial => None,
        };
        let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (hello_tx, hello_rx) = watch::channel(None);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared { counters: Counters::default(), connection: Mutex::new(None) });
        let task = tokio::spawn(
            Runner {
                config: Arc::new(config),
                shared: shared.clone(),
                out_rx,
                hello_rx,
                events: events_tx,
                shutdown: shutdown_rx,
            }
            .run(listener),
        );
        Ok((
            Link { out: out_tx, hello: hello_tx, shutdown: shutdown_tx, shared, local_addr, task: Some(task) },
            events_rx,
        ))
    }

    /// The address the acceptor listens on (useful when bound to port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Queues a message for the mate. It is dropped (and counted) if no connection is up when its
    /// turn comes.
    pub async fn send(&self, message: Message) -> Result<(), LinkError> {
        self.out.send(message).await.map_err(|_| LinkError::Closed)
    }

    /// Sets what this chassis' Hello carries; a connected link sends it at once.
    pub fn set_hello(&self, status: PeerStatus) {
        self.hello.send_replace(Some(status));
    }

    /// The current connection, if one is up.
    pub fn connection(&self) -> Option<ConnectionInfo> {
        self.shared.connection.lock().ok().and_then(|g| g.clone())
    }

    /// Whether a connection is up.
    pub fn is_connected(&self) -> bool {
        self.connection().is_some()
    }

    /// The link counters.
    pub fn statistics(&self) -> LinkStatistics {
        self.shared.counters.snapshot()
    }

    /// Stops the link and waits for it.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An authenticated connection.
struct Conn {
    reader: LinkReader,
    writer: LinkWriter,
    key: FrameKey,
    info: ConnectionInfo,
    /// The first frame, already read and authenticated (a dialer without key confirmation).
    first: Option<Frame>,
}

enum SessionEnd {
    Lost(String),
    Replaced(Box<Conn>),
    Shutdown,
}

struct Runner {
    config: Arc<LinkConfig>,
    shared: Arc<Shared>,
    out_rx: mpsc::Receiver<Message>,
    hello_rx: watch::Receiver<Option<PeerStatus>>,
    events: mpsc::Sender<LinkEvent>,
    shutdown: watch::Receiver<bool>,
}

impl Runner {
    async fn run(mut self, listener: Option<TcpListener>) {
        let (est_tx, mut est_rx) = mpsc::channel::<Conn>(4);
        let _acceptor = listener.map(|l| {
            AbortOnDrop(tokio::spawn(accept_loop(l, self.config.clone(), self.shared.clone(), est_tx.clone())))
        });
        drop(est_tx);
        let mut pending: Option<Conn> = None;
        let mut first = true;
        loop {
            let conn = match pending.take() {
                Some(c) => c,
                None => match self.next_connection(&mut est_rx).await {
                    Some(c) => c,
                    None => break,
                },
            };
            let c = &self.shared.counters;
            inc(&c.connects, 1);
            if !first {
                inc(&c.reconnects, 1);
            }
            first = false;
            if !conn.info.config_matches {
                inc(&c.config_mismatches, 1);
                tracing::warn!(peer = %conn.info.peer_node_id, "SRP configuration differs from the peer's (srp validate-configuration)");
            }
            tracing::info!(peer = %conn.info.peer_node_id, compression = %conn.info.compression, "SRP link up");
            self.shared.set_connection(Some(conn.info.clone()));
            let _ = self.events.send(LinkEvent::Connected(conn.info.clone())).await;
            let end = self.session(conn, &mut est_rx).await;
            self.shared.set_connection(None);
            inc(&self.shared.counters.disconnects, 1);
            let reason = match end {
                SessionEnd::Lost(r) => r,
                SessionEnd::Replaced(c) => {
                    pending = Some(*c);
                    "replaced by a new connection from the peer".to_string()
                }
                SessionEnd::Shutdown => "link shut down".to_string(),
            };
            tracing::info!(%reason, "SRP link down");
            let _ = self.events.send(LinkEvent::Disconnected { reason }).await;
            if *self.shutdown.borrow() {
                break;
            }
        }
    }

    /// Drops queued messages while no connection is up.
    fn drop_message(&self) {
        inc(&self.shared.counters.dropped, 1);
    }

    /// Waits for the next authenticated connection; `None` on shutdown.
    async fn next_connection(&mut self, est_rx: &mut mpsc::Receiver<Conn>) -> Option<Conn> {
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            match self.config.role {
                LinkRole::Accept => {
                    tokio::select! {
                        _ = self.shutdown.changed() => {}
                        c = est_rx.recv() => return c,
                        m = self.out_rx.recv() => match m {
                            Some(_) => self.drop_message(),
                            None => return None,
                        },
                    }
                }
                LinkRole::Dial => {
                    let dial = dial(self.config.clone(), self.shared.clone());
                    tokio::pin!(dial);
                    let result = loop {
                        tokio::select! {
                            _ = self.shutdown.changed() => return None,
                            r = &mut dial => break r,
                            m = self.out_rx.recv() => match m {
                                Some(_) => self.drop_message(),
                                None => return None,
                            },
                        }
                    };
                    match result {
                        Ok(c) => return Some(c),
                        Err(e) => {
                            tracing::debug!(error = %e, peer = %self.config.peer_address, "SRP connect failed");
                            let retry = tokio::time::sleep(self.config.hello_interval);
                            tokio::pin!(retry);
                            loop {
                                tokio::select! {
                                    _ = self.shutdown.changed() => return None,
                                    _ = &mut retry => break,
                                    m = self.out_rx.recv() => match m {
                                        Some(_) => self.drop_message(),
                                        None => return None,
                                    },
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    async fn session(&mut self, conn: Conn, est_rx: &mut mpsc::Receiver<Conn>) -> SessionEnd {
        let Conn { reader, mut writer, key, info, first } = conn;
        let (err_tx, mut err_rx) = mpsc::channel::<String>(1);
        let _reader = AbortOnDrop(tokio::spawn(read_loop(
            reader,
            first,
            key.clone(),
            info.compression,
            self.config.dead_interval,
            self.shared.clone(),
            self.events.clone(),
            err_tx,
        )));
        let mut writer =
            FrameWriter { writer: &mut writer, key, seq: 1, shared: &self.shared, compression: info.compression };
        let mut tick = tokio::time::interval(self.config.hello_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let write_timeout = self.config.dead_interval;
        let accepting = self.config.role == LinkRole::Accept;
        loop {
            let result = tokio::select! {
                _ = self.shutdown.changed() => return SessionEnd::Shutdown,
                e = err_rx.recv() => return SessionEnd::Lost(e.unwrap_or_else(|| "reader stopped".into())),
                c = est_rx.recv(), if accepting => match c {
                    Some(c) => return SessionEnd::Replaced(Box::new(c)),
                    None => return SessionEnd::Shutdown,
                },
                m = self.out_rx.recv() => match m {
                    Some(m) => timeout(write_timeout, writer.send(&m)).await,
                    None => return SessionEnd::Shutdown,
                },
                _ = tick.tick() => {
                    let hello = self.hello_rx.borrow_and_update().clone();
                    match hello {
                        Some(h) => timeout(write_timeout, writer.send(&Message::Hello(h))).await,
                        None => continue,
                    }
                }
                r = self.hello_rx.changed() => {
                    if r.is_err() {
                        return SessionEnd::Shutdown;
                    }
                    let hello = self.hello_rx.borrow_and_update().clone();
                    match hello {
                        Some(h) => timeout(write_timeout, writer.send(&Message::Hello(h))).await,
                        None => continue,
                    }
                }
            };
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return SessionEnd::Lost(format!("write failed: {e}")),
                Err(_) => return SessionEnd::Lost("write blocked for the dead interval".into()),
            }
        }
    }
}

struct FrameWriter<'a> {
    writer: &'a mut LinkWriter,
    key: FrameKey,
    seq: u64,
    shared: &'a Shared,
    compression: Compression,
}

impl FrameWriter<'_> {
    async fn send(&mut self, m: &Message) -> std::io::Result<()> {
        let enc = m.encode(self.compression);
        let frame = Frame { frame_type: enc.frame_type, seq: self.seq, payload: enc.payload };
        let bytes = match frame.encode(&self.key) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "SRP message not sent");
                inc(&self.shared.counters.dropped, 1);
                return Ok(());
            }
        };
        self.writer.write_all(&bytes).await?;
        // TLS holds what the socket did not take until the next write or flush.
        self.writer.flush().await?;
        self.seq += 1;
        let c = &self.shared.counters;
        inc(&c.frames_sent, 1);
        inc(&c.bytes_sent, bytes.len() as u64);
        inc(&c.before_compression, enc.uncompressed_len as u64);
        inc(&c.after_compression, enc.compressed_len as u64);
        if enc.frame_type == FrameType::Hello {
            inc(&c.hellos_sent, 1);
        }
        Ok(())
    }
}

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the connection.
    Closed,
    /// Reading failed.
    Io(std::io::Error),
    /// Not a valid frame, or not authentic.
    Frame(FrameError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed => f.write_str("connection closed by the peer"),
            ReadError::Io(e) => write!(f, "read failed: {e}"),
            ReadError::Frame(e) => write!(f, "{e}"),
        }
    }
}

/// Reads one frame of at most `max_len` payload bytes; counts authentication failures. The buffer
/// grows as bytes arrive, so a peer declaring a long frame and sending little costs little.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    key: &FrameKey,
    max_len: usize,
    shared: &Shared,
) -> Result<Frame, ReadError> {
    let eof = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof { ReadError::Closed } else { ReadError::Io(e) }
    };
    let mut header = [0u8; HEADER_LEN];
    r.read_exact(&mut header).await.map_err(eof)?;
    let h = Frame::parse_header(&header).map_err(ReadError::Frame)?;
    if h.len > max_len {
        return Err(ReadError::Frame(FrameError::TooLong { len: h.len, max: max_len }));
    }
    let total = h.frame_len();
    let mut buf = Vec::with_capacity(total.min(READ_CHUNK));
    buf.extend_from_slice(&header);
    while buf.len() < total {
        let start = buf.len();
        let want = (total - start).min(start.max(READ_CHUNK));
        buf.reserve_exact(want);
        buf.resize(start + want, 0);
        r.read_exact(&mut buf[start..]).await.map_err(eof)?;
    }
    inc(&shared.counters.bytes_received, buf.len() as u64);
    match Frame::decode(&buf, key) {
        Ok((f, _)) => {
            inc(&shared.counters.frames_received, 1);
            Ok(f)
        }
        Err(e) => {
            if e == FrameError::BadMac {
                inc(&shared.counters.auth_failures, 1);
            }
            Err(ReadError::Frame(e))
        }
    }
}

/// Writes one frame (handshake frames: not counted in the statistics).
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, key: &FrameKey, frame: Frame) -> std::io::Result<()> {
    let bytes = frame.encode(key).map_err(std::io::Error::other)?;
    w.write_all(&bytes).await?;
    w.flush().await
}

#[allow(clippy::too_many_arguments)]
async fn read_loop(
    mut reader: LinkReader,
    mut first: Option<Frame>,
    key: FrameKey,
    compression: Compression,
    dead_interval: Duration,
    shared: Arc<Shared>,
    events: mpsc::Sender<LinkEvent>,
    err_tx: mpsc::Sender<String>,
) {
    let mut expected_seq = 1u64;
    let reason = loop {
        let frame = match first.take() {
            Some(f) => f,
            None => match timeout(dead_interval, read_frame(&mut reader, &key, MAX_PAYLOAD_LEN, &shared)).await {
                Err(_) => break "nothing received for the dead interval".to_string(),
                Ok(Err(e)) => break e.to_string(),
                Ok(Ok(f)) => f,
            },
        };
        if frame.seq != expected_seq {
            break format!("frame sequence {} where {expected_seq} was expected", frame.seq);
        }
        expected_seq += 1;
        let event = match Message::decode(frame.frame_type, &frame.payload, compression) {
            Ok(Message::Hello(s)) => {
                inc(&shared.counters.hellos_received, 1);
                LinkEvent::Hello(s)
            }
            Ok(Message::Checkpoint(cp)) => LinkEvent::Checkpoint(Ok(cp)),
            Ok(Message::Nack(n)) => LinkEvent::Nack(n),
            Ok(Message::FullCheckpointRequest) => LinkEvent::FullCheckpointRequest,
            Ok(Message::SwitchoverRequest { force, reason }) => LinkEvent::SwitchoverRequest { force, reason },
            Ok(Message::SwitchoverResponse { accepted, refusal }) => {
                LinkEvent::SwitchoverResponse { accepted, refusal }
            }
            Ok(Message::AuditDigest(d)) => LinkEvent::AuditDigest(d),
            Err(MessageError::Checkpoint(e)) => LinkEvent::Checkpoint(Err(e)),
            Err(MessageError::Unexpected(t)) => break format!("unexpected {t:?} frame after the handshake"),
            Err(e) => {
                inc(&shared.counters.malformed, 1);
                tracing::warn!(error = %e, "malformed SRP message ignored");
                continue;
            }
        };
        if events.send(event).await.is_err() {
            break "the owner stopped listening".to_string();
        }
    };
    let _ = err_tx.send(reason).await;
}

fn handshake_failed(shared: &Shared, e: HandshakeError) -> HandshakeError {
    inc(&shared.counters.handshake_failures, 1);
    if e.is_tls() {
        inc(&shared.counters.tls_failures, 1);
    }
    e
}

/// Connects to the peer and runs the dialer's half of the handshake.
async fn dial(config: Arc<LinkConfig>, shared: Arc<Shared>) -> Result<Conn, String> {
    let t = config.dead_interval;
    // From this chassis' own SRP address (its IP, any port), so firewalls and the mate see
    // the address the configuration names; a bind address on another interface than the
    // route to the peer would make the connect fail and say so.
    let connect = async {
        let socket = if config.peer_address.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }?;
        if !config.bind_address.ip().is_unspecified() && config.bind_address.is_ipv4() == config.peer_address.is_ipv4()
        {
            socket.bind(std::net::SocketAddr::new(config.bind_address.ip(), 0))?;
        }
        socket.connect(config.peer_address).await
    };
    let stream = match timeout(t, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("connect to {}: {e}", config.peer_address)),
        Err(_) => return Err(format!("connect to {}: timed out", config.peer_address)),
    };
    let peer_address = stream.peer_addr().unwrap_or(config.peer_address);
    let _ = stream.set_nodelay(true);
    let mut stage = Stage::Tls;
    // The TLS handshake (when configured) and SRP's own, within one dead interval.
    let exchange = async {
        let (mut reader, mut writer) = link_tls::secure_dialed(config.tls.as_ref(), stream)
            .await
            .map_err(|source| HandshakeError::Io { stage: Stage::Tls, source })?;
        let established = handshake::dial(&mut reader, &mut writer, &config, peer_address, &shared, &mut stage).await?;
        Ok::<_, HandshakeError>((reader, writer, established))
    };
    let (reader, writer, established) = match timeout(t, exchange).await {
        Ok(r) => r,
        Err(_) => Err(HandshakeError::TimedOut { stage }),
    }
    .map_err(|e| {
        let e = handshake_failed(&shared, e);
        if e.is_tls()
            && let Some(left_out) = DIAL_TLS_FAILED.allow()
        {
            tracing::warn!(peer = %peer_address, error = %e, left_out, "SRP TLS handshake with the mate failed");
        }
        e.to_string()
    })
    .map_err(|e| format!("handshake with {peer_address}: {e}"))?;
    Ok(Conn { reader, writer, key: established.key, info: established.info, first: established.first })
}

/// Accepts connections and hands those whose dialer proved the session key to the runner.
async fn accept_loop(listener: TcpListener, config: Arc<LinkConfig>, shared: Arc<Shared>, est: mpsc::Sender<Conn>) {
    let admission = Admission::new(Limits::DEFAULT, config.peer_address.ip());
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                if let Some(left_out) = ACCEPT_FAILED.allow() {
                    tracing::warn!(error = %e, left_out, "SRP accept failed");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = match admission.admit(addr.ip()) {
            Ok(p) => p,
            Err(refused) => {
                inc(&shared.counters.handshake_failures, 1);
                if let Some(left_out) = HANDSHAKE_REFUSED.allow() {
                    let reason = refused.to_string();
                    tracing::warn!(peer = %addr, %reason, left_out, "SRP connection closed before its handshake");
                }
                drop(stream);
                continue;
            }
        };
        let (config, shared, est) = (config.clone(), shared.clone(), est.clone());
        tokio::spawn(async move {
            let result = accept_handshake(stream, addr, &config, &shared).await;
            drop(permit);
            match result {
                Ok(conn) => {
                    let _ = est.send(conn).await;
                }
                Err(e) => {
                    if let Some(left_out) = HANDSHAKE_REJECTED.allow() {
                        tracing::warn!(peer = %addr, error = %e, left_out, "SRP handshake rejected");
                    }
                }
            }
        });
    }
}

/// The acceptor's half of the handshake, within the dead interval; counts a failure.
async fn accept_handshake(
    stream: TcpStream,
    addr: SocketAddr,
    config: &LinkConfig,
    shared: &Shared,
) -> Result<Conn, HandshakeError> {
    let _ = stream.set_nodelay(true);
    let mut stage = Stage::Tls;
    // The TLS handshake (when configured) and SRP's own, within one deadline.
    let exchange = async {
        let (mut reader, mut writer) = link_tls::secure_accepted(config.tls.as_ref(), stream)
            .await
            .map_err(|source| HandshakeError::Io { stage: Stage::Tls, source })?;
        let established = handshake::accept(&mut reader, &mut writer, config, addr, shared, &mut stage).await?;
        Ok::<_, HandshakeError>((reader, writer, established))
    };
    let (reader, writer, established) = match timeout(handshake_deadline(config.dead_interval), exchange).await {
        Ok(r) => r,
        Err(_) => Err(HandshakeError::TimedOut { stage }),
    }
    .map_err(|e| handshake_failed(shared, e))?;
    Ok(Conn { reader, writer, key: established.key, info: established.info, first: established.first })
}

/// How long the acceptor's half of a handshake may take: the dead interval, but at least a
/// second, so a loaded host does not fail its mate's handshakes for want of a few milliseconds
/// (the cost of a pending handshake is bounded by [`Limits`], not by this).
fn handshake_deadline(dead_interval: Duration) -> Duration {
    dead_interval.max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_side_dials() {
        let a: SocketAddr = "192.0.2.1:7500".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:7500".parse().unwrap();
        assert_eq!(LinkRole::for_addresses(a, b), LinkRole::Dial);
        assert_eq!(LinkRole::for_addresses(b, a), LinkRole::Accept);
    }

    #[test]
    fn debug_redacts_the_key() {
        let c = LinkConfig {
            node_id: "n".into(),
            bind_address: "127.0.0.1:1".parse().unwrap(),
            peer_address: "127.0.0.1:2".parse().unwrap(),
            shared_key: b"super-secret-key".to_vec(),
            compression: Compression::Zlib,
            config_digest: String::new(),
            hello_interval: Duration::from_secs(1),
            dead_interval: Duration::from_secs(3),
            role: LinkRole::Dial,
            tls: None,
        };
        assert!(!format!("{c:?}").contains("super-secret"));
    }
}
