//! tcpdump as a test's capturing peer: loopback (or a namespace's bridge) traffic written to a
//! pcap file.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running tcpdump; stopped with SIGINT (so the file is flushed and closed) by
/// [`Tcpdump::stop`] or on drop.
pub struct Tcpdump {
    child: Option<Child>,
}

impl Tcpdump {
    /// Starts capturing loopback packets matching `filter` (a pcap filter) into `file`, and
    /// returns once tcpdump says it is listening (within 30 s).
    pub fn start(file: &Path, filter: &str) -> Tcpdump {
        Tcpdump::start_on(None, "lo", file, filter)
    }

    /// Starts capturing packets of `interface` (in network namespace `netns`, if given)
    /// matching `filter` into `file`, and returns once tcpdump says it is listening.
    pub fn start_on(netns: Option<&str>, interface: &str, file: &Path, filter: &str) -> Tcpdump {
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "tcpdump"]);
                c
            }
            None => Command::new("tcpdump"),
        };
        let mut child = command
            .args(["-i", interface, "-n", "-U", "--immediate-mode", "-s", "0", "-B", "16384", "-Z", "root", "-w"])
            .arg(file)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tcpdump (Debian package tcpdump)");
        // tcpdump says "listening on <interface>" once it captures.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains("listening on") => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!("tcpdump did not start capturing within 30 s");
                }
            }
        }
        Tcpdump { child: Some(child) }
    }

    /// Stops the capture (SIGINT; killed if it has not exited within 10 s).
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            interrupt(c);
        }
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops a capturing process as a person would (SIGINT, so it writes out what it buffered),
/// and kills it if it has not exited within 10 s.
pub fn interrupt(mut c: std::process::Child) {
    let _ = Command::new("kill").arg("-INT").arg(c.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}
