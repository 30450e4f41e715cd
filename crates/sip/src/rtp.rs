//! RTP headers (RFC 3550 section 5.1) and per-stream statistics: packets, loss from sequence
//! numbers, and interarrival jitter (section 6.4.1 and appendix A.8).

/// The fields of an RTP header the probe uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// Reads an RTP header; `None` unless it is version 2 and at least 12 bytes. RTCP (payload
/// types 72 to 76 with the marker bit) is not RTP.
pub fn parse(packet: &[u8]) -> Option<RtpHeader> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    let pt = packet[1] & 0x7f;
    if (72..=76).contains(&pt) {
        return None;
    }
    Some(RtpHeader {
        payload_type: pt,
        seq: u16::from_be_bytes([packet[2], packet[3]]),
        timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
    })
}

/// The RTP clock rate of a static payload type (RFC 3551); 8000 for dynamic types.
pub fn clock_rate(payload_type: u8) -> u32 {
    match payload_type {
        10 | 11 => 44_100,
        6 => 16_000,
        16 => 11_025,
        17 => 22_050,
        14 | 25 | 26 | 28 | 31..=34 => 90_000,
        _ => 8_000,
    }
}

const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;

/// Statistics of one RTP stream (one SSRC). Serialised whole (a probe pair checkpoints a
/// call's streams to its mate).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StreamStats {
    /// SSRC.
    pub ssrc: u32,
    base_seq: u16,
    max_seq: u16,
    cycles: u64,
    /// Packets received (duplicates included, as RFC 3550 counts them).
    pub received: u64,
    /// Payload type of the first packet (the codec, for the MOS estimate).
    pub payload_type: u8,
    clock_rate: u32,
    /// Arrival of the first packet, µs: later arrivals are converted to clock units relative
    /// to it, so the product never overflows.
    first_arrival_us: i64,
    /// The previous packet: arrival in clock units since the first, and its RTP timestamp.
    previous: (i64, u32),
    jitter: f64,
    /// Packets this probe could not have seen: those the stream sent while it was tracked
    /// by neither chassis of a probe pair (a failover), or after the checkpoint it was taken
    /// over from. They are neither received nor lost.
    #[serde(default)]
    unseen: u64,
    /// The next packet follows a gap in what this probe saw ([`StreamStats::resume`]).
    #[serde(skip)]
    resuming: bool,
}

impl StreamStats {
    /// A stream starting with `first`, received at `arrival_us` (microseconds).
    pub fn new(first: &RtpHeader, arrival_us: i64) -> Self {
        let clock_rate = clock_rate(first.payload_type);
        StreamStats {
            ssrc: first.ssrc,
            base_seq: first.seq,
            max_seq: first.seq,
            cycles: 0,
            received: 1,
            payload_type: first.payload_type,
            clock_rate,
            first_arrival_us: arrival_us,
            previous: (0, first.timestamp),
            jitter: 0.0,
            unseen: 0,
            resuming: false,
        }
    }

    /// The stream was taken over from a probe pair's mate: packets sent since the mate's
    /// checkpoint of it were seen by no one here. The next packet's sequence number tells how
    /// many; they are counted as unseen, not lost, and the gap adds nothing to the jitter.
    ///
    /// A checkpoint is another process's word: what could not come from a real stream is made
    /// so (the clock rate is the payload type's, counts stay below 2^48, the jitter is finite),
    /// so no later sum overflows.
    pub fn resume(&mut self) {
        const MAX_COUNT: u64 = 1 << 48;
        self.resuming = true;
        self.clock_rate = clock_rate(self.payload_type);
        self.cycles = self.cycles.min(MAX_COUNT) & !0xffff;
        self.received = self.received.min(MAX_COUNT);
        self.unseen = self.unseen.min(MAX_COUNT);
        if !self.jitter.is_finite() || self.jitter < 0.0 {
            self.jitter = 0.0;
        }
    }

    /// Adds a packet.
    pub fn update(&mut self, h: &RtpHeader, arrival_us: i64) {
        let resuming = std::mem::take(&mut self.resuming);
        let delta = h.seq.wrapping_sub(self.max_seq);
        // After a gap in what this probe saw, any step forward continues the stream (minutes
        // of a call may have passed since the checkpoint): the packets between are unseen.
        // Whole wraps of the sequence number in the gap are missed in `cycles` and in
        // `unseen` alike, so the loss stays right.
        let continues = delta < MAX_DROPOUT || (resuming && delta <= u16::MAX - MAX_MISORDER);
        if continues {
            if h.seq < self.max_seq {
                self.cycles = self.cycles.saturating_add(1 << 16);
            }
            if resuming && delta > 1 {
                self.unseen = self.unseen.saturating_add(u64::from(delta - 1));
            }
            self.max_seq = h.seq;
        } else if delta <= u16::MAX - MAX_MISORDER {
            // A large jump: the sender restarted; count from here.
            self.base_seq = h.seq;
            self.max_seq = h.seq;
            self.cycles = 0;
            self.received = 0;
            self.unseen = 0;
        }
        self.received = self.received.saturating_add(1);
        // RFC 3550 A.8: D = (Rj - Ri) - (Sj - Si), with the timestamp difference taken modulo
        // 2^32 so a wrapping RTP clock does not look like a jump.
        let since_first = i128::from(arrival_us.saturating_sub(self.first_arrival_us));
        let arrival = (since_first * i128::from(self.clock_rate) / 1_000_000) as i64;
        let (prev_arrival, prev_ts) = self.previous;
        let sent = i64::from(h.timestamp.wrapping_sub(prev_ts) as i32);
        let d = arrival.saturating_sub(prev_arrival).saturating_sub(sent).unsigned_abs() as f64;
        if !resuming {
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.previous = (arrival, h.timestamp);
    }

    /// The highest sequence number seen (modulo 2^16).
    pub fn max_seq(&self) -> u16 {
        self.max_seq
    }

    /// Packets expected from the sequence numbers seen (those unseen across a failover
    /// left out).
    pub fn expected(&self) -> u64 {
        self.cycles
            .saturating_add(u64::from(self.max_seq))
            .saturating_sub(u64::from(self.base_seq))
            .saturating_add(1)
            .saturating_sub(self.unseen)
    }

    /// Packets lost (never negative).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.clock_rate)
    }

    /// Estimated MOS of the stream from its codec, loss and jitter ([`crate::mos`]).
    pub fn mos(&self) -> f64 {
        crate::mos::estimate(self.payload_type, self.expected(), self.lost(), self.jitter_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16, ts: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(&[0u8; 160]);
        p
    }

    #[test]
    fn counts_loss_across_wraparound_and_steady_jitter_is_zero() {
        let first = parse(&pkt(65530, 0)).unwrap();
        let mut s = StreamStats::new(&first, 0);
        let mut t = 0;
        for i in 1..20u32 {
            let seq = 65530u16.wrapping_add(i as u16);
            t += 20_000;
            if seq == 2 || seq == 3 {
                continue; // two lost packets
            }
            s.update(&parse(&pkt(seq, i * 160)).unwrap(), t);
        }
        assert_eq!(s.expected(), 20);
        assert_eq!(s.lost(), 2);
        assert!(s.jitter_ms() < 0.01, "{}", s.jitter_ms());
        // 2 of 20 lost, PCMU: Ie_eff = 95 * 10 / 35.1 = 27.07, R 66.13, MOS 3.41.
        assert!((s.mos() - 3.4109).abs() < 1e-3, "{}", s.mos());
    }

    #[test]
    fn jitter_grows_with_irregular_arrival() {
        let mut s = StreamStats::new(&parse(&pkt(1, 0)).unwrap(), 0);
        for i in 1..50u32 {
            let wobble = if i % 2 == 0 { 5_000 } else { 0 };
            s.update(&parse(&pkt(1 + i as u16, i * 160)).unwrap(), i64::from(i) * 20_000 + wobble);
        }
        assert!(s.jitter_ms() > 2.0 && s.jitter_ms() < 6.0, "{}", s.jitter_ms());
    }

    #[test]
    fn wall_clock_arrivals_and_a_wrapping_rtp_clock_keep_jitter_at_zero() {
        // Capture times are µs since 1970 (a product with a 90 kHz clock overflows i64) and
        // the RTP timestamp wraps through 2^32 mid-stream.
        let mut p = pkt(100, u32::MAX - 3 * 3000);
        p[1] = 26; // JPEG video, 90 kHz
        let t0 = 1_790_000_000_000_000i64;
        let mut s = StreamStats::new(&parse(&p).unwrap(), t0);
        for i in 1..10u32 {
            let mut p = pkt(100 + i as u16, (u32::MAX - 3 * 3000).wrapping_add(i * 3000));
            p[1] = 26;
            s.update(&parse(&p).unwrap(), t0 + i64::from(i) * 33_333);
        }
        assert_eq!(s.lost(), 0);
        assert!(s.jitter_ms() < 0.05, "{}", s.jitter_ms());
    }

    #[test]
    fn a_stream_resumed_after_a_failover_counts_the_gap_as_unseen_not_lost() {
        let mut s = StreamStats::new(&parse(&pkt(10, 0)).unwrap(), 0);
        for i in 1..5u32 {
            s.update(&parse(&pkt(10 + i as u16, i * 160)).unwrap(), i64::from(i) * 20_000);
        }
        // Taken over: packets 15 to 39 went by unseen (half a second), a second later.
        let mut s: StreamStats = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        s.resume();
        for i in 30..40u32 {
            if i == 35 {
                continue; // lost after the failover
            }
            s.update(&parse(&pkt(10 + i as u16, i * 160)).unwrap(), 1_000_000 + i64::from(i) * 20_000);
        }
        assert_eq!((s.received, s.expected(), s.lost()), (14, 15, 1));
        assert!(s.jitter_ms() < 0.01, "the gap adds no jitter: {}", s.jitter_ms());
        // A gap of minutes (more than MAX_DROPOUT packets, across a wrap) is still unseen.
        let mut long: StreamStats = StreamStats::new(&parse(&pkt(60_000, 0)).unwrap(), 0);
        long.update(&parse(&pkt(60_001, 160)).unwrap(), 20_000);
        long.resume();
        for i in 0..3u16 {
            long.update(&parse(&pkt(9_000 + i, 160 * 15_000)).unwrap(), 300_000_000);
        }
        assert_eq!((long.received, long.lost()), (5, 0), "{long:?}");
        // Without the resume the gap would be loss.
        let mut plain = StreamStats::new(&parse(&pkt(10, 0)).unwrap(), 0);
        plain.update(&parse(&pkt(40, 30 * 160)).unwrap(), 600_000);
        assert_eq!(plain.lost(), 29);
    }

    #[test]
    fn rejects_non_rtp() {
        assert!(parse(&[0x80; 5]).is_none());
        assert!(parse(&[0x40; 12]).is_none());
        let mut rtcp = pkt(1, 1);
        rtcp[1] = 0xc8; // RTCP sender report
        assert!(parse(&rtcp).is_none());
        assert_eq!(clock_rate(0), 8000);
        assert_eq!(clock_rate(34), 90_000);
    }
}
