//! The seed's ISO distribution: the active manager keeps the Current bundle staged on every
//! reachable server that does not run its release, so that the Director's preflight can pass.
//! It runs after every poll, so a manager failover or restart in the middle of the
//! distribution only delays it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_upgrade::bundle;
use tollgate_upgrade::release::Release;
use tollgate_upgrade::topology::AppType;

use super::Manager;

/// The pause after a failed transfer before the bundle is sent again.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// Starts staging wherever the Current bundle is missing (one transfer per server at a time).
pub fn ensure(m: &Arc<Manager>) {
    let (wanted, stale) = {
        let core = m.core();
        let director = &core.shared.director;
        let Some(target) = director.target() else { return };
        // Bundles of another release (an abandoned procedure) would fail the preflight's
        // "exactly one" rule: they are removed.
        let stale: Vec<(String, String)> = director
            .topology()
            .servers()
            .filter(|s| s.reachable && !s.busy)
            .flat_map(|s| {
                s.staged.iter().filter(|b| b.release != *target).map(|b| (s.hostname.clone(), b.file_name.clone()))
            })
            .collect();
        let wanted = director
            .topology()
            .clusters
            .iter()
            .flat_map(|c| {
                let acting_on = director.running_action(&c.name).and_then(|r| r.action.server.clone());
                c.servers
                    .iter()
                    .filter(move |s| {
                        s.reachable
                            && !s.busy
                            && !s.zombie
                            && s.running_release != *target
                            && !s.staged.iter().any(|b| b.release == *target)
                            && acting_on.as_deref() != Some(s.hostname.as_str())
                    })
                    .map(move |s| (c.application, s.hostname.clone(), target.clone()))
            })
            .collect::<Vec<(AppType, String, Release)>>();
        (wanted, stale)
    };
    for (hostname, file) in stale {
        let Some((_, server)) = m.cfg.server(&hostname) else { continue };
        let (m, agent) = (m.clone(), server.agent.clone());
        tokio::spawn(async move {
            let request = tollgate_api::agent::UnstageRequest { name: file.clone() };
            match m.agents.post::<_, serde::de::IgnoredAny>(&agent, tollgate_api::agent::UNSTAGE, &request).await {
                Ok(_) => tracing::info!(server = hostname, bundle = file, "bundle of another release unstaged"),
                Err(e) => tracing::warn!(server = hostname, bundle = file, error = %e, "bundle not unstaged"),
            }
        });
    }
    for (app, hostname, release) in wanted {
        // After a failed transfer, wait before sending the whole bundle again.
        let failed_recently = m
            .staging_failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hostname)
            .is_some_and(|t| t.elapsed() < RETRY_AFTER);
        if failed_recently || !m.staging.lock().unwrap_or_else(|e| e.into_inner()).insert(hostname.clone()) {
            continue;
        }
        let m = m.clone();
        tokio::spawn(async move {
            if let Err(e) = stage(&m, app, &hostname, &release).await {
                tracing::warn!(server = hostname, release = %release, error = e, "bundle not staged");
                m.staging_failed.lock().unwrap_or_else(|e| e.into_inner()).insert(hostname.clone(), Instant::now());
            }
            m.staging.lock().unwrap_or_else(|e| e.into_inner()).remove(&hostname);
        });
    }
}

/// The bundle file of `app` and `release` in the manager's repository.
fn bundle_file(dir: &std::path::Path, app: AppType, release: &Release) -> Option<PathBuf> {
    let bundles = bundle::bundles_in(dir).ok()?;
    bundles.into_iter().find(|(_, m)| m.application == app && m.version == *release).map(|(p, _)| p)
}

async fn stage(m: &Manager, app: AppType, hostname: &str, release: &Release) -> Result<(), String> {
    let (_, server) = m.cfg.server(hostname).ok_or("not configured")?;
    let path = bundle_file(&m.cfg.bundles, app, release)
        .ok_or_else(|| format!("no {app} bundle of {release} in {}", m.cfg.bundles.display()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bytes = tokio::fs::read(&path).await.map_err(|e| format!("{}: {e}", path.display()))?;
    m.agents.stage(&server.agent, &name, bytes).await.map_err(|e| e.message)?;
    tracing::info!(server = hostname, bundle = name, "bundle staged");
    Ok(())
}
