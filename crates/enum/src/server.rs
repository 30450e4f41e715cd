//! UDP and TCP listeners. Each answer's record is appended to the spool before the answer is
//! sent, so every answered query is on record even if the process is killed right after.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tollgate_records::Transport;
use tollgate_records::spool::{Spool, SpoolLane};

use crate::metrics::EnumMetrics;
use crate::respond::{Answered, QueryContext, Responder};

/// Most TCP connections served at once; more wait in the accept queue.
const MAX_TCP_CONNECTIONS: usize = 1024;

/// Where records go.
#[derive(Clone)]
pub enum RecordSink {
    /// Records are appended to this spool.
    Spool(Spool),
    /// Records are discarded (tests, `lookup`).
    Discard,
}

impl RecordSink {
    fn lane(&self, name: &str) -> io::Result<Option<SpoolLane>> {
        match self {
            RecordSink::Spool(s) => s.lane(name).map(Some),
            RecordSink::Discard => Ok(None),
        }
    }
}

/// A running ENUM server. Dropping it stops every listener.
pub struct EnumServer {
    /// Bound UDP addresses (with the real port when 0 was asked).
    pub udp_addrs: Vec<SocketAddr>,
    /// Bound TCP addresses.
    pub tcp_addrs: Vec<SocketAddr>,
    tasks: JoinSet<()>,
}

impl EnumServer {
    /// Binds every configured address, then starts serving. Fails (naming the address) if any
    /// address cannot be bound, before serving anything.
    pub async fn start(
        responder: Arc<Responder>,
        sink: RecordSink,
        metrics: Arc<EnumMetrics>,
        udp: &[SocketAddr],
        tcp: &[SocketAddr],
    ) -> io::Result<Self> {
        let bind_err = |proto: &str, addr: &SocketAddr, e: io::Error| {
            io::Error::new(e.kind(), format!("cannot bind ENUM {proto} listener {addr}: {e}"))
        };
        let mut udp_sockets = Vec::new();
        for addr in udp {
            let s = UdpSocket::bind(addr).await.map_err(|e| bind_err("UDP", addr, e))?;
            udp_sockets.push(Arc::new(s));
        }
        let mut tcp_listeners = Vec::new();
        for addr in tcp {
            tcp_listeners.push(TcpListener::bind(addr).await.map_err(|e| bind_err("TCP", addr, e))?);
        }
        let workers = match responder.config().udp_workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let mut server = EnumServer {
            udp_addrs: udp_sockets.iter().map(|s| s.local_addr()).collect::<io::Result<_>>()?,
            tcp_addrs: tcp_listeners.iter().map(|l| l.local_addr()).collect::<io::Result<_>>()?,
            tasks: JoinSet::new(),
        };
        for (i, socket) in udp_sockets.into_iter().enumerate() {
            for w in 0..workers {
                let lane = sink.lane(&format!("udp{i}_{w}"))?;
                server.tasks.spawn(udp_worker(socket.clone(), responder.clone(), lane, metrics.clone()));
            }
        }
        let idle = Duration::from_secs(responder.config().tcp_idle_timeout_secs.max(1));
        for (i, listener) in tcp_listeners.into_iter().enumerate() {
            let lane = Arc::new(Mutex::new(sink.lane(&format!("tcp{i}"))?));
            server.tasks.spawn(tcp_acceptor(listener, responder.clone(), lane, metrics.clone(), idle));
        }
        Ok(server)
    }

    /// Stops every listener and waits for the tasks to end.
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

fn record(lane: &mut Option<SpoolLane>, answer: &Answered, metrics: &EnumMetrics) {
    if let (Some(lane), Some(rec)) = (lane.as_mut(), answer.record.as_ref())
        && let Err(e) = lane.append(rec)
    {
        metrics.spool_errors.inc();
        tracing::error!(error = %e, "cannot write ENUM record to the spool");
    }
}

async fn udp_worker(
    socket: Arc<UdpSocket>,
    responder: Arc<Responder>,
    mut lane: Option<SpoolLane>,
    metrics: Arc<EnumMetrics>,
) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors from earlier sends surface here on Linux; keep serving.
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        let ctx = QueryContext { peer, transport: Transport::Udp, received: Instant::now(), now: Utc::now() };
        match responder.respond(&buf[..n], &ctx) {
            Some(answer) => {
                record(&mut lane, &answer, &metrics);
                if let Err(e) = socket.send_to(&answer.bytes, peer).await {
                    tracing::debug!(error = %e, %peer, "UDP send error");
                    metrics.unanswered("send_error");
                }
                metrics.answered("udp", &answer, ctx.received.elapsed().as_secs_f64());
            }
            None => metrics.unanswered("not_a_query"),
        }
    }
}

async fn tcp_acceptor(
    listener: TcpListener,
    responder: Arc<Responder>,
    lane: Arc<Mutex<Option<SpoolLane>>>,
    metrics: Arc<EnumMetrics>,
    idle: Duration,
) {
    let limit = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else { return };
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept error");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (responder, lane, metrics) = (responder.clone(), lane.clone(), metrics.clone());
        connections.spawn(async move {
            metrics.tcp_connections.inc();
            let _ = tcp_connection(stream, peer, &responder, &lane, &metrics, idle).await;
            metrics.tcp_connections.dec();
            drop(permit);
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn tcp_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    responder: &Responder,
    lane: &Mutex<Option<SpoolLane>>,
    metrics: &EnumMetrics,
    idle: Duration,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let len = match tokio::time::timeout(idle, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            Ok(Err(_)) | Err(_) => return Ok(()),
        };
        match tokio::time::timeout(idle, stream.read_exact(&mut buf[..len])).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return Ok(()),
        }
        let ctx = QueryContext { peer, transport: Transport::Tcp, received: Instant::now(), now: Utc::now() };
        let Some(answer) = responder.respond(&buf[..len], &ctx) else {
            metrics.unanswered("not_a_query");
            return Ok(());
        };
        {
            let mut guard = lane.lock().unwrap_or_else(|e| e.into_inner());
            record(&mut guard, &answer, metrics);
        }
        let mut out = Vec::with_capacity(answer.bytes.len() + 2);
        out.extend_from_slice(&(answer.bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&answer.bytes);
        stream.write_all(&out).await?;
        metrics.answered("tcp", &answer, ctx.received.elapsed().as_secs_f64());
    }
}
