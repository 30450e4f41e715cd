//! The README as a new operator reads it: every policy and configuration example in it is
//! valid on the default configuration, and it speaks the operator's language.
//!
//! Every ```toml block of the README is checked: a block with rules (`[[rule]]`, `schema =`,
//! `[[internal]]`) is a policy and must pass `tollgate policy check` on the embedded default
//! configuration; any other block is (part of) a configuration and must pass `tollgate
//! --config FILE config check`. No server is started, no fixed address is bound.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The ```toml blocks of `text`, each with the line its first line of TOML is on.
fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed.starts_with("```toml") => current = Some((i + 2, String::new())),
            None => {}
            Some(_) if trimmed.starts_with("```") => blocks.push(current.take().unwrap()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    assert!(current.is_none(), "the README ends inside a ```toml block");
    blocks
}

fn is_policy(block: &str) -> bool {
    block.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("[[rule]]") || l.starts_with("[[internal]]") || l.starts_with("schema =")
    })
}

fn tollgate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .current_dir(dir)
        .env_remove("TOLLGATE_CONFIG")
        .env_remove("TOLLGATE_TOKEN")
        .env("TOLLGATE_LOG", "warn")
        .output()
        .expect("running tollgate")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Writes the list files a policy names in `[lists]` (one number each) next to it.
fn write_lists(policy: &str, dir: &Path) {
    let table: toml::Table = toml::from_str(policy).expect("the README's policy is TOML");
    for (_, path) in table.get("lists").and_then(|l| l.as_table()).into_iter().flatten() {
        let file: PathBuf = dir.join(path.as_str().expect("a list is a file path"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "+13125550666\n").unwrap();
    }
}

#[test]
fn every_policy_and_configuration_block_of_the_readme_is_valid_on_the_default_configuration() {
    let blocks = toml_blocks(&readme());
    let (policies, configs): (Vec<_>, Vec<_>) = blocks.iter().partition(|(_, b)| is_policy(b));
    assert!(!policies.is_empty(), "the README shows no policy");
    assert!(!configs.is_empty(), "the README shows no configuration");
    for (line, block) in blocks {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("readme-line-{line}.toml"));
        std::fs::write(&file, &block).unwrap();
        let file = file.to_str().unwrap();
        let out = if is_policy(&block) {
            write_lists(&block, dir.path());
            tollgate(dir.path(), &["policy", "check", file])
        } else {
            tollgate(dir.path(), &["--config", file, "config", "check"])
        };
        assert!(
            out.status.success(),
            "README.md:{line}: this {} block is refused:\n{block}\n{}",
            if is_policy(&block) { "policy" } else { "configuration" },
            text(&out)
        );
    }
}

#[test]
fn a_refused_block_is_noticed() {
    // The check above would catch the README's old example: an intercept the default
    // configuration does not define.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        "schema = 2\n[[rule]]\nname = \"x\"\ndestination = \"+12125550111\"\naction = \"terminate\"\nintercept = \"announcement\"\n",
    )
    .unwrap();
    assert!(is_policy(&std::fs::read_to_string(&file).unwrap()));
    let out = tollgate(dir.path(), &["policy", "check", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("unknown intercept \"announcement\""), "{}", text(&out));
}

/// Words of the documents tollgate was built from, which a new operator cannot know.
const INSIDER_WORDS: [&str; 6] = ["seed 0", "the seed", "seed's", "FST ", "(seed", "seeds'"];

#[test]
fn the_readme_speaks_the_operators_language() {
    let text = readme();
    for (i, line) in text.lines().enumerate() {
        for word in INSIDER_WORDS {
            assert!(!line.contains(word), "README.md:{}: {word:?} in: {line}", i + 1);
        }
    }
}

#[test]
fn help_texts_speak_the_operators_language() {
    let dir = tempfile::tempdir().unwrap();
    // Every command's and subcommand's help, found by walking `help`'s command lists.
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = tollgate(dir.path(), &args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        seen += 1;
        for word in INSIDER_WORDS {
            assert!(!help.contains(word), "`tollgate {}` says {word:?}:\n{help}", path.join(" "));
        }
        let mut in_commands = false;
        for line in help.lines() {
            if line.starts_with("Commands:") {
                in_commands = true;
                continue;
            }
            if in_commands {
                if !line.starts_with("  ") {
                    in_commands = false;
                    continue;
                }
                let name = line.split_whitespace().next().unwrap_or("");
                if !name.is_empty() && name != "help" {
                    let mut sub = path.clone();
                    sub.push(name.to_string());
                    todo.push(sub);
                }
            }
        }
    }
    assert!(seen > 40, "only {seen} help pages found");
}
