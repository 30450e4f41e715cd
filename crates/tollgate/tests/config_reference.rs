//! `tollgate config reference` as a build script calls it: the Markdown it prints is the
//! committed docs/CONFIG.md, and the man page it writes is one groff renders without a warning
//! (as `man` and lintian read it). No server is started, no address is bound.

use std::process::Command;

fn tollgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    c.env_remove("TOLLGATE_CONFIG").env_remove("TOLLGATE_LOG_FORMAT").env("TOLLGATE_LOG", "warn");
    c
}

#[test]
fn the_markdown_reference_is_the_committed_docs_config_md() {
    let out = tollgate().args(["config", "reference"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIG.md");
    let committed = std::fs::read_to_string(path).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
}

#[test]
fn the_man_page_renders_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("tollgate.toml.5");
    let out = tollgate().args(["config", "reference", "--format", "man", "--out"]).arg(&page).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "with --out nothing goes to standard output");
    // groff from groff-base (scripts/install-test-deps.sh), as man(1) runs it; -ww: every
    // warning, -z: no output, only the diagnostics.
    let groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&page)
        .output()
        .expect("groff (Debian package groff-base) renders man pages");
    let warnings = String::from_utf8_lossy(&groff.stderr);
    assert!(groff.status.success() && warnings.is_empty(), "groff: {warnings}");
    let text = std::fs::read_to_string(&page).unwrap();
    assert!(text.contains(".SS \"[agent]\"") && text.contains(".B \"max_bundle_mb\""), "{text}");
}
