//! Topology: sites, segments, clusters and servers drawn as nested SVG boxes (a site holds its
//! segments side by side, a segment its clusters, a cluster its servers one under another),
//! each server with its HA state (Active / Standby / Spare / Forced Standby, or OOS / Offline /
//! Zombie), release and most severe alarm, linked to its own page: its alarms, releases,
//! staged bundles and health (its agent's syscheck).
//!
//! The data is the manager's status ([`tollgate_manager::ops::status`]); the server page adds
//! the system's health ([`tollgate_manager::ops::health`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use tollgate_api::manager::{ClusterView, ServerView, SystemStatus};
use tollgate_manager::ops;
use tollgate_upgrade::topology::ServerState;

use super::{ConsoleUser, error_page, frame, respond};
use crate::manager_api::ManagerApi;

/// How long the Topology page waits for the agents' health reports.
const HEALTH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// A server's box.
const SERVER_W: u32 = 200;
const SERVER_H: u32 = 52;
/// Space inside a box around what it holds, and between boxes side by side.
const PAD: u32 = 10;
const GAP: u32 = 12;
/// The height of a box's heading.
const HEAD: u32 = 26;

/// Where a box is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// A drawn cluster: its box and its servers' boxes, in the status's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBox {
    /// Index into the status's clusters.
    pub cluster: usize,
    /// Its box.
    pub rect: Rect,
    /// Its servers' boxes.
    pub servers: Vec<Rect>,
}

/// A drawn segment of a site (`name` empty: the clusters of the site without a segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentBox {
    /// Its name.
    pub name: String,
    /// Its box.
    pub rect: Rect,
    /// Its clusters.
    pub clusters: Vec<ClusterBox>,
}

/// A drawn site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteBox {
    /// Its name.
    pub name: String,
    /// Its box.
    pub rect: Rect,
    /// Its segments.
    pub segments: Vec<SegmentBox>,
}

/// The whole drawing: its sites and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Sites, one under another (by name).
    pub sites: Vec<SiteBox>,
    /// Width of the drawing.
    pub width: u32,
    /// Height of the drawing.
    pub height: u32,
}

/// Lays `clusters` out: grouped by site (a cluster's site, or its first server's when the
/// cluster names none; "(no site)" otherwise), then by segment; clusters keep their order.
pub fn layout(clusters: &[ClusterView]) -> Layout {
    let mut groups: BTreeMap<String, BTreeMap<String, Vec<usize>>> = BTreeMap::new();
    for (i, c) in clusters.iter().enumerate() {
        let site = Some(c.site.as_str())
            .filter(|s| !s.is_empty())
            .or_else(|| c.servers.first().map(|s| s.site.as_str()).filter(|s| !s.is_empty()))
            .unwrap_or("(no site)")
            .to_string();
        let segment = c.segment.clone().unwrap_or_default();
        groups.entry(site).or_default().entry(segment).or_default().push(i);
    }
    let mut sites = Vec::new();
    let (mut y, mut width) = (PAD, 0);
    for (site, segments) in groups {
        let mut seg_boxes = Vec::new();
        let mut x = PAD + PAD;
        let seg_y = y + HEAD;
        let mut site_inner_h = 0;
        for (segment, members) in segments {
            let mut cx = x + PAD;
            let cy = seg_y + HEAD;
            let mut boxes = Vec::new();
            let mut tallest = 0;
            for i in members {
                let n = clusters[i].servers.len() as u32;
                let h = HEAD + n.max(1) * (SERVER_H + PAD) + PAD / 2;
                let servers = (0..n)
                    .map(|k| Rect { x: cx + PAD, y: cy + HEAD + k * (SERVER_H + PAD), w: SERVER_W, h: SERVER_H })
                    .collect();
                let rect = Rect { x: cx, y: cy, w: SERVER_W + 2 * PAD, h };
                tallest = tallest.max(h);
                cx += rect.w + GAP;
                boxes.push(ClusterBox { cluster: i, rect, servers });
            }
            let rect = Rect { x, y: seg_y, w: cx - GAP + PAD - x, h: HEAD + tallest + PAD };
            site_inner_h = site_inner_h.max(rect.h);
            x += rect.w + GAP;
            seg_boxes.push(SegmentBox { name: segment, rect, clusters: boxes });
        }
        let rect = Rect { x: PAD, y, w: x - GAP + PAD - PAD, h: HEAD + site_inner_h + PAD };
        width = width.max(rect.x + rect.w + PAD);
        y += rect.h + GAP;
        sites.push(SiteBox { name: site, rect, segments: seg_boxes });
    }
    Layout { sites, width: width.max(2 * PAD), height: y.max(2 * PAD) }
}

/// A server's HA state as drawn: "Forced Standby" when held there, else its state.
pub fn ha_state(s: &ServerView) -> String {
    if s.forced_standby || s.role == ServerState::ForcedStandby {
        "Forced Standby".to_string()
    } else {
        s.role.to_string()
    }
}

/// A server's health as drawn: its agent does not answer, every check passes, a check fails,
/// or not known (the health report did not come in time).
fn health_text(s: &ServerView, health: Option<bool>) -> &'static str {
    match (s.reachable, health) {
        (false, _) => "agent does not answer",
        (true, Some(true)) => "health OK",
        (true, Some(false)) => "a health check fails",
        (true, None) => "health not known",
    }
}

fn server_box(s: &ServerView, cluster: &str, r: Rect, health: Option<bool>) -> Markup {
    let ha = ha_state(s);
    let severity = s.alarm_severity.map(|v| v.to_string());
    let class = format!(
        "server ha-{}{}{}{}",
        ha.replace(' ', ""),
        if s.forced_standby { " forced" } else { "" },
        if s.reachable { "" } else { " unreachable" },
        if health == Some(false) { " unhealthy" } else { "" }
    );
    let alarm = severity.clone().unwrap_or_else(|| "no alarm".into());
    let health_ok = health.map(|h| h.to_string()).unwrap_or_default();
    let health = health_text(s, health);
    html! {
        a href=(format!("/topology/{}", crate::ui::urlencode(&s.hostname))) {
            g class=(class) data-server=(s.hostname) data-cluster=(cluster) data-ha=(ha) data-release=(s.running_release)
              data-alarm=(severity.clone().unwrap_or_default()) data-reachable=(s.reachable) data-health=(health_ok) {
                title { (s.hostname) ": " (ha) ", release " (s.running_release) ", " (alarm) ", " (health) }
                rect x=(r.x) y=(r.y) width=(r.w) height=(r.h) rx="4" {}
                text.label x=(r.x + 8) y=(r.y + 18) { (s.hostname) }
                text.small x=(r.x + 8) y=(r.y + 34) { (ha) " · " (s.running_release) }
                text.small x=(r.x + 8) y=(r.y + 47) { (health) }
                circle class=(format!("dot-{}", severity.as_deref().unwrap_or("none"))) cx=(r.x + r.w - 12) cy=(r.y + 14) r="6" {}
            }
        }
    }
}

/// The drawing of `status`, with each server's `health` (hostname → every check passes) where
/// known.
pub fn drawing(status: &SystemStatus, health: &HashMap<String, bool>) -> Markup {
    let l = layout(&status.clusters);
    html! {
        svg #topology viewBox=(format!("0 0 {} {}", l.width, l.height)) width=(l.width) role="group"
            aria-label="Topology: sites, segments, clusters and servers" {
            @for site in &l.sites {
                g.site data-site=(site.name) {
                    rect x=(site.rect.x) y=(site.rect.y) width=(site.rect.w) height=(site.rect.h) rx="6" {}
                    text.label x=(site.rect.x + 8) y=(site.rect.y + 18) { "Site " (site.name) }
                    @for seg in &site.segments {
                        g.segment data-segment=(seg.name) {
                            rect x=(seg.rect.x) y=(seg.rect.y) width=(seg.rect.w) height=(seg.rect.h) rx="5" {}
                            text.small x=(seg.rect.x + 8) y=(seg.rect.y + 17) {
                                @if seg.name.is_empty() { "(no segment)" } @else { "Segment " (seg.name) }
                            }
                            @for cb in &seg.clusters {
                                @let c = &status.clusters[cb.cluster];
                                g.cluster data-cluster=(c.name) data-status=(c.status.to_string()) {
                                    rect x=(cb.rect.x) y=(cb.rect.y) width=(cb.rect.w) height=(cb.rect.h) rx="4" {}
                                    text.label x=(cb.rect.x + 8) y=(cb.rect.y + 18) {
                                        (c.name) " "
                                        tspan.small { (c.application.to_string()) " · " (c.status.to_string()) }
                                    }
                                    @for (s, r) in c.servers.iter().zip(&cb.servers) {
                                        (server_box(s, &c.name, *r, health.get(&s.hostname).copied()))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /topology`.
pub(super) async fn page(State(s): State<Arc<ManagerApi>>, user: ConsoleUser) -> Response {
    let status = ops::status(&s.manager);
    // Every agent's syscheck, asked at once; the page does not wait longer than HEALTH_WAIT.
    let health: HashMap<String, bool> = tokio::time::timeout(HEALTH_WAIT, ops::health(&s.manager))
        .await
        .map(|h| h.servers.into_iter().filter(|s| s.health.is_some()).map(|s| (s.hostname, s.ok)).collect())
        .unwrap_or_default();
    let servers: usize = status.clusters.iter().map(|c| c.servers.len()).sum();
    let body = html! {
        div.topology {
            p.muted #summary {
                (status.clusters.len()) " clusters, " (servers) " servers · answered by "
                (status.manager.hostname) " (" (status.manager.ha.to_string()) ", release " (status.manager.release) ")"
                @if status.mixed_version { " · " strong.err { "the system runs more than one release" } }
            }
            div.legend {
                span { "Box: HA state (green Active, blue Standby, grey Spare, amber Forced Standby; red: a health check fails; red dashed: agent does not answer)" }
                span { "Dot: most severe alarm (green: none)" }
                span { "Select a server for its alarms, releases and health." }
            }
            (drawing(&status, &health))
            h2 { "Servers" }
            table #servers {
                thead { tr { th { "Server" } th { "Cluster" } th { "Site" } th { "HA state" } th { "Release" } th { "Alarm" } th { "Health" } } }
                tbody {
                    @for c in &status.clusters {
                        @for sv in &c.servers {
                            tr data-server=(sv.hostname) {
                                td { a href=(format!("/topology/{}", crate::ui::urlencode(&sv.hostname))) { (sv.hostname) } }
                                td { (c.name) }
                                td { (sv.site) }
                                td.ha { (ha_state(sv)) }
                                td { (sv.running_release) }
                                td { @if let Some(sev) = sv.alarm_severity { span class=(format!("sev sev-{sev}")) { (sev.to_string()) } } @else { "—" } }
                                td.health { @match (sv.reachable, health.get(&sv.hostname)) {
                                    (true, Some(true)) => span.ok { (health_text(sv, Some(true))) },
                                    (r, h) => span class=[(!r || h == Some(&false)).then_some("err")] { (health_text(sv, h.copied())) },
                                } }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, None, frame("Topology", "Topology", Some(&user), body, None))
}

/// `GET /topology/{server}`: one server's page.
pub(super) async fn server_page(
    State(s): State<Arc<ManagerApi>>,
    user: ConsoleUser,
    Path(hostname): Path<String>,
) -> Response {
    let status = ops::status(&s.manager);
    let found =
        status.clusters.iter().find_map(|c| c.servers.iter().find(|sv| sv.hostname == hostname).map(|sv| (c, sv)));
    let Some((cluster, sv)) = found else {
        return error_page(
            StatusCode::NOT_FOUND,
            Some(&user),
            "There is no such server",
            html! { p { "No cluster of this manager has a server named " code #path { (hostname) } "." } },
        );
    };
    let health = ops::health(&s.manager).await.servers.into_iter().find(|h| h.hostname == hostname);
    let alarms: Vec<_> = status.server_alarms.iter().filter(|a| a.server == hostname).map(|a| &a.alarm).collect();
    let director: Vec<_> = status.alarms.iter().filter(|a| a.scope == hostname || a.scope == cluster.name).collect();
    let body = html! {
        div.topology #server data-server=(sv.hostname) {
            p { a href="/topology" { "← Topology" } }
            div.card {
                dl.facts {
                    dt { "Cluster" } dd #cluster { (cluster.name) " (" (cluster.application.to_string()) ")" }
                    dt { "Site" } dd { (sv.site) }
                    dt { "Segment" } dd { (cluster.segment.as_deref().unwrap_or("—")) }
                    dt { "HA state" } dd #ha-state { (ha_state(sv)) }
                    dt { "Running release" } dd #running { (sv.running_release) }
                    dt { "Previous release" } dd { (sv.prev_release.as_deref().unwrap_or("—")) }
                    dt { "Up to date" } dd { (sv.up_to_date.to_string()) }
                    dt { "Staged" } dd #staged {
                        @if sv.staged.is_empty() { "nothing" }
                        @for b in &sv.staged { span { (b.release) " (" (b.file_name) ") " } }
                    }
                    dt { "Upgrade operation" } dd { (sv.operation.text()) }
                    dt { "Agent" } dd { @if sv.reachable { "answers" } @else { span.err { "does not answer" } } }
                }
            }
            h2 { "Alarms" }
            table #server-alarms {
                thead { tr { th { "ID" } th { "Name" } th { "Severity" } th { "Scope" } th { "Detail" } } }
                tbody {
                    @for a in &alarms {
                        tr { td { (a.id) } td { (a.name) } td { span class=(format!("sev sev-{}", a.severity)) { (a.severity.to_string()) } } td { (a.scope) } td { (a.detail) } }
                    }
                    @for a in &director {
                        tr { td { (a.def.id) } td { (a.def.name) } td { span class=(format!("sev sev-{}", a.def.severity)) { (a.def.severity.to_string()) } } td { (a.scope) } td { (a.detail) } }
                    }
                    @if alarms.is_empty() && director.is_empty() { tr { td colspan="5" .muted { "No active alarm." } } }
                }
            }
            h2 { "Health" }
            @match &health {
                Some(h) => {
                    p #health-ok data-ok=(h.ok) { @if h.ok { span.ok { "Every check passes." } } @else { span.err { "A check fails." } } }
                    pre.health #health { (h.text) }
                }
                None => p.muted { "No health report." }
            }
        }
    };
    respond(StatusCode::OK, None, frame(&format!("Server {hostname}"), "Topology", Some(&user), body, None))
}

#[cfg(test)]
mod tests;
