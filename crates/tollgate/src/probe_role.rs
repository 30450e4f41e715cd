//! The probe role: live sources feeding the probe, call records to the spool.

use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use prometheus_client::registry::Registry;
use tollgate_policy::InternalNumbers;
use tollgate_probe::live::{LiveProbe, LiveStats, Shared};
use tollgate_probe::metrics::ProbeCollector;
use tollgate_probe::{Probe, ProbeSettings};
use tollgate_records::Record;
use tollgate_records::spool::Spool;
use tollgate_sip::dialog::TrackerConfig;

use crate::config::Config;

/// The probe settings of a configuration.
pub fn settings(config: &Config) -> anyhow::Result<ProbeSettings> {
    let p = &config.probe;
    Ok(ProbeSettings {
        device: if p.device.is_empty() { config.node.name.clone() } else { p.device.clone() },
        plan: config.dialing_plan.clone(),
        internal: InternalNumbers::parse(&p.internal, &config.dialing_plan)
            .map_err(|e| anyhow!("probe.internal: {e}"))?,
        trunks: p.trunks.clone(),
        source: p.source,
        destination: p.destination,
        tracker: TrackerConfig {
            max_open: p.max_open_calls,
            setup_timeout_us: p.setup_timeout_secs as i64 * 1_000_000,
            idle_timeout_us: p.idle_timeout_secs as i64 * 1_000_000,
        },
    })
}

/// The running probe.
pub struct ProbeRole {
    /// Live sources.
    pub live: LiveProbe,
    #[cfg(feature = "live-capture")]
    capture: Option<(Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl ProbeRole {
    /// Starts the configured sources; calls go to `spool` as records.
    pub async fn start(config: &Config, spool: &Spool, registry: &mut Registry) -> anyhow::Result<ProbeRole> {
        let probe = Arc::new(Mutex::new(Probe::new(settings(config)?)));
        let lane = Mutex::new(spool.lane("probe")?);
        let stats = Arc::new(LiveStats::default());
        let shared = Shared {
            probe: probe.clone(),
            sink: Arc::new(move |report| {
                let mut lane = lane.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = lane.append(&Record::sip_call(report.record)) {
                    tracing::error!(error = %e, "cannot spool a call record");
                }
            }),
            stats: stats.clone(),
        };
        registry.register_collector(Box::new(ProbeCollector { probe, live: stats }));
        let p = &config.probe;
        let live = LiveProbe::start(shared.clone(), &p.mirror, &p.hep_udp, &p.hep_tcp).await?;
        #[cfg(feature = "live-capture")]
        let capture = if p.interface.is_empty() {
            None
        } else {
            Some(tollgate_probe::live::capture_interface(shared, &p.interface, &p.filter).map_err(|e| anyhow!(e))?)
        };
        #[cfg(not(feature = "live-capture"))]
        if !p.interface.is_empty() {
            anyhow::bail!("probe.interface needs a tollgate built with --features live-capture");
        }
        Ok(ProbeRole {
            live,
            #[cfg(feature = "live-capture")]
            capture,
        })
    }

    /// Stops the sources.
    pub async fn shutdown(self) {
        #[cfg(feature = "live-capture")]
        if let Some((stop, handle)) = self.capture {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        self.live.shutdown().await;
    }
}
