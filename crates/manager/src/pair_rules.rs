//! Who of the manager pair is active: a pure decision, taken at every poll from what this
//! manager knows (its own state, the mate's last answer, whether the servers' agents answer).
//!
//! Rules:
//! * Standby, the mate active: copy its state.
//! * Both standby (both starting): the one not held in forced standby goes first, then the one
//!   holding the newer state (generation), then the designated one (`starts_active`), then the
//!   lower hostname.
//! * Standby, the mate silent for the takeover time: take over (a manager failover), unless this
//!   manager is held in forced standby (another release than the lost active: a failover must not
//!   change the version in service) or reaches none of the other servers' agents (it is the
//!   isolated one: taking over would make two actives).
//! * Active, the mate silent and none of the other servers' agents answering for the takeover
//!   time: step down (the isolated one fences itself; it takes over again once it reaches the
//!   servers and the mate is still silent).
//! * Both active (a frozen active came back, or a partition between the two healed): the one that
//!   became active more recently keeps the role and the other copies its state. It took over
//!   because it lost sight of the other while it still reached the servers, so its state is the
//!   newer one (a frozen manager's is stale). What the other did alone in a partition where both
//!   reached the servers is lost from its logs; the servers' reports still show where they are.

use chrono::{DateTime, Utc};

/// One manager of the pair, as the decision sees it: this one, or the mate from its last answer
/// to `/api/v1/manager/ha`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// Its hostname.
    pub hostname: String,
    /// Active now (for the mate: and not handing over to this one).
    pub active: bool,
    /// Since when (when active).
    pub active_since: Option<DateTime<Utc>>,
    /// Generation of the state it holds.
    pub generation: u64,
    /// Configured as the one to start active.
    pub starts_active: bool,
    /// Held in forced standby by its agent.
    pub held: bool,
}

/// Everything one decision looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// This manager.
    pub me: Side,
    /// The mate's answer to this poll (None: it did not answer).
    pub mate: Option<Side>,
    /// The mate has not answered for the takeover time.
    pub mate_lost: bool,
    /// Some agent of another server answered within the takeover time (None: not known yet;
    /// the caller asks the agents when the answer matters, see [`View::needs_agents`]).
    pub reaches_servers: Option<bool>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing changes.
    Stay,
    /// Copy the active mate's state.
    FollowMate,
    /// Become active; `failover`: the active one was lost (the Director then waits to hear from
    /// every server before acting on it).
    BecomeActive {
        /// After losing the active mate.
        failover: bool,
    },
    /// Become standby.
    BecomeStandby,
    /// Would take over, but must not: why (logged).
    HoldBack(&'static str),
}

impl View {
    /// Whether the decision depends on reaching the servers' agents (asked only then).
    pub fn needs_agents(&self) -> bool {
        self.mate.is_none() && self.mate_lost && (!self.me.held || self.me.active)
    }
}

/// Decides.
pub fn decide(v: &View) -> Decision {
    let me = &v.me;
    match (&v.mate, me.active) {
        (Some(mate), true) if mate.active => {
            // Both active: the one active more recently keeps the role (ties: the lower hostname).
            let newer = match (me.active_since, mate.active_since) {
                (Some(mine), Some(theirs)) if mine != theirs => theirs > mine,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                _ => mate.hostname < me.hostname,
            };
            if newer { Decision::BecomeStandby } else { Decision::Stay }
        }
        (Some(_), true) => Decision::Stay,
        (Some(mate), false) if mate.active => Decision::FollowMate,
        (Some(mate), false) => {
            let mine = (!me.held, me.generation, me.starts_active);
            let theirs = (!mate.held, mate.generation, mate.starts_active);
            let wins = mine > theirs || (mine == theirs && me.hostname < mate.hostname);
            match (wins, me.held) {
                (true, false) => Decision::BecomeActive { failover: false },
                _ => Decision::Stay,
            }
        }
        (None, _) if !v.mate_lost => Decision::Stay,
        (None, true) => match v.reaches_servers {
            Some(false) => Decision::BecomeStandby,
            _ => Decision::Stay,
        },
        (None, false) if me.held => {
            Decision::HoldBack("held in forced standby: a failover must not change the version in service")
        }
        (None, false) => match v.reaches_servers {
            Some(true) => Decision::BecomeActive { failover: true },
            Some(false) => Decision::HoldBack("no other server's agent answers: this manager may be the isolated one"),
            None => Decision::Stay,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(1_800_000_000 + s, 0)
    }

    fn me(active: bool) -> Side {
        Side {
            hostname: "mgr-a".into(),
            active,
            active_since: active.then(|| at(10)).flatten(),
            generation: 5,
            starts_active: true,
            held: false,
        }
    }

    fn mate(active: bool) -> Side {
        Side {
            hostname: "mgr-b".into(),
            active,
            active_since: active.then(|| at(20)).flatten(),
            generation: 5,
            starts_active: false,
            held: false,
        }
    }

    fn view(me: Side, mate: Option<Side>, mate_lost: bool, reaches: Option<bool>) -> View {
        View { me, mate, mate_lost, reaches_servers: reaches }
    }

    #[test]
    fn a_standby_follows_an_active_mate_and_takes_over_only_when_it_reaches_the_servers() {
        assert_eq!(decide(&view(me(false), Some(mate(true)), false, None)), Decision::FollowMate);
        let lost = view(me(false), None, true, None);
        assert!(lost.needs_agents());
        assert_eq!(decide(&lost), Decision::Stay, "asks the agents first");
        assert_eq!(decide(&view(me(false), None, true, Some(true))), Decision::BecomeActive { failover: true });
        assert!(
            matches!(decide(&view(me(false), None, true, Some(false))), Decision::HoldBack(why) if why.contains("isolated"))
        );
        // Silent for less than the takeover time: nothing yet, and no need to ask the agents.
        let quiet = view(me(false), None, false, None);
        assert!(!quiet.needs_agents());
        assert_eq!(decide(&quiet), Decision::Stay);
    }

    #[test]
    fn a_held_standby_never_takes_over_from_a_lost_mate() {
        let held = Side { held: true, ..me(false) };
        let v = view(held.clone(), None, true, Some(true));
        assert!(!v.needs_agents());
        assert!(matches!(decide(&v), Decision::HoldBack(why) if why.contains("forced standby")));
        // Nor in a start-up tie it would otherwise win.
        let tie = view(Side { generation: 99, ..held }, Some(mate(false)), false, None);
        assert_eq!(decide(&tie), Decision::Stay);
    }

    #[test]
    fn an_isolated_active_fences_itself_and_a_connected_one_stays() {
        assert_eq!(decide(&view(me(true), None, true, Some(false))), Decision::BecomeStandby);
        assert_eq!(decide(&view(me(true), None, true, Some(true))), Decision::Stay, "only the mate is gone");
        assert_eq!(decide(&view(me(true), None, false, Some(false))), Decision::Stay, "not for the takeover time yet");
        assert_eq!(decide(&view(me(true), Some(mate(false)), false, None)), Decision::Stay);
    }

    #[test]
    fn both_active_the_one_active_more_recently_keeps_the_role() {
        // me active since 10, the mate since 20: it took over from this one (which was frozen).
        assert_eq!(decide(&view(me(true), Some(mate(true)), false, Some(true))), Decision::BecomeStandby);
        let later = Side { active_since: at(30), ..me(true) };
        assert_eq!(decide(&view(later, Some(mate(true)), false, Some(true))), Decision::Stay);
        let same = Side { active_since: at(20), ..me(true) };
        assert_eq!(decide(&view(same, Some(mate(true)), false, None)), Decision::Stay, "tie: the lower hostname");
    }

    #[test]
    fn both_standby_not_held_then_newer_state_then_designated_then_lower_hostname() {
        let both = |m: Side, o: Side| decide(&view(m, Some(o), false, None));
        let go = Decision::BecomeActive { failover: false };
        assert_eq!(both(me(false), mate(false)), go, "designated");
        assert_eq!(both(Side { starts_active: false, ..me(false) }, mate(false)), go, "lower hostname");
        assert_eq!(
            both(Side { starts_active: false, ..me(false) }, Side { starts_active: true, ..mate(false) }),
            Decision::Stay
        );
        assert_eq!(both(me(false), Side { generation: 6, ..mate(false) }), Decision::Stay, "the mate's state is newer");
        assert_eq!(
            both(Side { generation: 1, ..me(false) }, Side { held: true, ..mate(false) }),
            go,
            "the mate is held"
        );
    }
}
