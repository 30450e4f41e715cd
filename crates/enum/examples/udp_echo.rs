//! The loopback floor for `bench/enum-dnsperf.sh`: a UDP server that answers every datagram with
//! itself, the DNS QR bit set, and does nothing else.
//!
//! It reads and writes exactly the way the ENUM engine's UDP listener does today (its receive
//! function, [`tollgate_enum::receive_now`], is the engine's own):
//! one socket shared by one receive task per core on a multi-threaded tokio runtime, one
//! `recvmsg` per datagram with kernel receive timestamps on, one `send_to` per answer. What it
//! reaches is what this machine's loopback and this socket handling allow, before any DNS
//! parsing, policy or record spooling.
//!
//! Usage: `cargo run --release -p tollgate-enum --example udp_echo -- 127.0.0.1:5399`
//! (prints `udp_echo ready on ADDR` once bound).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use nix::sys::time::TimeSpec;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tollgate_enum::{Datagram, enable_receive_timestamps, receive_now};

/// One receive task: every datagram of at least a DNS header goes back with QR set.
async fn worker(socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 65_535];
    let mut control = nix::cmsg_space!(TimeSpec);
    loop {
        let Ok(Datagram { len, peer, .. }) =
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
    let _ = enable_receive_timestamps(&socket);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        tasks.spawn(worker(socket.clone()));
    }
    println!("udp_echo ready on {}", socket.local_addr()?);
    while tasks.join_next().await.is_some() {}
    Ok(())
}
