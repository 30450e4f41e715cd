//! The SRP API's wire types: every view and command parses from its name, requests and answers
//! round-trip, and what the previous release sent still decodes.

use tollgate_api::srp::{
    AuditStarted, ConcurrentCalls, ConfigurationValid, ForcedStandbyBody, NackBody, NackSet, SrpCommand, SrpReply,
    SrpRequest, SrpView, SwitchoverQuery, SwitchoverValidated, VelocityCounter,
};

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
    let json = serde_json::to_string(v).unwrap();
    let back: T = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, v, "{json}");
}

#[test]
fn every_view_parses_from_its_name_and_its_words() {
    assert_eq!(SrpView::all().len(), 9);
    for view in SrpView::all() {
        assert_eq!(view.name().parse::<SrpView>().unwrap(), *view);
        assert_eq!(view.to_string(), view.name());
        let words: Vec<&str> = view.name().split('-').collect();
        assert_eq!(SrpView::from_words(&words).unwrap(), *view, "{words:?}");
        assert_eq!(view.path(), format!("/api/v1/srp/show/{}", view.name()));
        // The name on the wire (serde) is the name in the URL.
        assert_eq!(serde_json::to_string(view).unwrap(), format!("\"{}\"", view.name()));
        round_trip(view);
    }
    // The operator's words, as `show srp` takes them.
    assert_eq!(SrpView::from_words(&["checkpoint", "statistics"]).unwrap(), SrpView::CheckpointStatistics);
    assert_eq!(SrpView::from_words(&["call-loss", "statistics"]).unwrap(), SrpView::CallLossStatistics);
    assert_eq!(SrpView::from_words(&["Concurrent"]).unwrap(), SrpView::Concurrent);
    let unknown = SrpView::from_words(&["nonsense"]).unwrap_err().to_string();
    for view in SrpView::all() {
        assert!(unknown.contains(view.name()), "the error lists {view}: {unknown}");
    }
}

#[test]
fn every_command_parses_from_its_name() {
    assert_eq!(SrpCommand::all().len(), 6);
    for command in SrpCommand::all() {
        assert_eq!(command.name().parse::<SrpCommand>().unwrap(), *command);
        assert_eq!(command.path(), format!("/api/v1/srp/{}", command.name()));
        assert_eq!(serde_json::to_string(command).unwrap(), format!("\"{}\"", command.name()));
        round_trip(command);
    }
    let read_only: Vec<SrpCommand> = SrpCommand::all().iter().copied().filter(|c| c.read_only()).collect();
    assert_eq!(read_only, [SrpCommand::ValidateSwitchover, SrpCommand::ValidateConfiguration]);
    assert!("show".parse::<SrpCommand>().unwrap_err().to_string().contains("initiate-switchover"));
    assert_eq!(SwitchoverQuery { force: true }.path(), "/api/v1/srp/initiate-switchover?force=true");
}

#[test]
fn requests_and_answers_round_trip() {
    let requests = [
        SrpRequest::Show(SrpView::Concurrent),
        SrpRequest::ValidateSwitchover,
        SrpRequest::InitiateSwitchover { force: true },
        SrpRequest::InitiateAudit,
        SrpRequest::Nack { cmd: 2, enable: false },
        SrpRequest::ValidateConfiguration,
        SrpRequest::ForcedStandby { on: true },
    ];
    for r in &requests {
        round_trip(r);
        assert_eq!(r.command().is_none(), matches!(r, SrpRequest::Show(_)));
    }
    round_trip(&NackBody { cmd: 1, enable: true });
    round_trip(&ForcedStandbyBody { on: false });
    round_trip(&SrpReply { text: "x\n".into(), data: NackSet { cmd: 1, nack_enabled: true } });
    round_trip(&SrpReply {
        text: "+12125550100 2 calls in progress\n".into(),
        data: vec![ConcurrentCalls { source: "+12125550100".into(), calls: 2 }],
    });
}

/// Payloads as the previous release sent them (built with `json!` on both sides).
#[test]
fn older_payloads_still_decode() {
    // Bodies and query of the commands.
    let nack: NackBody = serde_json::from_str(r#"{"cmd": 1, "enable": false}"#).unwrap();
    assert_eq!(nack, NackBody { cmd: 1, enable: false });
    let held: ForcedStandbyBody = serde_json::from_str(r#"{"on": true}"#).unwrap();
    assert!(held.on);
    let query: SwitchoverQuery = serde_json::from_str("{}").unwrap();
    assert!(!query.force, "force defaults to false");

    // Answers: {"text", "data"}.
    let valid: SrpReply<SwitchoverValidated> =
        serde_json::from_str(r#"{"text": "switchover validated: the standby is ready\n", "data": {"valid": true}}"#)
            .unwrap();
    assert!(valid.data.valid);
    let audit: SrpReply<AuditStarted> = serde_json::from_str(
        r#"{"text": "audit started: the standby compares its copy and reports\n", "data": {"started": true}}"#,
    )
    .unwrap();
    assert!(audit.data.started);
    let nack: SrpReply<NackSet> = serde_json::from_str(
        r#"{"text": "NACK disabled for micro-chkpt-cmd 1\n", "data": {"cmd": 1, "nack_enabled": false}}"#,
    )
    .unwrap();
    assert_eq!(nack.data, NackSet { cmd: 1, nack_enabled: false });
    let config: SrpReply<ConfigurationValid> = serde_json::from_str(
        r#"{"text": "configuration is valid\n", "data": {"valid": true, "peer_config_matches": null}}"#,
    )
    .unwrap();
    assert_eq!(config.data, ConfigurationValid { valid: true, peer_config_matches: None });
    // Unknown fields from a newer engine are ignored.
    let newer: ConfigurationValid =
        serde_json::from_str(r#"{"valid": true, "peer_config_matches": true, "added_later": 1}"#).unwrap();
    assert_eq!(newer.peer_config_matches, Some(true));

    // The state views: velocity counters as the engine's table serialised them, calls in
    // progress as `{"source", "calls"}`.
    let velocity: Vec<VelocityCounter> = serde_json::from_str(
        r#"[{"rule": "too-many", "source": "+13125550700", "window_us": 60000000, "times": [1, 2, 3]}]"#,
    )
    .unwrap();
    assert_eq!(velocity[0].times.len(), 3);
    assert_eq!(velocity[0].source, "+13125550700");
    let concurrent: Vec<ConcurrentCalls> = serde_json::from_str(r#"[{"source": "+13125550700", "calls": 2}]"#).unwrap();
    assert_eq!(concurrent[0].calls, 2);
}
