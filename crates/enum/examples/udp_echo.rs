//! The loopback floor for `bench/enum-dnsperf.sh`: a UDP server that answers every datagram with
//! itself, the DNS QR bit set, and does nothing else.
//!
//! It reads and writes exactly the way the ENUM engine's UDP listener does (its batched receive
//! and send, [`tollgate_udp::RecvBatch`] and [`tollgate_udp::send_all`], are the engine's
//! own): one socket shared by one receive task per core on a multi-threaded tokio runtime, up
//! to [`tollgate_udp::BATCH`] datagrams per `recvmmsg` with kernel receive timestamps on, the
//! answers sent with `sendmmsg`. What it
//! reaches is what this machine's loopback and this socket handling allow, before any DNS
//! parsing, policy or record spooling.
//!
//! Usage: `cargo run --release -p tollgate-enum --example udp_echo -- 127.0.0.1:5399`
//! (prints `udp_echo ready on ADDR` once bound).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tollgate_udp::{Outgoing, RecvBatch, enable_receive_timestamps, send_all};

/// One receive task: every datagram of at least a DNS header goes back with QR set.
async fn worker(socket: Arc<UdpSocket>) {
    let mut batch = RecvBatch::new();
    let mut answers: Vec<Vec<u8>> = Vec::new();
    loop {
        if batch.receive(&socket).await.is_err() {
            continue;
        }
        answers.clear();
        let mut peers = Vec::new();
        for (bytes, d) in batch.datagrams() {
            let Some(peer) = d.peer.filter(|_| bytes.len() >= 12) else {
                continue;
            };
            let mut answer = bytes.to_vec();
            answer[2] |= 0x80;
            answers.push(answer);
            peers.push(peer);
        }
        let outgoing: Vec<Outgoing<'_>> =
            answers.iter().zip(&peers).map(|(bytes, &peer)| Outgoing { bytes, peer }).collect();
        // A failed send (full buffer, ICMP error) is a lost answer, as in the engine.
        send_all(&socket, &outgoing, |_, _| {}).await;
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
