//! What a configuration asks of the record spool on this machine: how many lanes write it,
//! the most disk it can take, and whether the file system holding it can give that.
//!
//! The spool refuses new records once `spool.max_disk_mb` of them are not yet acknowledged by
//! the collector; records already shipped do not count. On top of that backlog, each lane's
//! open segment holds up to `spool.segment_mb` of records it has written (acknowledged or
//! not), so the spool's disk use stays below `max_disk_mb + lanes x segment_mb`. Lanes: one per
//! UDP socket and worker (`enum.udp_workers`, 0: one per CPU of this machine), one per TCP
//! listener, the same for the SIP redirect server's listeners (`sip_redirect.listen_*`), and
//! one for the probe.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::config::Config;

const MIB: u64 = 1 << 20;

/// The lanes a process with this configuration writes to its spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lanes {
    /// `enum.listen_udp` sockets.
    pub udp_sockets: u64,
    /// Workers (lanes) per UDP socket on this machine.
    pub udp_workers: u64,
    /// `enum.listen_tcp` listeners.
    pub tcp: u64,
    /// `sip_redirect.listen_udp` sockets (each with `udp_workers` lanes).
    pub sip_udp_sockets: u64,
    /// `sip_redirect.listen_tcp` listeners.
    pub sip_tcp: u64,
    /// `sip_redirect.listen_tls` listeners.
    pub sip_tls: u64,
    /// The probe's lane.
    pub probe: u64,
}

impl Lanes {
    /// The lanes of `config` on this machine, for a process running the engine and/or the
    /// probe (`tollgate serve` runs both).
    pub fn of(config: &Config, engine: bool, probe: bool) -> Lanes {
        let workers = config.enum_.udp_worker_count();
        let engine = u64::from(engine);
        Lanes {
            udp_sockets: engine * config.enum_.listen_udp.len() as u64,
            udp_workers: workers as u64,
            tcp: engine * config.enum_.listen_tcp.len() as u64,
            sip_udp_sockets: engine * config.sip_redirect.listen_udp.len() as u64,
            sip_tcp: engine * config.sip_redirect.listen_tcp.len() as u64,
            sip_tls: engine * config.sip_redirect.listen_tls.len() as u64,
            probe: u64::from(probe),
        }
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.udp_sockets
            .saturating_add(self.sip_udp_sockets)
            .saturating_mul(self.udp_workers)
            .saturating_add(self.tcp)
            .saturating_add(self.sip_tcp)
            .saturating_add(self.sip_tls)
            .saturating_add(self.probe)
    }
}

impl std::fmt::Display for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} lanes: {} enum.listen_udp socket(s) x {} workers, {} enum.listen_tcp listener(s), ",
            self.total(),
            self.udp_sockets,
            self.udp_workers,
            self.tcp,
        )?;
        if self.sip_udp_sockets + self.sip_tcp + self.sip_tls > 0 {
            write!(
                f,
                "{} sip_redirect.listen_udp socket(s) x {} workers, {} sip_redirect.listen_tcp listener(s), ",
                self.sip_udp_sockets, self.udp_workers, self.sip_tcp
            )?;
        }
        if self.sip_tls > 0 {
            write!(f, "{} sip_redirect.listen_tls listener(s), ", self.sip_tls)?;
        }
        write!(f, "{} probe", self.probe)
    }
}

/// Space of the file system holding the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSystem {
    /// Its size.
    pub total_bytes: u64,
    /// Free for this process now.
    pub available_bytes: u64,
}

/// The spool's needs on this machine.
#[derive(Debug, Clone)]
pub struct SpoolPlan {
    /// The spool directory.
    pub dir: PathBuf,
    /// Lanes writing it.
    pub lanes: Lanes,
    /// The most disk the spool can take: the backlog limit plus one segment per lane (bytes;
    /// `None` without a limit).
    pub worst_case_bytes: Option<u64>,
    /// The file system holding it, when it could be asked.
    pub file_system: Option<FileSystem>,
}

impl SpoolPlan {
    /// A line for `config check`.
    pub fn summary(&self) -> String {
        match self.worst_case_bytes {
            Some(w) => format!(
                "spool {}: {}; disk use at most {} MiB (spool.max_disk_mb of records not yet shipped, plus one \
                 spool.segment_mb segment per lane)",
                self.dir.display(),
                self.lanes,
                w.div_ceil(MIB)
            ),
            None => format!(
                "spool {}: {}; no limit (spool.max_disk_mb = 0): a collector outage fills the disk",
                self.dir.display(),
                self.lanes
            ),
        }
    }

    /// A warning when the file system has less free space now than the spool may need.
    pub fn warning(&self, spool_bytes_now: u64) -> Option<String> {
        let (w, fs) = (self.worst_case_bytes?, self.file_system?);
        (w > fs.available_bytes.saturating_add(spool_bytes_now)).then(|| {
            format!(
                "the file system holding {} has {} MiB free; the spool may need up to {} MiB (it holds {} MiB now): \
                 records would be refused for lack of space before spool.max_disk_mb is reached",
                self.dir.display(),
                fs.available_bytes / MIB,
                w.div_ceil(MIB),
                spool_bytes_now / MIB
            )
        })
    }
}

/// The spool's needs for `config` on this machine, for a process writing `lanes`; an error,
/// naming the fields and the numbers, when they cannot work here (more disk than the file
/// system holding the spool has).
pub fn plan(config: &Config, lanes: Lanes) -> anyhow::Result<SpoolPlan> {
    let dir = config.spool_dir();
    let s = &config.spool;
    let worst_case_bytes = if s.max_disk_mb == 0 {
        None
    } else {
        let worst = lanes
            .total()
            .checked_mul(s.segment_mb)
            .and_then(|segments| segments.checked_add(s.max_disk_mb))
            .and_then(|mb| mb.checked_mul(MIB));
        match worst {
            Some(w) => Some(w),
            None => bail!(
                "spool.max_disk_mb ({} MiB) plus one spool.segment_mb ({} MiB) segment for each of the {} is too large",
                s.max_disk_mb,
                s.segment_mb,
                lanes
            ),
        }
    };
    let file_system = file_system(&dir);
    if let (Some(w), Some(fs)) = (worst_case_bytes, file_system)
        && w > fs.total_bytes
    {
        bail!(
            "spool.max_disk_mb ({} MiB) plus one spool.segment_mb ({} MiB) segment for each of the {} comes to {} MiB, \
             more than the whole file system holding {} ({} MiB): lower spool.max_disk_mb, spool.segment_mb or \
             enum.udp_workers",
            s.max_disk_mb,
            s.segment_mb,
            lanes,
            w.div_ceil(MIB),
            dir.display(),
            fs.total_bytes / MIB
        );
    }
    Ok(SpoolPlan { dir, lanes, worst_case_bytes, file_system })
}

/// Bytes of segment files in `dir` now.
pub fn spool_bytes_now(dir: &Path) -> u64 {
    let segments = tollgate_records::spool::segments(dir).unwrap_or_default();
    segments.iter().filter_map(|s| std::fs::metadata(s).ok()).map(|m| m.len()).sum()
}

/// The file system holding `dir`, or the nearest existing directory above it.
fn file_system(dir: &Path) -> Option<FileSystem> {
    let existing = dir.ancestors().find(|p| p.is_dir()).unwrap_or(Path::new("."));
    let st = rustix::fs::statvfs(existing).ok()?;
    Some(FileSystem {
        total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
        available_bytes: st.f_bavail.saturating_mul(st.f_frsize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse("t.toml", text).unwrap()
    }

    #[test]
    fn lanes_follow_sockets_workers_and_listeners() {
        let c = config(
            "[enum]\nlisten_udp = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\nlisten_tcp = [\"127.0.0.1:1\"]\nudp_workers = 3\n",
        );
        assert_eq!(Lanes::of(&c, true, true).total(), 2 * 3 + 1 + 1);
        assert_eq!(Lanes::of(&c, false, true).total(), 1, "a probe alone");
        assert_eq!(Lanes::of(&c, true, false).total(), 2 * 3 + 1, "an engine alone");
        let c = config(
            "[enum]\nlisten_udp = [\"127.0.0.1:1\"]\nlisten_tcp = []\nudp_workers = 2\n\
             [sip_redirect]\nlisten_udp = [\"127.0.0.1:3\", \"127.0.0.1:4\"]\nlisten_tcp = [\"127.0.0.1:3\"]\n",
        );
        assert_eq!(Lanes::of(&c, true, false).total(), (1 + 2) * 2 + 1, "the SIP redirect server's lanes count");
        assert_eq!(Lanes::of(&c, false, true).total(), 1, "not in a probe");
        assert!(
            Lanes::of(&c, true, false)
                .to_string()
                .contains("2 sip_redirect.listen_udp socket(s) x 2 workers, 1 sip_redirect.listen_tcp")
        );
        let c = config(
            "[enum]\nlisten_udp = [\"127.0.0.1:1\"]\nlisten_tcp = []\nudp_workers = 1\n[sip_redirect]\nlisten_tls = [\"127.0.0.1:5\", \"127.0.0.1:6\"]\n\
             [tls]\nca = \"/pki/ca.crt\"\ncert = \"/pki/e.crt\"\nkey = \"/pki/e.key\"\n",
        );
        assert_eq!(Lanes::of(&c, true, false).total(), 1 + 2, "a lane per SIP TLS listener");
        assert!(Lanes::of(&c, true, false).to_string().contains("2 sip_redirect.listen_tls listener(s)"));
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
        let c = config("[enum]\nudp_workers = 0\n");
        assert_eq!(Lanes::of(&c, true, true).total(), cpus + 2, "0: one per CPU");
    }

    #[test]
    fn a_spool_larger_than_its_file_system_is_refused_naming_the_fields_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[node]\nstate_dir = \"{}\"\n[enum]\nudp_workers = 2\n[spool]\nmax_disk_mb = 1000000000\nsegment_mb = 64\n",
            dir.path().display()
        );
        let c = config(&text);
        let e = plan(&c, Lanes::of(&c, true, true)).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "spool.max_disk_mb (1000000000 MiB) plus one spool.segment_mb (64 MiB) segment for each of the 4 lanes: \
                 1 enum.listen_udp socket(s) x 2 workers, 1 enum.listen_tcp listener(s), 1 probe comes to 1000000256 MiB, \
                 more than the whole file system holding"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_spool_that_fits_says_what_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[node]\nstate_dir = \"{}\"\n[enum]\nudp_workers = 2\n[spool]\nmax_disk_mb = 16\nsegment_mb = 4\n",
            dir.path().display()
        );
        let c = config(&text);
        let p = plan(&c, Lanes::of(&c, true, true)).unwrap();
        assert_eq!(p.worst_case_bytes, Some((16 + 4 * 4) << 20));
        assert!(p.summary().contains("4 lanes") && p.summary().contains("disk use at most 32 MiB"), "{}", p.summary());
        assert_eq!(p.warning(0), None, "32 MiB are free");
    }
}
