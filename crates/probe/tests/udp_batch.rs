//! The live probe's batched UDP receive (recvmmsg, one probe lock per batch, a large receive
//! buffer): every HEP packet and every mirrored datagram sent is counted, decode errors and
//! other protocols exactly as before, and every call sent becomes one record.

#[path = "support/hep_calls.rs"]
mod hep_calls;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hep_calls::{CallPackets, MESSAGES_PER_CALL};
use tollgate_probe::hep::{HepPacket, decode, encode_v3};
use tollgate_probe::live::{HepTcpLimits, LiveProbe, LiveStats, Shared, udp_socket_drops};
use tollgate_probe::{CallReport, Probe};
use tollgate_records::Disposition;

fn probe() -> Probe {
    Probe::new(tollgate_probe::fuzzing::example_settings("batch"))
}

/// Polls `done` every 20 ms for up to a minute (a loaded machine is slow, never wrong).
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_hep_and_mirrored_packets_is_counted_whole_and_every_call_recorded() {
    let stats = Arc::new(LiveStats::default());
    let records: Arc<Mutex<Vec<CallReport>>> = Arc::default();
    let sink_records = records.clone();
    let shared = Shared {
        probe: Arc::new(Mutex::new(probe())),
        sink: Arc::new(move |r| sink_records.lock().unwrap().push(r)),
        stats: stats.clone(),
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let live = LiveProbe::start(shared.clone(), &[any], &[any], &[], HepTcpLimits::default(), 8 << 20).await.unwrap();
    let (mirror, hep) = (live.mirror_addrs[0], live.hep_udp_addrs[0]);
    assert!(stats.udp_receive_buffer.load(Ordering::Relaxed) > 0, "the granted buffer is recorded");

    // 3,000 calls as HEP3 (21,000 packets), with 5 packets that are not HEP and 3 HEP packets of
    // another protocol (RTCP, type 5) among them. Sent as fast as the socket takes them, at
    // most 2,000 ahead of what the probe has counted, so the test holds on a loaded machine
    // whatever the granted buffer.
    let calls = CallPackets::new("burst");
    let n_calls = 3_000u64;
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtcp = encode_v3(&HepPacket {
        version: 3,
        src: "10.0.0.1:7001".parse().unwrap(),
        dst: "10.0.0.2:7001".parse().unwrap(),
        ip_protocol: 17,
        ts_us: 1_800_000_000_000_000,
        protocol_type: 5,
        capture_id: 1,
        payload: b"\x81\xc8\x00\x06rtcp",
    });
    let mut sent = 0u64;
    let mut buf = Vec::new();
    let ts0 = chrono::Utc::now().timestamp_micros();
    for call in 0..n_calls {
        for m in 0..MESSAGES_PER_CALL {
            calls.write(call, m, ts0 + (call * 7 + m as u64) as i64, &mut buf);
            sender.send_to(&buf, hep).unwrap();
            sent += 1;
        }
        if call % 1000 == 500 {
            for _ in 0..if call < 2000 { 2 } else { 1 } {
                sender.send_to(b"not a HEP packet at all", hep).unwrap();
            }
            sender.send_to(&rtcp, hep).unwrap();
            sent += if call < 2000 { 3 } else { 2 };
        }
        while sent > stats.hep.load(Ordering::Relaxed) + 2_000 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(sent, n_calls * 7 + 8);
    wait_for("every HEP packet counted", || stats.hep.load(Ordering::Relaxed) >= sent).await;
    wait_for("every call recorded", || records.lock().unwrap().len() as u64 >= n_calls).await;
    assert_eq!(stats.hep.load(Ordering::Relaxed), sent);
    assert_eq!(stats.hep_errors.load(Ordering::Relaxed), 5);
    assert_eq!(stats.hep_not_sip.load(Ordering::Relaxed), 3);
    assert_eq!(udp_socket_drops(&[hep.port()]), 0, "the kernel dropped none");
    {
        let probe = shared.probe.lock().unwrap();
        assert_eq!(probe.counters().messages, n_calls * 7);
        assert_eq!(probe.counters().malformed, 0);
        assert_eq!(probe.counters().calls.get("answered"), Some(&n_calls));
    }
    {
        let records = records.lock().unwrap();
        assert_eq!(records.len() as u64, n_calls);
        assert!(records.iter().all(|r| r.record.disposition == Disposition::Answered));
        let ids: HashSet<&str> = records.iter().map(|r| r.record.call_id.as_str()).collect();
        assert_eq!(ids.len() as u64, n_calls, "one record per Call-ID sent");
        let pairs: HashSet<String> =
            records.iter().map(|r| format!("{:?}>{:?}", r.record.source, r.record.destination)).collect();
        assert_eq!(pairs.len() as u64, n_calls, "each call its own caller and callee");
    }

    // 500 calls mirrored as plain SIP datagrams (the HEP payloads).
    let mirrored_calls = CallPackets::new("mirror");
    let mut payloads = Vec::new();
    for call in 0..500 {
        for m in 0..MESSAGES_PER_CALL {
            mirrored_calls.write(call, m, ts0, &mut buf);
            payloads.push(decode(&buf).unwrap().payload.to_vec());
        }
    }
    for (i, p) in payloads.iter().enumerate() {
        sender.send_to(p, mirror).unwrap();
        while i as u64 > stats.mirrored.load(Ordering::Relaxed) + 2_000 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    wait_for("every mirrored datagram counted", || stats.mirrored.load(Ordering::Relaxed) >= payloads.len() as u64)
        .await;
    wait_for("every mirrored call recorded", || records.lock().unwrap().len() as u64 >= n_calls + 500).await;
    assert_eq!(stats.mirrored.load(Ordering::Relaxed), 3_500);
    assert_eq!(records.lock().unwrap().len() as u64, n_calls + 500);
    assert_eq!(shared.probe.lock().unwrap().counters().calls.get("answered"), Some(&(n_calls + 500)));
    live.shutdown().await;
}
