//! The agent's wire types: round trips, and payloads as the previous release's agent sent them
//! (built with `serde_json::json!` on the agent side) still decode.

use tollgate_api::agent::*;

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, value, "{text}");
}

#[test]
fn every_type_round_trips() {
    let status = AgentStatus {
        server: "east-a".into(),
        application: "engine".into(),
        role: "engine".into(),
        release: Some("system-2.0.0".into()),
        previous_release: Some("system-1.0.0".into()),
        max_policy_schema: Some(3),
        staged: vec![StagedBundle {
            file_name: "engine-2.tgz".into(),
            application: "engine".into(),
            release: "system-2.0.0".into(),
        }],
        process: ProcessStatus {
            running: true,
            pid: Some(42),
            since: Some("2026-01-02T03:04:05Z".parse().unwrap()),
            restarts: 1,
            last_exit: Some("exit status: 1".into()),
        },
        role_api: "http://127.0.0.1:8080".into(),
        forced_standby: true,
        busy: false,
        ha_role: Some(HaRole::Standby),
    };
    round_trip(&status);
    round_trip(&AgentStatus::default());
    round_trip(&StageQuery { name: "b.tgz".into() });
    round_trip(&StageAnswer { staged: "system-2.0.0".into(), application: "engine".into() });
    round_trip(&VersionRequest { version: "system-2.0.0".into() });
    round_trip(&PreflightAnswer { preflight: "ok".into(), version: "system-2.0.0".into() });
    round_trip(&BackupRequest { why: Some("pre-upgrade".into()) });
    round_trip(&Backup { name: "b.tar.gz".into(), bytes: 10 });
    round_trip(&RestoreRequest { name: "b.tar.gz".into() });
    round_trip(&RestoreAnswer { restored: "b.tar.gz".into() });
    round_trip(&UnstageRequest { name: "b.tgz".into() });
    round_trip(&ForcedStandbyRequest { on: true });
    for role in [HaRole::Active, HaRole::Standby, HaRole::Spare] {
        round_trip(&HaRoleRequest { role });
    }
    let health = Health {
        server: "east-a".into(),
        classes: vec![
            ClassResult { class: "disk".into(), verdict: Verdict::Ok, detail: "fine".into() },
            ClassResult { class: "system".into(), verdict: Verdict::Info, detail: "no ntp".into() },
        ],
        tls: Some(tollgate_api::tls::TlsStatus {
            enabled: true,
            certificate: Some(tollgate_api::tls::TlsCertificate {
                subject: "O=tollgate, OU=engine, CN=east-a".into(),
                role: Some("engine".into()),
                not_after_unix: 1_800_000_000,
                seconds_left: 86_400 * 300,
                ..Default::default()
            }),
            expiry_warning_secs: 30 * 86_400,
            ..Default::default()
        }),
    };
    round_trip(&HealthAnswer { ok: health.ok(), text: health.text(), health });
}

#[test]
fn an_older_agents_status_decodes() {
    // The previous release's agent, built with json!: ha_role is the text of its file.
    let old = r#"{
        "server": "east-a", "application": "engine", "role": "engine",
        "release": "system-1.0.0", "previous_release": null, "max_policy_schema": 2,
        "staged": [{"file_name": "e.tgz", "application": "engine", "release": "system-2.0.0"}],
        "process": {"running": true, "pid": 7, "since": "2026-01-02T03:04:05.123456Z", "restarts": 0, "last_exit": null},
        "role_api": "http://127.0.53.1:8080", "forced_standby": false, "busy": false, "ha_role": "Active"
    }"#;
    let s: AgentStatus = serde_json::from_str(old).unwrap();
    assert_eq!(s.release.as_deref(), Some("system-1.0.0"));
    assert_eq!(s.ha_role, Some(HaRole::Active));
    assert_eq!(s.staged[0].release, "system-2.0.0");
    assert!(s.process.running);

    // Older still: no busy, no ha_role, no forced_standby, no max_policy_schema; plus a field
    // this release does not know.
    let older = r#"{"server": "s", "application": "probe", "role": "probe", "release": null,
        "staged": [], "process": {"running": false, "pid": null, "since": null, "restarts": 3, "last_exit": "signal: 9"},
        "role_api": "http://x", "something_new": {"a": 1}}"#;
    let s: AgentStatus = serde_json::from_str(older).unwrap();
    assert_eq!((s.busy, s.forced_standby, s.ha_role, s.max_policy_schema), (false, false, None, None));
    assert_eq!(s.process.restarts, 3);
}

#[test]
fn ha_roles_read_the_strings_agents_send() {
    for (text, role) in [("Active", HaRole::Active), ("Standby", HaRole::Standby), ("Spare", HaRole::Spare)] {
        let read: HaRole = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(read, role);
        assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{text}\""));
        assert_eq!(role.to_string(), text);
        assert_eq!(HaRole::parse(&format!("{text}\n")), Some(role));
    }
    // A role a newer agent (or a damaged file) reports does not fail the whole status.
    let read: HaRole = serde_json::from_str("\"Forced-Standby\"").unwrap();
    assert_eq!(read, HaRole::Unknown);
    assert_eq!(HaRole::parse("garbage"), None);
}

#[test]
fn older_answers_decode() {
    let h: HealthAnswer = serde_json::from_str(
        r#"{"ok": false, "text": "east-a:\n", "health": {"server": "east-a", "classes": [
            {"class": "disk", "verdict": "OK", "detail": "d"},
            {"class": "proc", "verdict": "FAILURE", "detail": "p"},
            {"class": "new", "verdict": "DEGRADED", "detail": "n"}]}}"#,
    )
    .unwrap();
    assert_eq!(h.health.classes[1].verdict, Verdict::Failure);
    assert_eq!(h.health.classes[2].verdict, Verdict::Unknown);
    assert!(!h.health.ok());
    let b: Vec<Backup> = serde_json::from_str(r#"[{"name": "a.tar.gz", "bytes": 5}]"#).unwrap();
    assert_eq!(b[0].bytes, 5);
    let s: StageAnswer = serde_json::from_str(r#"{"staged": "system-2.0.0", "application": "engine"}"#).unwrap();
    assert_eq!(s.staged, "system-2.0.0");
    let p: PreflightAnswer = serde_json::from_str(r#"{"preflight": "ok", "version": "system-2.0.0"}"#).unwrap();
    assert_eq!(p.preflight, "ok");
    let r: RestoreAnswer = serde_json::from_str(r#"{"restored": "b"}"#).unwrap();
    assert_eq!(r.restored, "b");
    // The backup body is optional and may be empty JSON.
    let b: BackupRequest = serde_json::from_str("{}").unwrap();
    assert_eq!(b.why, None);
    assert_eq!(role_path("api/v1/srp/show/info"), "/agent/v1/role/api/v1/srp/show/info");
    assert_eq!(role_path("/api/v1/manager/ha"), "/agent/v1/role/api/v1/manager/ha");
    assert_eq!(stage_path("tollgate-engine-1.0.0.tgb"), "/agent/v1/stage?name=tollgate-engine-1.0.0.tgb");
    assert_eq!(stage_path("a b&c=d"), "/agent/v1/stage?name=a%20b%26c%3Dd");
}
