//! The ENUM listeners: UDP ([`crate::udp`]) and TCP ([`crate::tcp`]). Each answer's record is
//! appended to the spool before the answer is sent, so every answered query is on record even
//! if the process is killed right after.
//!
//! When a record cannot be written (the spool is at its disk limit, or refuses for lack of file
//! descriptors or a disk error), the answer is still sent: answering beats recording, since an
//! SBC without an answer fails open anyway. It is never silent: every such record is counted in
//! `tollgate_records_not_written_total{dataset="ENUM", reason}` (the engine raises alarm 72006
//! RECORDS_NOT_WRITTEN for I/O errors, 72002 SPOOL_FULL covers the disk limit), and logged at
//! most once per 10 s with the number of lines left out.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tollgate_logthrottle::LogThrottle;
use tollgate_records::spool::{Spool, SpoolLane};

use crate::metrics::EnumMetrics;
use crate::respond::{Answered, Responder};
use crate::tcp::{self, TcpLimits};
use crate::udp;

/// One line per 10 s about records the spool did not take; the others are counted in the line.
static NOT_WRITTEN_LOG: LogThrottle = LogThrottle::new(10_000);

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
            if !crate::mmsg::enable_receive_timestamps(&s) {
                tracing::warn!(%addr, "no kernel receive timestamps on this socket: latency is measured from when a query is read");
            }
            udp_sockets.push(Arc::new(s));
        }
        let mut tcp_listeners = Vec::new();
        for addr in tcp {
            tcp_listeners.push(TcpListener::bind(addr).await.map_err(|e| bind_err("TCP", addr, e))?);
        }
        let workers = responder.config().udp_worker_count();
        let mut server = EnumServer {
            udp_addrs: udp_sockets.iter().map(|s| s.local_addr()).collect::<io::Result<_>>()?,
            tcp_addrs: tcp_listeners.iter().map(|l| l.local_addr()).collect::<io::Result<_>>()?,
            tasks: JoinSet::new(),
        };
        for (i, socket) in udp_sockets.into_iter().enumerate() {
            for w in 0..workers {
                let lane = sink.lane(&format!("udp{i}_{w}"))?;
                server.tasks.spawn(udp::worker(socket.clone(), responder.clone(), lane, metrics.clone()));
            }
        }
        let limits = TcpLimits::of(responder.config());
        for (i, listener) in tcp_listeners.into_iter().enumerate() {
            let lane = Arc::new(Mutex::new(sink.lane(&format!("tcp{i}"))?));
            server.tasks.spawn(tcp::acceptor(listener, responder.clone(), lane, metrics.clone(), limits));
        }
        Ok(server)
    }

    /// Stops every listener and waits for the tasks to end.
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Appends the answer's record (if it has one) to `lane`; a record the spool does not take is
/// counted and logged (throttled), and the answer is still sent by the caller.
pub(crate) fn record(lane: &mut Option<SpoolLane>, answer: &Answered, metrics: &EnumMetrics) {
    record_all(lane, std::iter::once(answer), metrics);
}

/// Appends the records of several answers to `lane` with one write ([`SpoolLane::append_batch`]);
/// each record the spool does not take is counted and logged (throttled), and the answers are
/// still sent by the caller.
pub(crate) fn record_all<'a>(
    lane: &mut Option<SpoolLane>,
    answers: impl IntoIterator<Item = &'a Answered>,
    metrics: &EnumMetrics,
) {
    let Some(lane) = lane.as_mut() else { return };
    lane.append_batch(answers.into_iter().filter_map(|a| a.record.as_ref()), |e| {
        metrics.spool_errors.inc();
        let reason = metrics.records_not_written.count("ENUM", &e);
        if let Some(left_out) = NOT_WRITTEN_LOG.allow() {
            tracing::error!(
                error = %e,
                reason,
                left_out,
                "cannot write ENUM record to the spool; the query was answered without a record (counted in tollgate_records_not_written_total)"
            );
        }
    });
}
