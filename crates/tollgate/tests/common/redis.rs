//! A private Redis for one test: Debian's `redis-server` on `127.0.0.1:<free port>`, nothing
//! saved to disk (`--save "" --appendonly no`), killed with SIGKILL and started again on the
//! same port to test what the engines do when their shared store goes away and comes back.
//! Also a replica, a sentinel, or a TLS server ([`Redis::start_with`]).
//!
//! Self-contained (std and tempfile only): `crates/shared-counters/tests/redis.rs` includes this
//! same file, so both suites run Redis one way.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` process the test owns; dropping it kills it.
pub struct Redis {
    child: Option<Child>,
    /// Given before the port and the other options (a sentinel's configuration file first).
    args: Vec<String>,
    dir: tempfile::TempDir,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

impl Redis {
    /// Starts a Redis on a free port of 127.0.0.1 and waits until it answers PING.
    pub fn start() -> Redis {
        Redis::start_with(Vec::new())
    }

    /// A Redis started with `args` before its own options: `--replicaof HOST PORT`, TLS
    /// options, or a sentinel's configuration file and `--sentinel` (a sentinel keeps its state
    /// in that file, so it gets no persistence options).
    pub fn start_with(args: Vec<String>) -> Redis {
        let found = Command::new("sh").arg("-c").arg("command -v redis-server").output();
        assert!(
            found.map(|o| o.status.success()).unwrap_or(false),
            "redis-server is missing: install the Debian package redis-server (scripts/install-test-deps.sh)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut r = Redis { child: None, args, dir: tempfile::tempdir().unwrap(), port };
        r.launch();
        r
    }

    /// The URL engines are configured with (`[shared_counters] url`), database 0.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Its log file (what it said while starting and running).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "redis-server already runs");
        let sentinel = self.args.iter().any(|a| a == "--sentinel");
        let persistence: &[&str] = if sentinel { &[] } else { &["--save", "", "--appendonly", "no"] };
        let child = Command::new("redis-server")
            .args(&self.args)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(persistence)
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (Debian package redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.answers_ping() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("redis-server on port {} exited ({status}):\n{}", self.port, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING on port {} within 20 s:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True if something on the port answers `PING` with `+PONG`.
    pub fn answers_ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_millis(500))
        else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }

    /// Kills the server with SIGKILL (no shutdown, no save) and waits for it to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port, empty (nothing was saved), after
    /// [`Redis::kill9`].
    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
    }
}
