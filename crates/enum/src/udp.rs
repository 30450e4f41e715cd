//! The UDP listener's workers, and when a datagram really arrived.
//!
//! Latency is measured from the moment the kernel received the datagram (`SO_TIMESTAMPNS`, read
//! with `recvmmsg`, see [`tollgate_udp::batch`]), not from the moment a worker got round to reading it: an engine that was
//! stalled (frozen, swapped out, starved of CPU) finds its queued queries seconds old, and
//! their answers are stale, not "answered in 10 us". Both ends of the measurement are the wall
//! clock (CLOCK_REALTIME), the clock the kernel stamps with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use tokio::net::UdpSocket;
use tollgate_logthrottle::LogThrottle;
use tollgate_records::Transport;
use tollgate_records::spool::SpoolLane;
use tollgate_udp::{BATCH, Datagram, Outgoing, RecvBatch, send_all};

use crate::metrics::EnumMetrics;
use crate::respond::{Answered, QueryContext, Responder};
use crate::server::record_all;

/// One line per 10 s about failed receives or sends (ICMP errors of earlier sends, a full
/// socket buffer); each one is counted.
static RECEIVE_ERROR_LOG: LogThrottle = LogThrottle::new(10_000);
static SEND_ERROR_LOG: LogThrottle = LogThrottle::new(10_000);

/// The receive time of a query as the responder needs it: a monotonic instant (to measure the
/// latency) and the wall-clock time (the record's time, time windows), from the kernel's
/// timestamp and the moment the batch was read (`read_at` on both clocks). Without a kernel
/// timestamp, the moment it was read.
pub fn arrival(kernel_time: Option<SystemTime>, read_at: Instant, wall: SystemTime) -> (Instant, DateTime<Utc>) {
    // A clock stepped backwards makes the age 0; an absurd age is capped (an hour).
    let age =
        kernel_time.and_then(|k| wall.duration_since(k).ok()).unwrap_or(Duration::ZERO).min(Duration::from_secs(3600));
    let received = read_at.checked_sub(age).unwrap_or(read_at);
    (received, DateTime::<Utc>::from(wall - age))
}

/// An answer of the batch being handled, until it is sent.
struct Pending {
    answer: Answered,
    peer: SocketAddr,
    received: Instant,
}

/// One receive task of a UDP socket. It reads the queries the socket has queued (up to
/// [`BATCH`] with one system call), answers each, writes their records to the worker's own
/// spool lane with one `write`, and only then sends the answers (up to [`BATCH`] per system
/// call): every answer that leaves has its record in the kernel's hands.
pub(crate) async fn worker(
    socket: Arc<UdpSocket>,
    responder: Arc<Responder>,
    mut lane: Option<SpoolLane>,
    metrics: Arc<EnumMetrics>,
) {
    let mut batch = RecvBatch::new();
    let mut pending: Vec<Pending> = Vec::with_capacity(BATCH);
    // Answer buffers, reused: each answer is written into the capacity of an earlier one.
    let mut spare: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    loop {
        if let Err(e) = batch.receive(&socket).await {
            // ICMP errors from earlier sends surface here on Linux; keep serving.
            metrics.unanswered("receive_error");
            if let Some(left_out) = RECEIVE_ERROR_LOG.allow() {
                tracing::debug!(error = %e, left_out, "UDP receive error");
            }
            continue;
        }
        let (read_at, wall) = (Instant::now(), SystemTime::now());
        for (packet, Datagram { peer, kernel_time, .. }) in batch.datagrams() {
            let Some(peer) = peer else {
                // No IP sender (not on an IP socket): it cannot be answered.
                metrics.unanswered("not_a_query");
                continue;
            };
            let (received, now) = arrival(kernel_time, read_at, wall);
            let ctx = QueryContext { peer, transport: Transport::Udp, received, now };
            let buf = spare.pop().unwrap_or_else(|| Vec::with_capacity(usize::from(crate::respond::EDNS_PAYLOAD)));
            match responder.respond_reusing(packet, &ctx, buf) {
                Some(answer) => pending.push(Pending { answer, peer, received }),
                None => metrics.unanswered("not_a_query"),
            }
        }
        record_all(&mut lane, pending.iter().map(|p| &p.answer), &metrics);
        let outgoing: Vec<Outgoing<'_>> =
            pending.iter().map(|p| Outgoing { bytes: &p.answer.bytes, peer: p.peer }).collect();
        send_all(&socket, &outgoing, |o, e| {
            metrics.unanswered("send_error");
            if let Some(left_out) = SEND_ERROR_LOG.allow() {
                tracing::debug!(error = %e, peer = %o.peer, left_out, "UDP send error");
            }
        })
        .await;
        drop(outgoing);
        let sent_at = Instant::now();
        for p in pending.drain(..) {
            metrics.answered("udp", &p.answer, sent_at.saturating_duration_since(p.received).as_secs_f64());
            spare.push(p.answer.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_is_the_kernel_time_and_the_latency_counts_from_it() {
        let (read_at, wall) = (Instant::now(), SystemTime::now());
        let two_seconds_before = wall - Duration::from_secs(2);
        let (received, time) = arrival(Some(two_seconds_before), read_at, wall);
        assert_eq!(read_at - received, Duration::from_secs(2), "the latency counts from the kernel's stamp");
        assert_eq!(time, DateTime::<Utc>::from(two_seconds_before), "the record's time is the kernel's");
        // A timestamp from the future (clock stepped back) is not a negative latency.
        let (received, time) = arrival(Some(wall + Duration::from_secs(60)), read_at, wall);
        assert_eq!((received, time), (read_at, DateTime::<Utc>::from(wall)));
        // No stamp: the moment the batch was read.
        assert_eq!(arrival(None, read_at, wall), (read_at, DateTime::<Utc>::from(wall)));
        // An absurd age is capped at an hour.
        let (received, _) = arrival(Some(wall - Duration::from_secs(86_400)), read_at, wall);
        assert_eq!(read_at - received, Duration::from_secs(3600));
    }
}
