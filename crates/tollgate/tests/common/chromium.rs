//! Headless Chromium driven over WebDriver (fantoccini): chromedriver as a child process and
//! a browser session with the options every UI test uses.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};

use super::free_port;

/// The Chromium binary; panics naming the Debian packages when Chromium or chromedriver is
/// missing (scripts/install-test-deps.sh installs both).
pub fn require_binary() -> std::path::PathBuf {
    let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .expect("chromium is needed (Debian package chromium; scripts/install-test-deps.sh installs it)");
    let driver = Command::new("chromedriver").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        driver,
        "chromedriver is needed (Debian package chromium-driver; scripts/install-test-deps.sh installs it)"
    );
    binary
}

/// chromedriver, stopped when dropped.
pub struct Driver(Child, u16);

impl Driver {
    /// Starts chromedriver on a free port and waits until it listens.
    pub fn start() -> Driver {
        let port = free_port("127.0.0.1");
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromedriver (Debian package chromium-driver; see .ci/run)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver(child, port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless Chromium session (`binary`, a fresh `profile` directory, a `width`x`height`
/// window) through `driver`.
pub async fn browser(driver: &Driver, binary: &Path, profile: &Path, (width, height): (u32, u32)) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": binary,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                format!("--window-size={width},{height}"), format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("start a Chromium session")
}
