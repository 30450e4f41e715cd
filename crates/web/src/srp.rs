//! What the web layer needs from an SRP chassis: the `show srp ...` views and the `srp ...`
//! commands of seed 003, behind a trait so this crate does not depend on how the role runs.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// An operator request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SrpRequest {
    /// `show srp <what>`: info, statistics, checkpoint-statistics, checkpoint-info, monitor,
    /// call-loss-statistics, audit-statistics.
    Show(String),
    /// `srp validate-switchover`.
    ValidateSwitchover,
    /// `srp initiate-switchover [force]`.
    InitiateSwitchover {
        /// Even when the standby is not synchronised.
        force: bool,
    },
    /// `srp initiate-audit`.
    InitiateAudit,
    /// `srp disable|enable nack micro-chkpt-cmd N`.
    Nack {
        /// The micro-checkpoint command id.
        cmd: u16,
        /// Enable (true) or disable.
        enable: bool,
    },
    /// `srp validate-configuration`.
    ValidateConfiguration,
    /// `srp forced-standby on|off`: hold this chassis out of service (the Upgrade Director's
    /// forced standby), or release it.
    ForcedStandby {
        /// Hold (true) or release.
        on: bool,
    },
}

/// The answer: text as the CLI prints it, and the same as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SrpReply {
    /// Human-readable output.
    pub text: String,
    /// Machine-readable output.
    pub data: serde_json::Value,
}

/// A running SRP chassis.
pub trait SrpService: Send + Sync {
    /// Carries out a request; `Err` is a refusal or failure, in words.
    fn request(&self, req: SrpRequest) -> Pin<Box<dyn Future<Output = Result<SrpReply, String>> + Send + '_>>;
}
