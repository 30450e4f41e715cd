//! Malformed input, as a tap or a HEP sender can deliver it: each case gives a clear error or
//! a counted drop, never a panic, and what parsed before the damage is kept. Also replays the
//! fuzz seeds (and any crash inputs saved under fuzz/artifacts) through the same paths.

use std::path::Path;

use tollgate_probe::analyze::{Analysis, analyze};
use tollgate_probe::capture::CaptureError;
use tollgate_probe::decode::{Datagram, Transport};
use tollgate_probe::hep::{HepError, decode};
use tollgate_probe::ladder::{LadderLimits, LadderStore};
use tollgate_probe::{CallReport, Probe};
use tollgate_sip::message::{ParseError, parse_datagram, parse_one};

fn probe() -> Probe {
    Probe::new(tollgate_probe::fuzzing::example_settings("malformed"))
        // Call ladders with small limits, so that every case also goes through their bounds.
        .with_ladder(LadderStore::new(LADDER))
}

/// The ladders' limits of these cases.
const LADDER: LadderLimits = LadderLimits { calls: 4, message_bytes: 256, messages_per_call: 8, total_bytes: 4096 };

fn run(bytes: &[u8]) -> (Result<Analysis, CaptureError>, Vec<CallReport>, Probe) {
    let mut p = probe();
    let mut calls = Vec::new();
    let r = analyze(bytes, &mut p, |c| calls.push(c), |_| {});
    let held = p.ladder().map(|l| l.stats()).unwrap_or_default();
    assert!(held.bytes <= LADDER.total_bytes as u64 && held.calls <= LADDER.total_bytes as u64 / 256, "{held:?}");
    (r, calls, p)
}

/// A classic pcap (microseconds, Ethernet) of the given frames.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&1_790_000_000u32.to_le_bytes());
        out.extend_from_slice(&(i as u32 * 1000).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// An Ethernet/IPv4/UDP frame carrying `payload` (checksums zero, as offloaded captures have).
fn udp_frame(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&5060u16.to_be_bytes());
    f.extend_from_slice(&5060u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

const INVITE: &str = "INVITE sip:4155550100@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nFrom: <sip:2125550001@10.0.0.1>;tag=a\r\nTo: <sip:4155550100@10.0.0.2>\r\nCall-ID: m1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
const BUSY: &str = "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nFrom: <sip:2125550001@10.0.0.1>;tag=a\r\nTo: <sip:4155550100@10.0.0.2>;tag=b\r\nCall-ID: m1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

#[test]
fn sip_that_is_not_sip_enough_is_an_error() {
    for (input, what) in [
        (&b"INVITE"[..], "a request line alone"),
        (b"SIP/2.0 99999 Huge\r\n\r\n", "a status code out of range"),
        (b"SIP/2.0 abc OK\r\n\r\n", "a status code that is no number"),
        (b"INVITE sip:x SIP/2.0\r\nContent-Length: -4\r\n\r\n", "a negative Content-Length"),
        (b"\x00\x01\x02\x03\r\n\r\n", "binary"),
        (b"", "nothing"),
    ] {
        assert!(parse_one(input).is_err(), "{what} must not parse");
    }
    // A header line without a colon is skipped; the rest of the message stands.
    let (m, _) = parse_one(b"INVITE sip:x SIP/2.0\r\nCall-ID x\r\nCSeq: 1 INVITE\r\n\r\n").unwrap();
    assert_eq!((m.call_id(), m.cseq().map(|c| c.0)), (None, Some(1)));
    // A body shorter than Content-Length: the message parses, marked truncated.
    let (m, _) =
        parse_one(b"INVITE sip:x SIP/2.0\r\nCall-ID: t\r\nCSeq: 1 INVITE\r\nContent-Length: 900\r\n\r\nv=0\r\n")
            .unwrap();
    assert!(m.truncated && m.body == b"v=0\r\n");
    // A good message, then garbage: the good one is kept, the rest is one error.
    let mut two = INVITE.as_bytes().to_vec();
    two.extend_from_slice(b"garbage after the message");
    let parsed: Vec<Result<_, ParseError>> = parse_datagram(&two).collect();
    assert!(parsed[0].is_ok());
    assert!(parsed.iter().skip(1).all(|r| r.is_err()));
}

#[test]
fn huge_and_hostile_headers_do_not_hurt() {
    let mut big = String::from("INVITE sip:x SIP/2.0\r\nCall-ID: big\r\nCSeq: 1 INVITE\r\n");
    for i in 0..5000 {
        big.push_str(&format!("X-H{i}: {}\r\n", "v".repeat(10)));
    }
    big.push_str("\r\n");
    let (m, _) = parse_one(big.as_bytes()).unwrap();
    assert_eq!(m.call_id(), Some("big"));
    let mut p = probe();
    let folded = "INVITE sip:x SIP/2.0\r\nCall-ID: f\r\n\r\n \r\n \r\n";
    p.on_datagram(&Datagram {
        ts_us: 0,
        src: "10.0.0.1:5060".parse().unwrap(),
        dst: "10.0.0.2:5060".parse().unwrap(),
        transport: Transport::Udp,
        payload: folded.as_bytes(),
    });
    assert_eq!(p.tracker().stats().unusable, 1, "a message without CSeq is counted, not tracked");
}

#[test]
fn hep_damage_is_named() {
    assert_eq!(decode(b"HEP3\x00\x05"), Err(HepError::BadLength), "a total length below the header");
    assert_eq!(decode(b"HEP3\x00\x0c\x00\x00\x00\x0f\x00\x00"), Err(HepError::BadLength), "a chunk length of 0");
    assert_eq!(decode(b"HEP3\x00\x40"), Err(HepError::BadLength), "a total beyond the packet");
    assert_eq!(
        decode(b"\x02\x10\x02\x11\x13\xc4\x13\xc4\x0a\x00\x00\x01"),
        Err(HepError::Short),
        "v2 cut in its addresses"
    );
    let mut v2 = vec![2u8, 16, 2, 17, 0x13, 0xc4, 0x13, 0xc4, 10, 0, 0, 1, 10, 0, 0, 2];
    v2.extend_from_slice(&[1, 2, 3]);
    assert_eq!(decode(&v2), Err(HepError::Short), "v2 cut in its time header");
    assert_eq!(decode(&[9, 9, 9, 9, 9]), Err(HepError::NotHep));
}

#[test]
fn capture_files_broken_in_every_way() {
    // Not a capture at all: a clear error.
    let (r, _, _) = run(b"this is a text file, not a capture");
    let e = r.unwrap_err().to_string();
    assert!(e.contains("not a pcap or pcapng file"), "{e}");
    // Empty: no frames.
    assert_eq!(run(b"").0.unwrap().frames, 0);

    // A good call, then a truncated last record: the call is still reported.
    let frames = vec![
        udp_frame([10, 0, 0, 1], [10, 0, 0, 2], INVITE.as_bytes()),
        udp_frame([10, 0, 0, 2], [10, 0, 0, 1], BUSY.as_bytes()),
    ];
    let mut file = pcap(&frames);
    let good = file.len();
    file.extend_from_slice(&pcap(&[udp_frame([10, 0, 0, 1], [10, 0, 0, 2], b"INVITE sip:y SIP/2.0\r\n")])[24..]);
    file.truncate(good + 30);
    let (r, calls, _) = run(&file);
    let a = r.unwrap();
    assert_eq!((a.frames, a.truncated), (2, true));
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].record.final_code, Some(486));

    // A record claiming 3 GiB: an error naming the size, after the frames before it.
    let mut file = pcap(&frames);
    file.extend_from_slice(&[0; 8]);
    file.extend_from_slice(&0xC000_0000u32.to_le_bytes());
    file.extend_from_slice(&0xC000_0000u32.to_le_bytes());
    file.extend_from_slice(&[0xAB; 64]);
    let (r, calls, _) = run(&file);
    assert!(r.is_err() || calls.len() == 1, "either refused or read up to the damage");
    if let Err(e) = r {
        assert!(e.to_string().contains("2 frames") || e.to_string().contains("larger than"), "{e}");
    }

    // Frames that are not IP, IPv4 with a bad header length, and a UDP length past the end.
    let mut bad_ihl = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], INVITE.as_bytes());
    bad_ihl[14] = 0x41;
    let mut bad_udp = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], INVITE.as_bytes());
    bad_udp[38] = 0xff;
    let arp = {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x06]);
        f.extend_from_slice(&[0; 28]);
        f
    };
    let (r, calls, p) = run(&pcap(&[arp, bad_ihl, bad_udp, vec![0; 3]]));
    let a = r.unwrap();
    assert_eq!(a.frames, 4);
    assert!(calls.is_empty());
    assert_eq!(a.decode.not_ip, 1, "{:?}", a.decode);
    assert!(a.decode.malformed >= 2, "{:?}", a.decode);
    assert_eq!(p.counters().messages, 0);
}

fn replay(dir: &str, f: impl Fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for sub in [format!("seeds/{dir}"), format!("artifacts/{dir}")] {
        let Ok(entries) = std::fs::read_dir(root.join(&sub)) else { continue };
        for e in entries.flatten() {
            f(&std::fs::read(e.path()).unwrap());
            n += 1;
        }
    }
    n
}

#[test]
fn fuzz_seeds_and_saved_crashes_replay_cleanly() {
    let sip = replay("sip_parse", |b| {
        for m in parse_datagram(b) {
            if m.is_err() {
                break;
            }
        }
    });
    let hep = replay("hep_decode", |b| {
        let p = decode(b).expect("every HEP seed is a valid packet");
        assert!(parse_one(p.payload).is_ok(), "the seed carries SIP");
    });
    let captures = replay("pcap_analyze", |b| {
        let (r, calls, _) = run(b);
        assert!(r.is_ok());
        assert!(!calls.is_empty(), "the seed captures hold calls");
    });
    assert!(sip >= 5 && hep >= 5 && captures >= 2, "seeds present: {sip} {hep} {captures}");
}
