//! A socket receive buffer sized for bursts: datagrams that arrive while the listener works
//! through the previous batch wait in the kernel instead of being dropped.

use std::io;
use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, setsockopt, sockopt};

/// What the kernel made of a request for a receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveBuffer {
    /// Bytes asked for (the configuration's `probe.udp_receive_buffer_mb`).
    pub requested: usize,
    /// What the socket now has, as `getsockopt(SO_RCVBUF)` reports it: Linux doubles the value
    /// asked for (half of it pays for its own bookkeeping), so a full grant reads twice
    /// `requested`.
    pub granted: usize,
    /// True when it was set with `SO_RCVBUFFORCE` (root, `CAP_NET_ADMIN`), which may exceed
    /// `net.core.rmem_max`; false when with `SO_RCVBUF`, which the kernel caps at it.
    pub forced: bool,
    /// `net.core.rmem_max`, when /proc says.
    pub rmem_max: Option<u64>,
}

impl ReceiveBuffer {
    /// True when the kernel gave less than was asked for (`SO_RCVBUF` capped at `rmem_max`).
    pub fn capped(&self) -> bool {
        self.granted < self.requested.saturating_mul(2)
    }
}

/// `net.core.rmem_max`: the largest receive buffer an unprivileged `SO_RCVBUF` can ask for.
pub fn rmem_max() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max").ok()?.trim().parse().ok()
}

/// Asks for a receive buffer of `bytes` on `socket`: with `SO_RCVBUFFORCE` when the process may
/// (root), else with `SO_RCVBUF` (capped by the kernel at `net.core.rmem_max`). Returns what
/// the kernel granted; an error only when neither option could be set or read back.
pub fn set_receive_buffer(socket: &impl AsFd, bytes: usize) -> io::Result<ReceiveBuffer> {
    let forced = setsockopt(socket, sockopt::RcvBufForce, &bytes).is_ok();
    if !forced {
        setsockopt(socket, sockopt::RcvBuf, &bytes).map_err(io::Error::from)?;
    }
    let granted = getsockopt(socket, sockopt::RcvBuf).map_err(io::Error::from)?;
    Ok(ReceiveBuffer { requested: bytes, granted, forced, rmem_max: rmem_max() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_granted_buffer_and_the_kernel_limit_are_reported() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = set_receive_buffer(&socket, 1 << 20).unwrap();
        assert_eq!(b.requested, 1 << 20);
        let limit = rmem_max().expect("net.core.rmem_max in /proc");
        assert_eq!(b.rmem_max, Some(limit));
        if b.forced {
            assert_eq!(b.granted, 2 << 20, "SO_RCVBUFFORCE grants twice the request");
        } else {
            let expect = (1u64 << 20).min(limit) as usize * 2;
            assert_eq!(b.granted, expect, "SO_RCVBUF is capped at rmem_max, then doubled");
        }
        assert_eq!(b.capped(), !b.forced && limit < 1 << 20);
    }
}
