//! Batched UDP I/O for tollgate's UDP listeners: the ENUM server, the SIP redirect server and
//! the probe's HEP and mirror ports.
//!
//! What it owns:
//! * [`batch`]: up to a batch of datagrams read with one `recvmmsg` (each whole, with its
//!   sender and its kernel receive timestamp) and answers sent with one `sendmmsg` per batch, so
//!   a busy listener pays two system calls per batch instead of two per datagram;
//! * [`buffer`]: a socket receive buffer sized for bursts (`SO_RCVBUFFORCE` as root, else
//!   `SO_RCVBUF` capped by `net.core.rmem_max`), reporting what the kernel granted.
//!
//! What it must not do: parse or answer what it reads, count or log (the callers own their
//! metrics and decide what an error means), or block: every call waits on tokio's readiness.
//!
//! Wiring: bind a tokio `UdpSocket`, call [`buffer::set_receive_buffer`] and
//! [`batch::enable_receive_timestamps`] once, then loop on [`batch::RecvBatch::receive`],
//! handle [`batch::RecvBatch::datagrams`], and send the answers with [`batch::send_all`].

#![warn(missing_docs)]

pub mod batch;
pub mod buffer;

pub use batch::{BATCH, Datagram, Outgoing, RecvBatch, enable_receive_timestamps, send_all};
pub use buffer::{ReceiveBuffer, rmem_max, set_receive_buffer};
