//! Capture from a network interface through libpcap (feature `live-capture`): a thread of its
//! own reads the frames a BPF filter lets through (the filter runs in the kernel, so what it
//! excludes costs nothing), decodes them and feeds the probe.
//!
//! Everything that can be wrong is found at start and named ([`InterfaceError`]): an interface
//! that does not exist, a filter that does not compile, no permission to capture. The kernel's
//! drop counters (libpcap's `ps_drop`, packets its buffer had no room for, and `ps_ifdrop`,
//! packets the interface dropped) are read every second into [`LiveStats::kernel_drops`].
//! A capture that ends by itself (the interface was removed or failed) logs why and records it
//! in [`LiveStats::capture`], where the metrics, the summary line and the alarm see it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::decode::Decoder;
use crate::live::{CaptureState, LiveStats, Shared};

/// How to capture from an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceOptions {
    /// The interface (`eth1`, `any`).
    pub interface: String,
    /// A BPF filter expression (`udp or tcp`); empty: every frame.
    pub filter: String,
    /// The size of libpcap's kernel buffer, bytes: what a burst may fill while the probe is
    /// busy before the kernel drops packets.
    pub buffer_bytes: usize,
}

/// Why a capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    /// The interface does not exist on this machine.
    #[error("interface {interface:?} does not exist here (interfaces: {available})")]
    NoSuchInterface {
        /// The interface asked for.
        interface: String,
        /// The interfaces libpcap lists.
        available: String,
    },
    /// libpcap could not list the interfaces.
    #[error("cannot list the network interfaces: {0}")]
    List(String),
    /// The interface exists but cannot be captured (permissions, interface down).
    #[error("cannot capture on interface {interface:?}: {message}{hint}")]
    Open {
        /// The interface.
        interface: String,
        /// libpcap's message.
        message: String,
        /// What usually helps.
        hint: &'static str,
    },
    /// The filter is not a BPF expression libpcap compiles for this interface.
    #[error("filter {filter:?} is not a valid BPF expression for interface {interface:?}: {message}")]
    Filter {
        /// The filter.
        filter: String,
        /// The interface.
        interface: String,
        /// libpcap's message.
        message: String,
    },
    /// The buffer size does not fit libpcap's (a C int).
    #[error("a capture buffer of {0} bytes is larger than libpcap takes (2 GiB)")]
    BufferTooLarge(usize),
    /// The capture thread could not be started.
    #[error("cannot start the capture thread of interface {interface:?}: {source}")]
    Thread {
        /// The interface.
        interface: String,
        /// Why.
        source: std::io::Error,
    },
}

/// How long a read waits for a frame before the stop flag and the counters are looked at, and
/// the longest a frame waits in the kernel's buffer before it is handed over.
///
/// Not libpcap's immediate mode: on Linux that means TPACKET_V2, one slot of the snapshot
/// length (64 KiB on an interface with segmentation offloads) per frame, so a 32 MiB buffer
/// would hold 512 frames. Without it (TPACKET_V3) frames are packed by their size, and
/// libpcap hands them over a block at a time, at the latest after this timeout. The capture
/// is non-blocking, waited for with poll(2) for at most this long, because an idle TPACKET_V3
/// capture would otherwise block until the next frame.
const READ_TIMEOUT_MS: i32 = 200;
/// How often the kernel's drop counters are read.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// A running interface capture; [`InterfaceCapture::stop`] ends it.
#[derive(Debug)]
pub struct InterfaceCapture {
    interface: String,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl InterfaceCapture {
    /// Opens `options.interface`, compiles and applies the filter, and starts reading on a
    /// thread of its own. Every error is found here, before anything is read.
    pub fn start(shared: Shared, options: &InterfaceOptions) -> Result<InterfaceCapture, InterfaceError> {
        let cap = open(options)?;
        let interface = options.interface.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = interface.clone();
        shared.stats.set_capture_state(CaptureState::Running { interface: interface.clone() });
        let stats = shared.stats.clone();
        let thread = std::thread::Builder::new()
            .name(format!("capture-{interface}"))
            .spawn(move || {
                if let Err(error) = read_until_stopped(cap, &shared, &flag) {
                    tracing::error!(interface = %name, %error, "the capture on interface {name} stopped: nothing more is seen from it");
                    shared.stats.set_capture_state(CaptureState::Stopped { interface: name, error });
                }
            })
            .map_err(|source| {
                stats.set_capture_state(CaptureState::None);
                InterfaceError::Thread { interface: interface.clone(), source }
            })?;
        Ok(InterfaceCapture { interface, stop, thread })
    }

    /// The interface captured.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Stops reading and waits for the thread (at most one read timeout).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Opens the capture as [`InterfaceCapture::start`] would, and closes it: whether it can start,
/// before anything else is done (a start that cannot work leaves nothing behind).
pub fn check(options: &InterfaceOptions) -> Result<(), InterfaceError> {
    open(options).map(drop)
}

/// Opens `options.interface` with its buffer and filter.
fn open(options: &InterfaceOptions) -> Result<pcap::Capture<pcap::Active>, InterfaceError> {
    let interface = options.interface.as_str();
    check_exists(interface)?;
    let buffer =
        i32::try_from(options.buffer_bytes).map_err(|_| InterfaceError::BufferTooLarge(options.buffer_bytes))?;
    let open_error = |e: pcap::Error| {
        let message = e.to_string();
        let lower = message.to_lowercase();
        let hint = if lower.contains("permission") || lower.contains("not permitted") {
            " (capturing needs root or CAP_NET_RAW and CAP_NET_ADMIN)"
        } else {
            ""
        };
        InterfaceError::Open { interface: interface.to_string(), message, hint }
    };
    let mut cap = pcap::Capture::from_device(interface)
        .map_err(open_error)?
        .promisc(true)
        .snaplen(65_535)
        .timeout(READ_TIMEOUT_MS)
        .buffer_size(buffer)
        .open()
        .map_err(open_error)?
        .setnonblock()
        .map_err(open_error)?;
    cap.filter(&options.filter, true).map_err(|e| InterfaceError::Filter {
        filter: options.filter.clone(),
        interface: interface.to_string(),
        message: e.to_string(),
    })?;
    Ok(cap)
}

/// Fails naming the interfaces there are unless `interface` is one of them.
fn check_exists(interface: &str) -> Result<(), InterfaceError> {
    let devices = pcap::Device::list().map_err(|e| InterfaceError::List(e.to_string()))?;
    if devices.iter().any(|d| d.name == interface) {
        return Ok(());
    }
    Err(InterfaceError::NoSuchInterface {
        interface: interface.to_string(),
        available: devices.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", "),
    })
}

/// Reads frames into the probe until `stop` is set (Ok) or libpcap fails (Err, its message).
fn read_until_stopped(mut cap: pcap::Capture<pcap::Active>, shared: &Shared, stop: &AtomicBool) -> Result<(), String> {
    let linktype = cap.get_datalink().0;
    let mut decoder = Decoder::default();
    let mut drops = DropCounter::default();
    let mut stats_at = Instant::now();
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        match cap.next_packet() {
            Ok(p) => {
                shared.stats.captured.fetch_add(1, Ordering::Relaxed);
                // time_t and suseconds_t are i64 here but i32 on 32-bit targets.
                #[allow(clippy::unnecessary_cast)]
                let ts = p.header.ts.tv_sec as i64 * 1_000_000 + p.header.ts.tv_usec as i64;
                decoder.decode(ts, linktype, p.data, |packet| shared.feed_packet(&packet));
            }
            Err(pcap::Error::TimeoutExpired) => wait_readable(&cap),
            Err(e) => break Err(e.to_string()),
        }
        if stats_at.elapsed() >= STATS_EVERY {
            stats_at = Instant::now();
            read_drops(&mut cap, &mut drops, &shared.stats);
        }
    };
    read_drops(&mut cap, &mut drops, &shared.stats);
    result
}

/// Waits until the capture has frames (or an error) to read, at most [`READ_TIMEOUT_MS`].
fn wait_readable(cap: &pcap::Capture<pcap::Active>) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let timeout = Timespec { tv_sec: 0, tv_nsec: i64::from(READ_TIMEOUT_MS) * 1_000_000 };
    let mut fds = [PollFd::new(cap, PollFlags::IN)];
    // An interrupted wait (a signal: SIGSTOP and SIGCONT) is a short one.
    let _ = poll(&mut fds, Some(&timeout));
}

fn read_drops(cap: &mut pcap::Capture<pcap::Active>, drops: &mut DropCounter, stats: &LiveStats) {
    if let Ok(s) = cap.stats() {
        stats.kernel_drops.store(drops.update(s.dropped, s.if_dropped), Ordering::Relaxed);
    }
}

/// The total of libpcap's drop counters, which are 32-bit and wrap: each reading adds what
/// grew since the last one.
#[derive(Debug, Default)]
struct DropCounter {
    dropped: u32,
    if_dropped: u32,
    total: u64,
}

impl DropCounter {
    /// Takes a reading of `ps_drop` and `ps_ifdrop`; returns the total since the start.
    fn update(&mut self, dropped: u32, if_dropped: u32) -> u64 {
        self.total +=
            u64::from(dropped.wrapping_sub(self.dropped)) + u64::from(if_dropped.wrapping_sub(self.if_dropped));
        self.dropped = dropped;
        self.if_dropped = if_dropped;
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_counters_add_up_across_a_wrap_of_the_32_bit_counters() {
        let mut d = DropCounter::default();
        assert_eq!(d.update(0, 0), 0);
        assert_eq!(d.update(10, 2), 12);
        assert_eq!(d.update(u32::MAX - 5, 2), u64::from(u32::MAX) - 5 + 2);
        // ps_drop wraps past 2^32: 10 more dropped.
        assert_eq!(d.update(4, 3), u64::from(u32::MAX) - 5 + 2 + 10 + 1);
    }

    #[test]
    fn an_interface_that_does_not_exist_is_named_with_those_that_do() {
        let err = check_exists("tollgate-no-such-if0").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("interface \"tollgate-no-such-if0\" does not exist here (interfaces: "), "{text}");
        assert!(text.contains("lo"), "{text}");
    }
}
