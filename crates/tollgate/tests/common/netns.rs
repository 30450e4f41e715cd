//! Hosts with real network isolation: one network namespace per "host", joined by a Linux
//! bridge that lives in a namespace of its own (the "switch", so the machine's firewall and
//! bridge-netfilter settings never see the traffic). Each host has loopback up and one veth
//! (`eth0`) on the bridge with its own address; the test process itself is an "operator
//! workstation" on the same bridge (a veth in the root namespace, `.200`).
//!
//! Every name carries a per-run suffix; [`cleanup_leftovers`] removes what a crashed run of
//! the same prefix left (its namespaces, with the processes in them, and its root veth), and
//! dropping the [`Network`] kills every process of its namespaces and deletes them, which
//! deletes the bridge and every veth with them.
//!
//! A host runs programs as a packaged server would: in its namespace, with its own
//! directories bind-mounted over `/etc/tollgate` and `/var/lib/tollgate` in a private mount
//! namespace ([`Host::command`]). The mount points come from overlays of `/etc` and `/var/lib`
//! private to that namespace, so nothing is created on the machine, and a package installed
//! or purged on it meanwhile (its postrm removing the real directories) does not pull the
//! hosts' directories away. Needs root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The prefix of every namespace and root-namespace link this harness makes.
pub const PREFIX: &str = "tgmh";

/// The packaged configuration directory a host's own `etc` directory stands in for.
pub const ETC: &str = "/etc/tollgate";
/// The packaged state directory a host's own `var` directory stands in for.
pub const VAR: &str = "/var/lib/tollgate";
/// The packaged configuration file, as the systemd units name it.
pub const CONFIG: &str = "/etc/tollgate/tollgate.toml";

/// Runs `ip` with `args`; panics with its error output on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (Debian package iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
}

fn ip_text(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip (Debian package iproute2)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills (SIGKILL) every process in network namespace `ns` and waits until none is left.
pub fn kill_namespace_processes(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids: Vec<String> = ip_text(&["netns", "pids", ns]).split_whitespace().map(String::from).collect();
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        let _ = Command::new("kill").arg("-KILL").args(&pids).stderr(Stdio::null()).status();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True if the run whose names carry `suffix` (its process id) is still going.
fn run_alive(suffix: &str) -> bool {
    suffix.parse::<u32>().is_ok_and(|pid| pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes what earlier runs left behind (runs whose process is gone): every namespace named
/// `tgmh-<pid>-...` (its processes killed first) and every root-namespace link named
/// `tgmh<pid>o`.
pub fn cleanup_leftovers() {
    for line in ip_text(&["netns", "list"]).lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        if let Some(rest) = name.strip_prefix(&format!("{PREFIX}-"))
            && !run_alive(rest.split('-').next().unwrap_or(""))
        {
            eprintln!("removing network namespace {name} left by an earlier run");
            kill_namespace_processes(name);
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
    for line in ip_text(&["-o", "link", "show"]).lines() {
        // "12: tgmh1a2bo@if3: <...>"
        let Some(name) = line.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n)) else { continue };
        if let Some(rest) = name.strip_prefix(PREFIX)
            && !run_alive(rest.trim_end_matches('o'))
        {
            eprintln!("removing link {name} left by an earlier run");
            let _ = Command::new("ip").args(["link", "del", name]).output();
        }
    }
}

/// Fails clearly unless network namespaces, bridges and veth pairs can be made here.
pub fn require_netns() {
    let probe = format!("{PREFIX}-{}-probe", std::process::id());
    let ok = Command::new("ip").args(["netns", "add", &probe]).status().is_ok_and(|s| s.success());
    assert!(ok, "cannot create a network namespace (`ip netns add`): run as root with iproute2 installed");
    let bridge = Command::new("ip").args(["-n", &probe, "link", "add", "br0", "type", "bridge"]).status();
    let veth =
        Command::new("ip").args(["-n", &probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1"]).status();
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    assert!(bridge.is_ok_and(|s| s.success()), "cannot create a bridge in a network namespace (kernel module bridge)");
    assert!(veth.is_ok_and(|s| s.success()), "cannot create a veth pair (kernel module veth)");
}

/// A bridge (in its own namespace) and the hosts on it, removed on drop.
pub struct Network {
    /// The per-run suffix of every name (this process's id).
    pub suffix: String,
    /// The first three octets of the /24 (e.g. `10.213.13`).
    pub subnet: String,
    /// The namespace holding the bridge `br0` (capture there).
    pub switch: String,
    /// The root-namespace veth of the operator workstation.
    ops_link: String,
    hosts: Vec<String>,
}

/// One host: a namespace, an address on the bridge, its own /etc/tollgate and
/// /var/lib/tollgate.
#[derive(Clone, Debug)]
pub struct Host {
    /// The server's hostname (`east-a`).
    pub name: String,
    /// Its network namespace.
    pub ns: String,
    /// Its address.
    pub ip: String,
    /// The directory bind-mounted over /etc/tollgate.
    pub etc: PathBuf,
    /// The directory bind-mounted over /var/lib/tollgate.
    pub var: PathBuf,
    /// Where its private overlays of /etc and /var/lib live (a tmpfs mounted in its mount
    /// namespace only).
    overlay: PathBuf,
}

impl Network {
    /// Makes the switch namespace with its bridge and the operator's veth (`subnet.200`).
    pub fn create(subnet: &str) -> Network {
        // The process id: a later run can tell a crashed run's leftovers from a live run's.
        let suffix = std::process::id().to_string();
        let switch = format!("{PREFIX}-{suffix}-switch");
        let ops_link = format!("{PREFIX}{suffix}o");
        let net = Network {
            suffix,
            subnet: subnet.to_string(),
            switch: switch.clone(),
            ops_link: ops_link.clone(),
            hosts: Vec::new(),
        };
        let routed = ip_text(&["-4", "route", "show", "to", "match", &format!("{subnet}.0/24")]);
        assert!(
            !routed.lines().any(|l| l.contains(&format!("{subnet}.0/24"))),
            "{subnet}.0/24 is already routed on this machine ({routed}): the test needs it to itself"
        );
        ip(&["netns", "add", &switch]);
        ip(&["-n", &switch, "link", "set", "lo", "up"]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        ip(&["link", "add", &ops_link, "type", "veth", "peer", "name", "ops", "netns", &switch]);
        ip(&["-n", &switch, "link", "set", "ops", "master", "br0"]);
        ip(&["-n", &switch, "link", "set", "ops", "up"]);
        ip(&["addr", "add", &format!("{subnet}.200/24"), "dev", &ops_link]);
        ip(&["link", "set", &ops_link, "up"]);
        net
    }

    /// The operator workstation's address (the test process, root namespace).
    pub fn ops_ip(&self) -> String {
        format!("{}.200", self.subnet)
    }

    /// Adds a host `name` at `subnet.octet` with its directories under `root/<name>`.
    pub fn add_host(&mut self, name: &str, octet: u8, root: &Path) -> Host {
        let index = self.hosts.len();
        let ns = format!("{PREFIX}-{}-{name}", self.suffix);
        let ip_addr = format!("{}.{octet}", self.subnet);
        ip(&["netns", "add", &ns]);
        self.hosts.push(ns.clone());
        let port = format!("h{index}");
        ip(&["-n", &self.switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
        ip(&["-n", &self.switch, "link", "set", &port, "master", "br0"]);
        ip(&["-n", &self.switch, "link", "set", &port, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "addr", "add", &format!("{ip_addr}/24"), "dev", "eth0"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        let etc = root.join(name).join("etc");
        let var = root.join(name).join("var");
        let overlay = root.join(name).join("overlay");
        for d in [&etc, &var, &overlay] {
            std::fs::create_dir_all(d).unwrap();
        }
        Host { name: name.into(), ns, ip: ip_addr, etc, var, overlay }
    }

    /// Every host namespace's name.
    pub fn namespaces(&self) -> &[String] {
        &self.hosts
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain(std::iter::once(&self.switch)) {
            kill_namespace_processes(ns);
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        // Deleting the switch deleted the operator's veth peer, and with it this end; in case
        // it did not:
        let _ = Command::new("ip").args(["link", "del", &self.ops_link]).stderr(Stdio::null()).output();
    }
}

impl Host {
    /// `program args...` in this host's network namespace, with its own directories over
    /// /etc/tollgate and /var/lib/tollgate (a private mount namespace: nothing of the machine
    /// changes). Add arguments to the returned command.
    pub fn command(&self, program: &Path) -> Command {
        let o = self.overlay.display();
        let script = format!(
            "set -e; mount -t tmpfs tollgate-overlay '{o}'; \
             mkdir -p '{o}/etc/up/tollgate' '{o}/etc/work' '{o}/var/up/tollgate' '{o}/var/work'; \
             mount -t overlay tollgate-etc -o 'lowerdir=/etc,upperdir={o}/etc/up,workdir={o}/etc/work' /etc; \
             mount -t overlay tollgate-var -o 'lowerdir=/var/lib,upperdir={o}/var/up,workdir={o}/var/work' /var/lib; \
             mount --bind '{}' {ETC}; mount --bind '{}' {VAR}; exec \"$0\" \"$@\"",
            self.etc.display(),
            self.var.display()
        );
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", &script])
            .arg(program);
        c
    }

    /// `program args...` in this host's network namespace only (the machine's file system).
    pub fn net_command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }

    /// Runs `program args` in the namespace and returns its output.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.net_command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} in {}: {e}", self.ns))
    }

    /// The IPv4 addresses on this host's `eth0`.
    pub fn addresses(&self) -> String {
        ip_text(&["-n", &self.ns, "-4", "addr", "show", "dev", "eth0"])
    }

    /// A path under this host's /etc/tollgate, as seen from outside the host.
    pub fn etc_path(&self, name: &str) -> PathBuf {
        self.etc.join(name)
    }
}

/// A long-running process of a host, stopped (SIGTERM, then SIGKILL after 15 s) on drop.
pub struct HostProcess {
    child: Option<Child>,
    /// What it is, for messages.
    pub what: String,
    /// Its output.
    pub log: PathBuf,
}

impl HostProcess {
    /// Spawns `command` with stdout and stderr to `log`.
    pub fn spawn(mut command: Command, what: &str, log: &Path) -> HostProcess {
        let file = std::fs::File::create(log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        HostProcess { child: Some(child), what: what.into(), log: log.to_path_buf() }
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails with its output if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!("{} exited ({status}):\n{}", self.what, self.output());
        }
    }

    /// Sends `signal` (e.g. `USR1`) to it.
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
        }
    }

    /// Waits up to `secs` for it to exit by itself; true if it did.
    pub fn wait_exit(&mut self, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while let Some(c) = self.child.as_mut() {
            if let Ok(Some(_)) = c.try_wait() {
                self.child = None;
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// Stops it: SIGTERM, SIGKILL after 15 s.
    pub fn stop(&mut self) {
        self.signal("TERM");
        if !self.wait_exit(15)
            && let Some(mut c) = self.child.take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
