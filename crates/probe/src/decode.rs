//! From link-layer frames to UDP and TCP payloads: Ethernet (with VLAN tags), Linux cooked
//! captures (SLL, SLL2), BSD loopback, raw IP; IPv4 and IPv6; IP fragments reassembled
//! (etherparse's defragmentation pool, with old fragments dropped so memory stays bounded).
//! TCP segments are passed on with their sequence number and flags, for the stream
//! reassembly of [`crate::tcp`].

use std::net::{IpAddr, SocketAddr};

use etherparse::defrag::IpDefragPool;
use etherparse::{NetSlice, SlicedPacket, TcpSlice, TransportSlice, UdpSlice};

use crate::tcp::{TcpFlags, TcpSegment};

/// Transport of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP datagram.
    Udp,
    /// TCP segment.
    Tcp,
}

/// A transport payload with its addresses.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// Capture time, µs.
    pub ts_us: i64,
    /// Source.
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// The payload.
    pub payload: &'a [u8],
}

/// A decoded transport payload: a UDP datagram, or a TCP segment to reassemble.
#[derive(Debug, Clone, Copy)]
pub enum Packet<'a> {
    /// A UDP datagram (whole).
    Udp(Datagram<'a>),
    /// A TCP segment (part of a stream).
    Tcp(TcpSegment<'a>),
}

fn segment<'a>(ts_us: i64, src: IpAddr, dst: IpAddr, tcp: &TcpSlice<'a>) -> Packet<'a> {
    Packet::Tcp(TcpSegment {
        ts_us,
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        flags: TcpFlags { syn: tcp.syn(), fin: tcp.fin(), rst: tcp.rst() },
        payload: tcp.payload(),
    })
}

/// What the decoder saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames offered.
    pub frames: u64,
    /// Frames that were not IP, or of an unsupported link type.
    pub not_ip: u64,
    /// IP packets that were neither UDP nor TCP.
    pub other_protocol: u64,
    /// Malformed frames.
    pub malformed: u64,
    /// IP fragments received.
    pub fragments: u64,
    /// Packets rebuilt from fragments.
    pub reassembled: u64,
    /// Fragments dropped (too old, or the pool was full).
    pub fragments_dropped: u64,
}

/// Fragments older than this (µs) are dropped.
const FRAGMENT_TIMEOUT_US: i64 = 30_000_000;
/// Clean the fragment pool every this many fragments.
const FRAGMENT_SWEEP: u64 = 1024;

/// Decodes frames; keeps the fragment pool between frames.
pub struct Decoder {
    defrag: IpDefragPool<i64, ()>,
    stats: DecodeStats,
    since_sweep: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder { defrag: IpDefragPool::new(), stats: DecodeStats::default(), since_sweep: 0 }
    }
}

fn ips(net: &NetSlice<'_>) -> Option<(IpAddr, IpAddr)> {
    match net {
        NetSlice::Ipv4(v4) => Some((IpAddr::V4(v4.header().source_addr()), IpAddr::V4(v4.header().destination_addr()))),
        NetSlice::Ipv6(v6) => Some((IpAddr::V6(v6.header().source_addr()), IpAddr::V6(v6.header().destination_addr()))),
        _ => None,
    }
}

impl Decoder {
    /// Counters.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Decodes one frame and calls `out` with its UDP datagram or TCP segment, if it has one.
    pub fn decode(&mut self, ts_us: i64, linktype: i32, data: &[u8], out: impl FnOnce(Packet<'_>)) {
        self.stats.frames += 1;
        let sliced = match linktype {
            1 => SlicedPacket::from_ethernet(data),
            113 => SlicedPacket::from_linux_sll(data),
            101 | 12 | 14 | 228 | 229 => SlicedPacket::from_ip(data),
            0 | 108 if data.len() > 4 => SlicedPacket::from_ip(&data[4..]),
            276 if data.len() > 20 => SlicedPacket::from_ip(&data[20..]),
            _ => {
                self.stats.not_ip += 1;
                return;
            }
        };
        let packet = match sliced {
            Ok(p) => p,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        let Some((src_ip, dst_ip)) = packet.net.as_ref().and_then(ips) else {
            self.stats.not_ip += 1;
            return;
        };
        match &packet.transport {
            Some(TransportSlice::Udp(udp)) => out(Packet::Udp(Datagram {
                ts_us,
                src: SocketAddr::new(src_ip, udp.source_port()),
                dst: SocketAddr::new(dst_ip, udp.destination_port()),
                transport: Transport::Udp,
                payload: udp.payload(),
            })),
            Some(TransportSlice::Tcp(tcp)) => out(segment(ts_us, src_ip, dst_ip, tcp)),
            Some(_) => self.stats.other_protocol += 1,
            None => self.fragment(ts_us, &packet, (src_ip, dst_ip), out),
        }
    }

    fn fragment(
        &mut self,
        ts_us: i64,
        packet: &SlicedPacket<'_>,
        (src, dst): (IpAddr, IpAddr),
        out: impl FnOnce(Packet<'_>),
    ) {
        self.stats.fragments += 1;
        self.since_sweep += 1;
        if self.since_sweep >= FRAGMENT_SWEEP {
            self.since_sweep = 0;
            self.defrag.retain(|t| *t > ts_us - FRAGMENT_TIMEOUT_US);
        }
        match self.defrag.process_sliced_packet(packet, ts_us, ()) {
            Ok(Some(whole)) => {
                self.stats.reassembled += 1;
                if whole.ip_number == etherparse::IpNumber::UDP
                    && let Ok(udp) = UdpSlice::from_slice(&whole.payload)
                {
                    out(Packet::Udp(Datagram {
                        ts_us,
                        src: SocketAddr::new(src, udp.source_port()),
                        dst: SocketAddr::new(dst, udp.destination_port()),
                        transport: Transport::Udp,
                        payload: udp.payload(),
                    }));
                } else if whole.ip_number == etherparse::IpNumber::TCP
                    && let Ok(tcp) = TcpSlice::from_slice(&whole.payload)
                {
                    out(segment(ts_us, src, dst, &tcp));
                } else {
                    self.stats.other_protocol += 1;
                }
                self.defrag.return_buf(whole);
            }
            Ok(None) => {}
            Err(_) => {
                self.stats.fragments_dropped += 1;
            }
        }
    }
}
