//! Cluster-wide policy: the versions the manager pushed (kept in the shared state, so the
//! standby mate has them), the preview of a candidate against what each engine cluster has,
//! push, roll-back to an earlier version and uninstall, each recorded as a version with every
//! server's result and in the audit log.
//!
//! A push installs the policy on every server of the target engine clusters through their
//! agents. It is refused before any server is touched when an engine's release cannot read
//! the policy's schema (mixed-version operation) or when the first engine finds it invalid;
//! otherwise every server is tried and the version records which took it. One policy
//! operation runs at a time.

use std::collections::BTreeMap;

use chrono::Utc;
use tollgate_api::manager::{
    Baseline, ClusterPreview, ClusterResult, PolicyCandidate, PolicyChangeKind, PolicyHistory, PolicyInstalled,
    PolicyPreview, PolicyVersion, PolicyVersionSummary, PushAnswer, RollbackRequest, SchemaBlocker, ServerResult,
    UNINSTALL_CONFIRMATION, UninstallAnswer, UninstallRequest,
};
use tollgate_api::{Detail, ErrorBody, ErrorCode};
use tollgate_config::manager::ClusterConfig;
use tollgate_upgrade::director::{AuditEntry, AuditOutcome};
use tollgate_upgrade::topology::AppType;

use crate::Manager;
use crate::ops::OpResult;
use crate::policy_diff::{self, PolicyShape, Side};

/// Most versions kept (the oldest are dropped): the history travels to the standby mate with
/// the rest of the state.
pub const MAX_VERSIONS: usize = 200;

/// Most bytes of policy text and lists the history keeps: it travels to the standby inside the
/// shared state, whose sync accepts 16 MiB, beside the audit and the upgrade log.
pub const MAX_HISTORY_BYTES: usize = 8 << 20;

/// Drops the oldest versions past [`MAX_VERSIONS`], then the oldest versions not in force on any
/// cluster while the texts and lists together exceed `max_bytes` (the newest version always
/// stays, and so does every version in force, which a preview compares against).
pub fn trim(history: &mut PolicyHistory, max_versions: usize, max_bytes: usize) {
    let excess = history.versions.len().saturating_sub(max_versions);
    history.versions.drain(..excess);
    let size = |v: &PolicyVersion| v.text.len() + v.lists.iter().map(|(k, t)| k.len() + t.len()).sum::<usize>();
    let mut total: usize = history.versions.iter().map(size).sum();
    let in_force: std::collections::BTreeSet<u64> = history.installed.values().flatten().copied().collect();
    let newest = history.versions.last().map(|v| v.summary.version);
    let mut keep = Vec::with_capacity(history.versions.len());
    for v in std::mem::take(&mut history.versions) {
        let droppable = Some(v.summary.version) != newest && !in_force.contains(&v.summary.version);
        if total > max_bytes && droppable {
            total -= size(&v);
        } else {
            keep.push(v);
        }
    }
    history.versions = keep;
}

/// The file name a policy gets when the candidate names none.
pub const DEFAULT_NAME: &str = "policy.toml";

fn refused(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, message)
}

fn must_be_active(m: &Manager) -> OpResult<()> {
    match m.is_active() {
        true => Ok(()),
        false => Err(refused(ErrorCode::Conflict, "this manager is the standby of its pair: use the active one")),
    }
}

/// Every version, newest first, without the policies' texts.
pub fn versions(m: &Manager) -> Vec<PolicyVersionSummary> {
    m.core().shared.policies.versions.iter().rev().map(|v| v.summary.clone()).collect()
}

/// One version with its policy.
pub fn version(m: &Manager, version: u64) -> OpResult<PolicyVersion> {
    let core = m.core();
    core.shared
        .policies
        .get(version)
        .cloned()
        .ok_or_else(|| refused(ErrorCode::NotFound, format!("there is no policy version {version}")))
}

/// The engine clusters named (none: every engine cluster); unknown names are refused together.
fn targets(m: &Manager, names: &[String]) -> OpResult<Vec<ClusterConfig>> {
    let engines: Vec<&ClusterConfig> = m.cfg.clusters.iter().filter(|c| c.application == AppType::Engine).collect();
    if names.is_empty() {
        if engines.is_empty() {
            return Err(refused(ErrorCode::NotFound, "the topology has no engine cluster"));
        }
        return Ok(engines.into_iter().cloned().collect());
    }
    let unknown: Vec<&str> =
        names.iter().filter(|n| !engines.iter().any(|c| c.name == **n)).map(String::as_str).collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = engines.iter().map(|c| c.name.as_str()).collect();
        return Err(refused(
            ErrorCode::NotFound,
            format!("no engine cluster named {unknown:?} (the engine clusters are {known:?})"),
        ));
    }
    Ok(engines.into_iter().filter(|c| names.contains(&c.name)).cloned().collect())
}

/// Reads a candidate's text; an unreadable one is `invalid`, naming file, line and field.
fn read_shape(name: &str, text: &str) -> OpResult<PolicyShape> {
    policy_diff::shape(text).map_err(|e| {
        let detail =
            Detail { file: name.to_string(), line: e.line, field: e.field.clone(), message: e.message.clone() };
        refused(ErrorCode::Invalid, format!("{name}: {e}; nothing was installed")).with_details(vec![detail])
    })
}

/// The servers of `clusters` whose release cannot read `schema` (or that cannot be asked).
async fn blockers(m: &Manager, clusters: &[ClusterConfig], schema: i64) -> Vec<SchemaBlocker> {
    let mut asks = tokio::task::JoinSet::new();
    for c in clusters {
        for server in &c.servers {
            let (agents, cluster, server) = (m.agents.clone(), c.name.clone(), server.clone());
            asks.spawn(async move { (cluster, server.hostname, agents.status(&server.agent).await) });
        }
    }
    let mut out: Vec<SchemaBlocker> = asks
        .join_all()
        .await
        .into_iter()
        .filter_map(|(cluster, hostname, status)| match status {
            Ok(st) if st.max_policy_schema.is_none_or(|max| max >= schema) => None,
            Ok(st) => {
                let max = st.max_policy_schema.unwrap_or_default();
                let release = st.release.clone();
                Some(SchemaBlocker {
                    reason: format!(
                        "{hostname} ({cluster}) runs {} which reads policy schema {max} at most",
                        release.as_deref().unwrap_or("?")
                    ),
                    hostname,
                    cluster,
                    release,
                    max_policy_schema: Some(max),
                })
            }
            Err(e) => Some(SchemaBlocker {
                reason: format!("{hostname} ({cluster}) cannot be reached: {e}"),
                hostname,
                cluster,
                release: None,
                max_policy_schema: None,
            }),
        })
        .collect();
    out.sort_by(|a, b| (&a.cluster, &a.hostname).cmp(&(&b.cluster, &b.hostname)));
    out
}

fn refusal_text(schema: i64, blockers: &[SchemaBlocker]) -> String {
    let why: Vec<&str> = blockers.iter().map(|b| b.reason.as_str()).collect();
    format!(
        "policy refused, nothing installed: it uses schema {schema}, but {}; finish the upgrade first",
        why.join("; ")
    )
}

/// The policy text a cluster's engine reports (None: no server answered).
async fn engine_text(m: &Manager, cluster: &ClusterConfig) -> Option<String> {
    let path = tollgate_api::agent::role_path("api/v1/policy");
    for server in &cluster.servers {
        if let Ok(current) = m.agents.get::<serde_json::Value>(&server.agent, &path).await {
            return Some(current["text"].as_str().unwrap_or_default().to_string());
        }
    }
    None
}

/// What pushing `candidate` would change on each target cluster, and whether it would be
/// refused (mixed versions).
pub async fn preview(m: &Manager, candidate: PolicyCandidate) -> OpResult<PolicyPreview> {
    let name = candidate.name.clone().unwrap_or_else(|| DEFAULT_NAME.into());
    let new = read_shape(&name, &candidate.policy)?;
    let clusters = targets(m, &candidate.clusters)?;
    let blockers = blockers(m, &clusters, new.schema).await;
    let new_side = Side { shape: &new, lists: &candidate.lists };
    let mut out = Vec::new();
    for c in &clusters {
        let installed = m.core().shared.policies.installed.get(&c.name).cloned();
        let kept = installed.flatten().and_then(|v| m.core().shared.policies.get(v).cloned());
        let (baseline, old_text, old_lists) = match (installed, kept) {
            (Some(Some(_)), Some(v)) => (Baseline::Manager, Some(v.text), v.lists),
            (Some(None), _) => (Baseline::Nothing, None, BTreeMap::new()),
            _ => match engine_text(m, c).await {
                Some(t) if t.trim().is_empty() => (Baseline::Nothing, None, BTreeMap::new()),
                Some(t) => (Baseline::Engine, Some(t), BTreeMap::new()),
                None => (Baseline::Unknown, None, BTreeMap::new()),
            },
        };
        // An installed text this manager cannot read counts as nothing (every rule added).
        let old_shape = old_text.as_deref().and_then(|t| policy_diff::shape(t).ok());
        let old_side = old_shape.as_ref().map(|shape| Side { shape, lists: &old_lists });
        out.push(ClusterPreview {
            cluster: c.name.clone(),
            servers: c.servers.iter().map(|s| s.hostname.clone()).collect(),
            installed_version: m.core().shared.policies.installed.get(&c.name).cloned().flatten(),
            baseline,
            changes: policy_diff::changes(old_side.as_ref(), &new_side),
        });
    }
    let check = check(m, &clusters, &name, &candidate).await;
    Ok(PolicyPreview {
        schema: new.schema,
        rules: new.rules.len(),
        clusters: out,
        refusal: (!blockers.is_empty()).then(|| refusal_text(new.schema, &blockers)),
        blockers,
        valid: check.as_ref().map(|(_, d)| d.is_empty()),
        checked_by: check.as_ref().map(|(h, _)| h.clone()),
        diagnostics: check.map(|(_, d)| d).unwrap_or_default(),
    })
}

/// Has the first engine that answers (of the target clusters, in order) check the candidate:
/// the server and the diagnostics (none: valid); `None` when no engine could check it.
async fn check(
    m: &Manager,
    clusters: &[ClusterConfig],
    name: &str,
    c: &PolicyCandidate,
) -> Option<(String, Vec<Detail>)> {
    for server in clusters.iter().flat_map(|c| &c.servers) {
        match m.agents.check_policy(&server.agent, name, &c.policy, &c.lists).await {
            Ok(_) => return Some((server.hostname.clone(), Vec::new())),
            Err(e) if e.code == Some(ErrorCode::Invalid) => {
                let details = match e.details.is_empty() {
                    true => vec![Detail { file: name.into(), line: None, field: String::new(), message: e.message }],
                    false => e.details,
                };
                return Some((server.hostname.clone(), details));
            }
            Err(e) => tracing::debug!(server = server.hostname, error = %e, "the policy check did not answer"),
        }
    }
    None
}

/// What a policy operation records.
struct Record<'a> {
    kind: PolicyChangeKind,
    label: String,
    rollback_of: Option<u64>,
    actor: &'a str,
    name: String,
    shape: Option<&'a PolicyShape>,
    text: String,
    lists: BTreeMap<String, String>,
    clusters: Vec<ClusterResult>,
}

/// Records a version (and an audit entry), shares it with the mate; its number.
fn record(m: &Manager, r: Record<'_>) -> u64 {
    let mut core = m.core();
    let history = &mut core.shared.policies;
    let version = history.next_version();
    let ok = r.clusters.iter().all(|c| c.ok);
    for c in r.clusters.iter().filter(|c| c.ok) {
        let now = if r.kind == PolicyChangeKind::Uninstall { None } else { Some(version) };
        history.installed.insert(c.cluster.clone(), now);
    }
    let names: Vec<&str> = r.clusters.iter().map(|c| c.cluster.as_str()).collect();
    let failed: Vec<String> =
        r.clusters.iter().flat_map(|c| c.servers.iter().filter(|s| !s.ok).map(|s| s.hostname.clone())).collect();
    let audit = AuditEntry {
        at: Utc::now(),
        user: r.actor.to_string(),
        operation: format!("Policy {} (version {version}) on {}", r.label, names.join(", ")),
        outcome: if ok { AuditOutcome::Accepted } else { AuditOutcome::Refused },
        detail: match (ok, r.kind) {
            (false, _) => format!("not done on {}", failed.join(", ")),
            (true, PolicyChangeKind::Uninstall) => format!("{UNINSTALL_CONFIRMATION} there"),
            (true, _) => format!("{} ({} rules)", r.name, r.shape.map_or(0, |s| s.rules.len())),
        },
    };
    history.versions.push(PolicyVersion {
        summary: PolicyVersionSummary {
            version,
            kind: r.kind,
            label: r.label,
            rollback_of: r.rollback_of,
            actor: r.actor.to_string(),
            at: Utc::now(),
            name: r.name,
            schema: r.shape.map(|s| s.schema),
            rules: r.shape.map_or(0, |s| s.rules.len()),
            list_names: r.shape.map(|s| s.lists.iter().cloned().collect()).unwrap_or_default(),
            clusters: r.clusters,
            ok,
        },
        text: r.text,
        lists: r.lists,
    });
    trim(history, MAX_VERSIONS, MAX_HISTORY_BYTES);
    core.shared.audit.push(audit);
    core.shared.generation += 1;
    m.persist(&core.shared);
    m.changed.notify_one();
    version
}

/// Records a refused operation in the audit log only.
fn audit_refusal(m: &Manager, actor: &str, operation: String, why: &ErrorBody) {
    let mut core = m.core();
    core.shared.audit.push(AuditEntry {
        at: Utc::now(),
        user: actor.to_string(),
        operation,
        outcome: AuditOutcome::Refused,
        detail: why.message.clone(),
    });
    core.shared.generation += 1;
    m.persist(&core.shared);
    m.changed.notify_one();
}

/// The answer of an install attempt over the target clusters.
struct Installed {
    clusters: Vec<ClusterResult>,
    installed: Vec<PolicyInstalled>,
}

/// Installs on every server of `clusters`; an `invalid` answer of the first server stops it
/// all (the same text is invalid everywhere), anything else is recorded per server.
async fn install_everywhere(
    m: &Manager,
    clusters: &[ClusterConfig],
    name: &str,
    text: &str,
    lists: &BTreeMap<String, String>,
    actor: &str,
) -> OpResult<Installed> {
    let mut out = Installed { clusters: Vec::new(), installed: Vec::new() };
    let mut first = true;
    for c in clusters {
        let mut servers = Vec::new();
        for server in &c.servers {
            let result = m.agents.install_policy(&server.agent, name, text, lists, actor).await;
            match result {
                Ok(v) => {
                    out.installed.push(PolicyInstalled { hostname: server.hostname.clone(), version: v.version });
                    servers.push(ServerResult {
                        hostname: server.hostname.clone(),
                        ok: true,
                        engine_version: v.version,
                        error: None,
                    });
                }
                Err(e) if first && e.code == Some(ErrorCode::Invalid) => {
                    let message = format!("{}: {}", server.hostname, e.message);
                    return Err(refused(ErrorCode::Invalid, message).with_details(e.details));
                }
                Err(e) => servers.push(ServerResult {
                    hostname: server.hostname.clone(),
                    ok: false,
                    engine_version: None,
                    error: Some(e.message),
                }),
            }
            first = false;
        }
        out.clusters.push(ClusterResult { cluster: c.name.clone(), ok: servers.iter().all(|s| s.ok), servers });
    }
    Ok(out)
}

/// The failure of a recorded version that some server did not take.
fn incomplete(version: u64, clusters: &[ClusterResult]) -> ErrorBody {
    let failed: Vec<String> = clusters
        .iter()
        .flat_map(|c| c.servers.iter().filter(|s| !s.ok))
        .map(|s| format!("{}: {}", s.hostname, s.error.as_deref().unwrap_or("failed")))
        .collect();
    let done: Vec<&str> =
        clusters.iter().flat_map(|c| c.servers.iter().filter(|s| s.ok)).map(|s| s.hostname.as_str()).collect();
    refused(
        ErrorCode::Upstream,
        format!(
            "policy version {version} not installed everywhere: {} (installed on: {done:?}); each server's result: GET /api/v1/policy/versions/{version}",
            failed.join("; ")
        ),
    )
}

/// Pushes a policy text with its lists to `clusters`, recorded as `kind`.
async fn push_text(
    m: &Manager,
    actor: &str,
    candidate: PolicyCandidate,
    kind: PolicyChangeKind,
    rollback_of: Option<u64>,
) -> OpResult<PushAnswer> {
    must_be_active(m)?;
    let _one_at_a_time = m.policy_op.lock().await;
    let name = candidate.name.clone().unwrap_or_else(|| DEFAULT_NAME.into());
    let label = match rollback_of {
        Some(v) => format!("rollback to v{v}"),
        None => "push".to_string(),
    };
    let shape = read_shape(&name, &candidate.policy)?;
    let clusters = targets(m, &candidate.clusters)?;
    let cluster_names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    let operation = format!("Policy {label} on {}", cluster_names.join(", "));
    let blockers = blockers(m, &clusters, shape.schema).await;
    if !blockers.is_empty() {
        let e = refused(ErrorCode::Conflict, refusal_text(shape.schema, &blockers));
        audit_refusal(m, actor, operation, &e);
        return Err(e);
    }
    let done = match install_everywhere(m, &clusters, &name, &candidate.policy, &candidate.lists, actor).await {
        Ok(done) => done,
        Err(e) => {
            audit_refusal(m, actor, operation, &e);
            return Err(e);
        }
    };
    let ok = done.clusters.iter().all(|c| c.ok);
    let version = record(
        m,
        Record {
            kind,
            label,
            rollback_of,
            actor,
            name,
            shape: Some(&shape),
            text: candidate.policy,
            lists: candidate.lists,
            clusters: done.clusters.clone(),
        },
    );
    tracing::info!(version, actor, clusters = ?cluster_names, ok, "policy pushed");
    if !ok {
        return Err(incomplete(version, &done.clusters));
    }
    Ok(PushAnswer { schema: shape.schema, installed: done.installed, version: Some(version), clusters: done.clusters })
}

/// Pushes a candidate to its clusters (every engine cluster when it names none).
pub async fn push(m: &Manager, actor: &str, candidate: PolicyCandidate) -> OpResult<PushAnswer> {
    push_text(m, actor, candidate, PolicyChangeKind::Push, None).await
}

/// Pushes an earlier version's policy again, recorded as a new version "rollback to vN".
pub async fn rollback(m: &Manager, actor: &str, req: RollbackRequest) -> OpResult<PushAnswer> {
    let earlier = version(m, req.version)?;
    if earlier.summary.kind == PolicyChangeKind::Uninstall {
        return Err(refused(
            ErrorCode::Conflict,
            format!("version {} is an uninstall: roll back to a version that installed a policy", req.version),
        ));
    }
    let clusters = match req.clusters.is_empty() {
        true => earlier.summary.clusters.iter().map(|c| c.cluster.clone()).collect(),
        false => req.clusters,
    };
    let candidate =
        PolicyCandidate { policy: earlier.text, name: Some(earlier.summary.name), lists: earlier.lists, clusters };
    push_text(m, actor, candidate, PolicyChangeKind::Rollback, Some(req.version)).await
}

/// Removes the policy from the clusters named: every call is allowed there afterwards, so the
/// request must say so in `confirm`.
pub async fn uninstall(m: &Manager, actor: &str, req: UninstallRequest) -> OpResult<UninstallAnswer> {
    if req.confirm.trim() != UNINSTALL_CONFIRMATION {
        return Err(refused(
            ErrorCode::ConfirmationRequired,
            format!(
                "uninstalling the policy means {UNINSTALL_CONFIRMATION} on {}: send confirm = {UNINSTALL_CONFIRMATION:?} to do it",
                if req.clusters.is_empty() { "the clusters named".to_string() } else { req.clusters.join(", ") }
            ),
        ));
    }
    if req.clusters.is_empty() {
        return Err(refused(ErrorCode::BadRequest, "name the engine clusters to uninstall the policy from"));
    }
    must_be_active(m)?;
    let _one_at_a_time = m.policy_op.lock().await;
    let clusters = targets(m, &req.clusters)?;
    let mut results = Vec::new();
    for c in &clusters {
        let mut servers = Vec::new();
        for server in &c.servers {
            let r = m.agents.uninstall_policy(&server.agent, actor).await;
            servers.push(ServerResult {
                hostname: server.hostname.clone(),
                ok: r.is_ok(),
                engine_version: None,
                error: r.err().map(|e| e.message),
            });
        }
        results.push(ClusterResult { cluster: c.name.clone(), ok: servers.iter().all(|s| s.ok), servers });
    }
    let version = record(
        m,
        Record {
            kind: PolicyChangeKind::Uninstall,
            label: "uninstall".into(),
            rollback_of: None,
            actor,
            name: String::new(),
            shape: None,
            text: String::new(),
            lists: BTreeMap::new(),
            clusters: results.clone(),
        },
    );
    tracing::warn!(version, actor, clusters = ?req.clusters, "policy uninstalled: every call is allowed there");
    if !results.iter().all(|c| c.ok) {
        return Err(incomplete(version, &results));
    }
    Ok(UninstallAnswer { version, clusters: results })
}

#[cfg(test)]
mod tests {

    fn version(n: u64, bytes: usize) -> PolicyVersion {
        PolicyVersion {
            summary: PolicyVersionSummary {
                version: n,
                kind: PolicyChangeKind::Push,
                label: format!("v{n}"),
                rollback_of: None,
                actor: "t".into(),
                at: chrono::Utc::now(),
                name: "p.toml".into(),
                schema: Some(1),
                rules: 1,
                list_names: Vec::new(),
                clusters: Vec::new(),
                ok: true,
            },
            text: "x".repeat(bytes),
            lists: BTreeMap::new(),
        }
    }

    #[test]
    fn the_history_keeps_under_its_byte_cap_but_never_drops_the_newest_or_a_version_in_force() {
        let mut h = PolicyHistory { versions: (1..=6).map(|n| version(n, 100)).collect(), ..Default::default() };
        h.installed.insert("east".into(), Some(2));
        h.installed.insert("west".into(), None);
        trim(&mut h, 200, 350);
        let left: Vec<u64> = h.versions.iter().map(|v| v.summary.version).collect();
        // 600 bytes: 1, 3 and 4 go (oldest first, 2 is in force on east); 5 and 6 stay.
        assert_eq!(left, [2, 5, 6]);
        assert_eq!(h.next_version(), 7, "numbers are never reused");
        // Past the count, the oldest go whatever their size.
        trim(&mut h, 2, usize::MAX);
        assert_eq!(h.versions.iter().map(|v| v.summary.version).collect::<Vec<_>>(), [5, 6]);
        // A single version larger than the cap stays: it is the newest.
        let mut h = PolicyHistory { versions: vec![version(9, 1000)], ..Default::default() };
        trim(&mut h, 200, 10);
        assert_eq!(h.versions.len(), 1);
    }

    use super::*;
    use crate::testing;

    fn manager(dir: &std::path::Path) -> std::sync::Arc<Manager> {
        let cfg = testing::config(dir, None, |_| "http://127.0.0.1:9".into());
        testing::manager(dir, cfg, "1.0.0")
    }

    fn result(cluster: &str, ok: bool) -> ClusterResult {
        let server = ServerResult {
            hostname: format!("{cluster}-a"),
            ok,
            engine_version: ok.then_some(1),
            error: (!ok).then(|| "refused".to_string()),
        };
        ClusterResult { cluster: cluster.into(), ok, servers: vec![server] }
    }

    fn push_record<'a>(shape: &'a PolicyShape, clusters: Vec<ClusterResult>) -> Record<'a> {
        Record {
            kind: PolicyChangeKind::Push,
            label: "push".into(),
            rollback_of: None,
            actor: "alice via cli",
            name: "p.toml".into(),
            shape: Some(shape),
            text: "schema = 1\n".into(),
            lists: BTreeMap::new(),
            clusters,
        }
    }

    #[tokio::test]
    async fn an_uninstall_without_the_confirmation_is_refused_before_any_server_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        for confirm in ["", "yes", "every call"] {
            let req = UninstallRequest { clusters: vec!["engines".into()], confirm: confirm.into() };
            let e = uninstall(&m, "alice", req).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::ConfirmationRequired, "{confirm:?}: {}", e.message);
            assert!(e.message.contains(UNINSTALL_CONFIRMATION) && e.message.contains("engines"), "{}", e.message);
        }
        assert!(m.core().shared.policies.versions.is_empty(), "nothing recorded");
        // Confirmed but with no cluster named: refused too (never "all").
        let req = UninstallRequest { clusters: vec![], confirm: UNINSTALL_CONFIRMATION.into() };
        assert_eq!(uninstall(&m, "alice", req).await.unwrap_err().code, ErrorCode::BadRequest);
    }

    #[tokio::test]
    async fn a_standby_manager_refuses_to_push_and_unknown_clusters_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let c = PolicyCandidate { policy: "schema = 1\n".into(), ..Default::default() };
        assert_eq!(push(&m, "alice", c).await.unwrap_err().code, ErrorCode::Conflict, "a new manager is standby");
        let e = targets(&m, &["engines".into(), "nowhere".into(), "mgr".into()]).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert!(
            e.message.contains(r#"["nowhere", "mgr"]"#),
            "both unknown names, not the engine cluster: {}",
            e.message
        );
        let e = preview(&m, PolicyCandidate { policy: "schema = \n".into(), ..Default::default() }).await.unwrap_err();
        assert_eq!((e.code, e.details[0].line), (ErrorCode::Invalid, Some(1)), "{e:?}");
    }

    #[test]
    fn versions_are_numbered_shared_and_kept_with_what_is_in_force_per_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let shape = policy_diff::shape("schema = 1\n[[rule]]\nname = \"r\"\naction = \"allow\"\n").unwrap();
        let generation = m.core().shared.generation;
        let v1 = record(&m, push_record(&shape, vec![result("engines", true)]));
        let v2 = record(&m, push_record(&shape, vec![result("engines", false)]));
        assert_eq!((v1, v2), (1, 2));
        assert!(m.core().shared.generation > generation, "the standby takes a newer generation only");
        let core = m.core();
        let h = &core.shared.policies;
        assert_eq!(h.installed.get("engines"), Some(&Some(1)), "a failed push leaves the version in force");
        assert!(!h.get(2).unwrap().summary.ok);
        assert_eq!(h.get(1).unwrap().summary.rules, 1);
        assert!(core.shared.audit.iter().any(|a| a.outcome == AuditOutcome::Refused && a.detail.contains("engines-a")));
        drop(core);
        // Kept on disk: a restarted manager has them.
        let again = manager(dir.path());
        assert_eq!(again.core().shared.policies.versions.len(), 2);
        // The oldest go past the limit.
        for _ in 0..MAX_VERSIONS {
            record(&m, push_record(&shape, vec![result("engines", true)]));
        }
        let core = m.core();
        assert_eq!(core.shared.policies.versions.len(), MAX_VERSIONS);
        assert_eq!(core.shared.policies.versions[0].summary.version, 3);
    }

    #[test]
    fn a_state_of_an_earlier_release_without_policy_versions_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let mut json = serde_json::to_value(&m.core().shared).unwrap();
        json.as_object_mut().unwrap().remove("policies");
        let snapshot: crate::Snapshot = serde_json::from_value(json).unwrap();
        assert!(snapshot.policies.versions.is_empty());
    }
}
