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

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tollgate_logthrottle::LogThrottle;
use tollgate_records::Record;
use tollgate_records::spool::{Spool, SpoolLane};

use crate::metrics::{EnumMetrics, RecordsNotWritten};
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
    /// The spool lane named `name` (each writer has its own), or none when records are discarded.
    pub fn lane(&self, name: &str) -> io::Result<Option<SpoolLane>> {
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
        let workers = responder.config().udp_worker_count();
        let reuseport = responder.config().udp_reuseport;
        // Per address: one socket per worker (SO_REUSEPORT), or one shared by all.
        let mut udp_groups: Vec<Vec<Arc<UdpSocket>>> = Vec::new();
        for addr in udp {
            let group = if reuseport && workers > 1 {
                bind_reuseport_group(*addr, workers).map_err(|e| bind_err("UDP", addr, e))?
            } else {
                vec![UdpSocket::bind(addr).await.map_err(|e| bind_err("UDP", addr, e))?]
            };
            for s in &group {
                if !tollgate_udp::enable_receive_timestamps(s) {
                    tracing::warn!(%addr, "no kernel receive timestamps on this socket: latency is measured from when a query is read");
                }
            }
            udp_groups.push(group.into_iter().map(Arc::new).collect());
        }
        let mut tcp_listeners = Vec::new();
        for addr in tcp {
            tcp_listeners.push(TcpListener::bind(addr).await.map_err(|e| bind_err("TCP", addr, e))?);
        }
        let mut server = EnumServer {
            udp_addrs: udp_groups.iter().map(|g| g[0].local_addr()).collect::<io::Result<_>>()?,
            tcp_addrs: tcp_listeners.iter().map(|l| l.local_addr()).collect::<io::Result<_>>()?,
            tasks: JoinSet::new(),
        };
        for (i, group) in udp_groups.into_iter().enumerate() {
            for w in 0..workers {
                let lane = sink.lane(&format!("udp{i}_{w}"))?;
                let socket = group[w % group.len()].clone();
                server.tasks.spawn(udp::worker(socket, responder.clone(), lane, metrics.clone()));
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

/// Binds `count` UDP sockets to `addr` with `SO_REUSEPORT`, one per receive task. The address
/// is first bound alone, without the option: if another process holds it (another engine's
/// group included, or anything bound without the option) that fails with "address in use", as
/// a plain bind would, instead of the kernel silently sharing the traffic with a stranger. Port
/// 0 is resolved by that first bind, and the group binds the port it got.
pub fn bind_reuseport_group(addr: SocketAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    let addr = std::net::UdpSocket::bind(addr)?.local_addr()?;
    (0..count)
        .map(|_| {
            let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
            socket.set_reuse_port(true)?;
            socket.set_nonblocking(true)?;
            socket.bind(&addr.into())?;
            UdpSocket::from_std(socket.into())
        })
        .collect()
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
    let failed =
        append_records(lane, answers.into_iter().filter_map(|a| a.record.as_ref()), &metrics.records_not_written);
    metrics.spool_errors.inc_by(failed);
}

/// Appends `records` (the decisions of answered queries, ENUM or SIP) to `lane` with one write
/// ([`SpoolLane::append_batch`]); each record the spool does not take is counted in
/// `tollgate_records_not_written_total{dataset="ENUM"}` and logged (at most one line per 10 s).
/// Returns how many were not written. The caller sends the answers either way.
pub fn append_records<'a>(
    lane: &mut Option<SpoolLane>,
    records: impl IntoIterator<Item = &'a Record>,
    not_written: &RecordsNotWritten,
) -> u64 {
    let Some(lane) = lane.as_mut() else { return 0 };
    let mut failed = 0;
    lane.append_batch(records, |e| {
        failed += 1;
        let reason = not_written.count("ENUM", &e);
        if let Some(left_out) = NOT_WRITTEN_LOG.allow() {
            tracing::error!(
                error = %e,
                reason,
                left_out,
                "cannot write ENUM record to the spool; the query was answered without a record (counted in tollgate_records_not_written_total)"
            );
        }
    });
    failed
}
