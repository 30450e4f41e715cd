//! The log on standard error: its filter and format from the command line, else from the
//! configuration's `[log]`, else the defaults; colour only for a terminal.
//!
//! Logging starts before the configuration is loaded (loading may log), so the `[log]` section
//! of the `--config` file is read on its own first; a file that does not read leaves the
//! defaults, and loading the whole file then reports the problem with its line.

use std::io::IsTerminal;
use std::path::Path;

use tollgate_config::log::{LogConfig, LogFormat};

use crate::cli::Cli;

/// The log settings in force: the command line's (or its environment variables'), else the
/// configuration file's, else the defaults.
pub fn settings(cli: &Cli) -> LogConfig {
    let mut settings = config_file_settings(cli.config.as_deref());
    if let Some(level) = &cli.log {
        settings.level = level.clone();
    }
    if let Some(format) = cli.log_format {
        settings.format = format;
    }
    settings
}

/// `[log]` of the configuration file (the defaults without one, or when it does not read).
fn config_file_settings(path: Option<&Path>) -> LogConfig {
    match path.map(std::fs::read_to_string) {
        Some(Ok(text)) => LogConfig::of_text(&text),
        _ => LogConfig::default(),
    }
}

/// Whether text logs are coloured: only on a terminal, and never when `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>).
pub fn colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Starts the log on standard error with `settings`. An unreadable filter falls back to `info`.
pub fn init(settings: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.level).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match settings.format {
        LogFormat::Text => {
            let ansi = colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
            builder.with_ansi(ansi).init();
        }
        // One object per line: timestamp, level, target, message and the event's fields at
        // the top level (no span context: tollgate's events carry what they need as fields).
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(false).with_span_list(false).with_ansi(false).init()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))), "an empty NO_COLOR is as if unset");
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }

    #[test]
    fn the_command_line_wins_over_the_configuration_file() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[log]\nformat = \"json\"\nlevel = \"debug\"\n").unwrap();
        let p = path.to_str().unwrap();
        let cli = |args: &[&str]| Cli::try_parse_from([&["tollgate", "--config", p], args].concat()).unwrap();
        let s = settings(&cli(&["config", "default"]));
        assert_eq!((s.format, s.level.as_str()), (LogFormat::Json, "debug"));
        let s = settings(&cli(&["--log-format", "text", "--log", "warn", "config", "default"]));
        assert_eq!((s.format, s.level.as_str()), (LogFormat::Text, "warn"));
        assert!(Cli::try_parse_from(["tollgate", "--log-format", "xml", "config", "default"]).is_err());
    }
}
