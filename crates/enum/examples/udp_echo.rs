//! The loopback floor for `bench/enum-dnsperf.sh`: a UDP server that answers every datagram with
//! itself, the DNS QR bit set, and does nothing else.
//!
//! It reads and writes exactly the way the ENUM engine's UDP listener does today (`src/udp.rs`):
//! one socket shared by one receive task per core on a multi-threaded tokio runtime, one
//! `recvmsg` per datagram with kernel receive timestamps on, one `send_to` per answer. What it
//! reaches is what this machine's loopback and this socket handling allow, before any DNS
//! parsing, policy or record spooling.
//!
//! Usage: `cargo run --release -p tollgate-enum --example udp_echo -- 127.0.0.1:5399`
//! (prints `udp_echo ready on ADDR` once bound).

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use nix::sys::socket::{MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Reads one datagram into `buf` without blocking, with its control data (the kernel's receive
/// timestamp) as the engine reads it; returns its length and sender.
fn receive_now(socket: &UdpSocket, buf: &mut [u8], control: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
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
    Ok((msg.bytes, peer))
}

/// One receive task: every datagram of at least a DNS header goes back with QR set.
async fn worker(socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 65_535];
    let mut control = nix::cmsg_space!(TimeSpec);
    loop {
        let Ok((len, peer)) =
            socket.async_io(Interest::READABLE, || receive_now(&socket, &mut buf, &mut control)).await
        else {
            continue;
        };
        if len < 12 {
            continue;
        }
        buf[2] |= 0x80;
        // A failed send (full buffer, ICMP error) is a lost answer, as in the engine.
        let _ = socket.send_to(&buf[..len], peer).await;
    }
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(a) => a.parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("address {a:?}: {e}")))?,
        None => SocketAddr::from(([127, 0, 0, 1], 5399)),
    };
    let socket = Arc::new(UdpSocket::bind(addr).await?);
    // Best effort, as in the engine: without it the receive path is only a little cheaper.
    let _ = setsockopt(&*socket, sockopt::ReceiveTimestampns, &true);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        tasks.spawn(worker(socket.clone()));
    }
    println!("udp_echo ready on {}", socket.local_addr()?);
    while tasks.join_next().await.is_some() {}
    Ok(())
}
