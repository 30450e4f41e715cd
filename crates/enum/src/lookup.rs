//! `lookup`: what an SBC would be told for one call, and why.
//!
//! The answer is produced by sending a real query through [`Responder::respond`] and decoding
//! the wire bytes, so what is shown is exactly what an SBC receives.

use std::time::Instant;

use chrono::{DateTime, Utc};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RData, RecordType};
use serde::{Deserialize, Serialize};
use tollgate_number::E164;
use tollgate_number::enum_name::{Suffix, to_enum_name};
use tollgate_policy::velocity::SharedView;
use tollgate_policy::{CallQuery, CounterView, Decision, RuleVerdict};
use tollgate_records::Transport;

use crate::respond::{QueryContext, Responder, rcode_mnemonic};

/// The explanation of one call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lookup {
    /// The ENUM name queried.
    pub query_name: String,
    /// How the calling number was sent (`edns`, `label` or `none`).
    pub source_sent_as: String,
    /// The policy version in force.
    pub policy_version: Option<u64>,
    /// The decision.
    pub decision: Decision,
    /// Each rule checked, in order, up to the one that matched.
    pub verdicts: Vec<RuleVerdict>,
    /// The response code sent.
    pub rcode: String,
    /// The answer records, in zone-file form.
    pub answers: Vec<String>,
    /// The velocity and concurrent counters of the policy's rules for this caller (none without
    /// a calling number): network-wide when counters are shared.
    #[serde(default)]
    pub counters: Vec<CounterView>,
    /// Whether the counters are shared through Redis, and how fresh the shared view is.
    #[serde(default = "SharedView::off")]
    pub shared: SharedView,
}

impl Responder {
    /// Explains the call `source` -> `destination` at `at`.
    pub fn lookup(&self, source: Option<E164>, destination: E164, at: DateTime<Utc>) -> Lookup {
        let cfg = self.config();
        let suffix = cfg.parsed_suffixes().into_iter().next().unwrap_or_else(Suffix::e164_arpa);
        let mut name = to_enum_name(destination, &suffix);
        let mut message = Message::new(1, MessageType::Query, OpCode::Query);
        let mut source_sent_as = "none";
        if let Some(src) = source {
            if let Some(code) = cfg.source_edns_option {
                let mut edns = Edns::new();
                edns.options_mut().insert(EdnsOption::Unknown(code, format!("tel:{src}").into_bytes()));
                message.set_edns(edns);
                source_sent_as = "edns";
            } else if !cfg.source_label_prefix.is_empty() {
                let reversed: String =
                    destination.digits().as_bytes().iter().rev().flat_map(|&d| [d as char, '.']).collect();
                name = format!("{reversed}{}{}.{}", cfg.source_label_prefix, src.digits().as_str(), suffix.as_str());
                source_sent_as = "label";
            }
        }
        if let Ok(qname) = Name::from_ascii(&name) {
            message.add_query(Query::query(qname, RecordType::NAPTR));
        }
        let active = self.policy().snapshot();
        let (_, verdicts) = active.policy.explain_with(&CallQuery { source, destination, at }, &**self.velocity());
        let ctx = QueryContext {
            peer: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            transport: Transport::Tcp,
            received: Instant::now(),
            now: at,
        };
        let answered = message.to_vec().ok().and_then(|bytes| self.respond_without_counting(&bytes, &ctx));
        let (rcode, answers, decision) = match answered {
            Some(a) => {
                let decoded = Message::from_vec(&a.bytes).ok();
                let rcode = decoded.as_ref().map_or("?", |m| rcode_mnemonic(m.metadata.response_code)).to_string();
                let answers = decoded.map(|m| m.answers.iter().map(zone_line).collect()).unwrap_or_default();
                let decision =
                    a.decision.unwrap_or_else(|| Decision::default_allow(tollgate_policy::Direction::Transit));
                (rcode, answers, decision)
            }
            None => ("no answer".into(), Vec::new(), Decision::default_allow(tollgate_policy::Direction::Transit)),
        };
        let counters =
            source.map(|s| active.policy.counters_for(s, at.timestamp_micros(), self.velocity())).unwrap_or_default();
        Lookup {
            counters,
            shared: self.velocity().shared_view(Utc::now().timestamp_micros()),
            query_name: name,
            source_sent_as: source_sent_as.to_string(),
            policy_version: active.version,
            decision,
            verdicts,
            rcode,
            answers,
        }
    }
}

fn zone_line(r: &hickory_proto::rr::Record) -> String {
    let data = match &r.data {
        RData::NAPTR(n) => format!(
            "NAPTR {} {} \"{}\" \"{}\" \"{}\" {}",
            n.order,
            n.preference,
            String::from_utf8_lossy(&n.flags),
            String::from_utf8_lossy(&n.services),
            String::from_utf8_lossy(&n.regexp),
            n.replacement
        ),
        other => format!("{} {other}", r.record_type()),
    };
    format!("{} {} IN {data}", r.name, r.ttl)
}
