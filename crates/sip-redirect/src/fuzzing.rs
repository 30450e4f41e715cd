//! The check of the `sip_redirect` fuzz target, shared with the test that replays its seeds
//! (`tests/fuzz_seeds.rs`): any bytes, from any sender, over UDP or TCP, are handled without a
//! panic; every response parses back as a SIP response with the request's Call-ID and CSeq;
//! only a decided INVITE has a record; a decided INVITE handled again gets the same bytes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use tollgate_enum::EnumConfig;
use tollgate_records::Transport;
use tollgate_sip::message::{Method, parse_one};

use crate::{Outcome, RedirectConfig, Redirector, RequestContext};

/// A policy with every kind of decision: allow (the default), an intercept, a reject, a
/// velocity limit, redirects to a number and to a URI, and an unknown intercept (fail-open).
pub const POLICY: &str = r#"
schema = 2
[[internal]]
prefix = "+1212555"
[[rule]]
name = "intercept"
destination = "+12125550111"
action = "terminate"
[[rule]]
name = "reject-robocaller"
source = "+13125550666"
action = "terminate"
cause = 603
[[rule]]
name = "velocity"
source = "+1415*"
velocity = { calls = 2, window = "10m" }
action = "terminate"
cause = 486
[[rule]]
name = "redirect"
destination = "+12125550122"
action = "redirect"
target = "+12125550199"
[[rule]]
name = "redirect-uri"
destination = "+12125550133"
action = "redirect"
target = "sip:ivr@10.0.0.5"
[[rule]]
name = "unknown-intercept"
destination = "+12125550144"
action = "terminate"
intercept = "missing"
"#;

/// A redirector with the default configuration and [`POLICY`].
pub fn redirector() -> Redirector {
    let responder =
        tollgate_enum::respond::fuzzing::responder(EnumConfig::default(), POLICY, BTreeMap::new(), 1, "fuzz");
    Redirector::new(RedirectConfig::default(), Arc::new(responder))
}

/// Handles `data` (its first byte chooses the sender, transport and time; the rest is the
/// message) with one redirector kept across calls, and panics where a property fails.
pub fn check(data: &[u8]) {
    static REDIRECTOR: OnceLock<Redirector> = OnceLock::new();
    let redirector = REDIRECTOR.get_or_init(redirector);
    let Some((&bits, message)) = data.split_first() else { return };
    let peer: SocketAddr = match bits & 0x03 {
        0 => SocketAddr::from(([127, 0, 0, 1], 5060)),
        1 => SocketAddr::from(([127, 0, 0, 2], 40000)),
        2 => "[::1]:5062".parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 5062))),
        _ => SocketAddr::from(([192, 0, 2, 1], 5060)),
    };
    let ctx = RequestContext {
        peer,
        local: SocketAddr::from(([127, 0, 0, 1], 5070)),
        transport: if bits & 0x04 != 0 { Transport::Tcp } else { Transport::Udp },
        received: Instant::now() + Duration::from_secs(u64::from(bits >> 3) * 8),
        now: Utc.timestamp_opt(1_796_000_000 + i64::from(bits >> 3) * 3600, 0).single().unwrap_or_default(),
    };
    let handled = redirector.handle(message, &ctx);
    let request = parse_one(message).ok().map(|(m, _)| m);
    if let Some((bytes, _)) = &handled.response {
        let request = request.as_ref().expect("only a parsed request is answered");
        let (response, rest) = parse_one(bytes).unwrap_or_else(|e| panic!("the response does not parse: {e}"));
        assert!(rest.is_empty(), "one response, nothing after it");
        assert!(response.status().is_some(), "a status line");
        let one_line = |v: Option<&str>| v.map(|v| v.replace(['\r', '\n'], " "));
        assert_eq!(one_line(response.call_id()), one_line(request.call_id()), "the request's Call-ID");
        assert_eq!(response.cseq(), request.cseq(), "the request's CSeq");
    }
    let decided = matches!(handled.outcome, Outcome::Decision | Outcome::FailOpen);
    assert_eq!(handled.record.is_some(), decided, "a record exactly for a decision");
    if decided {
        assert_eq!(request.as_ref().and_then(|r| r.method()), Some(Method::Invite), "only INVITEs are decided");
        let again = redirector.handle(message, &ctx);
        assert_eq!(again.outcome, Outcome::Retransmission);
        assert_eq!(again.response, handled.response, "a retransmission gets the same bytes");
        assert!(again.record.is_none());
    }
}
