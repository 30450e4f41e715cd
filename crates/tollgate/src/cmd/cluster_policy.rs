//! `tollgate cluster-policy ...`: policy on the engine clusters through the active manager
//! (`tollgate_api::manager::policy`): versions, show, preview, push, rollback, uninstall.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use tollgate_api::BlockingClient;
use tollgate_api::manager::{
    PolicyCandidate, PolicyPreview, PolicyVersion, PolicyVersionSummary, PushAnswer, RollbackRequest, UninstallAnswer,
    UninstallRequest,
};

use crate::cli::{ClusterPolicyCommand, ClusterPolicyFile, Target};
use crate::cmd::upgrade::Managers;
use crate::config::Config;

/// The active manager, naming `actor` in `x-actor`.
fn manager(config: &Config, target: &Target, actor: Option<&str>) -> anyhow::Result<BlockingClient> {
    Ok(Managers::new(config, target).active()?.with_actor(actor))
}

/// The candidate of `p`: its text, the lists its `[lists]` declares (relative to the file),
/// replaced by `--list NAME=FILE`.
pub fn candidate(p: &ClusterPolicyFile) -> anyhow::Result<PolicyCandidate> {
    let text = std::fs::read_to_string(&p.file).with_context(|| format!("cannot read {}", p.file.display()))?;
    let dir = p.file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut files: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
    if let Ok(table) = toml::from_str::<toml::Table>(&text)
        && let Some(toml::Value::Table(lists)) = table.get("lists")
    {
        for (name, path) in lists {
            if let Some(path) = path.as_str() {
                files.insert(name.clone(), dir.join(path));
            }
        }
    }
    for l in &p.lists {
        let (name, file) = l.split_once('=').ok_or_else(|| anyhow!("--list {l:?}: give NAME=FILE"))?;
        files.insert(name.to_string(), file.into());
    }
    let mut lists = BTreeMap::new();
    for (name, file) in files {
        let list = std::fs::read_to_string(&file).with_context(|| {
            format!("list {name}: cannot read {} (give another with --list {name}=FILE)", file.display())
        })?;
        lists.insert(name, list);
    }
    let name = p.file.file_name().map(|n| n.to_string_lossy().into_owned());
    Ok(PolicyCandidate { policy: text, name, lists, clusters: p.clusters.clone() })
}

fn print_preview(p: &PolicyPreview) {
    println!("schema {}, {} rules", p.schema, p.rules);
    match (p.valid, &p.checked_by) {
        (Some(true), Some(by)) => println!("valid (checked by {by})"),
        (Some(false), Some(by)) => {
            println!("INVALID (checked by {by}):");
            for d in &p.diagnostics {
                let line = d.line.map(|l| format!(" line {l}")).unwrap_or_default();
                println!("  {}{line} {}: {}", d.file, d.field, d.message);
            }
        }
        _ => println!("no engine could check it now"),
    }
    for c in &p.clusters {
        let k = &c.changes.counts;
        let against = match c.installed_version {
            Some(v) => format!("v{v}"),
            None => format!("{:?}", c.baseline).to_lowercase(),
        };
        println!(
            "{:<16} against {against:<8} rules +{} -{} ~{}  list entries +{} -{}  ({})",
            c.cluster,
            k.rules_added,
            k.rules_removed,
            k.rules_changed,
            k.entries_added,
            k.entries_removed,
            c.servers.join(", ")
        );
        for (what, names) in [
            ("added", &c.changes.rules_added),
            ("removed", &c.changes.rules_removed),
            ("changed", &c.changes.rules_changed),
        ] {
            if !names.is_empty() {
                println!("  rules {what}: {}", names.join(", "));
            }
        }
        for l in &c.changes.lists {
            println!("  list {}: +{} -{}", l.list, l.added_count, l.removed_count);
        }
    }
    if let Some(r) = &p.refusal {
        println!("a push would be REFUSED: {r}");
    }
}

fn print_result(version: Option<u64>, clusters: &[tollgate_api::manager::ClusterResult]) {
    if let Some(v) = version {
        println!("version {v}");
    }
    for c in clusters {
        let servers: Vec<String> = c
            .servers
            .iter()
            .map(|s| match &s.error {
                None => format!("{} ok", s.hostname),
                Some(e) => format!("{} FAILED: {e}", s.hostname),
            })
            .collect();
        println!("{:<16} {}  {}", c.cluster, if c.ok { "done" } else { "FAILED" }, servers.join("; "));
    }
}

/// Runs a `cluster-policy` command.
pub fn run(config: &Config, command: &ClusterPolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        ClusterPolicyCommand::Versions { json, target } => {
            let list: Vec<PolicyVersionSummary> = manager(config, target, None)?.get("/api/v1/policy/versions")?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(ExitCode::SUCCESS);
            }
            for v in &list {
                let clusters: Vec<String> = v
                    .clusters
                    .iter()
                    .map(|c| format!("{}{}", c.cluster, if c.ok { "" } else { " (FAILED)" }))
                    .collect();
                println!(
                    "v{:<4} {:<16} {:<24} {}  {}",
                    v.version,
                    v.label,
                    v.actor,
                    v.at.format("%Y-%m-%d %H:%M:%S UTC"),
                    clusters.join(", ")
                );
            }
        }
        ClusterPolicyCommand::Show { version, target } => {
            let v: PolicyVersion = manager(config, target, None)?.get(&format!("/api/v1/policy/versions/{version}"))?;
            print!("{}", v.text);
        }
        ClusterPolicyCommand::Preview { policy, json, target } => {
            let c = candidate(policy)?;
            let p: PolicyPreview = manager(config, target, None)?.post("/api/v1/policy/preview", &c)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                print_preview(&p);
            }
            if p.refusal.is_some() || p.valid == Some(false) {
                return Ok(ExitCode::FAILURE);
            }
        }
        ClusterPolicyCommand::Push { policy, actor, target } => {
            let c = candidate(policy)?;
            let a: PushAnswer = manager(config, target, actor.as_deref())?.post("/api/v1/policy/push", &c)?;
            print_result(a.version, &a.clusters);
        }
        ClusterPolicyCommand::Rollback { version, clusters, actor, target } => {
            let req = RollbackRequest { version: *version, clusters: clusters.clone() };
            let a: PushAnswer = manager(config, target, actor.as_deref())?.post("/api/v1/policy/rollback", &req)?;
            print_result(a.version, &a.clusters);
        }
        ClusterPolicyCommand::Uninstall { clusters, confirm, actor, target } => {
            if clusters.is_empty() {
                bail!("name the engine clusters with --cluster");
            }
            let req = UninstallRequest { clusters: clusters.clone(), confirm: confirm.clone().unwrap_or_default() };
            let a: UninstallAnswer =
                manager(config, target, actor.as_deref())?.post("/api/v1/policy/uninstall", &req)?;
            print_result(Some(a.version), &a.clusters);
        }
    }
    Ok(ExitCode::SUCCESS)
}
