//! Addresses of SRP pairs of engines on loopback.

use std::net::SocketAddr;

use super::free_port;

/// Addresses of one pair on the network `net` (e.g. `127.0.91`): SRP links on `.1` and `.2`
/// (the lower address dials), the service address on `.10`.
pub struct PairNet {
    /// SRP address of the first chassis.
    pub a: SocketAddr,
    /// SRP address of the second chassis.
    pub b: SocketAddr,
    /// The ENUM service address.
    pub service: SocketAddr,
}

impl PairNet {
    /// Free ports on the pair's addresses.
    pub fn new(net: &str) -> PairNet {
        let ip = |host: u8| format!("{net}.{host}");
        PairNet {
            a: format!("{}:{}", ip(1), free_port(&ip(1))).parse().unwrap(),
            b: format!("{}:{}", ip(2), free_port(&ip(2))).parse().unwrap(),
            service: format!("{}:{}", ip(10), free_port(&ip(10))).parse().unwrap(),
        }
    }
}
