//! The probe's Prometheus metrics, read at scrape time: messages, calls by disposition, ASR,
//! NER, RTP and calls of poor quality (MOS), and every drop counter (parse errors, evictions,
//! decode errors, kernel drops).

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::live::{CaptureState, LiveStats};
use crate::pipeline::Probe;

/// Registers with [`prometheus_client::registry::Registry::register_collector`].
pub struct ProbeCollector {
    /// The probe.
    pub probe: Arc<Mutex<Probe>>,
    /// Live source counters.
    pub live: Arc<LiveStats>,
}

impl fmt::Debug for ProbeCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProbeCollector")
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge_f(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// The call ladders' store: what it holds and what it had to drop.
fn ladder_metrics(e: &mut DescriptorEncoder, l: &crate::ladder::LadderStats) -> fmt::Result {
    gauge_f(e, "tollgate_probe_ladder_calls", "Calls whose SIP messages are held for their ladder", l.calls as f64)?;
    gauge_f(e, "tollgate_probe_ladder_bytes", "Bytes held for call ladders (probe.ladder_max_mb)", l.bytes as f64)?;
    counter(
        e,
        "tollgate_probe_ladder_calls_dropped",
        "Calls whose messages were dropped to stay under probe.ladder_max_mb (oldest first)",
        l.calls_dropped,
    )?;
    counter(
        e,
        "tollgate_probe_ladder_messages_dropped",
        "Messages not kept for ladders: past 200 per call, or of calls dropped whole",
        l.messages_dropped,
    )?;
    counter(e, "tollgate_probe_ladder_messages_truncated", "Messages kept cut at 4 KiB", l.messages_truncated)
}

impl Collector for ProbeCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let (counters, tracker, open, ladder, tcp, tcp_flows, tcp_held) = {
            let p = crate::pipeline::lock(&self.probe);
            (
                p.counters().clone(),
                p.tracker().stats(),
                p.tracker().open_calls(),
                p.ladder().map(|l| l.stats()),
                p.tcp().stats(),
                p.tcp().flows(),
                p.tcp().held_bytes(),
            )
        };
        if let Some(l) = ladder {
            ladder_metrics(&mut e, &l)?;
        }
        counter(&mut e, "tollgate_probe_sip_messages", "SIP messages parsed", counters.messages)?;
        counter(
            &mut e,
            "tollgate_probe_sip_malformed",
            "Payloads that looked like SIP but did not parse",
            counters.malformed,
        )?;
        counter(&mut e, "tollgate_probe_rtp_packets", "RTP packets tied to calls", counters.rtp_packets)?;
        for (disposition, n) in &counters.calls {
            counter(
                &mut e,
                &format!("tollgate_probe_calls_{disposition}"),
                &format!("Calls that ended {disposition}"),
                *n,
            )?;
        }
        counter(&mut e, "tollgate_probe_calls", "Calls finished", counters.total_calls())?;
        gauge_f(&mut e, "tollgate_probe_asr", "Answer-seizure ratio of the calls seen", counters.asr())?;
        gauge_f(&mut e, "tollgate_probe_ner", "Network effectiveness ratio of the calls seen", counters.ner())?;
        gauge_f(&mut e, "tollgate_probe_open_calls", "Calls open now", open as f64)?;
        counter(
            &mut e,
            "tollgate_probe_calls_evicted",
            "Calls closed early to stay under the open-call cap",
            tracker.evicted,
        )?;
        counter(&mut e, "tollgate_probe_calls_timed_out", "Calls closed by a timeout", tracker.timed_out)?;
        counter(
            &mut e,
            "tollgate_probe_calls_abandoned",
            "Calls open when this probe pair chassis stopped serving, forgotten without a record (the mate records)",
            counters.abandoned,
        )?;
        counter(
            &mut e,
            "tollgate_probe_calls_recovered",
            "Calls open on this probe pair chassis's mate when it failed or handed over, taken over here from its checkpoints",
            counters.recovered,
        )?;
        counter(
            &mut e,
            "tollgate_probe_calls_recovered_unconfirmed",
            "Calls taken over from the mate that timed out before any message of theirs arrived here, forgotten without a record (the mate may have recorded their end)",
            tracker.recovered_unconfirmed,
        )?;
        counter(
            &mut e,
            "tollgate_probe_after_end_messages",
            "Messages of calls that had already ended (retransmissions, late copies)",
            tracker.after_end,
        )?;
        counter(
            &mut e,
            "tollgate_probe_rtp_after_end_packets",
            "RTP packets to the media endpoints of a call that had just ended (in flight at the BYE)",
            tracker.rtp_after_end,
        )?;
        counter(
            &mut e,
            "tollgate_probe_rtp_unattributed_packets",
            "RTP packets to or from a known media endpoint that no call's claim covered (sent before its SDP)",
            tracker.rtp_unattributed,
        )?;
        counter(
            &mut e,
            "tollgate_probe_media_endpoints_refused",
            "Media endpoints from SDP not tracked because the endpoint bound was reached",
            tracker.media_refused,
        )?;
        counter(
            &mut e,
            "tollgate_probe_poor_quality_calls",
            "Calls with an RTP stream whose estimated MOS was below probe.mos_poor",
            counters.poor_quality_calls,
        )?;
        counter(
            &mut e,
            "tollgate_probe_unknown_call_messages",
            "Messages of calls whose INVITE was not seen",
            tracker.unknown_call,
        )?;
        for (name, help, v) in [
            ("tcp_flows", "TCP flows seen (each direction of a connection is one)", tcp.flows),
            ("tcp_midstream_flows", "TCP flows picked up after their SYN", tcp.midstream),
            ("tcp_messages", "SIP messages reassembled from TCP", tcp.messages),
            ("tcp_out_of_order_segments", "TCP segments held until the bytes before them came", tcp.out_of_order),
            ("tcp_retransmitted_bytes", "TCP bytes seen twice (the first copy kept)", tcp.retransmitted_bytes),
            ("tcp_gaps", "TCP sequence gaps skipped (bytes never captured)", tcp.gaps),
            ("tcp_resyncs", "Times a TCP flow found a SIP start line again after losing its framing", tcp.resyncs),
            (
                "tcp_bytes_dropped",
                "TCP bytes not delivered in a SIP message (partial at a gap, close or eviction; oversized; not SIP)",
                tcp.bytes_dropped,
            ),
            ("tcp_no_content_length", "SIP messages on TCP without Content-Length", tcp.no_content_length),
            ("tcp_oversized", "SIP messages on TCP dropped as too large or with a bad Content-Length", tcp.oversized),
            ("tcp_flows_evicted", "TCP flows evicted to stay under the flow and byte bounds", tcp.evicted),
            ("tcp_flows_expired", "TCP flows forgotten after being idle", tcp.expired),
            (
                "tcp_not_sip_bytes",
                "TCP bytes of flows picked up mid-stream before any SIP start line (other traffic on the tap)",
                tcp.not_sip_bytes,
            ),
        ] {
            counter(&mut e, &format!("tollgate_probe_{name}"), help, v)?;
        }
        gauge_f(&mut e, "tollgate_probe_tcp_open_flows", "TCP flows tracked now", tcp_flows as f64)?;
        gauge_f(&mut e, "tollgate_probe_tcp_bytes_held", "TCP bytes held now for reassembly", tcp_held as f64)?;
        let l = &self.live;
        counter(
            &mut e,
            "tollgate_probe_mirrored_datagrams",
            "Datagrams received on mirror ports",
            l.mirrored.load(Ordering::Relaxed),
        )?;
        counter(&mut e, "tollgate_probe_hep_packets", "HEP packets received", l.hep.load(Ordering::Relaxed))?;
        counter(
            &mut e,
            "tollgate_probe_hep_errors",
            "HEP packets that did not decode",
            l.hep_errors.load(Ordering::Relaxed),
        )?;
        let capture = l.capture_state();
        if capture != CaptureState::None {
            gauge_f(
                &mut e,
                "tollgate_probe_capture_running",
                "1 while the interface capture ([probe] interface) runs; 0 once it stopped by itself \
                 (the interface went away or failed: alarm PROBE_CAPTURE_STOPPED)",
                if matches!(capture, CaptureState::Running { .. }) { 1.0 } else { 0.0 },
            )?;
        }
        counter(
            &mut e,
            "tollgate_probe_captured_frames",
            "Frames read from the capture interface (those its BPF filter let through)",
            l.captured.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "tollgate_probe_kernel_drops",
            "Packets the kernel dropped before the interface capture read them: libpcap's ps_drop (its buffer, \
             [probe] capture_buffer_mb, was full) plus ps_ifdrop (the interface dropped them)",
            l.kernel_drops.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "tollgate_probe_socket_drops",
            "Datagrams dropped by the kernel at a full mirror or HEP socket buffer",
            l.socket_drops.load(Ordering::Relaxed),
        )?;
        gauge_f(
            &mut e,
            "tollgate_probe_udp_receive_buffer_bytes",
            "Smallest receive buffer the kernel granted a mirror or HEP/UDP socket (SO_RCVBUF as read back)",
            l.udp_receive_buffer.load(Ordering::Relaxed) as f64,
        )?;
        gauge_f(
            &mut e,
            "tollgate_probe_rmem_max_bytes",
            "net.core.rmem_max when the UDP sockets were bound (caps SO_RCVBUF without root)",
            l.rmem_max.load(Ordering::Relaxed) as f64,
        )
    }
}
