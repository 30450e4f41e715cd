//! Admission of SRP handshakes on the acceptor: how many connections that have not yet proven the
//! session key may be in progress, from one address and in all.
//!
//! Until a connection has proven the session key it is unauthenticated work: anybody who can
//! reach the SRP port (or replay a captured handshake) can open one. [`Admission`] bounds that
//! work: at most [`Limits::per_address`] handshakes in progress from one source address, and at
//! most [`Limits::others`] from all addresses other than the mate's configured one, so a flood
//! from elsewhere never takes the places the mate needs to reconnect. A place is held by a
//! [`Permit`] and freed when it is dropped (handshake done, failed or timed out).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// How many handshakes may be in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From one source address.
    pub per_address: usize,
    /// From all addresses other than the mate's, together.
    pub others: usize,
}

impl Limits {
    /// The acceptor's limits: 4 per address, 16 from addresses other than the mate's. A
    /// genuine mate needs one at a time (it dials once per hello interval).
    pub const DEFAULT: Limits = Limits { per_address: 4, others: 16 };
}

/// Why a handshake was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Too many from this address.
    #[error("{limit} handshakes already in progress from {address}")]
    Address {
        /// The source address.
        address: IpAddr,
        /// The per-address limit.
        limit: usize,
    },
    /// Too many from addresses other than the mate's.
    #[error("{limit} handshakes already in progress from addresses other than the mate's")]
    Others {
        /// The limit.
        limit: usize,
    },
}

#[derive(Debug, Default)]
struct Counts {
    by_address: HashMap<IpAddr, usize>,
    others: usize,
}

/// The handshakes in progress on one acceptor.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    /// The mate's address (its `bind_address`, this chassis' `peer_address`): not counted
    /// against [`Limits::others`].
    mate: IpAddr,
    counts: Mutex<Counts>,
}

impl Admission {
    /// Admission with `limits`, the mate dialing from `mate`.
    pub fn new(limits: Limits, mate: IpAddr) -> Arc<Admission> {
        Arc::new(Admission { limits, mate, counts: Mutex::new(Counts::default()) })
    }

    /// A place for a handshake from `address`, or why there is none.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Permit, Refused> {
        let address = canonical(address);
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let from_address = c.by_address.get(&address).copied().unwrap_or(0);
        if from_address >= self.limits.per_address {
            return Err(Refused::Address { address, limit: self.limits.per_address });
        }
        let other = address != self.mate;
        if other && c.others >= self.limits.others {
            return Err(Refused::Others { limit: self.limits.others });
        }
        *c.by_address.entry(address).or_insert(0) += 1;
        if other {
            c.others += 1;
        }
        Ok(Permit { admission: self.clone(), address, other })
    }

    /// Handshakes in progress.
    pub fn in_progress(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).by_address.values().sum()
    }
}

/// An IPv4 address seen through an IPv6 socket counts as itself.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// A place for one handshake; freed on drop.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    address: IpAddr,
    other: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.admission.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = c.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                c.by_address.remove(&self.address);
            }
        }
        if self.other {
            c.others -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_gets_at_most_its_share() {
        let a = Admission::new(Limits { per_address: 2, others: 10 }, ip("192.0.2.1"));
        let p1 = a.admit(ip("198.51.100.7")).unwrap();
        let _p2 = a.admit(ip("198.51.100.7")).unwrap();
        assert_eq!(
            a.admit(ip("198.51.100.7")).unwrap_err(),
            Refused::Address { address: ip("198.51.100.7"), limit: 2 }
        );
        assert!(a.admit(ip("198.51.100.8")).is_ok(), "another address is not affected");
        drop(p1);
        assert!(a.admit(ip("198.51.100.7")).is_ok(), "a finished handshake frees its place");
    }

    #[test]
    fn a_flood_from_many_addresses_leaves_the_mate_its_places() {
        let mate = ip("192.0.2.1");
        let a = Admission::new(Limits { per_address: 2, others: 3 }, mate);
        let held: Vec<Permit> = (1..=3).map(|i| a.admit(ip(&format!("198.51.100.{i}"))).unwrap()).collect();
        assert_eq!(a.admit(ip("198.51.100.9")).unwrap_err(), Refused::Others { limit: 3 });
        let m1 = a.admit(mate).unwrap();
        let _m2 = a.admit(mate).unwrap();
        assert!(matches!(a.admit(mate), Err(Refused::Address { .. })), "the mate's address is limited too");
        assert_eq!(a.in_progress(), 5);
        drop(m1);
        drop(held);
        assert_eq!(a.in_progress(), 1);
        assert!(a.admit(ip("198.51.100.9")).is_ok());
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_the_ipv4_address() {
        let a = Admission::new(Limits { per_address: 1, others: 1 }, ip("192.0.2.1"));
        let _p = a.admit(ip("198.51.100.7")).unwrap();
        assert!(matches!(a.admit(ip("::ffff:198.51.100.7")), Err(Refused::Address { .. })));
        assert!(a.admit(ip("::ffff:192.0.2.1")).is_ok(), "the mapped mate is the mate, not an other");
    }
}
