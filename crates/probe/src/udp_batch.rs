//! Batched UDP receive for the probe's HEP and mirror ports: up to [`BATCH`] datagrams read with
//! one `recvmmsg`, and a large socket receive buffer ([`set_receive_buffer`]) so a burst waits
//! in the kernel instead of being dropped while the probe works through the previous batch.
//!
//! The message headers are built afresh for each call (nix's `MultiHeaders`): the kernel
//! shortens each header's address length to what it filled in, so headers reused across calls
//! would cut an IPv6 sender's address after an IPv4 one. Under light load a batch holds one
//! datagram and costs what `recv_from` did; under load one call drains up to [`BATCH`].

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, getsockopt, recvmmsg, setsockopt, sockopt};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Most datagrams one call reads.
pub const BATCH: usize = 64;

/// The largest UDP payload: a datagram is never cut short, whatever its size.
const SLOT: usize = 65_535;

/// Receive buffers for one batch, reused from call to call.
pub struct RecvBatch {
    /// `BATCH` slots of `SLOT` bytes (the kernel touches pages only as far as datagrams fill
    /// them, so a batch of small HEP packets costs a page or two per slot).
    bufs: Vec<u8>,
    /// What the last call read, in order: datagram `i` is in slot `i`, `len` bytes long, from
    /// its sender (none when the kernel gave no IP address).
    got: Vec<(usize, Option<SocketAddr>)>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").field("received", &self.got.len()).finish()
    }
}

impl RecvBatch {
    /// Empty buffers for [`BATCH`] datagrams.
    pub fn new() -> Self {
        RecvBatch { bufs: vec![0u8; BATCH * SLOT], got: Vec::with_capacity(BATCH) }
    }

    /// Reads what the socket has queued (at least one datagram, at most [`BATCH`]), waiting
    /// until something arrives. An error (an ICMP error of an earlier send, surfacing on
    /// Linux) is returned only when nothing was read.
    pub async fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        socket.async_io(Interest::READABLE, || self.receive_now(socket)).await
    }

    /// Reads without blocking (`WouldBlock` when nothing is queued).
    pub fn receive_now(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.got.clear();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut slices: Vec<[IoSliceMut<'_>; 1]> =
            self.bufs.chunks_exact_mut(SLOT).map(|slot| [IoSliceMut::new(slot)]).collect();
        let results = recvmmsg(socket.as_raw_fd(), &mut headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)
            .map_err(io::Error::from)?;
        for msg in results {
            self.got.push((msg.bytes.min(SLOT), msg.address.as_ref().and_then(socket_addr)));
        }
        Ok(self.got.len())
    }

    /// The datagrams the last call read, in order: each with its bytes and its sender.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], Option<SocketAddr>)> {
        self.got.iter().enumerate().map(|(i, (len, peer))| (&self.bufs[i * SLOT..i * SLOT + len], *peer))
    }
}

/// The IP address of a datagram's sender.
fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    a.as_sockaddr_in().map(|v4| SocketAddr::from(*v4)).or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6)))
}

/// What the kernel made of a request for a receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveBuffer {
    /// Bytes asked for (the configuration's `probe.udp_receive_buffer_mb`).
    pub requested: usize,
    /// What the socket now has, as `getsockopt(SO_RCVBUF)` reports it: Linux doubles the value
    /// asked for (half of it pays for its own bookkeeping), so a full grant reads twice
    /// `requested`.
    pub granted: usize,
    /// True when it was set with `SO_RCVBUFFORCE` (root, `CAP_NET_ADMIN`), which may exceed
    /// `net.core.rmem_max`; false when with `SO_RCVBUF`, which the kernel caps at it.
    pub forced: bool,
    /// `net.core.rmem_max`, when /proc says.
    pub rmem_max: Option<u64>,
}

impl ReceiveBuffer {
    /// True when the kernel gave less than was asked for (`SO_RCVBUF` capped at `rmem_max`).
    pub fn capped(&self) -> bool {
        self.granted < self.requested.saturating_mul(2)
    }
}

/// `net.core.rmem_max`: the largest receive buffer an unprivileged `SO_RCVBUF` can ask for.
pub fn rmem_max() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max").ok()?.trim().parse().ok()
}

/// Asks for a receive buffer of `bytes` on `socket`: with `SO_RCVBUFFORCE` when the process may
/// (root), else with `SO_RCVBUF` (capped by the kernel at `net.core.rmem_max`). Returns what
/// the kernel granted; an error only when neither option could be set or read back.
pub fn set_receive_buffer(socket: &impl AsFd, bytes: usize) -> io::Result<ReceiveBuffer> {
    let forced = setsockopt(socket, sockopt::RcvBufForce, &bytes).is_ok();
    if !forced {
        setsockopt(socket, sockopt::RcvBuf, &bytes).map_err(io::Error::from)?;
    }
    let granted = getsockopt(socket, sockopt::RcvBuf).map_err(io::Error::from)?;
    Ok(ReceiveBuffer { requested: bytes, granted, forced, rmem_max: rmem_max() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_call_reads_what_is_queued_in_order_each_whole_with_its_sender() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let granted = set_receive_buffer(&server, 4 << 20).unwrap();
        assert!(granted.granted > 0);
        let to = server.local_addr().unwrap();
        let clients: Vec<std::net::UdpSocket> =
            (0..3).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        let mut sent = Vec::new();
        for i in 0..150usize {
            let c = &clients[i % 3];
            let body = if i == 7 { vec![7u8; 65_507] } else { format!("datagram {i}").into_bytes() };
            c.send_to(&body, to).unwrap();
            sent.push((body, c.local_addr().unwrap()));
        }
        let mut batch = RecvBatch::new();
        let mut got = Vec::new();
        let mut calls = 0;
        while got.len() < sent.len() {
            let n = batch.receive(&server).await.unwrap();
            assert!((1..=BATCH).contains(&n), "{n} datagrams in one call");
            got.extend(batch.datagrams().map(|(b, peer)| (b.to_vec(), peer.unwrap())));
            calls += 1;
        }
        assert_eq!(got, sent, "every datagram, whole, in order, with its sender");
        assert!(calls < sent.len(), "{calls} calls for {} queued datagrams: not batched", sent.len());
    }

    #[test]
    fn the_granted_buffer_and_the_kernel_limit_are_reported() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = set_receive_buffer(&socket, 1 << 20).unwrap();
        assert_eq!(b.requested, 1 << 20);
        let limit = rmem_max().expect("net.core.rmem_max in /proc");
        assert_eq!(b.rmem_max, Some(limit));
        if b.forced {
            assert_eq!(b.granted, 2 << 20, "SO_RCVBUFFORCE grants twice the request");
        } else {
            let expect = (1u64 << 20).min(limit) as usize * 2;
            assert_eq!(b.granted, expect, "SO_RCVBUF is capped at rmem_max, then doubled");
        }
        assert_eq!(b.capped(), !b.forced && limit < 1 << 20);
    }
}
