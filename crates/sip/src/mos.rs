//! A listening-quality estimate (MOS) of an RTP stream from its loss and jitter: the ITU-T
//! G.107 E-model, simplified to what a passive probe can measure.
//!
//! ```text
//! R   = R0 - Is - Id - Ie_eff + A            (G.107 eq. 7-1)
//!     = 93.2 - Idd(Ta) - Ie_eff              (R0 - Is and the default Idte, Idle: 93.2; A = 0)
//! Ta  = codec delay + 2 x jitter             (one-way delay the probe can see: packetisation
//!                                             and look-ahead, plus a jitter buffer of twice
//!                                             the RFC 3550 interarrival jitter)
//! Idd = 0 for Ta <= 100 ms, else             (G.107 eq. 7-27)
//!       25 {(1 + X^6)^(1/6) - 3 (1 + (X/3)^6)^(1/6) + 2},  X = log2(Ta / 100 ms)
//! Ie_eff = Ie + (95 - Ie) Ppl / (Ppl / BurstR + Bpl)        (G.107 eq. 7-29)
//!       Ppl: packets lost, % of those expected; BurstR = 1 (random loss);
//!       Ie, Bpl per codec from G.113 Appendix I (see [`codec`])
//! MOS = 1 for R < 0, 4.5 for R > 100, else   (G.107 Annex B)
//!       1 + 0.035 R + R (R - 60) (100 - R) 7e-6
//! ```
//!
//! What it leaves out: the network's one-way delay (a probe on one tap cannot see it) and echo,
//! so it estimates the listening quality of the stream as received at the tap, not the
//! conversational quality between the two ends. With no loss and little jitter G.711 scores the
//! E-model's default, R 93.2 and MOS 4.41.

/// The E-model's impairment factors of a codec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Codec {
    /// Its name, for people.
    pub name: &'static str,
    /// Equipment impairment factor Ie (G.113 Appendix I).
    pub ie: f64,
    /// Packet-loss robustness factor Bpl (G.113 Appendix I).
    pub bpl: f64,
    /// Delay it adds, ms: one packet (20 ms, or the codec's frame) and its look-ahead.
    pub delay_ms: f64,
}

/// G.711 with packet-loss concealment (G.711 Appendix I): Ie 0, Bpl 25.1.
pub const G711: Codec = Codec { name: "G.711", ie: 0.0, bpl: 25.1, delay_ms: 20.0 };
/// G.729A with VAD: Ie 11, Bpl 19.0; 10 ms frames, 5 ms look-ahead, two frames a packet.
pub const G729: Codec = Codec { name: "G.729", ie: 11.0, bpl: 19.0, delay_ms: 25.0 };
/// G.723.1 at 6.3 kbit/s with VAD: Ie 15, Bpl 16.1; 30 ms frames, 7.5 ms look-ahead.
pub const G723: Codec = Codec { name: "G.723.1", ie: 15.0, bpl: 16.1, delay_ms: 37.5 };

/// The codec of an RTP payload type (RFC 3551 static types): 4 G.723.1, 18 G.729, anything
/// else (0 PCMU, 8 PCMA, 9 G.722 on the narrowband scale, dynamic types) G.711's factors.
pub fn codec(payload_type: u8) -> Codec {
    match payload_type {
        4 => G723,
        18 => G729,
        _ => G711,
    }
}

/// The E-model's default rating: R0 - Is with the default delay terms (G.107 Table 3 values).
pub const R_DEFAULT: f64 = 93.2;

/// The delay impairment Idd of an absolute one-way delay `ta_ms` (G.107 eq. 7-27).
pub fn delay_impairment(ta_ms: f64) -> f64 {
    if ta_ms.is_nan() || ta_ms <= 100.0 {
        return 0.0;
    }
    let x = (ta_ms / 100.0).log2();
    25.0 * ((1.0 + x.powi(6)).powf(1.0 / 6.0) - 3.0 * (1.0 + (x / 3.0).powi(6)).powf(1.0 / 6.0) + 2.0)
}

/// The effective equipment impairment Ie_eff of `codec` at `loss_pct` percent of packets lost
/// with random loss (BurstR 1; G.107 eq. 7-29).
pub fn loss_impairment(codec: &Codec, loss_pct: f64) -> f64 {
    let ppl = if loss_pct.is_finite() { loss_pct.clamp(0.0, 100.0) } else { 0.0 };
    codec.ie + (95.0 - codec.ie) * ppl / (ppl + codec.bpl)
}

/// The rating R of a stream of `codec` with `loss_pct` percent of its packets lost and an
/// interarrival jitter of `jitter_ms`.
pub fn r_factor(codec: &Codec, loss_pct: f64, jitter_ms: f64) -> f64 {
    let jitter = if jitter_ms.is_finite() { jitter_ms.max(0.0) } else { 0.0 };
    let ta = codec.delay_ms + 2.0 * jitter;
    R_DEFAULT - delay_impairment(ta) - loss_impairment(codec, loss_pct)
}

/// The mean opinion score of a rating R (G.107 Annex B), 1 to 4.5.
pub fn mos_from_r(r: f64) -> f64 {
    if r.is_nan() || r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).clamp(1.0, 4.5)
    }
}

/// The MOS of a stream: payload type, packets expected and lost, jitter in ms.
pub fn estimate(payload_type: u8, expected: u64, lost: u64, jitter_ms: f64) -> f64 {
    let loss_pct = if expected == 0 { 0.0 } else { lost.min(expected) as f64 * 100.0 / expected as f64 };
    mos_from_r(r_factor(&codec(payload_type), loss_pct, jitter_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn g711_without_loss_scores_the_e_model_default() {
        let r = r_factor(&G711, 0.0, 0.0);
        assert!(close(r, 93.2, 1e-9), "{r}");
        // 1 + 0.035*93.2 + 93.2*33.2*6.8*7e-6 = 4.409...
        assert!(close(mos_from_r(r), 4.4093, 1e-3), "{}", mos_from_r(r));
        assert!(close(estimate(0, 1000, 0, 1.0), 4.41, 0.005));
        assert!(close(estimate(8, 1000, 0, 1.0), 4.41, 0.005));
    }

    #[test]
    fn loss_points_match_g107_with_g113_factors() {
        // G.711 with PLC, 1 % random loss: Ie_eff = 95 * 1 / (1 + 25.1) = 3.640.
        assert!(close(loss_impairment(&G711, 1.0), 3.6398, 1e-3));
        // 2 %: 7.01 (the commonly tabulated "Ie 7 at 2 %"); R 86.19, MOS 4.23.
        assert!(close(loss_impairment(&G711, 2.0), 7.0111, 1e-3));
        let r = r_factor(&G711, 2.0, 0.0);
        assert!(close(r, 86.1889, 1e-3), "{r}");
        assert!(close(mos_from_r(r), 4.2348, 1e-3), "{}", mos_from_r(r));
        // 5 %: Ie_eff = 95 * 5 / 30.1 = 15.78; R 77.42, MOS 3.92.
        assert!(close(mos_from_r(r_factor(&G711, 5.0, 0.0)), 3.9228, 1e-3));
        // G.729A + VAD at 2 %: 11 + 84 * 2 / 21 = 19.0 (G.113's tabulated 19).
        assert!(close(loss_impairment(&G729, 2.0), 19.0, 1e-9));
        // No loss: R 82.2, MOS 4.10.
        assert!(close(mos_from_r(r_factor(&G729, 0.0, 0.0)), 4.1044, 1e-3));
        // G.723.1 at 2 %: 15 + 80 * 2 / 18.1 = 23.84.
        assert!(close(loss_impairment(&G723, 2.0), 23.8398, 1e-3));
        // Half the packets lost: poor whatever the codec.
        assert!(estimate(0, 100, 50, 0.0) < 2.0);
    }

    #[test]
    fn jitter_costs_only_when_the_delay_passes_100_ms() {
        // G.711: 20 ms + 2 x 40 ms = 100 ms: no delay impairment yet.
        assert!(close(r_factor(&G711, 0.0, 40.0), 93.2, 1e-9));
        // Ta 200 ms: X = 1, Idd = 25 (2^(1/6) - 3 (1 + 1/729)^(1/6) + 2) = 3.045.
        assert!(close(delay_impairment(200.0), 3.0444, 1e-3));
        assert!(close(r_factor(&G711, 0.0, 90.0), 93.2 - 3.0444, 1e-3));
        // Ta 400 ms: X = 2, Idd = 24.07.
        assert!(close(delay_impairment(400.0), 24.07, 0.01));
        assert!(delay_impairment(800.0) > delay_impairment(400.0));
    }

    #[test]
    fn the_score_is_bounded_and_never_nan() {
        assert_eq!(mos_from_r(-5.0), 1.0);
        assert_eq!(mos_from_r(120.0), 4.5);
        assert_eq!(mos_from_r(f64::NAN), 1.0);
        assert_eq!(mos_from_r(0.0), 1.0);
        for (expected, lost, jitter) in [(0, 0, 0.0), (1, 5, f64::INFINITY), (10, 10, f64::NAN), (u64::MAX, 1, -3.0)] {
            let m = estimate(0, expected, lost, jitter);
            assert!((1.0..=4.5).contains(&m), "{m}");
        }
        // Monotone in loss and in jitter.
        let mut last = 5.0;
        for loss in 0..=20 {
            let m = estimate(0, 100, loss, 0.0);
            assert!(m < last || loss == 0, "{loss}: {m}");
            last = m;
        }
        assert!(estimate(0, 100, 0, 200.0) < estimate(0, 100, 0, 50.0));
    }
}
