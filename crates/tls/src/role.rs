//! The role a certificate names: what kind of tollgate server (or person) holds it.

use std::fmt;
use std::str::FromStr;

/// The prefix of the SAN URI that carries a certificate's role: `urn:tollgate:role:engine`.
pub const ROLE_URI_PREFIX: &str = "urn:tollgate:role:";

/// The role named by a certificate issued by `tollgate pki issue --role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// An ENUM engine (and its agent, and the SRP link of its pair).
    Engine,
    /// A collector (ingest, analytics, web UI).
    Collector,
    /// A SIP probe (ships records to the collector).
    Probe,
    /// A manager (drives agents; talks to its mate).
    Manager,
    /// A person's client certificate (the CLI or a browser).
    Operator,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 5] = [Role::Engine, Role::Collector, Role::Probe, Role::Manager, Role::Operator];

    /// The role's name as written in certificates and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Engine => "engine",
            Role::Collector => "collector",
            Role::Probe => "probe",
            Role::Manager => "manager",
            Role::Operator => "operator",
        }
    }

    /// The SAN URI naming this role.
    pub fn uri(self) -> String {
        format!("{ROLE_URI_PREFIX}{}", self.as_str())
    }

    /// The role a SAN URI names, if it is a tollgate role URI.
    pub fn from_uri(uri: &str) -> Option<Role> {
        uri.strip_prefix(ROLE_URI_PREFIX).and_then(|r| r.parse().ok())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a role (one of engine, collector, probe, manager, operator)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// A set of roles: who may connect to a listener, or whom a client accepts as its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoleSet(u8);

impl RoleSet {
    /// No role.
    pub const NONE: RoleSet = RoleSet(0);
    /// Every role.
    pub const ANY: RoleSet = RoleSet(0b1_1111);
    /// Every server role (not [`Role::Operator`]).
    pub const SERVERS: RoleSet = RoleSet(0b0_1111);

    /// The set of the given roles.
    pub const fn of(roles: &[Role]) -> RoleSet {
        let mut bits = 0u8;
        let mut i = 0;
        while i < roles.len() {
            bits |= 1 << roles[i] as u8;
            i += 1;
        }
        RoleSet(bits)
    }

    /// Whether `role` is in the set.
    pub fn contains(self, role: Role) -> bool {
        self.0 & (1 << role as u8) != 0
    }

    /// The roles of the set, for messages.
    pub fn names(self) -> Vec<&'static str> {
        Role::ALL.into_iter().filter(|r| self.contains(*r)).map(Role::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_round_trips_through_its_name_and_its_uri() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(Role::from_uri(&role.uri()), Some(role));
        }
        assert_eq!("admin".parse::<Role>(), Err(UnknownRole("admin".into())));
        assert_eq!(Role::from_uri("urn:other:role:engine"), None);
    }

    #[test]
    fn role_sets_hold_exactly_their_members() {
        let set = RoleSet::of(&[Role::Manager]);
        for role in Role::ALL {
            assert_eq!(set.contains(role), role == Role::Manager);
            assert!(RoleSet::ANY.contains(role));
            assert!(!RoleSet::NONE.contains(role));
            assert_eq!(RoleSet::SERVERS.contains(role), role != Role::Operator);
        }
        assert_eq!(RoleSet::of(&[Role::Engine, Role::Probe]).names(), ["engine", "probe"]);
    }
}
