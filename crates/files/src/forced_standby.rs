//! The forced-standby flag a server's agent keeps for the manager (seed 000: "every server that
//! is NOT running the same version as the active server must be in forced standby"): a file in
//! the agent's directory whose existence means "held". The agent passes its path to the role
//! process as `TOLLGATE_FORCED_STANDBY_FILE`; the role (an SRP chassis, a manager of the pair)
//! reads it at start, before its first election, and watches it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The environment variable naming the flag file.
pub const ENV: &str = "TOLLGATE_FORCED_STANDBY_FILE";

/// The flag file of this process (none when no agent runs it).
fn path_from_env() -> Option<PathBuf> {
    std::env::var_os(ENV).map(PathBuf::from)
}

/// Whether the agent holds this server in forced standby now.
pub fn held() -> bool {
    path_from_env().is_some_and(|p| p.exists())
}

/// Watches the flag and reports changes only, so that an operator's `srp forced-standby on|off`
/// holds until the manager changes the flag again.
pub struct ForcedStandbyWatch {
    path: Option<PathBuf>,
    last: bool,
    next_check: Instant,
}

impl ForcedStandbyWatch {
    /// How often the file is looked at.
    const EVERY: Duration = Duration::from_millis(200);

    /// Watches the file named by [`ENV`]; the first look reports a held flag.
    pub fn from_env() -> Self {
        ForcedStandbyWatch::new(path_from_env())
    }

    /// Watches `path` (none: never held).
    pub fn new(path: Option<PathBuf>) -> Self {
        ForcedStandbyWatch { path, last: false, next_check: Instant::now() }
    }

    /// The flag, when it changed since the last look (looks at most every 200 ms).
    pub fn changed(&mut self) -> Option<bool> {
        let now = Instant::now();
        if now < self.next_check {
            return None;
        }
        self.next_check = now + Self::EVERY;
        let held = self.path.as_ref().is_some_and(|p| p.exists());
        (held != self.last).then(|| {
            self.last = held;
            held
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_are_reported_and_a_missing_path_is_never_held() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("forced-standby");
        let mut w = ForcedStandbyWatch::new(Some(file.clone()));
        assert_eq!(w.changed(), None, "not held at start: nothing to apply");
        std::fs::write(&file, "1\n").unwrap();
        w.next_check = Instant::now();
        assert_eq!(w.changed(), Some(true));
        w.next_check = Instant::now();
        assert_eq!(w.changed(), None, "still held: no change");
        // The next look is not due yet (set far off: a slow unlink must not make it due).
        w.next_check = Instant::now() + std::time::Duration::from_secs(3600);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(w.changed(), None, "not looked at again before it is due");
        w.next_check = Instant::now();
        assert_eq!(w.changed(), Some(false));
        let mut none = ForcedStandbyWatch::new(None);
        assert_eq!(none.changed(), None);
    }
}
