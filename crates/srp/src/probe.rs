//! The monitors' probe clients: probing the targets of each monitor group while this chassis is
//! Active, and reporting each target's up/down changes to the SRP task, which turns a group
//! with every target down into a switchover.
//!
//! * `bgp`: a TCP peer is up when a connection to it succeeds (the seed's BGP peer groups);
//! * `aaa`: a RADIUS server is up when it answers an Access-Request (RFC 2865) with a valid
//!   Response Authenticator: an Accept and a Reject both prove it alive (the seed's
//!   authentication probe);
//! * `diameter`: a Diameter peer is up when it answers a Capabilities-Exchange-Request and a
//!   Device-Watchdog-Request (RFC 6733) with Result-Code 2001.
//!
//! A target goes down after `max_retries` failed probes in a row and up on the first success.

use std::net::SocketAddr;
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket, lookup_host};
use tokio::sync::{mpsc, watch};

use crate::config::{MonitorGroupConfig, MonitorKind};

/// Why a probe failed, in words (logged at debug level; the target goes down after
/// `max_retries` of them in a row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);

impl From<std::io::Error> for ProbeError {
    fn from(e: std::io::Error) -> Self {
        ProbeError(e.to_string())
    }
}

/// A probe's result.
pub type ProbeResult<T> = Result<T, ProbeError>;

macro_rules! fail {
    ($($arg:tt)*) => { return Err(ProbeError(format!($($arg)*))) };
}

/// A target changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetChange {
    /// The group's kind.
    pub kind: MonitorKind,
    /// The target as configured.
    pub target: String,
    /// Up or down.
    pub up: bool,
}

/// Starts one probing task per target; they probe only while `serving` is true.
pub fn spawn(groups: &[MonitorGroupConfig], serving: watch::Receiver<bool>, changes: mpsc::Sender<TargetChange>) {
    for g in groups {
        for target in &g.targets {
            tokio::spawn(probe_loop(g.clone(), target.clone(), serving.clone(), changes.clone()));
        }
    }
}

async fn probe_loop(
    group: MonitorGroupConfig,
    target: String,
    mut serving: watch::Receiver<bool>,
    changes: mpsc::Sender<TargetChange>,
) {
    let mut up = true;
    let mut failures = 0u32;
    let interval = Duration::from_millis(u64::from(group.interval_ms));
    loop {
        if !*serving.borrow() {
            // Not Active: no probing; the monitor set is reset by the SRP task.
            up = true;
            failures = 0;
            if serving.changed().await.is_err() {
                return;
            }
            continue;
        }
        let ok = probe(&group, &target).await;
        match ok {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::debug!(kind = %group.kind, %target, failures, error = %e, "monitor probe failed");
            }
        }
        let now_up = failures < group.max_retries;
        if now_up != up {
            up = now_up;
            tracing::warn!(kind = %group.kind, %target, up, "SRP monitor target changed");
            if changes.send(TargetChange { kind: group.kind, target: target.clone(), up }).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            r = serving.changed() => if r.is_err() { return },
        }
    }
}

async fn resolve(target: &str, default_port: u16) -> ProbeResult<SocketAddr> {
    let with_port = if target.parse::<SocketAddr>().is_ok()
        || target.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        target.to_string()
    } else {
        format!("{target}:{default_port}")
    };
    lookup_host(&with_port).await?.next().ok_or_else(|| ProbeError(format!("{target}: no address")))
}

/// One probe of one target.
pub async fn probe(group: &MonitorGroupConfig, target: &str) -> ProbeResult<()> {
    let timeout = Duration::from_millis(u64::from(group.timeout_ms));
    let work = async {
        match group.kind {
            MonitorKind::Bgp => {
                TcpStream::connect(resolve(target, 179).await?).await?;
                Ok(())
            }
            MonitorKind::Aaa => radius_probe(resolve(target, 1812).await?, &group.secret, &group.probe_user).await,
            MonitorKind::Diameter => {
                let host = if group.origin_host.is_empty() { "tollgate.srp" } else { group.origin_host.as_str() };
                diameter_probe(resolve(target, 3868).await?, host).await
            }
        }
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| ProbeError(format!("no answer within {timeout:?}")))?
}

// ---------------------------------------------------------------- RADIUS (RFC 2865)

fn radius_attr(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.push(kind);
    out.push((value.len() + 2) as u8);
    out.extend_from_slice(value);
}

/// User-Password hidden with the secret and the Request Authenticator (RFC 2865 5.2).
fn hide_password(password: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Vec<u8> {
    let mut padded = password.to_vec();
    let len = padded.len().div_ceil(16).max(1) * 16;
    padded.resize(len, 0);
    let mut out = Vec::with_capacity(len);
    let mut prev: Vec<u8> = authenticator.to_vec();
    for chunk in padded.chunks(16) {
        let mut h = Md5::new();
        h.update(secret);
        h.update(&prev);
        let b = h.finalize();
        let c: Vec<u8> = chunk.iter().zip(b.iter()).map(|(p, k)| p ^ k).collect();
        out.extend_from_slice(&c);
        prev = c;
    }
    out
}

/// An Access-Request for `user` with a random authenticator; returns it and the authenticator.
pub fn radius_request(id: u8, user: &str, secret: &str) -> (Vec<u8>, [u8; 16]) {
    let authenticator: [u8; 16] = rand::random();
    let mut attrs = Vec::new();
    radius_attr(&mut attrs, 1, user.as_bytes());
    radius_attr(&mut attrs, 2, &hide_password(b"srp-probe", secret.as_bytes(), &authenticator));
    radius_attr(&mut attrs, 32, b"tollgate-srp");
    let len = (20 + attrs.len()) as u16;
    let mut p = vec![1, id];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&authenticator);
    p.extend_from_slice(&attrs);
    (p, authenticator)
}

/// Checks a RADIUS answer to request `id`: an Accept, Reject or Challenge whose Response
/// Authenticator proves the server knows the secret.
pub fn radius_answer_ok(answer: &[u8], id: u8, request_authenticator: &[u8; 16], secret: &str) -> ProbeResult<u8> {
    if answer.len() < 20 {
        fail!("RADIUS answer too short ({} bytes)", answer.len());
    }
    let len = usize::from(u16::from_be_bytes([answer[2], answer[3]]));
    if answer[1] != id || len < 20 || len > answer.len() {
        fail!("RADIUS answer for another request or with a bad length");
    }
    let mut h = Md5::new();
    h.update(&answer[..4]);
    h.update(request_authenticator);
    h.update(&answer[20..len]);
    h.update(secret.as_bytes());
    if h.finalize().as_slice() != &answer[4..20] {
        fail!("RADIUS Response Authenticator does not match (wrong shared secret?)");
    }
    match answer[0] {
        2 | 3 | 11 => Ok(answer[0]),
        code => fail!("unexpected RADIUS code {code}"),
    }
}

async fn radius_probe(server: SocketAddr, secret: &str, user: &str) -> ProbeResult<()> {
    let bind: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(server).await?;
    let id: u8 = rand::random();
    let (req, auth) = radius_request(id, user, secret);
    sock.send(&req).await?;
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).await?;
        if radius_answer_ok(&buf[..n], id, &auth, secret).is_ok() {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------- Diameter (RFC 6733)

fn avp(out: &mut Vec<u8>, code: u32, value: &[u8]) {
    let len = 8 + value.len();
    out.extend_from_slice(&code.to_be_bytes());
    out.push(0x40); // M bit
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(value);
    out.resize(out.len() + (4 - len % 4) % 4, 0);
}

/// A Diameter request (`code`, base application) with these AVPs.
pub fn diameter_request(code: u32, hop_by_hop: u32, avps: &[u8]) -> Vec<u8> {
    let len = 20 + avps.len();
    let mut m = vec![1];
    m.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    m.push(0x80); // R bit
    m.extend_from_slice(&code.to_be_bytes()[1..]);
    m.extend_from_slice(&0u32.to_be_bytes()); // application 0
    m.extend_from_slice(&hop_by_hop.to_be_bytes());
    m.extend_from_slice(&hop_by_hop.to_be_bytes()); // end-to-end
    m.extend_from_slice(avps);
    m
}

/// The Result-Code (AVP 268) of a Diameter answer to `code`, if it is one.
pub fn diameter_result(answer: &[u8], code: u32) -> Option<u32> {
    if answer.len() < 20 || answer[0] != 1 || answer[4] & 0x80 != 0 {
        return None;
    }
    let cmd = u32::from_be_bytes([0, answer[5], answer[6], answer[7]]);
    if cmd != code {
        return None;
    }
    let len = (u32::from_be_bytes([0, answer[1], answer[2], answer[3]]) as usize).min(answer.len());
    let mut at = 20;
    while at + 8 <= len {
        let avp_code = u32::from_be_bytes([answer[at], answer[at + 1], answer[at + 2], answer[at + 3]]);
        let flags = answer[at + 4];
        let avp_len = u32::from_be_bytes([0, answer[at + 5], answer[at + 6], answer[at + 7]]) as usize;
        let header = if flags & 0x80 != 0 { 12 } else { 8 };
        if avp_len < header || at + avp_len > len {
            return None;
        }
        if avp_code == 268 && avp_len == header + 4 {
            let v = &answer[at + header..at + header + 4];
            return Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        }
        at += avp_len.div_ceil(4) * 4;
    }
    None
}

/// The length of a Diameter message from its first four bytes (version, length), if it is
/// one this probe reads (20 bytes to 1 MiB).
pub fn diameter_length(head: [u8; 4]) -> ProbeResult<usize> {
    let len = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
    if !(20..=1 << 20).contains(&len) {
        fail!("Diameter message length {len}");
    }
    Ok(len)
}

async fn read_diameter(stream: &mut TcpStream) -> ProbeResult<Vec<u8>> {
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    let len = diameter_length(head)?;
    let mut msg = head.to_vec();
    msg.resize(len, 0);
    stream.read_exact(&mut msg[4..]).await?;
    Ok(msg)
}

async fn diameter_probe(peer: SocketAddr, origin_host: &str) -> ProbeResult<()> {
    let mut stream = TcpStream::connect(peer).await?;
    let local = stream.local_addr()?;
    let realm = origin_host.split_once('.').map_or(origin_host, |(_, r)| r);
    let mut base = Vec::new();
    avp(&mut base, 264, origin_host.as_bytes());
    avp(&mut base, 296, realm.as_bytes());
    let mut cer = base.clone();
    let mut ip = vec![0, if local.is_ipv4() { 1 } else { 2 }];
    match local.ip() {
        std::net::IpAddr::V4(v4) => ip.extend_from_slice(&v4.octets()),
        std::net::IpAddr::V6(v6) => ip.extend_from_slice(&v6.octets()),
    }
    avp(&mut cer, 257, &ip); // Host-IP-Address
    avp(&mut cer, 266, &0u32.to_be_bytes()); // Vendor-Id
    avp(&mut cer, 269, b"tollgate"); // Product-Name
    stream.write_all(&diameter_request(257, 1, &cer)).await?;
    let cea = read_diameter(&mut stream).await?;
    match diameter_result(&cea, 257) {
        Some(2001) => {}
        other => fail!("CEA result {other:?}"),
    }
    stream.write_all(&diameter_request(280, 2, &base)).await?;
    let dwa = read_diameter(&mut stream).await?;
    match diameter_result(&dwa, 280) {
        Some(2001) => Ok(()),
        other => fail!("DWA result {other:?}"),
    }
}

/// The checks of the `srp_monitor` fuzz target, shared with the seed replay in `cargo test`:
/// what a RADIUS server or a Diameter peer answers is parsed by the probe and must never make
/// it panic.
#[doc(hidden)]
pub mod fuzzing {
    use md5::{Digest, Md5};

    use super::{avp, diameter_length, diameter_request, diameter_result, radius_answer_ok};

    /// The Request Authenticator fuzz inputs are checked against.
    pub const AUTHENTICATOR: [u8; 16] = [7; 16];
    /// The shared secret fuzz inputs are checked against.
    pub const SECRET: &str = "testing123";

    /// Feeds `data` to the RADIUS answer check (the request id taken from its second byte) and
    /// to the Diameter answer reader; nothing panics, and what is accepted is what the probe
    /// accepts.
    pub fn check(data: &[u8]) {
        let id = data.get(1).copied().unwrap_or(0);
        if let Ok(code) = radius_answer_ok(data, id, &AUTHENTICATOR, SECRET) {
            assert!(matches!(code, 2 | 3 | 11), "accepted RADIUS code {code}");
            assert_eq!(data[0], code);
        }
        if let Some(head) = data.first_chunk::<4>()
            && let Ok(len) = diameter_length(*head)
        {
            assert!((20..=1 << 20).contains(&len));
        }
        for code in [257, 280] {
            if diameter_result(data, code).is_some() {
                assert!(data.len() >= 20 && data[4] & 0x80 == 0, "only answers carry a result");
            }
        }
    }

    /// A RADIUS answer as a server with [`SECRET`] sends it to a request with [`AUTHENTICATOR`].
    pub fn radius_answer(code: u8, id: u8, attrs: &[u8]) -> Vec<u8> {
        let len = (20 + attrs.len()) as u16;
        let mut answer = vec![code, id];
        answer.extend_from_slice(&len.to_be_bytes());
        let mut h = Md5::new();
        h.update(&answer[..4]);
        h.update(AUTHENTICATOR);
        h.update(attrs);
        h.update(SECRET.as_bytes());
        answer.extend_from_slice(&h.finalize());
        answer.extend_from_slice(attrs);
        answer
    }

    /// A Diameter answer (R bit clear) to `code` with this Result-Code.
    pub fn diameter_answer(code: u32, result: u32) -> Vec<u8> {
        let mut avps = Vec::new();
        avp(&mut avps, 264, b"peer.example.net");
        avp(&mut avps, 268, &result.to_be_bytes());
        let mut answer = diameter_request(code, 1, &avps);
        answer[4] = 0;
        answer
    }

    /// The seeds of the `srp_monitor` target: answers of each kind, good and bad.
    pub fn seeds() -> Vec<(String, Vec<u8>)> {
        let mut bad_auth = radius_answer(3, 9, &[]);
        bad_auth[10] ^= 1;
        let mut vendor_avp = diameter_answer(280, 2001);
        vendor_avp[24] |= 0x80; // V bit on the first AVP: a 12-byte header
        vec![
            ("radius-accept".into(), radius_answer(2, 9, &[18, 6, b'o', b'k', b'!', b'!'])),
            ("radius-reject".into(), radius_answer(3, 9, &[])),
            ("radius-challenge".into(), radius_answer(11, 9, &[])),
            ("radius-bad-authenticator".into(), bad_auth),
            ("radius-truncated".into(), radius_answer(2, 9, &[])[..12].to_vec()),
            ("diameter-cea-success".into(), diameter_answer(257, 2001)),
            ("diameter-dwa-success".into(), diameter_answer(280, 2001)),
            ("diameter-dwa-busy".into(), diameter_answer(280, 3004)),
            ("diameter-vendor-avp".into(), vendor_avp),
            ("diameter-truncated".into(), diameter_answer(257, 2001)[..30].to_vec()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radius_answers_are_checked_against_the_secret() {
        let (req, auth) = radius_request(7, "probe", "s3cret");
        assert_eq!((req[0], req[1]), (1, 7));
        // Build an Access-Reject as a server would.
        let mut answer = vec![3, 7, 0, 20];
        let mut h = Md5::new();
        h.update(&answer[..4]);
        h.update(auth);
        h.update(b"s3cret");
        answer.extend_from_slice(&h.finalize());
        assert_eq!(radius_answer_ok(&answer, 7, &auth, "s3cret").unwrap(), 3);
        assert!(radius_answer_ok(&answer, 7, &auth, "wrong").is_err());
        assert!(radius_answer_ok(&answer, 8, &auth, "s3cret").is_err());
        assert!(radius_answer_ok(&answer[..10], 7, &auth, "s3cret").is_err());
    }

    #[test]
    fn the_fuzz_seeds_are_what_the_probe_accepts_and_refuses() {
        use fuzzing::*;
        let seeds: std::collections::BTreeMap<String, Vec<u8>> = fuzzing::seeds().into_iter().collect();
        for (name, code) in [("radius-accept", 2), ("radius-reject", 3), ("radius-challenge", 11)] {
            assert_eq!(radius_answer_ok(&seeds[name], 9, &AUTHENTICATOR, SECRET).unwrap(), code, "{name}");
        }
        assert!(radius_answer_ok(&seeds["radius-bad-authenticator"], 9, &AUTHENTICATOR, SECRET).is_err());
        assert!(radius_answer_ok(&seeds["radius-truncated"], 9, &AUTHENTICATOR, SECRET).is_err());
        assert_eq!(diameter_result(&seeds["diameter-cea-success"], 257), Some(2001));
        assert_eq!(diameter_result(&seeds["diameter-dwa-busy"], 280), Some(3004));
        assert_eq!(diameter_result(&seeds["diameter-truncated"], 257), None);
        assert_eq!(diameter_length([1, 0, 0, 19]).ok(), None);
        assert_eq!(diameter_length([1, 0, 0, 20]).ok(), Some(20));
    }

    #[test]
    fn hidden_passwords_are_16_byte_blocks() {
        assert_eq!(hide_password(b"x", b"k", &[0; 16]).len(), 16);
        assert_eq!(hide_password(&[1; 17], b"k", &[0; 16]).len(), 32);
    }

    #[test]
    fn diameter_result_codes_are_read_and_garbage_is_none() {
        let mut avps = Vec::new();
        avp(&mut avps, 268, &2001u32.to_be_bytes());
        let mut answer = diameter_request(280, 9, &avps);
        answer[4] = 0; // an answer: R bit clear
        assert_eq!(diameter_result(&answer, 280), Some(2001));
        assert_eq!(diameter_result(&answer, 257), None);
        assert_eq!(diameter_result(&answer[..19], 280), None);
        let mut bad = answer.clone();
        bad[25] = 0xff; // AVP length past the end
        assert_eq!(diameter_result(&bad, 280), None);
    }
}
