//! The UDP listener's workers, and when a datagram really arrived.
//!
//! Latency is measured from the moment the kernel received the datagram (`SO_TIMESTAMPNS`, read
//! with `recvmsg`), not from the moment a worker got round to reading it: an engine that was
//! stalled (frozen, swapped out, starved of CPU) finds its queued queries seconds old, and
//! their answers are stale, not "answered in 10 us". Both ends of the measurement are the wall
//! clock (CLOCK_REALTIME), the clock the kernel stamps with.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tollgate_logthrottle::LogThrottle;
use tollgate_records::Transport;
use tollgate_records::spool::SpoolLane;

use crate::metrics::EnumMetrics;
use crate::respond::{QueryContext, Responder};
use crate::server::record;

/// One line per 10 s about failed receives or sends (ICMP errors of earlier sends, a full
/// socket buffer); each one is counted.
static RECEIVE_ERROR_LOG: LogThrottle = LogThrottle::new(10_000);
static SEND_ERROR_LOG: LogThrottle = LogThrottle::new(10_000);

/// Asks the kernel to stamp every datagram received on `socket` with its receive time. Returns
/// false (and the worker falls back to the time it reads the datagram) if it cannot.
pub fn enable_receive_timestamps(socket: &UdpSocket) -> bool {
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).is_ok()
}

/// One datagram read from the socket.
#[derive(Debug, Clone, Copy)]
pub struct Datagram {
    /// Its length (its bytes are the start of the caller's buffer).
    pub len: usize,
    /// Its sender.
    pub peer: SocketAddr,
    /// When the kernel received it, when it said so.
    pub kernel_time: Option<SystemTime>,
}

/// Reads one datagram into `buf` without blocking (the caller waits for readiness, e.g.
/// `socket.async_io(Interest::READABLE, ..)`), with its kernel receive time from `control`
/// (`nix::cmsg_space!(TimeSpec)` bytes).
pub fn receive_now(socket: &UdpSocket, buf: &mut [u8], control: &mut [u8]) -> io::Result<Datagram> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(control), MsgFlags::MSG_DONTWAIT)
        .map_err(io::Error::from)?;
    let peer = msg
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::from(*v4))
                .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6)))
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram without an IP source address"))?;
    let mut kernel_time = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                kernel_time = system_time(ts);
            }
        }
    }
    Ok(Datagram { len: msg.bytes, peer, kernel_time })
}

fn system_time(ts: TimeSpec) -> Option<SystemTime> {
    let secs = u64::try_from(ts.tv_sec()).ok()?;
    let nanos = u32::try_from(ts.tv_nsec()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// The receive time of a query as the responder needs it: a monotonic instant (to measure the
/// latency) and the wall-clock time (the record's time, time windows). Without a kernel
/// timestamp, now.
pub(crate) fn arrival(kernel_time: Option<SystemTime>) -> (Instant, DateTime<Utc>) {
    let read_at = Instant::now();
    let wall = SystemTime::now();
    // A clock stepped backwards makes the age 0; an absurd age is capped (an hour).
    let age =
        kernel_time.and_then(|k| wall.duration_since(k).ok()).unwrap_or(Duration::ZERO).min(Duration::from_secs(3600));
    let received = read_at.checked_sub(age).unwrap_or(read_at);
    (received, DateTime::<Utc>::from(wall - age))
}

/// One receive task of a UDP socket: reads a query, answers it, writes its record to the
/// worker's own spool lane before the answer is sent.
pub(crate) async fn worker(
    socket: Arc<UdpSocket>,
    responder: Arc<Responder>,
    mut lane: Option<SpoolLane>,
    metrics: Arc<EnumMetrics>,
) {
    let mut buf = vec![0u8; 65_535];
    let mut out = Vec::with_capacity(usize::from(crate::respond::EDNS_PAYLOAD));
    let mut control = nix::cmsg_space!(TimeSpec);
    loop {
        let got = socket.async_io(Interest::READABLE, || receive_now(&socket, &mut buf, &mut control)).await;
        let Datagram { len, peer, kernel_time } = match got {
            Ok(d) => d,
            Err(e) => {
                // ICMP errors from earlier sends surface here on Linux; keep serving.
                metrics.unanswered("receive_error");
                if let Some(left_out) = RECEIVE_ERROR_LOG.allow() {
                    tracing::debug!(error = %e, left_out, "UDP receive error");
                }
                continue;
            }
        };
        let (received, now) = arrival(kernel_time);
        let ctx = QueryContext { peer, transport: Transport::Udp, received, now };
        match responder.respond_reusing(&buf[..len], &ctx, std::mem::take(&mut out)) {
            Some(mut answer) => {
                record(&mut lane, &answer, &metrics);
                if let Err(e) = socket.send_to(&answer.bytes, peer).await {
                    metrics.unanswered("send_error");
                    if let Some(left_out) = SEND_ERROR_LOG.allow() {
                        tracing::debug!(error = %e, %peer, left_out, "UDP send error");
                    }
                }
                metrics.answered("udp", &answer, ctx.received.elapsed().as_secs_f64());
                // The answer's buffer is the next answer's.
                out = std::mem::take(&mut answer.bytes);
            }
            None => metrics.unanswered("not_a_query"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_is_the_kernel_time_and_the_latency_counts_from_it() {
        let two_seconds_ago = SystemTime::now() - Duration::from_secs(2);
        let (received, now) = arrival(Some(two_seconds_ago));
        assert!(received.elapsed() >= Duration::from_secs(2));
        let diff = (now - DateTime::<Utc>::from(two_seconds_ago)).num_milliseconds().abs();
        assert!(diff < 50, "the record's time is the kernel's receive time ({diff} ms off)");
        // A timestamp from the future (clock stepped back) is not a negative latency.
        let (received, _) = arrival(Some(SystemTime::now() + Duration::from_secs(60)));
        assert!(received.elapsed() < Duration::from_secs(1));
        let (received, _) = arrival(None);
        assert!(received.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn the_kernel_stamps_each_datagram_with_its_receive_time() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert!(enable_receive_timestamps(&server));
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // The kernel turns receive stamping on for the whole host in deferred work after the
        // first socket asks for it; a datagram that arrives before that is stamped when read.
        // One warm-up datagram, then the measured one.
        let mut buf = [0u8; 64];
        let mut control = nix::cmsg_space!(TimeSpec);
        client.send_to(b"warm-up", server.local_addr().unwrap()).unwrap();
        server.async_io(Interest::READABLE, || receive_now(&server, &mut buf, &mut control)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = SystemTime::now();
        client.send_to(b"hello", server.local_addr().unwrap()).unwrap();
        // Read it late: the stamp is still the time it arrived.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let d = server.async_io(Interest::READABLE, || receive_now(&server, &mut buf, &mut control)).await.unwrap();
        assert_eq!((&buf[..d.len], d.peer), (&b"hello"[..], client.local_addr().unwrap()));
        let stamped = d.kernel_time.expect("a kernel receive timestamp");
        assert!(stamped >= before - Duration::from_millis(5));
        let age = SystemTime::now().duration_since(stamped).unwrap();
        assert!(age >= Duration::from_millis(290), "stamped on arrival, not on reading ({age:?})");
    }
}
