//! `tollgate generate`: the files a package is built from, made from this binary so they
//! cannot drift from it: man pages (clap_mangen), shell completions (clap_complete) and the
//! packaged configuration (the embedded default with the package's state directory); and, for
//! benchmarks, a spool of realistic records ([`records`]).

pub mod records;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, GenerateCommand};
use crate::config::{Config, DEFAULT_CONFIG};

/// Runs a generate command.
pub fn run(command: &GenerateCommand) -> anyhow::Result<ExitCode> {
    match command {
        GenerateCommand::Man { dir } => {
            for page in man_pages(dir)? {
                outln!("{}", page.display())?;
            }
        }
        GenerateCommand::Completions { dir } => {
            for file in completions(dir)? {
                outln!("{}", file.display())?;
            }
        }
        GenerateCommand::Config { state_dir } => out!("{}", packaged_config(state_dir)?)?,
        GenerateCommand::Records { count, spool, part, seed, end } => {
            let end = match end {
                Some(end) => *end,
                None => chrono::DurationRound::duration_trunc(chrono::Utc::now(), chrono::TimeDelta::minutes(1))?,
            };
            let plan = records::Plan { count: *count, part: part.0, parts: part.1, seed: *seed, end };
            let started = std::time::Instant::now();
            let written = records::fill_spool(spool, &plan)?;
            let range = plan.range();
            eprintln!(
                "{written} records ({} to {} of {count}) appended to {} in {:.1} s",
                range.start,
                range.end,
                spool.display(),
                started.elapsed().as_secs_f64()
            );
            outln!("{written}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes tollgate.1 and a page per visible subcommand into `dir`; returns the files written.
pub fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    Ok(pages)
}

/// Writes the bash, zsh and fish completions into `dir`; returns the files written.
pub fn completions(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use clap_complete::Shell;
    create_dir(dir)?;
    let mut cmd = Cli::command();
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            clap_complete::generate_to(shell, &mut cmd, "tollgate", dir)
                .with_context(|| format!("cannot write the {shell} completion to {}", dir.display()))
        })
        .collect()
}

/// The default configuration, comments and all, with `node.state_dir` set to `state_dir` and a
/// first line saying where it came from; checked to load before it is returned.
pub fn packaged_config(state_dir: &Path) -> anyhow::Result<String> {
    let mut doc: toml_edit::DocumentMut = DEFAULT_CONFIG.parse().context("the embedded default configuration")?;
    let dir = state_dir.to_str().context("--state-dir must be UTF-8")?;
    let node = doc
        .get_mut("node")
        .and_then(|n| n.as_table_mut())
        .context("the embedded default configuration has no [node] table")?;
    let item = node.get_mut("state_dir").and_then(|i| i.as_value_mut()).context("no node.state_dir in the default")?;
    // Keep the value's own decoration (spacing, a trailing comment) around the new path.
    let decor = item.decor().clone();
    *item = toml_edit::Value::from(dir);
    *item.decor_mut() = decor;
    let text = format!(
        "# Installed by the tollgate package as /etc/tollgate/tollgate.toml (a conffile: your changes\n\
         # are kept on upgrade). Made by `tollgate generate config` from the embedded default.\n{doc}"
    );
    let parsed = Config::parse("packaged configuration", &text).map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(parsed.node.state_dir == state_dir, "node.state_dir did not take {}", state_dir.display());
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_configuration_is_the_default_with_the_package_state_dir() {
        let text = packaged_config(Path::new("/var/lib/tollgate")).unwrap();
        assert!(text.contains("state_dir = \"/var/lib/tollgate\"\n"), "{text}");
        // Everything else, comments included, is the embedded default's.
        let body = text.split_once("embedded default.\n").unwrap().1;
        assert_eq!(body.replace("\"/var/lib/tollgate\"", "\"tollgate-data\""), DEFAULT_CONFIG);
        let config = Config::parse("packaged", &text).unwrap();
        assert_eq!(config.node.state_dir, Path::new("/var/lib/tollgate"));
    }

    #[test]
    fn generate_records_takes_its_arguments_and_refuses_a_bad_part() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "tollgate",
            "generate",
            "records",
            "--count",
            "1000",
            "--spool",
            "/tmp/s",
            "--part",
            "2/3",
            "--end",
            "2026-11-26T00:00:00Z",
        ])
        .unwrap();
        let crate::cli::Command::Generate { command: GenerateCommand::Records { count, spool, part, seed, end } } =
            cli.command
        else {
            panic!("not generate records: {:?}", cli.command)
        };
        assert_eq!((count, spool.as_path(), part, seed), (1000, Path::new("/tmp/s"), (2, 3), 1));
        assert_eq!(end.unwrap().to_rfc3339(), "2026-11-26T00:00:00+00:00");
        let err =
            Cli::try_parse_from(["tollgate", "generate", "records", "--count", "9", "--spool", "s", "--part", "3/2"])
                .unwrap_err()
                .to_string();
        assert!(err.contains("part 3 of 2"), "{err}");
    }

    #[test]
    fn man_pages_and_completions_name_the_subcommands() {
        let dir = tempfile::tempdir().unwrap();
        let pages = man_pages(&dir.path().join("man")).unwrap();
        let names: Vec<String> = pages.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        for page in [
            "tollgate.1",
            "tollgate-engine.1",
            "tollgate-collector.1",
            "tollgate-manager.1",
            "tollgate-agent.1",
            "tollgate-probe.1",
        ] {
            assert!(names.iter().any(|n| n == page), "{page} missing from {names:?}");
        }
        // The hidden generator is not documented as a user command.
        assert!(!names.iter().any(|n| n.starts_with("tollgate-generate")), "{names:?}");
        let top = std::fs::read_to_string(dir.path().join("man/tollgate.1")).unwrap();
        assert!(
            top.starts_with(".ie") || top.contains(".TH tollgate 1"),
            "not a man page: {}",
            &top[..80.min(top.len())]
        );
        let files = completions(&dir.path().join("completions")).unwrap();
        assert_eq!(files.len(), 3);
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(text.contains("engine") && text.contains("collector"), "{}", f.display());
        }
    }
}
