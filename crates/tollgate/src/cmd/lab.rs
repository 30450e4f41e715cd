//! `tollgate lab up | down`: a whole topology on 127.0.<net>.x for demos and tests.
//!
//! * a manager pair (cluster `mgr`, Primary): mgr-a .1 and mgr-b .2;
//! * two engine clusters of 2+1: `engine-east` (SRP pair .11/.12 serving ENUM on .10, spare
//!   .13 at site2) and `engine-west` (.21/.22 serving on .20, spare .23);
//! * a probe pair (`probe`, SRP pair .31/.32 receiving HEP on the service address .30:9060)
//!   and a collector (`collector`, .41).
//!
//! Every server runs `tollgate agent` (port 7000) which runs its role from an installed release;
//! role APIs listen on port 8080. Two signed releases are built from this binary: 1.0.0 (reads
//! policy schema 1 only) and 2.0.0; every server starts on 1.0.0. The engines redirect every
//! call to 127.0.<net>.60:5080 (the lab policy), so an SBC sees whether ENUM answered. An SBC
//! or proxy of the lab sends its HEP3 to the probe pair's service address (`hep` in
//! `lab.json`): only the Active probe binds it; when the Active dies, the Standby takes it.
//! Everything the lab made is in its directory; `lab.json` there says where things are.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use tollgate_api::agent as agent_api;
use tollgate_api::manager as manager_api;

use crate::cli::LabCommand;
use crate::config::Config;
use crate::config::agent::{AgentConfig, RoleProcess};
use crate::config::manager::{ClusterConfig, ManagerConfig, ServerConfig};
use tollgate_enum::{AnswerTemplate, Template};
use tollgate_srp::config::{ChassisMode, SrpConfig};
use tollgate_upgrade::topology::{AppType, HaRole, ManagerDesignation, Segment, Site};

/// One lab server.
struct LabServer {
    hostname: &'static str,
    cluster: &'static str,
    app: &'static str,
    /// Last address octet.
    host: u8,
    site: &'static str,
    role: &'static str,
    /// SRP: (peer octet, chassis mode, priority, service octet).
    srp: Option<(u8, &'static str, u8, u8)>,
}

const SERVERS: [LabServer; 11] = [
    LabServer { hostname: "mgr-a", cluster: "mgr", app: "manager", host: 1, site: "site1", role: "Active", srp: None },
    LabServer { hostname: "mgr-b", cluster: "mgr", app: "manager", host: 2, site: "site1", role: "Standby", srp: None },
    LabServer {
        hostname: "east-a",
        cluster: "engine-east",
        app: "engine",
        host: 11,
        site: "site1",
        role: "Active",
        srp: Some((12, "primary", 1, 10)),
    },
    LabServer {
        hostname: "east-b",
        cluster: "engine-east",
        app: "engine",
        host: 12,
        site: "site1",
        role: "Standby",
        srp: Some((11, "backup", 2, 10)),
    },
    LabServer {
        hostname: "east-c",
        cluster: "engine-east",
        app: "engine",
        host: 13,
        site: "site2",
        role: "Spare",
        srp: None,
    },
    LabServer {
        hostname: "west-a",
        cluster: "engine-west",
        app: "engine",
        host: 21,
        site: "site1",
        role: "Active",
        srp: Some((22, "primary", 1, 20)),
    },
    LabServer {
        hostname: "west-b",
        cluster: "engine-west",
        app: "engine",
        host: 22,
        site: "site1",
        role: "Standby",
        srp: Some((21, "backup", 2, 20)),
    },
    LabServer {
        hostname: "west-c",
        cluster: "engine-west",
        app: "engine",
        host: 23,
        site: "site2",
        role: "Spare",
        srp: None,
    },
    LabServer {
        hostname: "probe-a",
        cluster: "probe",
        app: "probe",
        host: 31,
        site: "site1",
        role: "Active",
        srp: Some((32, "primary", 1, PROBE_SERVICE)),
    },
    LabServer {
        hostname: "probe-b",
        cluster: "probe",
        app: "probe",
        host: 32,
        site: "site1",
        role: "Standby",
        srp: Some((31, "backup", 2, PROBE_SERVICE)),
    },
    LabServer {
        hostname: "collector-a",
        cluster: "collector",
        app: "collector",
        host: 41,
        site: "site1",
        role: "Active",
        srp: None,
    },
];

/// The last octet of the probe pair's service address (HEP/UDP on port [`HEP_PORT`]).
const PROBE_SERVICE: u8 = 30;

/// The port the probe pair receives HEP on.
const HEP_PORT: u16 = 9060;

/// The releases the lab builds: (version, newest policy schema it reads).
const RELEASES: [(&str, Option<i64>); 2] = [("1.0.0", Some(1)), ("2.0.0", None)];

/// The lab policy (schema 1): every call is redirected to the lab's "policy" callee.
const LAB_POLICY: &str = r#"schema = 1
name = "lab"

[[rule]]
name = "robocaller"
source = "+13125550666"
action = "terminate"
cause = 603

[[rule]]
name = "redirect-all"
destination = "+1*"
action = "redirect"
target = "+12125550199"
"#;

/// Runs a lab command.
pub fn run(command: &LabCommand) -> anyhow::Result<ExitCode> {
    match command {
        LabCommand::Up { dir, net, enum_port } => match up(dir, *net, *enum_port) {
            Ok(code) => Ok(code),
            Err(e) => {
                eprintln!("the lab did not come up; stopping what started (logs stay in {})", dir.display());
                let _ = down(dir);
                Err(e)
            }
        },
        LabCommand::Down { dir } => down(dir),
    }
}

fn ip(net: u8, host: u8) -> String {
    format!("127.0.{net}.{host}")
}

fn secret() -> String {
    tollgate_web::auth::random_secret()
}

fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(Duration::from_millis(120));
    pb.set_message(msg.to_string());
    pb
}

fn bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:<28} [{bar:30}] {pos}/{len} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

fn up(dir: &Path, net: u8, enum_port: u16) -> anyhow::Result<ExitCode> {
    if dir.join("pids").exists() {
        bail!("a lab is already up in {} (run `tollgate lab down --dir {}` first)", dir.display(), dir.display());
    }
    // The lab's directory holds its tokens, signing key and every server's state: owner only.
    tollgate_files::private_files::create_private_dir(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let me = std::env::current_exe().context("cannot find this tollgate binary")?;
    let token = secret();
    let agent_token = secret();

    // Releases: this binary (stripped when `strip` is there: a fifth of the size), signed.
    let pb = spinner("building releases 1.0.0 and 2.0.0");
    let key = dir.join("release.key");
    let public = crate::cmd::release::keygen(&key)?;
    let payload = dir.join("tollgate.payload");
    let stripped = Command::new("strip").arg("-o").arg(&payload).arg(&me).status().is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(&me, &payload).context("cannot copy this binary")?;
    }
    let bundles = dir.join("bundles");
    std::fs::create_dir_all(&bundles)?;
    for (version, schema) in RELEASES {
        for app in ["manager", "engine", "probe", "collector"] {
            let out = bundles.join(format!("tollgate-{app}-{version}.tgb"));
            crate::cmd::release::build(&key, app, version, &["*".to_string()], schema, Some(&payload), &out)?;
        }
    }
    std::fs::write(dir.join("policy.toml"), LAB_POLICY)?;
    pb.finish_with_message("releases 1.0.0 and 2.0.0 built and signed");

    // Configurations.
    for s in &SERVERS {
        write_server_configs(&dir, s, net, enum_port, (&token, &agent_token), &public)?;
    }

    // Agents, each in its own process group (`lab down` stops the group).
    let mut pids = String::new();
    for s in &SERVERS {
        let sdir = dir.join("servers").join(s.hostname);
        let log = std::fs::File::create(sdir.join("agent.log"))?;
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&me)
                .args(["--log", "info", "--config"])
                .arg(sdir.join("agent.toml"))
                .arg("agent")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .process_group(0)
                .spawn()
                .with_context(|| format!("cannot start the agent of {}", s.hostname))?
        };
        pids.push_str(&format!("{} {}\n", child.id(), s.hostname));
        // Written at once: if a later agent fails to start, `lab down` still finds this one.
        std::fs::write(dir.join("pids"), &pids)?;
    }

    // Each server's agent, with the lab's agent token (an install may take minutes).
    let agent_url = |s: &LabServer| format!("http://{}:7000", ip(net, s.host));
    let agent = |s: &LabServer| {
        tollgate_api::BlockingClient::new(&agent_url(s), Some(agent_token.clone()), Duration::from_secs(600))
    };
    let pb = bar(SERVERS.len() as u64, "agents up");
    for s in &SERVERS {
        let client = agent(s)?;
        wait(Duration::from_secs(30), &format!("the agent of {}", s.hostname), || client.get_text("/healthz").is_ok())?;
        pb.inc(1);
    }
    pb.finish();

    // Every server on 1.0.0: collector first (the engines ship to it), managers last.
    let pb = bar(SERVERS.len() as u64, "installing 1.0.0");
    let order = ["collector", "engine", "probe", "manager"];
    for app in order {
        for s in SERVERS.iter().filter(|s| s.app == app) {
            pb.set_message(format!("installing 1.0.0 on {}", s.hostname));
            let name = format!("tollgate-{}-1.0.0.tgb", s.app);
            let file = bundles.join(&name);
            let client = agent(s)?;
            if let Err(e) = agent_api::stage_blocking(&client, &name, std::fs::read(&file)?) {
                bail!("{}: staging 1.0.0 failed: {e}", s.hostname);
            }
            let install = agent_api::VersionRequest { version: "1.0.0".into() };
            if let Err(e) = client.post::<_, agent_api::AgentStatus>(agent_api::INSTALL, &install) {
                bail!("{}: installing 1.0.0 failed: {e}", s.hostname);
            }
            pb.inc(1);
        }
    }
    pb.finish_with_message("every server runs 1.0.0");

    // The manager pair, then the lab policy on both engine clusters.
    let managers: Vec<String> =
        SERVERS.iter().filter(|s| s.app == "manager").map(|s| format!("http://{}:8080", ip(net, s.host))).collect();
    let pb = spinner("waiting for the active manager");
    let mut active = String::new();
    wait(Duration::from_secs(60), "an active manager that has heard from every server", || {
        for m in &managers {
            let Ok(client) = tollgate_api::BlockingClient::new(m, Some(token.clone()), Duration::from_secs(10)) else {
                continue;
            };
            let ha = client.get::<manager_api::HaStatus>("/api/v1/manager/ha");
            if !ha.is_ok_and(|h| h.is_active()) {
                continue;
            }
            let status = client.get::<manager_api::SystemStatus>("/api/v1/upgrade/status");
            let all = status.is_ok_and(|s| {
                s.clusters.iter().flat_map(|c| &c.servers).all(|sv| sv.reachable && sv.running_release == "1.0.0")
            });
            if all {
                active = m.clone();
                return true;
            }
        }
        false
    })?;
    let manager = tollgate_api::BlockingClient::new(&active, Some(token.clone()), Duration::from_secs(600))?;
    let push = manager.block_on(async {
        let c = manager.inner();
        let resp =
            c.send(c.request(reqwest::Method::POST, "/api/v1/policy/push?name=lab.toml").body(LAB_POLICY)).await?;
        tollgate_api::Client::json::<manager_api::PushAnswer>(resp).await
    });
    if let Err(e) = push {
        bail!("installing the lab policy failed: {e}");
    }
    pb.finish_with_message(format!("active manager {active}; lab policy installed on both engine clusters"));

    let lab = json!({
        "dir": dir,
        "net": net,
        "token": token,
        "agent_token": agent_token,
        "managers": managers,
        "enum": [format!("{}:{enum_port}", ip(net, 10)), format!("{}:{enum_port}", ip(net, 20))],
        "hep": format!("{}:{HEP_PORT}", ip(net, PROBE_SERVICE)),
        "policy_callee": format!("{}:5080", ip(net, 60)),
        "normal_callee": format!("{}:5080", ip(net, 61)),
        "servers": SERVERS.iter().map(|s| json!({
            "hostname": s.hostname, "cluster": s.cluster, "application": s.app,
            "agent": agent_url(s), "api": format!("http://{}:8080", ip(net, s.host)),
        })).collect::<Vec<_>>(),
    });
    tollgate_files::private_files::write_private(&dir.join("lab.json"), &serde_json::to_vec_pretty(&lab)?)?;
    println!("tollgate lab up: {}", dir.display());
    println!("  Upgrade Manager: {active}/upgrade?token={token}");
    println!("  CLI:             tollgate upgrade status --api {active} --token {token}");
    println!("  ENUM service:    {} and {} (port {enum_port})", ip(net, 10), ip(net, 20));
    println!(
        "  HEP to probes:   {}:{HEP_PORT} (HEP3 over UDP, the probe pair's service address)",
        ip(net, PROBE_SERVICE)
    );
    println!("  stop it:         tollgate lab down --dir {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes a lab server's role and agent configurations into its directory. Both hold the lab's
/// tokens: the directory is 0700 and the files 0600 from the start, whatever the umask.
fn write_server_configs(
    dir: &Path,
    s: &LabServer,
    net: u8,
    enum_port: u16,
    (token, agent_token): (&str, &str),
    public: &str,
) -> anyhow::Result<()> {
    let sdir = dir.join("servers").join(s.hostname);
    tollgate_files::private_files::create_private_dir(&sdir)?;
    let private = |name: &str, text: String| {
        let path = sdir.join(name);
        tollgate_files::private_files::write_private(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    };
    private("role.toml", role_config(dir, s, net, enum_port, token, agent_token).to_toml())?;
    private("agent.toml", agent_config(&sdir, s, net, agent_token, public).to_toml())
}

/// `host:port` of a lab address.
fn sock(host: &str, port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::new(host.parse().expect("lab addresses are IPv4"), port)
}

/// The configuration of a lab server's agent.
fn agent_config(sdir: &Path, s: &LabServer, net: u8, agent_token: &str, public: &str) -> Config {
    let app: AppType = s.app.parse().expect("lab applications are known");
    let role: RoleProcess = s.app.parse().expect("lab roles are known");
    let mut c = Config::default();
    c.node.name = s.hostname.into();
    c.node.state_dir = sdir.join("agent-state");
    c.agent = Some(AgentConfig {
        listen: sock(&ip(net, s.host), 7000),
        server: s.hostname.into(),
        app_type: app,
        role,
        role_config: sdir.join("role.toml"),
        dir: sdir.join("agent"),
        trusted_keys: vec![public.into()],
        token: agent_token.into(),
        ..AgentConfig::defaults()
    });
    c
}

fn wait(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(anyhow!("timed out after {} s waiting for {what}", limit.as_secs()))
}

/// The role configuration of a lab server.
fn role_config(dir: &Path, s: &LabServer, net: u8, enum_port: u16, token: &str, agent_token: &str) -> Config {
    let sdir = dir.join("servers").join(s.hostname);
    let me = ip(net, s.host);
    let mut c = Config::default();
    c.node.name = s.hostname.into();
    c.node.state_dir = sdir.join("state");
    c.api.listen = sock(&me, 8080);
    c.api.token = Some(token.into());
    let collector = format!("http://{}:8080", ip(net, 41));
    // Every server but the managers is managed: its own pages are read-only and link to the
    // console of the first manager.
    if s.app != "manager" {
        c.api.console = Some(format!("http://{}:8080", ip(net, 1)));
    }
    let naptr = |uri: &str| AnswerTemplate::Naptr { uri: Template::parse(uri).expect("lab templates parse") };
    match s.app {
        "engine" => {
            let service = match s.srp {
                Some((_, _, _, service)) => ip(net, service),
                None => me.clone(),
            };
            let policy = ip(net, 60);
            c.enum_.listen_udp = vec![sock(&service, enum_port)];
            c.enum_.listen_tcp = vec![sock(&service, enum_port)];
            c.enum_.answers.redirect = naptr(&format!("sip:{{target}}@{policy}:5080"));
            c.enum_.intercepts = [("default".to_string(), format!("sip:intercept@{policy}:5080"))].into();
            c.enum_.devices = vec![tollgate_enum::config::DeviceConfig {
                name: "lab-sbc".into(),
                addresses: vec!["127.0.0.0/8".parse().expect("a network")],
            }];
            c.shipper.collector = collector;
            c.shipper.token = token.into();
            c.probe.hep_udp = Vec::new();
            c.probe.hep_tcp = Vec::new();
            c.srp = srp_config(s, net, agent_token);
        }
        // A probe pair: HEP on the pair's service address, received by the Active only.
        "probe" => {
            let service = s.srp.map_or(s.host, |(_, _, _, service)| service);
            c.probe.hep_udp = vec![sock(&ip(net, service), HEP_PORT)];
            c.probe.hep_tcp = Vec::new();
            c.shipper.collector = collector;
            c.shipper.token = token.into();
            c.srp = srp_config(s, net, agent_token);
        }
        // The collector role runs no ENUM server; the section only has to be valid.
        "collector" => {
            c.enum_.listen_udp = vec![sock(&me, 5353)];
            c.probe.hep_udp = Vec::new();
            c.probe.hep_tcp = Vec::new();
        }
        _ => c.manager = Some(manager_section(dir, s, net, agent_token)),
    }
    c
}

/// The `[srp]` section of a lab server of an SRP pair (fast hellos: the lab is one host).
fn srp_config(s: &LabServer, net: u8, agent_token: &str) -> Option<SrpConfig> {
    let (peer, mode, priority, _) = s.srp?;
    let mode = match mode {
        "primary" => ChassisMode::Primary,
        _ => ChassisMode::Backup,
    };
    let me = ip(net, s.host);
    let mut srp = SrpConfig::new(s.hostname, sock(&me, 7501), sock(&ip(net, peer), 7501), agent_token, mode, priority);
    srp.hello_interval_ms = 100;
    srp.dead_interval_ms = 300;
    Some(srp)
}

fn manager_section(dir: &Path, s: &LabServer, net: u8, agent_token: &str) -> ManagerConfig {
    let mate = SERVERS.iter().find(|m| m.app == "manager" && m.hostname != s.hostname).map(|m| ip(net, m.host));
    let public = std::fs::read_to_string(dir.join("release.key"))
        .ok()
        .and_then(|k| tollgate_upgrade::bundle::parse_signing_key(k.trim()).ok())
        .map(|k| tollgate_upgrade::bundle::public_key_hex(&k.verifying_key()))
        .unwrap_or_default();
    let clusters = ["mgr", "engine-east", "engine-west", "probe", "collector"]
        .into_iter()
        .map(|cluster| {
            let members: Vec<&LabServer> = SERVERS.iter().filter(|m| m.cluster == cluster).collect();
            let application: AppType = members[0].app.parse().expect("lab applications are known");
            let manager = application == AppType::Manager;
            ClusterConfig {
                name: cluster.into(),
                application,
                designation: manager.then_some(ManagerDesignation::Primary),
                site: "site1".into(),
                segment: (!manager).then(|| "segment1".into()),
                servers: members
                    .iter()
                    .map(|m| ServerConfig {
                        hostname: m.hostname.into(),
                        site: Some(m.site.into()),
                        role: ha_role(m.role),
                        agent: format!("http://{}:7000", ip(net, m.host)),
                    })
                    .collect(),
            }
        })
        .collect();
    ManagerConfig {
        hostname: s.hostname.into(),
        mate: Some(format!("http://{}:8080", mate.unwrap_or_default())),
        starts_active: s.role == "Active",
        agent_token: agent_token.into(),
        bundles: dir.join("bundles"),
        trusted_keys: vec![public],
        policy: Some(dir.join("policy.toml")),
        poll_ms: 500,
        takeover_ms: 3000,
        replication_timeout_s: 120,
        max_parallel_clusters: None,
        sites: vec![Site { name: "site1".into(), primary: true }, Site { name: "site2".into(), primary: false }],
        segments: vec![Segment { name: "segment1".into() }],
        clusters,
    }
}

fn ha_role(role: &str) -> HaRole {
    match role {
        "Active" => HaRole::Active,
        "Standby" => HaRole::Standby,
        _ => HaRole::Spare,
    }
}

fn down(dir: &Path) -> anyhow::Result<ExitCode> {
    let pids = match std::fs::read_to_string(dir.join("pids")) {
        Ok(p) => p,
        Err(_) => {
            println!("no lab is up in {}", dir.display());
            return Ok(ExitCode::SUCCESS);
        }
    };
    let groups: Vec<(i32, String)> = pids
        .lines()
        .filter_map(|l| {
            let (pid, host) = l.split_once(' ')?;
            Some((pid.parse().ok()?, host.to_string()))
        })
        .collect();
    let pb = bar(groups.len() as u64, "stopping the lab");
    for (pid, _) in &groups {
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).stderr(Stdio::null()).status();
    }
    for (pid, host) in &groups {
        let gone = wait(Duration::from_secs(15), host, || !PathBuf::from(format!("/proc/{pid}")).exists()).is_ok();
        // Whatever is left of the group (a role process whose agent was killed hard).
        let _ = Command::new("kill")
            .args([if gone { "-TERM" } else { "-KILL" }, "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        pb.inc(1);
    }
    std::fs::remove_file(dir.join("pids"))?;
    pb.finish_with_message("lab stopped");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn lab_configurations_holding_tokens_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let public = crate::cmd::release::keygen(&dir.path().join("release.key")).unwrap();
        assert_eq!(mode(&dir.path().join("release.key")), 0o600);
        for s in &SERVERS {
            write_server_configs(dir.path(), s, 77, 53, ("operators-token-0123", "agents-token-0123456789"), &public)
                .unwrap();
            let sdir = dir.path().join("servers").join(s.hostname);
            assert_eq!(mode(&sdir), 0o700, "{}", sdir.display());
            for (name, secret) in [("role.toml", "operators-token-0123"), ("agent.toml", "agents-token-0123456789")] {
                let file = sdir.join(name);
                let text = std::fs::read_to_string(&file).unwrap();
                assert!(text.contains(secret), "{}", file.display());
                assert_eq!(mode(&file), 0o600, "{}", file.display());
                // What the lab writes is a valid configuration of this release.
                Config::parse(&file.display().to_string(), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            }
        }
    }
}
