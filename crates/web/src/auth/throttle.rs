//! Failed-password backoff, per user name and per client network.
//!
//! Every password check (login, own password change) is counted as a failure *before* it runs
//! and refunded when it succeeds, so a burst of concurrent guesses is limited as tightly as a
//! slow series: with 300 guesses in flight at once only the free allowance reaches Argon2, the
//! rest are refused at once.
//!
//! A key (a user name, or the client's address: IPv4 address or IPv6 /64) may fail
//! [`Rule::free`] times; each further failure blocks it for `base * 2^(n-1)`, capped at
//! [`Rule::max`]. A blocked key is refused without a password check and without counting, so
//! hammering a blocked key does not extend its block. A key with no failure for
//! [`FORGET`] starts afresh. Both tables are bounded ([`CAPACITY`] keys each): when one is full
//! the key that failed longest ago is forgotten first.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many failures a key may have before it is blocked, and how the block grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Failures without any delay.
    pub free: u32,
    /// Block after the first failure beyond `free`; doubles with each further one.
    pub base: Duration,
    /// Longest block.
    pub max: Duration,
}

impl Rule {
    /// The block after `failures` failures (zero while within the free allowance).
    fn block_after(&self, failures: u32) -> Duration {
        match failures.checked_sub(self.free) {
            None | Some(0) => Duration::ZERO,
            Some(over) => {
                let doublings = (over - 1).min(20);
                self.base.saturating_mul(1 << doublings).min(self.max)
            }
        }
    }
}

/// Per user name: 5 failures free, then 1 s, 2 s, 4 s ... up to 5 minutes.
pub const PER_USER: Rule = Rule { free: 5, base: Duration::from_secs(1), max: Duration::from_secs(300) };
/// Per client network: 20 failures free (an office behind one NAT address), then 1 s, 2 s,
/// 4 s ... up to 5 minutes.
pub const PER_CLIENT: Rule = Rule { free: 20, base: Duration::from_secs(1), max: Duration::from_secs(300) };
/// A key with no failure for this long is forgotten.
pub const FORGET: Duration = Duration::from_secs(30 * 60);
/// Most keys kept per table.
pub const CAPACITY: usize = 10_000;
/// User names are keyed by at most this many bytes (a name is not a place to store megabytes).
const MAX_NAME_KEY: usize = 128;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Instant,
}

#[derive(Debug)]
struct Table<K> {
    rule: Rule,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(rule: Rule) -> Self {
        Table { rule, entries: HashMap::new() }
    }

    /// How long `key` is still blocked at `now` (zero: not blocked).
    fn blocked_for(&mut self, key: &K, now: Instant) -> Duration {
        match self.entries.get(key) {
            Some(e) if now.saturating_duration_since(e.last_failure) >= FORGET => {
                self.entries.remove(key);
                Duration::ZERO
            }
            Some(e) => e.blocked_until.saturating_duration_since(now),
            None => Duration::ZERO,
        }
    }

    fn fail(&mut self, key: &K, now: Instant) {
        if !self.entries.contains_key(key) && self.entries.len() >= CAPACITY {
            self.make_room(now);
        }
        let rule = self.rule;
        let e = self.entries.entry(key.clone()).or_insert(Entry { failures: 0, last_failure: now, blocked_until: now });
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        e.blocked_until = now + rule.block_after(e.failures);
    }

    /// Takes back one counted failure (the check it stood for succeeded).
    fn refund(&mut self, key: &K, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            e.failures = e.failures.saturating_sub(1);
            e.blocked_until = e.last_failure.min(now) + self.rule.block_after(e.failures);
            if e.failures == 0 {
                self.entries.remove(key);
            }
        }
    }

    fn forget(&mut self, key: &K) {
        self.entries.remove(key);
    }

    fn make_room(&mut self, now: Instant) {
        self.entries.retain(|_, e| now.saturating_duration_since(e.last_failure) < FORGET);
        if self.entries.len() >= CAPACITY
            && let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.last_failure).map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
    }
}

/// The network a client address stands for: the IPv4 address itself, or the /64 of an IPv6
/// address (one subscriber's allocation; counting single IPv6 addresses would give an attacker
/// 2^64 fresh keys).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn name_key(name: &str) -> String {
    let mut end = name.len().min(MAX_NAME_KEY);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// Failed-password counters of one server.
#[derive(Debug)]
pub struct Throttle {
    tables: Mutex<(Table<String>, Table<Option<IpAddr>>)>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(PER_USER, PER_CLIENT)
    }
}

impl Throttle {
    /// A throttle with these rules per user name and per client network.
    pub fn new(per_user: Rule, per_client: Rule) -> Self {
        Throttle { tables: Mutex::new((Table::new(per_user), Table::new(per_client))) }
    }

    /// Starts a password check of `name` from `client` (`None`: unknown address, counted as
    /// one shared client). `Err(retry_after)` when either is blocked; otherwise the check is
    /// counted as a failure until [`Throttle::succeeded`] takes it back.
    pub fn begin(&self, name: &str, client: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let (users, clients) = &mut *self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let (user, client) = (name_key(name), client.map(client_key));
        let wait = users.blocked_for(&user, now).max(clients.blocked_for(&client, now));
        if !wait.is_zero() {
            return Err(wait);
        }
        users.fail(&user, now);
        clients.fail(&client, now);
        Ok(())
    }

    /// The check begun for `name` from `client` succeeded: the user starts afresh, the client
    /// gets its counted failure back.
    pub fn succeeded(&self, name: &str, client: Option<IpAddr>, now: Instant) {
        let (users, clients) = &mut *self.tables.lock().unwrap_or_else(|e| e.into_inner());
        users.forget(&name_key(name));
        clients.refund(&client.map(client_key), now);
    }

    /// The check begun for `name` from `client` did not run (the server was too busy): both
    /// get their counted failure back.
    pub fn cancel(&self, name: &str, client: Option<IpAddr>, now: Instant) {
        let (users, clients) = &mut *self.tables.lock().unwrap_or_else(|e| e.into_inner());
        users.refund(&name_key(name), now);
        clients.refund(&client.map(client_key), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule = Rule { free: 3, base: Duration::from_secs(1), max: Duration::from_secs(8) };

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_block_doubles_after_the_free_failures_and_is_capped() {
        let blocks: Vec<u64> = (0..9).map(|n| RULE.block_after(n).as_secs()).collect();
        assert_eq!(blocks, [0, 0, 0, 0, 1, 2, 4, 8, 8]);
        assert_eq!(PER_USER.block_after(u32::MAX), PER_USER.max, "no overflow");
    }

    #[test]
    fn concurrent_guesses_are_counted_before_they_are_checked() {
        let t = Throttle::new(RULE, Rule { free: 100, ..RULE });
        let now = Instant::now();
        // Four checks begun at the same instant, none finished: the fourth is already over the
        // allowance, the fifth is refused.
        for _ in 0..4 {
            assert!(t.begin("erin", ip("192.0.2.1"), now).is_ok());
        }
        assert_eq!(t.begin("erin", ip("192.0.2.1"), now), Err(Duration::from_secs(1)));
        // Refused attempts do not extend the block.
        assert_eq!(t.begin("erin", ip("192.0.2.1"), now), Err(Duration::from_secs(1)));
        assert!(t.begin("erin", ip("192.0.2.1"), now + Duration::from_secs(1)).is_ok());
        assert_eq!(t.begin("erin", ip("192.0.2.1"), now + Duration::from_secs(1)), Err(Duration::from_secs(2)));
        // Another user from the same client is not blocked by erin's failures.
        assert!(t.begin("otto", ip("192.0.2.1"), now + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn a_client_spraying_many_names_is_blocked() {
        let t = Throttle::new(Rule { free: 100, ..RULE }, RULE);
        let now = Instant::now();
        for i in 0..4 {
            assert!(t.begin(&format!("user{i}"), ip("2001:db8::1"), now).is_ok());
        }
        assert!(t.begin("someone-else", ip("2001:db8::1"), now).is_err());
        // The same /64 is the same client; another network is not.
        assert!(t.begin("someone-else", ip("2001:db8::ffff:1"), now).is_err());
        assert!(t.begin("someone-else", ip("2001:db8:1::1"), now).is_ok());
        // An IPv4-mapped address is its IPv4 client.
        assert_eq!(client_key("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn success_clears_the_user_and_refunds_the_client() {
        let t = Throttle::new(RULE, RULE);
        let now = Instant::now();
        for _ in 0..3 {
            t.begin("erin", ip("192.0.2.1"), now).unwrap();
        }
        t.begin("erin", ip("192.0.2.1"), now).unwrap();
        t.succeeded("erin", ip("192.0.2.1"), now);
        // The client is back at three failures (within the allowance), erin at none.
        assert!(t.begin("otto", ip("192.0.2.1"), now).is_ok());
        assert!(t.begin("otto", ip("192.0.2.1"), now).is_err());
        for _ in 0..3 {
            t.begin("erin", ip("198.51.100.1"), now).unwrap();
        }
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_period() {
        let t = Throttle::new(RULE, RULE);
        let now = Instant::now();
        for _ in 0..4 {
            t.begin("erin", None, now).unwrap();
        }
        assert!(t.begin("erin", None, now).is_err());
        let later = now + FORGET;
        for _ in 0..4 {
            assert!(t.begin("erin", None, later).is_ok());
        }
    }

    #[test]
    fn tables_stay_bounded_under_a_flood_of_names() {
        let t = Throttle::new(RULE, Rule { free: u32::MAX, ..RULE });
        let now = Instant::now();
        for i in 0..CAPACITY + 500 {
            let _ = t.begin(&format!("name-{i}"), None, now + Duration::from_millis(i as u64));
        }
        let long = "x".repeat(1 << 20);
        let _ = t.begin(&long, None, now);
        let tables = t.tables.lock().unwrap();
        assert!(tables.0.entries.len() <= CAPACITY);
        assert!(tables.0.entries.keys().all(|k| k.len() <= MAX_NAME_KEY));
    }
}
