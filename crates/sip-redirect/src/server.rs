//! The SIP redirect server's UDP and TCP listeners.
//!
//! (Skeleton laid out by the lead; the helper of issue 19's listeners implements it.)

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinSet;
use tollgate_enum::server::RecordSink;

use crate::metrics::RedirectMetrics;
use crate::respond::Redirector;

/// A running SIP redirect server. Dropping it stops every listener.
pub struct RedirectServer {
    /// Bound UDP addresses (with the real port when 0 was asked).
    pub udp_addrs: Vec<SocketAddr>,
    /// Bound TCP addresses.
    pub tcp_addrs: Vec<SocketAddr>,
    tasks: JoinSet<()>,
}

impl RedirectServer {
    /// Binds every configured address, then starts serving. Fails (naming the address) if any
    /// address cannot be bound, before serving anything.
    pub async fn start(
        _redirector: Arc<Redirector>,
        _sink: RecordSink,
        _metrics: Arc<RedirectMetrics>,
        _udp: &[SocketAddr],
        _tcp: &[SocketAddr],
    ) -> io::Result<Self> {
        Ok(RedirectServer { udp_addrs: Vec::new(), tcp_addrs: Vec::new(), tasks: JoinSet::new() })
    }

    /// Stops every listener and waits for the tasks to end.
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}
