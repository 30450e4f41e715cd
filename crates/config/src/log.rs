//! `[log]`: what the process logs to standard error, and in which format.

use serde::{Deserialize, Serialize};

/// How log events are written to standard error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event; coloured only when standard error is a terminal and
    /// `NO_COLOR` is not set.
    #[default]
    Text,
    /// One JSON object per line and event (for journald, Loki, ...): `timestamp` (RFC 3339,
    /// UTC), `level` (`ERROR` .. `TRACE`), `target` (the module), `message`, and the event's
    /// own fields beside them.
    Json,
}

impl LogFormat {
    /// Every format, as written in the configuration and on the command line.
    pub const ALL: [LogFormat; 2] = [LogFormat::Text, LogFormat::Json];

    /// The name in the configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        LogFormat::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| format!("{s:?} is not text or json"))
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json` (`--log-format` and `TOLLGATE_LOG_FORMAT` win over it).
    pub format: LogFormat,
    /// What is logged: error, warn, info, debug, trace, or a tracing filter directive
    /// (`info,tollgate_srp=debug`); `--log` and `TOLLGATE_LOG` win over it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Text, level: "info".into() }
    }
}

impl LogConfig {
    /// The `[log]` section of configuration text, read on its own before the whole file is
    /// (logging starts before the configuration is loaded): the defaults when the text has no
    /// `[log]` or when it does not read (loading the whole file reports that, with its line).
    pub fn of_text(text: &str) -> LogConfig {
        #[derive(Deserialize)]
        struct OnlyLog {
            #[serde(default)]
            log: LogConfig,
        }
        toml::from_str::<OnlyLog>(text).map(|o| o.log).unwrap_or_default()
    }

    /// The problems of the fields (`log.level`).
    pub fn problems(&self, out: &mut Vec<crate::Problem>) {
        if self.level.trim().is_empty() {
            out.push(crate::Problem::new("log.level", "must not be empty (error, warn, info, debug or trace)"));
        } else if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            out.push(crate::Problem::new(
                "log.level",
                format!("{:?} is not a log level or filter (error, warn, info, debug, trace): {e}", self.level),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_section_is_read_on_its_own_and_defaults_when_absent_or_unreadable() {
        let c = LogConfig::of_text("[node]\nname = \"x\"\n[log]\nformat = \"json\"\nlevel = \"debug\"\n");
        assert_eq!((c.format, c.level.as_str()), (LogFormat::Json, "debug"));
        assert_eq!(LogConfig::of_text("[node]\nname = \"x\"\n"), LogConfig::default());
        assert_eq!(LogConfig::of_text("[log]\nformat = \"xml\"\n"), LogConfig::default());
        assert_eq!(LogConfig::of_text("[log\n"), LogConfig::default());
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
