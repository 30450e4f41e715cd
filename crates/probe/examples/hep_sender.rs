//! HEP3 over UDP at a paced rate, for the HEP rate bench (bench/probe-hep-rate.sh): whole calls
//! (INVITE, 100, 180, 200, ACK, BYE, 200; each call its own Call-ID, caller and callee), sent
//! with `sendmmsg` up to 64 packets a call, paced so that by any moment `rate × elapsed`
//! packets have gone. Prints what it sent as one line of `key=value` fields:
//!
//! ```text
//! sent=1400000 calls=200000 secs=7.001 rate=199971 send_errors=0 first_call=0 run=r1
//! ```
//!
//! Usage: `hep_sender --to ADDR --rate PACKETS_PER_S --secs N [--first-call N] [--run NAME]`.
//! `--first-call` numbers the calls from N, so successive steps of a bench send new calls.
//! A packet the kernel refuses (the socket's send buffer full) is retried; one it reports an
//! error for is counted in `send_errors` and the rest of the call is still sent.

#[path = "../tests/support/hep_calls.rs"]
mod hep_calls;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hep_calls::{CallPackets, MESSAGES_PER_CALL};

/// Packets per `sendmmsg`.
const BATCH: usize = 64;

struct Args {
    to: SocketAddr,
    rate: u64,
    secs: f64,
    first_call: u64,
    run: String,
}

fn parse_args() -> Result<Args, String> {
    let mut to = None;
    let mut rate = None;
    let mut secs = None;
    let mut first_call = 0;
    let mut run = "r1".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--to" => to = Some(value()?.parse().map_err(|e| format!("--to: {e}"))?),
            "--rate" => rate = Some(value()?.parse::<u64>().map_err(|e| format!("--rate: {e}"))?),
            "--secs" => secs = Some(value()?.parse::<f64>().map_err(|e| format!("--secs: {e}"))?),
            "--first-call" => first_call = value()?.parse().map_err(|e| format!("--first-call: {e}"))?,
            "--run" => run = value()?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let rate = rate.ok_or("--rate is needed")?;
    let secs = secs.ok_or("--secs is needed")?;
    if rate == 0 || !(secs > 0.0 && secs <= 3600.0) {
        return Err("--rate must be above 0 and --secs between 0 and 3600".into());
    }
    if run.is_empty() || run.len() > 16 || !run.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("--run must be 1 to 16 letters or digits".into());
    }
    Ok(Args { to: to.ok_or("--to is needed")?, rate, secs, first_call, run })
}

/// Sends `packets` on the connected socket with as few `sendmmsg` calls as it takes; returns
/// how many the kernel refused with an error other than a full buffer.
fn send_all(socket: &UdpSocket, packets: &[Vec<u8>]) -> u64 {
    let mut errors = 0;
    let mut next = 0;
    while next < packets.len() {
        let rest = &packets[next..];
        let mut iovs: Vec<libc::iovec> =
            rest.iter().map(|p| libc::iovec { iov_base: p.as_ptr().cast_mut().cast(), iov_len: p.len() }).collect();
        let mut headers: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: an all-zero `mmsghdr` is a valid value (null pointers, zero lengths).
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: each header points at one iovec of `iovs`, whose buffers are `packets`; all
        // outlive the call, and the count is the number of headers (at most BATCH).
        let sent = unsafe { libc::sendmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), headers.len() as u32, 0) };
        if sent > 0 {
            next += sent as usize;
            continue;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::ENOBUFS | libc::EINTR) => std::thread::sleep(Duration::from_micros(50)),
            _ => {
                // The first one failed (e.g. ECONNREFUSED from an earlier ICMP): skip it.
                errors += 1;
                next += 1;
            }
        }
    }
    errors
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "hep_sender: {e}\nusage: hep_sender --to ADDR --rate PACKETS_PER_S --secs N [--first-call N] [--run NAME]"
            );
            return ExitCode::from(2);
        }
    };
    let bind = if args.to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = match UdpSocket::bind(bind).and_then(|s| s.connect(args.to).map(|()| s)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hep_sender: cannot send to {}: {e}", args.to);
            return ExitCode::FAILURE;
        }
    };
    let calls = CallPackets::new(&args.run);
    let per_call = MESSAGES_PER_CALL as u64;
    // Whole calls only: the probe should record every call it was sent.
    let total_calls = ((args.rate as f64 * args.secs) as u64 / per_call).max(1);
    let total = total_calls * per_call;
    let mut batch: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(2048)).collect();
    let mut sent = 0u64;
    let mut errors = 0u64;
    let started = Instant::now();
    while sent < total {
        let due = ((started.elapsed().as_secs_f64() * args.rate as f64) as u64).min(total);
        if due <= sent {
            std::thread::sleep(Duration::from_micros(100));
            continue;
        }
        let ts_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(1);
        let n = ((due - sent) as usize).min(BATCH);
        for (i, buf) in batch.iter_mut().take(n).enumerate() {
            let k = sent + i as u64;
            calls.write(args.first_call + k / per_call, (k % per_call) as usize, ts_us, buf);
        }
        errors += send_all(&socket, &batch[..n]);
        sent += n as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sent={sent} calls={total_calls} secs={secs:.3} rate={:.0} send_errors={errors} first_call={} run={}",
        sent as f64 / secs,
        args.first_call,
        args.run
    );
    ExitCode::SUCCESS
}
