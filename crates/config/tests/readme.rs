//! Every configuration the README shows is valid, the embedded default included, and the
//! README's migration example is what `config migrate` does.

use tollgate_config::{Config, DEFAULT_CONFIG, migrate};

const README: &str = include_str!("../../../README.md");

/// The README's ```toml blocks that are configurations (not policies).
fn config_blocks() -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for (i, line) in README.lines().enumerate() {
        match (&mut block, line.trim_start()) {
            (None, "```toml") => block = Some((i + 2, String::new())),
            (Some(_), "```") => {
                let (line, text) = block.take().unwrap();
                let policy = text.contains("[[rule]]") || text.trim_start().starts_with("schema");
                if !policy {
                    out.push((line, text));
                }
            }
            (Some((_, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

#[test]
fn every_configuration_in_the_readme_is_valid() {
    let blocks = config_blocks();
    assert!(blocks.len() >= 2, "the README shows configurations");
    for (line, text) in &blocks {
        Config::parse(&format!("README.md block at line {line}"), text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
    Config::parse("default", DEFAULT_CONFIG).unwrap();
}

#[test]
fn the_readme_migration_example_is_what_migrate_does() {
    let blocks = config_blocks();
    let pair = blocks
        .windows(2)
        .find(|w| !w[0].1.contains("config_version") && w[1].1.starts_with("config_version"))
        .expect("the README shows a file before and after `config migrate`");
    let (text, report) = migrate::migrate(&pair[0].1).unwrap();
    assert_eq!(text, pair[1].1);
    let renamed = report.changes.iter().find(|c| c.kind == migrate::ChangeKind::Renamed).unwrap();
    let shown = renamed.to_string();
    let readme = README.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(readme.contains(&shown), "the README quotes the report line {shown:?}");
}
