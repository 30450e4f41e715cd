//! Batched UDP receive and send: up to a batch of datagrams (by default [`BATCH`]) read with
//! one `recvmmsg` and up to [`BATCH`] answers sent with one `sendmmsg`, so a busy listener pays
//! two system calls per batch instead of two per datagram.
//!
//! Every datagram keeps its kernel receive timestamp when [`enable_receive_timestamps`] was
//! called on the socket (`SO_TIMESTAMPNS`). The message headers are built afresh for each call
//! (nix's `MultiHeaders`): the kernel shortens a header's address and control lengths to what
//! it filled in, so headers reused across calls would lose the timestamp or cut an IPv6
//! sender's address after an IPv4 one.
//!
//! Under light load a batch holds one datagram and costs what `recvmsg` did; under load each
//! call drains what the socket has queued, up to the batch.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrLike, SockaddrStorage, recvmmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Asks the kernel to stamp every datagram received on `socket` with its receive time. Returns
/// false (and the worker falls back to the time it reads the datagram) if it cannot.
pub fn enable_receive_timestamps(socket: &UdpSocket) -> bool {
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).is_ok()
}

/// One datagram read from the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// Its length.
    pub len: usize,
    /// Its sender; none when the kernel gave no IP address (it cannot be answered).
    pub peer: Option<SocketAddr>,
    /// When the kernel received it, when it said so.
    pub kernel_time: Option<SystemTime>,
}

/// Most datagrams one call sends, and one [`RecvBatch::new`] reads.
pub const BATCH: usize = 32;

/// The largest UDP payload: a datagram is never cut short, whatever its size.
const SLOT: usize = 65_535;

/// Receive buffers for one batch, reused from call to call.
pub struct RecvBatch {
    /// `batch` slots of `SLOT` bytes (the kernel touches pages only as far as datagrams fill
    /// them, so a batch of small datagrams costs a page or two per slot).
    bufs: Vec<u8>,
    /// What the last call read, in order: datagram `i` is in slot `i`.
    got: Vec<Datagram>,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").field("batch", &self.batch()).field("received", &self.got.len()).finish()
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    /// Empty buffers for [`BATCH`] datagrams.
    pub fn new() -> Self {
        Self::with_batch(BATCH)
    }

    /// Empty buffers for `batch` datagrams (at least one) per call.
    pub fn with_batch(batch: usize) -> Self {
        let batch = batch.max(1);
        RecvBatch { bufs: vec![0u8; batch * SLOT], got: Vec::with_capacity(batch) }
    }

    /// Most datagrams one call reads: one per slot.
    pub fn batch(&self) -> usize {
        self.bufs.len() / SLOT
    }

    /// Reads what the socket has queued (at least one datagram, at most the batch), waiting
    /// until something arrives. An error (an ICMP error of an earlier send, surfacing on
    /// Linux) is returned only when nothing was read.
    pub async fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        socket.async_io(Interest::READABLE, || self.receive_now(socket)).await
    }

    /// Reads without blocking (`WouldBlock` when nothing is queued).
    pub fn receive_now(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.got.clear();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(self.batch(), Some(nix::cmsg_space!(TimeSpec)));
        let mut slices: Vec<[IoSliceMut<'_>; 1]> =
            self.bufs.chunks_exact_mut(SLOT).map(|slot| [IoSliceMut::new(slot)]).collect();
        let results = recvmmsg(socket.as_raw_fd(), &mut headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)
            .map_err(io::Error::from)?;
        for msg in results {
            let peer = msg.address.as_ref().and_then(socket_addr);
            let mut kernel_time = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmTimestampns(ts) = c {
                        kernel_time = system_time(ts);
                    }
                }
            }
            self.got.push(Datagram { len: msg.bytes.min(SLOT), peer, kernel_time });
        }
        Ok(self.got.len())
    }

    /// The datagrams the last call read, in order: each with its bytes.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], Datagram)> {
        self.got.iter().enumerate().map(|(i, d)| (&self.bufs[i * SLOT..i * SLOT + d.len], *d))
    }
}

/// An answer waiting to be sent.
pub struct Outgoing<'a> {
    /// Its bytes.
    pub bytes: &'a [u8],
    /// Where it goes.
    pub peer: SocketAddr,
}

/// Sends every answer, [`BATCH`] per `sendmmsg`, waiting while the socket's buffer is full.
/// An answer the kernel refuses (an unreachable peer, a too-large datagram) is skipped and
/// reported to `failed` with its error; the others are still sent.
pub async fn send_all(socket: &UdpSocket, answers: &[Outgoing<'_>], mut failed: impl FnMut(&Outgoing<'_>, io::Error)) {
    let mut next = 0;
    while next < answers.len() {
        let rest = &answers[next..answers.len().min(next + BATCH)];
        match socket.async_io(Interest::WRITABLE, || send_now(socket, rest)).await {
            Ok(sent) => next += sent.max(1),
            Err(e) => {
                // The first of `rest` failed: skip it, send the others.
                failed(&rest[0], e);
                next += 1;
            }
        }
    }
}

/// One `sendmmsg` without blocking: how many of `answers` (in order) were sent.
///
/// Called through libc rather than nix's `sendmmsg`, whose result iterator reads its own
/// (for sending, never initialised) address array.
fn send_now(socket: &UdpSocket, answers: &[Outgoing<'_>]) -> io::Result<usize> {
    let addrs: Vec<SockaddrStorage> = answers.iter().map(|a| SockaddrStorage::from(a.peer)).collect();
    let mut iovs: Vec<libc::iovec> = answers
        .iter()
        .map(|a| libc::iovec { iov_base: a.bytes.as_ptr().cast_mut().cast(), iov_len: a.bytes.len() })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = addrs
        .iter()
        .zip(iovs.iter_mut())
        .map(|(addr, iov)| {
            // SAFETY: an all-zero `mmsghdr` is a valid value (null pointers, zero lengths).
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = addr.as_ptr().cast_mut().cast();
            h.msg_hdr.msg_namelen = addr.len();
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    let count = libc::c_uint::try_from(headers.len()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: every header points at an address in `addrs` and one iovec in `iovs`, whose
    // buffers are the caller's answers; all of them outlive the call, and `count` is at most
    // the number of headers.
    let sent = unsafe { libc::sendmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), count, libc::MSG_DONTWAIT) };
    match usize::try_from(sent) {
        Err(_) => Err(io::Error::last_os_error()),
        Ok(0) => Err(io::Error::from(Errno::EAGAIN)),
        Ok(n) => Ok(n),
    }
}

/// The IP address of a datagram's sender.
fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    a.as_sockaddr_in().map(|v4| SocketAddr::from(*v4)).or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6)))
}

fn system_time(ts: TimeSpec) -> Option<SystemTime> {
    let secs = u64::try_from(ts.tv_sec()).ok()?;
    let nanos = u32::try_from(ts.tv_nsec()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn stamped_socket() -> UdpSocket {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert!(enable_receive_timestamps(&server));
        // Room for everything a test queues before reading, whatever the host's default.
        socket2::SockRef::from(&server).set_recv_buffer_size(4 << 20).unwrap();
        server
    }

    #[tokio::test]
    async fn the_kernel_stamps_each_datagram_with_its_receive_time() {
        let server = stamped_socket().await;
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = RecvBatch::new();
        // The kernel turns receive stamping on for the whole host in deferred work after the
        // first socket asks for it; a datagram that arrives before that is stamped when read.
        // Warm-up datagrams, read 50 ms after they were sent, until one is stamped on arrival
        // (a loaded machine may run that deferred work late), then the measured one.
        let mut warm = false;
        for _ in 0..100 {
            let sent = SystemTime::now();
            client.send_to(b"warm-up", server.local_addr().unwrap()).unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(batch.receive(&server).await.unwrap(), 1);
            let stamp = batch.datagrams().next().and_then(|(_, d)| d.kernel_time);
            if stamp.is_some_and(|t| t <= sent + Duration::from_millis(25)) {
                warm = true;
                break;
            }
        }
        assert!(warm, "no warm-up datagram was stamped on arrival");
        let before = SystemTime::now();
        client.send_to(b"hello", server.local_addr().unwrap()).unwrap();
        // Read it late: the stamp is still the time it arrived.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(batch.receive(&server).await.unwrap(), 1);
        let (bytes, d) = batch.datagrams().next().unwrap();
        assert_eq!((bytes, d.peer), (&b"hello"[..], Some(client.local_addr().unwrap())));
        let stamped = d.kernel_time.expect("a kernel receive timestamp");
        assert!(stamped >= before - Duration::from_millis(5));
        let age = SystemTime::now().duration_since(stamped).unwrap();
        assert!(age >= Duration::from_millis(290), "stamped on arrival, not on reading ({age:?})");
    }

    #[tokio::test]
    async fn one_call_reads_what_is_queued_in_order_each_with_its_sender_and_stamp() {
        let server = stamped_socket().await;
        let to = server.local_addr().unwrap();
        let clients: Vec<std::net::UdpSocket> =
            (0..3).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        // 40 datagrams from three senders, of different sizes, the largest UDP allows among them.
        let mut sent = Vec::new();
        for i in 0..40usize {
            let c = &clients[i % 3];
            let body = if i == 7 { vec![7u8; 65_507] } else { format!("query {i}").into_bytes() };
            c.send_to(&body, to).unwrap();
            sent.push((body, c.local_addr().unwrap()));
        }
        let mut got = Vec::new();
        let mut calls = 0;
        while got.len() < sent.len() {
            let n = batch_receive(&server, &mut got).await;
            assert!((1..=BATCH).contains(&n), "{n} datagrams in one call");
            calls += 1;
        }
        assert_eq!(got, sent, "every datagram, whole, in order, with its sender");
        assert!(calls < sent.len(), "{calls} calls for {} queued datagrams: not batched", sent.len());
    }

    async fn batch_receive(server: &UdpSocket, got: &mut Vec<(Vec<u8>, SocketAddr)>) -> usize {
        let mut batch = RecvBatch::new();
        let n = batch.receive(server).await.unwrap();
        for (bytes, d) in batch.datagrams() {
            assert!(d.kernel_time.is_some(), "stamped");
            got.push((bytes.to_vec(), d.peer.expect("an IP sender")));
        }
        n
    }

    #[tokio::test]
    async fn a_larger_batch_reads_up_to_its_size_in_one_call() {
        let server = stamped_socket().await;
        let to = server.local_addr().unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..150usize {
            client.send_to(format!("datagram {i}").as_bytes(), to).unwrap();
        }
        let mut batch = RecvBatch::with_batch(64);
        let mut got = Vec::new();
        let mut largest = 0;
        while got.len() < 150 {
            let n = batch.receive(&server).await.unwrap();
            assert!((1..=64).contains(&n), "{n} datagrams in one call");
            largest = largest.max(n);
            got.extend(batch.datagrams().map(|(b, _)| String::from_utf8(b.to_vec()).unwrap()));
        }
        assert_eq!(got, (0..150).map(|i| format!("datagram {i}")).collect::<Vec<_>>());
        assert!(largest > BATCH, "{largest}: a call read more than the default batch");
    }

    #[tokio::test]
    async fn every_answer_reaches_its_peer_and_one_the_kernel_refuses_is_reported_not_fatal() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peers: Vec<std::net::UdpSocket> =
            (0..4).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        let too_big = vec![0u8; 70_000];
        let bodies: Vec<Vec<u8>> = (0..70).map(|i| format!("answer {i}").into_bytes()).collect();
        let mut answers: Vec<Outgoing<'_>> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| Outgoing { bytes: b, peer: peers[i % 4].local_addr().unwrap() })
            .collect();
        // The 11th answer is larger than a UDP datagram can be (EMSGSIZE).
        answers.insert(10, Outgoing { bytes: &too_big, peer: peers[0].local_addr().unwrap() });
        let mut refused = Vec::new();
        send_all(&server, &answers, |o, e| refused.push((o.bytes.len(), e.raw_os_error()))).await;
        assert_eq!(refused, vec![(70_000, Some(libc::EMSGSIZE))]);
        for (i, peer) in peers.iter().enumerate() {
            peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 64];
            for b in bodies.iter().skip(i).step_by(4) {
                let (n, from) = peer.recv_from(&mut buf).unwrap();
                assert_eq!((&buf[..n], from), (&b[..], server.local_addr().unwrap()));
            }
        }
    }
}
