//! The web API's wire types: requests and answers round-trip, query types give the URLs the
//! server reads, and what the previous release sent (and what its CLI sent) still decodes.

use serde_json::json;
use tollgate_api::web::{
    self, AnalyticsParams, Checked, CreatedToken, CurrentPolicy, DevicesParams, DiffParams, ExportParams, HistoryEntry,
    Ingested, LookupParams, NewPassword, NewToken, PasswordChanged, PolicyVersion, ReleaseInfo, Removed, Role,
    RoleAlarms, SavedUser, SetUser, TokenInfo, Uninstalled, UserInfo, WhoAmI,
};

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
    let json = serde_json::to_string(v).unwrap();
    let back: T = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, v, "{json}");
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}

#[test]
fn roles_are_lowercase_names_and_rank_as_before() {
    for (role, name) in
        [(Role::Ingest, "ingest"), (Role::Viewer, "viewer"), (Role::Operator, "operator"), (Role::Admin, "admin")]
    {
        assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{name}\""));
        assert_eq!(
            (Role::parse(name), Role::parse(&name.to_uppercase()), role.as_str()),
            (Some(role), Some(role), name)
        );
        round_trip(&role);
    }
    assert_eq!(Role::parse("root"), None);
    assert!(Role::Admin.allows(Role::Operator) && Role::Operator.allows(Role::Viewer));
    assert!(!Role::Viewer.allows(Role::Operator) && !Role::Ingest.allows(Role::Viewer));
    // Ingest is allowed to operators and admins (a test shipper), never to viewers.
    assert!(Role::Admin.allows(Role::Ingest) && !Role::Viewer.allows(Role::Ingest));
}

#[test]
fn requests_and_answers_round_trip() {
    round_trip(&WhoAmI { name: "cli".into(), role: Role::Admin, authorized: true });
    round_trip(&ReleaseInfo {
        release: "1.4.0".into(),
        build: "1.4.0".into(),
        max_policy_schema: 2,
        roles: vec!["engine".into(), "collector".into()],
    });
    round_trip(&SetUser { name: "erin".into(), role: "operator".into(), password: None });
    round_trip(&SetUser { name: "erin".into(), role: "viewer".into(), password: Some("correct horse".into()) });
    round_trip(&SavedUser { name: "erin".into(), role: Role::Operator });
    round_trip(&Removed { removed: Some("erin".into()), revoked: None });
    round_trip(&Removed { removed: None, revoked: Some("ci".into()) });
    round_trip(&NewToken { name: "ci".into(), role: "ingest".into(), expires: Some("90d".into()) });
    round_trip(&CreatedToken {
        name: "ci".into(),
        role: Role::Ingest,
        token: "tg_secret".into(),
        expires_at: Some(at("2027-03-06T10:00:00Z")),
    });
    round_trip(&NewPassword { name: "erin".into(), current: "old password".into(), new: "new password".into() });
    round_trip(&PasswordChanged { name: "erin".into(), changed: true });
    round_trip(&Checked { valid: true, meta: Some(Default::default()) });
    round_trip(&Uninstalled { uninstalled: Some(3) });
    round_trip(&Uninstalled { uninstalled: None });
    round_trip(&Ingested { received: 10, inserted: 7, duplicates: 2, quarantined: 1 });
    round_trip(&UserInfo { name: "admin".into(), role: Role::Admin, created_at: at("2026-01-02T03:04:05Z") });
    round_trip(&TokenInfo {
        name: "cli".into(),
        role: Role::Admin,
        sha256: "ab".repeat(32),
        created_at: at("2026-01-02T03:04:05Z"),
        expires_at: None,
    });
    round_trip(&RoleAlarms::default());
}

#[test]
fn removals_name_only_what_was_removed() {
    let user = serde_json::to_value(Removed { removed: Some("erin".into()), revoked: None }).unwrap();
    assert_eq!(user, json!({"removed": "erin"}));
    let token = serde_json::to_value(Removed { removed: None, revoked: Some("ci".into()) }).unwrap();
    assert_eq!(token, json!({"revoked": "ci"}));
}

#[test]
fn query_types_give_the_urls_the_server_reads() {
    // A number with '+' and a space survives (the CLI built these by hand before).
    let lookup = LookupParams { from: Some("+1 212 555 0100".into()), to: "+12125550199".into() };
    let q = web::query(&lookup);
    assert_eq!(q, "from=%2B1+212+555+0100&to=%2B12125550199");
    assert_eq!(serde_urlencoded::from_str::<LookupParams>(&q).unwrap(), lookup);
    // Without a calling number: only `to`; the server reads it back as none.
    let q = web::query(&LookupParams { from: None, to: "911".into() });
    assert_eq!(q, "to=911");
    assert_eq!(serde_urlencoded::from_str::<LookupParams>(&q).unwrap().from, None);

    let analytics = AnalyticsParams {
        dataset: Some("SIP".into()),
        view: Some("Top 10 Source".into()),
        grouping: Some("Hour".into()),
        device: Some("All".into()),
        from: Some("2026-12-01T00:00".into()),
        to: None,
        range: None,
        format: Some("csv".into()),
    };
    let q = web::query(&analytics);
    assert!(!q.contains("to=") && !q.contains("range="), "{q}");
    assert_eq!(serde_urlencoded::from_str::<AnalyticsParams>(&q).unwrap(), analytics);
    // The page's and an older CLI's query: only some selectors.
    let older: AnalyticsParams = serde_urlencoded::from_str("dataset=ENUM&view=Average+CPS&range=7d").unwrap();
    assert_eq!((older.view.as_deref(), older.range.as_deref(), older.device), (Some("Average CPS"), Some("7d"), None));

    let export = ExportParams {
        dataset: None,
        from: "2026-12-01T00:00".into(),
        to: "2026-12-02T00:00".into(),
        device: Some("engine-1".into()),
        protocol: Some("sip".into()),
    };
    assert_eq!(serde_urlencoded::from_str::<ExportParams>(&web::query(&export)).unwrap(), export);
    let older: ExportParams = serde_urlencoded::from_str("from=2026-12-01T00:00&to=2026-12-02T00:00").unwrap();
    assert_eq!((older.device, older.protocol), (None, None), "an older client's query: every device and protocol");
    assert_eq!(serde_urlencoded::from_str::<DevicesParams>("dataset=SIP").unwrap().dataset.as_deref(), Some("SIP"));
    assert_eq!(serde_urlencoded::from_str::<DiffParams>("from=0&to=3").unwrap(), DiffParams { from: 0, to: 3 });
}

/// Answers exactly as the previous release's server wrote them (and requests as its CLI and
/// pages sent them), decoded with today's types; unknown fields (a newer peer's) are ignored.
#[test]
fn what_the_previous_release_sent_still_decodes() {
    let who: WhoAmI = serde_json::from_value(json!({"name": "cli", "role": "admin", "authorized": true})).unwrap();
    assert_eq!(who.role, Role::Admin);

    let version: ReleaseInfo = serde_json::from_value(
        json!({"release": "1.3.0", "build": "1.3.0", "max_policy_schema": 1, "roles": ["engine"], "newer": 1}),
    )
    .unwrap();
    assert_eq!(version.max_policy_schema, 1);

    let checked: Checked = serde_json::from_value(json!({
        "valid": true,
        "meta": {"name": "core", "description": "", "schema": 2, "sha256": "00", "rules": 3, "enabled_rules": 2,
                 "lists": {"blocked": 120}}
    }))
    .unwrap();
    let meta = checked.meta.unwrap();
    assert_eq!((checked.valid, meta.rules, meta.lists["blocked"]), (true, 3, 120));
    // The CLI reads a check answer without `meta` too.
    assert_eq!(serde_json::from_value::<Checked>(json!({"valid": true})).unwrap().meta, None);

    assert_eq!(serde_json::from_value::<Uninstalled>(json!({"uninstalled": 4})).unwrap().uninstalled, Some(4));
    assert_eq!(serde_json::from_value::<Uninstalled>(json!({"uninstalled": null})).unwrap().uninstalled, None);

    let ingested: Ingested =
        serde_json::from_value(json!({"received": 3, "inserted": 2, "duplicates": 0, "quarantined": 1})).unwrap();
    assert_eq!(ingested, Ingested { received: 3, inserted: 2, duplicates: 0, quarantined: 1 });

    let token: CreatedToken =
        serde_json::from_value(json!({"name": "ci", "role": "ingest", "token": "s3cret", "expires_at": null})).unwrap();
    assert_eq!((token.role, token.expires_at), (Role::Ingest, None));
    let saved: SavedUser = serde_json::from_value(json!({"name": "erin", "role": "viewer"})).unwrap();
    assert_eq!(saved.role, Role::Viewer);
    let changed: PasswordChanged = serde_json::from_value(json!({"name": "erin", "changed": true})).unwrap();
    assert!(changed.changed);

    // Requests as the previous release's pages and scripts sent them.
    let set: SetUser = serde_json::from_value(json!({"name": "erin", "role": "operator"})).unwrap();
    assert_eq!(set.password, None);
    let new: NewToken = serde_json::from_value(json!({"name": "ci", "role": "ingest"})).unwrap();
    assert_eq!(new.expires, None);
    let pw: NewPassword = serde_json::from_value(json!({"name": "erin", "current": "a", "new": "b"})).unwrap();
    assert_eq!(pw.new, "b");

    let users: Vec<UserInfo> =
        serde_json::from_value(json!([{"name": "admin", "role": "admin", "created_at": "2026-01-02T03:04:05Z"}]))
            .unwrap();
    assert_eq!(users[0].role, Role::Admin);
    let tokens: Vec<TokenInfo> = serde_json::from_value(json!([
        {"name": "cli", "role": "admin", "sha256": "ab", "created_at": "2026-01-02T03:04:05Z"},
        {"name": "ci", "role": "ingest", "sha256": "cd", "created_at": "2026-01-02T03:04:05Z",
         "expires_at": "2026-02-01T00:00:00Z"}
    ]))
    .unwrap();
    assert!(!tokens[0].expired(at("2030-01-01T00:00:00Z")) && tokens[1].expired(at("2026-02-01T00:00:00Z")));

    let alarms: RoleAlarms = serde_json::from_value(json!({
        "active": [{"def": {"id": 72007, "name": "QUARANTINE_FULL", "severity": "Major", "text": "full"},
                    "scope": "collector-1", "raised_at": "2026-12-06T10:00:00Z", "detail": "1 MiB"}],
        "history": [{"at": "2026-12-06T10:00:00Z", "raised": true, "id": 72007, "name": "QUARANTINE_FULL",
                     "scope": "collector-1", "detail": "1 MiB"}]
    }))
    .unwrap();
    assert_eq!((alarms.active[0].def.id, alarms.history.len()), (72007, 1));

    let info = json!({"version": 2, "name": "core", "sha256": "00", "installed_at": "2026-12-06T10:00:00Z",
                      "actor": "erin via cli", "source_file": "core.toml", "rules": 3, "lists": {}});
    let versions: Vec<PolicyVersion> = serde_json::from_value(json!([info])).unwrap();
    assert_eq!(versions[0].actor, "erin via cli");
    let current: CurrentPolicy = serde_json::from_value(json!({
        "version": 2, "info": info,
        "meta": {"name": "core", "description": "", "schema": 2, "sha256": "00", "rules": 0, "enabled_rules": 0,
                 "lists": {}},
        "rules": [], "text": "name = \"core\"\n"
    }))
    .unwrap();
    assert_eq!((current.version, current.info.map(|i| i.version)), (Some(2), Some(2)));
    let history: Vec<HistoryEntry> = serde_json::from_value(json!([
        {"at": "2026-12-06T10:00:00Z", "event": "install", "version": 2, "previous": 1, "actor": "cli"},
        {"at": "2026-12-06T11:00:00Z", "event": "uninstall", "version": null, "previous": 2, "actor": "cli"}
    ]))
    .unwrap();
    assert_eq!((history[0].version, history[1].previous), (Some(2), Some(2)));
}
