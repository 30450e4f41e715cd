//! What `show srp info` and `show srp statistics` print, gathered from the election machine, the
//! link and the actions the owner carried out.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::ChassisMode;
use crate::election::{Action, Alarm, Machine, Refusal, State};
use crate::link::{ConnectionInfo, LinkStatistics};

/// `show srp info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrpInfo {
    /// This chassis' node id.
    pub node_id: String,
    /// Chassis mode.
    pub chassis_mode: ChassisMode,
    /// Priority.
    pub priority: u8,
    /// Chassis state.
    pub chassis_state: State,
    /// Route modifier advertised.
    pub route_modifier: u32,
    /// Whether this chassis holds the service address.
    pub service_address_held: bool,
    /// Whether this chassis' session copy is synchronised.
    pub ready: bool,
    /// Whether this chassis is held in forced standby.
    pub forced_standby: bool,
    /// Connection state: "Connected" or "Disconnected".
    pub connection_state: String,
    /// The connection, when up.
    pub connection: Option<ConnectionInfo>,
    /// The mate's node id, from its last hello.
    pub peer_node_id: Option<String>,
    /// The mate's state, from its last hello.
    pub peer_state: Option<State>,
    /// Whether the mate was heard within the dead interval.
    pub peer_alive: bool,
    /// Whether the mate is synchronised ("Ready").
    pub peer_ready: bool,
    /// Whether the mate is held in forced standby.
    pub peer_forced_standby: bool,
    /// The mate's route modifier.
    pub peer_route_modifier: Option<u32>,
    /// Set after a monitor-caused switchover: monitor failures do not switch back.
    pub monitor_failure_flag: bool,
    /// Alarms raised.
    pub alarms: Vec<Alarm>,
}

impl SrpInfo {
    /// The current information.
    pub fn new(machine: &Machine, connection: Option<ConnectionInfo>) -> SrpInfo {
        let peer = machine.peer();
        SrpInfo {
            node_id: machine.params().node_id.clone(),
            chassis_mode: machine.params().mode,
            priority: machine.params().priority,
            chassis_state: machine.state(),
            route_modifier: machine.route_modifier(),
            service_address_held: machine.holds_service_address(),
            ready: machine.ready(),
            forced_standby: machine.forced_standby(),
            connection_state: if connection.is_some() { "Connected" } else { "Disconnected" }.to_string(),
            connection,
            peer_node_id: peer.map(|(p, _)| p.node_id.clone()),
            peer_state: peer.map(|(p, _)| p.state),
            peer_alive: peer.is_some_and(|(_, alive)| alive),
            peer_ready: peer.is_some_and(|(p, _)| p.ready),
            peer_forced_standby: peer.is_some_and(|(p, _)| p.forced_standby),
            peer_route_modifier: peer.map(|(p, _)| p.route_modifier),
            monitor_failure_flag: machine.non_revertible(),
            alarms: machine.alarms().iter().copied().collect(),
        }
    }
}

impl fmt::Display for SrpInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        writeln!(f, "{:<28}{}", "Node id", self.node_id)?;
        writeln!(f, "{:<28}{}", "Chassis mode", self.chassis_mode)?;
        writeln!(f, "{:<28}{}", "Chassis priority", self.priority)?;
        writeln!(f, "{:<28}{}", "Chassis state", self.chassis_state)?;
        writeln!(f, "{:<28}{}", "Route modifier", self.route_modifier)?;
        writeln!(f, "{:<28}{}", "Service address", if self.service_address_held { "held" } else { "released" })?;
        writeln!(f, "{:<28}{}", "Session copy", if self.ready { "Ready" } else { "Not ready" })?;
        writeln!(f, "{:<28}{}", "Forced standby", yes_no(self.forced_standby))?;
        writeln!(f, "{:<28}{}", "Connection state", self.connection_state)?;
        if let Some(c) = &self.connection {
            writeln!(f, "{:<28}{}", "Peer address", c.peer_address)?;
            writeln!(f, "{:<28}{}", "Compression", c.compression)?;
            writeln!(
                f,
                "{:<28}{}",
                "Configuration",
                if c.config_matches { "matches peer" } else { "DIFFERS from peer" }
            )?;
        }
        writeln!(f, "{:<28}{}", "Peer node id", opt(self.peer_node_id.clone()))?;
        writeln!(f, "{:<28}{}", "Peer state", opt(self.peer_state.map(|s| s.to_string())))?;
        writeln!(f, "{:<28}{}", "Peer alive", self.peer_alive)?;
        writeln!(f, "{:<28}{}", "Peer session copy", if self.peer_ready { "Ready" } else { "Not ready" })?;
        writeln!(f, "{:<28}{}", "Peer forced standby", yes_no(self.peer_forced_standby))?;
        writeln!(f, "{:<28}{}", "Peer route modifier", opt(self.peer_route_modifier.map(|v| v.to_string())))?;
        writeln!(f, "{:<28}{}", "Monitor failure flag", self.monitor_failure_flag)?;
        Ok(())
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "Yes" } else { "No" }
}

/// Switchover counters of `show srp statistics`, counted from the actions the machine returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverStatistics {
    /// Times this chassis became Active.
    pub became_active: u64,
    /// Times this chassis became Standby.
    pub became_standby: u64,
    /// Switchovers this chassis initiated (manual or monitor).
    pub switchovers_initiated: u64,
    /// Switchover requests refused (locally or by the mate).
    pub switchovers_refused: u64,
    /// Switchover requests that got no answer in time.
    pub switchovers_failed: u64,
    /// Split brains resolved.
    pub split_brains_resolved: u64,
    /// `srp validate-switchover` runs that found a problem.
    pub validations_failed: u64,
}

impl SwitchoverStatistics {
    /// Counts what one step of the machine did.
    pub fn record(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::StateChanged { to: State::Active, .. } => self.became_active += 1,
                Action::StateChanged { to: State::Standby, .. } => self.became_standby += 1,
                Action::SendSwitchoverRequest { .. } => self.switchovers_initiated += 1,
                Action::CommandRefused { .. } => self.switchovers_refused += 1,
                Action::RaiseAlarm(Alarm::SwitchoverFailed) => self.switchovers_failed += 1,
                Action::SplitBrainResolved { .. } => self.split_brains_resolved += 1,
                Action::SwitchoverValidated(Err(_)) => self.validations_failed += 1,
                _ => {}
            }
        }
    }
}

/// `show srp statistics`: the link counters and the switchover counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrpStatistics {
    /// Link counters (hello messages, frames, bytes, authentication failures, reconnects).
    pub link: LinkStatistics,
    /// Switchover counters.
    pub switchovers: SwitchoverStatistics,
}

impl fmt::Display for SrpStatistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.link;
        let s = &self.switchovers;
        let rows: [(&str, u64); 23] = [
            ("Hello messages sent", l.hello_messages_sent),
            ("Hello messages received", l.hello_messages_received),
            ("Frames sent", l.frames_sent),
            ("Frames received", l.frames_received),
            ("Bytes sent", l.bytes_sent),
            ("Bytes received", l.bytes_received),
            ("Bytes before compression", l.bytes_before_compression),
            ("Bytes after compression", l.bytes_after_compression),
            ("Authentication failures", l.auth_failures),
            ("Handshake failures", l.handshake_failures),
            ("TLS handshake failures", l.tls_failures),
            ("Connects", l.connects),
            ("Reconnects", l.reconnects),
            ("Disconnects", l.disconnects),
            ("Configuration mismatches", l.config_mismatches),
            ("Messages dropped", l.messages_dropped),
            ("Malformed messages", l.malformed_messages),
            ("Became Active", s.became_active),
            ("Became Standby", s.became_standby),
            ("Switchovers initiated", s.switchovers_initiated),
            ("Switchovers refused", s.switchovers_refused),
            ("Switchovers failed", s.switchovers_failed),
            ("Split brains resolved", s.split_brains_resolved),
        ];
        for (name, v) in rows {
            writeln!(f, "{name:<32}{v}")?;
        }
        Ok(())
    }
}

/// A refusal as the CLI prints it.
pub fn refusal_message(r: Refusal) -> String {
    format!("switchover refused: {r}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChassisMode, SrpConfig};
    use crate::election::{Event, Params, step};

    #[test]
    fn info_and_statistics_render() {
        let cfg = SrpConfig::new(
            "n-a",
            "192.0.2.1:1".parse().unwrap(),
            "192.0.2.2:1".parse().unwrap(),
            "0123456789abcdef",
            ChassisMode::Primary,
            1,
        );
        let (m, start) = Machine::new(Params::from_config(&cfg));
        let mut stats = SwitchoverStatistics::default();
        stats.record(&start);
        let (m, a) = step(&m, Event::TimerExpired(crate::election::Timer::DeadInterval));
        stats.record(&a);
        let (_, a) = step(&m, Event::ManualSwitchover { force: false });
        stats.record(&a);
        assert_eq!((stats.became_active, stats.switchovers_refused), (1, 1));
        let info = SrpInfo::new(&m, None);
        let text = info.to_string();
        assert!(text.contains("Chassis state               Active"), "{text}");
        assert!(text.contains("Disconnected"));
        assert!(text.contains("Forced standby              No"), "{text}");
        let (held, _) = step(&m, Event::ForcedStandby(true));
        assert!(SrpInfo::new(&held, None).to_string().contains("Forced standby              Yes"));
        let s = SrpStatistics { link: LinkStatistics::default(), switchovers: stats }.to_string();
        assert!(s.contains("Hello messages sent") && s.contains("Became Active                   1"), "{s}");
        assert_eq!(
            refusal_message(Refusal::NotSynchronised),
            "switchover refused: the standby chassis is not synchronised (use force to switch over anyway)"
        );
    }
}
