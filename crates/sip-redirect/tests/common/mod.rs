//! Helpers shared by the listener tests (`listeners.rs`, `tls.rs`): the metrics they read and
//! the waits they make.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tollgate_sip_redirect::metrics::{RedirectMetrics, RequestLabels};

/// Messages of `method` received over `transport`.
pub fn requests(m: &RedirectMetrics, method: &'static str, transport: &'static str) -> u64 {
    m.requests.get_or_create(&RequestLabels { method, transport }).get()
}

/// Waits (generously: the tests run on loaded machines) until `done` holds.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// True once the server closed the connection (EOF or reset), reading what it sends meanwhile.
pub async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read).await.is_ok()
}
