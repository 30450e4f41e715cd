//! Searching a packet capture (classic pcap, Ethernet, as `tcpdump -w` writes it) for secrets
//! sent in clear on TCP links.
//!
//! Each TCP flow's payloads are joined in capture order (retransmissions and reordering are
//! not undone: a secret cut by them could be missed, which only makes a "seen in clear" claim
//! weaker, never a "not seen" one wrong for a TLS link, whose bytes are all ciphertext). Each
//! needle is searched in every flow; flows are also searched after undoing zlib wherever a
//! zlib header appears (SRP checkpoints are compressed, which is not encryption).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::Path;

/// One TCP flow: (source, source port, destination, destination port).
pub type Flow = (Ipv4Addr, u16, Ipv4Addr, u16);

/// A secret to look for.
#[derive(Clone, Debug)]
pub struct Needle {
    /// What it is ("the agent token").
    pub what: String,
    /// Its bytes as they would appear in clear.
    pub bytes: Vec<u8>,
}

impl Needle {
    /// A needle.
    pub fn new(what: &str, text: &str) -> Needle {
        Needle { what: what.into(), bytes: text.as_bytes().to_vec() }
    }
}

/// Where a needle was found.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sighting {
    /// The needle's `what`.
    pub what: String,
    /// The flow it was seen in.
    pub flow: Flow,
    /// Seen only after undoing zlib.
    pub compressed: bool,
}

/// What the capture held.
#[derive(Debug, Default)]
pub struct Analysis {
    /// Packets read.
    pub packets: u64,
    /// TCP payload bytes on the selected ports.
    pub tcp_bytes: u64,
    /// Flows on the selected ports.
    pub flows: usize,
    /// Every sighting of a needle.
    pub sightings: Vec<Sighting>,
}

impl Analysis {
    /// The sightings of the needle `what`.
    pub fn seen(&self, what: &str) -> Vec<&Sighting> {
        self.sightings.iter().filter(|s| s.what == what).collect()
    }

    /// The sightings of `what` on a flow to or from `port`.
    pub fn seen_on_port(&self, what: &str, port: u16) -> Vec<&Sighting> {
        self.seen(what).into_iter().filter(|s| s.flow.1 == port || s.flow.3 == port).collect()
    }
}

/// Reads a pcap file and searches the TCP flows to or from any of `ports` for `needles`.
pub fn analyse(file: &Path, ports: &[u16], needles: &[Needle]) -> Analysis {
    let f = std::fs::File::open(file).unwrap_or_else(|e| panic!("cannot open the capture {}: {e}", file.display()));
    analyse_reader(std::io::BufReader::with_capacity(1 << 20, f), ports, needles)
}

/// [`analyse`] on any reader of pcap bytes.
pub fn analyse_reader(mut r: impl Read, ports: &[u16], needles: &[Needle]) -> Analysis {
    let mut header = [0u8; 24];
    r.read_exact(&mut header).expect("a pcap global header");
    let little = match header[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("not a pcap file (magic {:02x?}); tcpdump -w writes pcap", &header[..4]),
    };
    let u32_at = |b: &[u8], i: usize| {
        let v = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if little { u32::from_le_bytes(v) } else { u32::from_be_bytes(v) }
    };
    let link = u32_at(&header, 20);
    assert_eq!(link, 1, "link type {link}: the analysis reads Ethernet captures (a bridge)");
    let mut flows: BTreeMap<Flow, Vec<u8>> = BTreeMap::new();
    let mut out = Analysis::default();
    let mut rec = [0u8; 16];
    let mut data = Vec::new();
    while r.read_exact(&mut rec).is_ok() {
        let len = u32_at(&rec, 8) as usize;
        data.resize(len, 0);
        if r.read_exact(&mut data).is_err() {
            break; // a capture cut short
        }
        out.packets += 1;
        if let Some((flow, payload)) = tcp_payload(&data)
            && !payload.is_empty()
            && (ports.contains(&flow.1) || ports.contains(&flow.3))
        {
            out.tcp_bytes += payload.len() as u64;
            flows.entry(flow).or_default().extend_from_slice(payload);
        }
    }
    out.flows = flows.len();
    for (flow, bytes) in &flows {
        let inflated = inflate_all(bytes);
        for n in needles {
            if memchr::memmem::find(bytes, &n.bytes).is_some() {
                out.sightings.push(Sighting { what: n.what.clone(), flow: *flow, compressed: false });
            } else if inflated.iter().any(|i| memchr::memmem::find(i, &n.bytes).is_some()) {
                out.sightings.push(Sighting { what: n.what.clone(), flow: *flow, compressed: true });
            }
        }
    }
    out.sightings.sort();
    out
}

/// The flow and TCP payload of an Ethernet frame carrying IPv4 TCP (802.1Q tags skipped).
fn tcp_payload(frame: &[u8]) -> Option<(Flow, &[u8])> {
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    while ethertype == 0x8100 {
        off += 4;
        ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    }
    if ethertype != 0x0800 {
        return None;
    }
    let ip = frame.get(off + 2..)?;
    let ihl = ((*ip.first()? & 0x0f) as usize) * 4;
    if *ip.get(9)? != 6 || ihl < 20 {
        return None;
    }
    let total = (u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]) as usize).min(ip.len());
    let src = Ipv4Addr::new(*ip.get(12)?, ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(*ip.get(16)?, ip[17], ip[18], ip[19]);
    let tcp = ip.get(ihl..total)?;
    let sport = u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]);
    let dport = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
    let doff = ((*tcp.get(12)? >> 4) as usize) * 4;
    Some(((src, sport, dst, dport), tcp.get(doff..)?))
}

/// Everything that inflates as a zlib stream starting at any zlib header in `bytes` (each at
/// most 1 MiB).
fn inflate_all(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 <= bytes.len() {
        let (cmf, flg) = (bytes[i], bytes[i + 1]);
        if cmf == 0x78 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0 {
            let mut d = flate2::read::ZlibDecoder::new(&bytes[i..]);
            let mut buf = Vec::new();
            let _ = (&mut d).take(1 << 20).read_to_end(&mut buf);
            if !buf.is_empty() {
                out.push(buf);
            }
        }
        i += 1;
    }
    out
}
