//! What a policy is asked (a call) and what it answers (a decision).

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_number::E164;

/// The call a policy decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallQuery {
    /// Calling number, when the SBC supplied one.
    pub source: Option<E164>,
    /// Called number.
    pub destination: E164,
    /// When the call is placed (time windows are evaluated at this instant).
    pub at: DateTime<Utc>,
}

/// Direction of a call relative to the operator's internal number ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// External caller to an internal number.
    Inbound,
    /// Internal caller to an external number.
    Outbound,
    /// Internal caller to an internal number.
    Internal,
    /// External (or unknown) caller to an external number.
    Transit,
}

impl Direction {
    /// All directions, in a stable order.
    pub const ALL: [Direction; 4] = [Direction::Inbound, Direction::Outbound, Direction::Internal, Direction::Transit];

    /// The lowercase name used in policy files and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
            Direction::Transit => "transit",
        }
    }

    /// Parses a lowercase direction name.
    pub fn parse(s: &str) -> Option<Self> {
        Direction::ALL.into_iter().find(|d| d.as_str() == s)
    }

    pub(crate) fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a terminated call ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "value")]
pub enum Termination {
    /// Routed to the named intercept destination (an announcement or operator extension);
    /// the engine configuration maps the name to an address.
    Intercept(Arc<str>),
    /// Rejected with this SIP status code (400..=699).
    Reject(u16),
}

/// Where a redirected call goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "value")]
pub enum RedirectTarget {
    /// Another telephone number.
    Number(E164),
    /// A SIP URI, used as is.
    Uri(Arc<str>),
}

impl fmt::Display for RedirectTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedirectTarget::Number(n) => write!(f, "{n}"),
            RedirectTarget::Uri(u) => f.write_str(u),
        }
    }
}

/// What to do with a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "action", content = "detail")]
pub enum Action {
    /// Let the call proceed normally.
    Allow,
    /// Stop the call reaching the dialled number.
    Terminate(Termination),
    /// Send the call somewhere else.
    Redirect(RedirectTarget),
}

impl Action {
    /// `allow`, `terminate` or `redirect`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Terminate(_) => "terminate",
            Action::Redirect(_) => "redirect",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Allow => f.write_str("allow"),
            Action::Terminate(Termination::Intercept(name)) => write!(f, "terminate (intercept {name})"),
            Action::Terminate(Termination::Reject(code)) => write!(f, "terminate (reject {code})"),
            Action::Redirect(target) => write!(f, "redirect to {target}"),
        }
    }
}

/// The rule that decided a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedRule {
    /// Position of the rule in the policy file (0-based).
    pub index: usize,
    /// The rule's name.
    pub name: Arc<str>,
    /// Line of the rule in the policy file.
    pub line: usize,
}

/// The policy's answer for one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The matching rule, or `None` when the default (allow) applied.
    pub rule: Option<MatchedRule>,
    /// What to do.
    pub action: Action,
    /// The call's direction as derived from the internal ranges.
    pub direction: Direction,
}

impl Decision {
    /// The default decision: allow, no rule.
    pub fn default_allow(direction: Direction) -> Self {
        Decision { rule: None, action: Action::Allow, direction }
    }
}
