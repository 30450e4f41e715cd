//! The TCP listener: DNS over TCP (RFC 7766), with limits so no client can hold the listener.
//!
//! * at most `tcp_max_connections` connections at once, and at most
//!   `tcp_max_connections_per_source` from one source address: a connection beyond either is
//!   accepted and closed at once (counted in `tollgate_enum_tcp_refused_total{reason}`), so the
//!   client learns at once and tries another engine, instead of waiting in the kernel's backlog;
//! * a connection is closed after `tcp_idle_timeout_secs` without a query, and after
//!   `tcp_max_connection_secs` however busy it is (once the answer in progress is sent), so
//!   a client sending one query every few seconds cannot keep its slots forever;
//! * a failed accept (out of file descriptors: EMFILE, ENFILE) pauses the acceptor, 10 ms
//!   doubling up to 1 s while the failures last, instead of spinning; the failures are counted
//!   and logged at most once per 10 s.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};
use tollgate_listener::AcceptBackoff;
use tollgate_logthrottle::LogThrottle;
use tollgate_records::Transport;
use tollgate_records::spool::SpoolLane;

use crate::config::EnumConfig;
use crate::metrics::{EnumMetrics, RefusedLabels};
use crate::respond::{QueryContext, Responder};
use crate::server::record;

static ACCEPT_ERROR_LOG: LogThrottle = LogThrottle::new(10_000);
static REFUSED_LOG: LogThrottle = LogThrottle::new(10_000);

/// The limits of one TCP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpLimits {
    /// Connections at once, all sources.
    pub max: usize,
    /// Connections at once from one source address.
    pub per_source: usize,
    /// Without a query for this long, a connection is closed.
    pub idle: Duration,
    /// A connection is closed after this long, busy or not.
    pub lifetime: Duration,
}

impl TcpLimits {
    /// The limits of a configuration.
    pub fn of(config: &EnumConfig) -> Self {
        TcpLimits {
            max: config.tcp_max_connections.max(1),
            per_source: config.tcp_max_connections_per_source.max(1),
            idle: Duration::from_secs(config.tcp_idle_timeout_secs.max(1)),
            lifetime: Duration::from_secs(config.tcp_max_connection_secs.max(1)),
        }
    }
}

/// Connection slots in use, in total and per source address. Entries exist only for sources
/// with open connections, so the table holds at most `max` entries.
#[derive(Debug)]
struct Slots {
    limits: TcpLimits,
    table: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One connection's slot, given back when dropped.
struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Slots {
    fn new(limits: TcpLimits) -> Arc<Self> {
        Arc::new(Slots { limits, table: Mutex::new((0, HashMap::new())) })
    }

    /// A slot for a connection from `ip`, or the reason it is refused.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, &'static str> {
        let mut guard = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let (total, by_source) = &mut *guard;
        if *total >= self.limits.max {
            return Err("limit");
        }
        let mine = by_source.entry(ip).or_insert(0);
        if *mine >= self.limits.per_source {
            return Err("per_source");
        }
        *mine += 1;
        *total += 1;
        Ok(Slot { slots: self.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut guard = self.slots.table.lock().unwrap_or_else(|e| e.into_inner());
        let (total, by_source) = &mut *guard;
        *total = total.saturating_sub(1);
        if let Some(n) = by_source.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by_source.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections on `listener` and serves each in its own task, within `limits`.
pub(crate) async fn acceptor(
    listener: TcpListener,
    responder: Arc<Responder>,
    lane: Arc<Mutex<Option<SpoolLane>>>,
    metrics: Arc<EnumMetrics>,
    limits: TcpLimits,
) {
    let slots = Slots::new(limits);
    let mut backoff = AcceptBackoff::default();
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => {
                backoff.reset();
                x
            }
            Err(e) => {
                metrics.tcp_accept_errors.inc();
                let pause = backoff.pause();
                if let Some(left_out) = ACCEPT_ERROR_LOG.allow() {
                    tracing::warn!(error = %e, left_out, pause_ms = pause.as_millis() as u64, "ENUM TCP accept failed; pausing the listener");
                }
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let slot = match slots.take(peer.ip()) {
            Ok(slot) => slot,
            Err(reason) => {
                metrics.tcp_refused.get_or_create(&RefusedLabels { reason }).inc();
                if let Some(left_out) = REFUSED_LOG.allow() {
                    tracing::warn!(%peer, reason, left_out, "ENUM TCP connection refused at its limit");
                }
                drop(stream);
                continue;
            }
        };
        let (responder, lane, metrics) = (responder.clone(), lane.clone(), metrics.clone());
        connections.spawn(async move {
            metrics.tcp_connections.inc();
            let closed = serve(stream, peer, &responder, &lane, &metrics, limits).await;
            if closed == Closed::Lifetime {
                metrics.tcp_lifetime_closed.inc();
            }
            metrics.tcp_connections.dec();
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    /// The client closed it, or it failed.
    Peer,
    /// No query within the idle timeout.
    Idle,
    /// It reached the maximum lifetime.
    Lifetime,
}

async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    responder: &Responder,
    lane: &Mutex<Option<SpoolLane>>,
    metrics: &EnumMetrics,
    limits: TcpLimits,
) -> Closed {
    if stream.set_nodelay(true).is_err() {
        return Closed::Peer;
    }
    let end = Instant::now() + limits.lifetime;
    let mut buf = vec![0u8; 65_535];
    // The previous answer's buffer, reused for the next (the fast path writes into it).
    let mut reused = Vec::new();
    loop {
        let idle_end = Instant::now() + limits.idle;
        let (deadline, why) = if idle_end < end { (idle_end, Closed::Idle) } else { (end, Closed::Lifetime) };
        let len = match timeout_at(deadline, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            Ok(Err(_)) => return Closed::Peer,
            Err(_) => return why,
        };
        match timeout_at(deadline, stream.read_exact(&mut buf[..len])).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Closed::Peer,
            Err(_) => return why,
        }
        // Over TCP the receive time is when the whole message was read.
        let ctx =
            QueryContext { peer, transport: Transport::Tcp, received: std::time::Instant::now(), now: Utc::now() };
        let Some(mut answer) = responder.respond_reusing(&buf[..len], &ctx, std::mem::take(&mut reused)) else {
            metrics.unanswered("not_a_query");
            return Closed::Peer;
        };
        {
            let mut guard = lane.lock().unwrap_or_else(|e| e.into_inner());
            record(&mut guard, &answer, metrics);
        }
        let mut out = Vec::with_capacity(answer.bytes.len() + 2);
        out.extend_from_slice(&(answer.bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&answer.bytes);
        // A client that does not read its answers does not hold the slot either.
        match tokio::time::timeout(limits.idle, stream.write_all(&out)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                metrics.unanswered("send_error");
                return Closed::Peer;
            }
            Err(_) => return Closed::Idle,
        }
        metrics.answered("tcp", &answer, ctx.received.elapsed().as_secs_f64());
        reused = std::mem::take(&mut answer.bytes);
        if Instant::now() >= end {
            return Closed::Lifetime;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_source: usize) -> TcpLimits {
        TcpLimits { max, per_source, idle: Duration::from_secs(1), lifetime: Duration::from_secs(1) }
    }

    #[test]
    fn slots_are_limited_per_source_and_in_total_and_given_back() {
        let slots = Slots::new(limits(3, 2));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = slots.take(a).unwrap();
        let a2 = slots.take(a).unwrap();
        assert_eq!(slots.take(a).err(), Some("per_source"));
        let b1 = slots.take(b).unwrap();
        assert_eq!(slots.take(b).err(), Some("limit"));
        drop(a1);
        let a3 = slots.take(a).unwrap();
        drop((a2, a3, b1));
        let table = slots.table.lock().unwrap();
        assert_eq!((table.0, table.1.len()), (0, 0), "nothing kept for sources without connections");
    }
}
