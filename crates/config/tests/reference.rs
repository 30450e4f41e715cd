//! docs/CONFIG.md is the reference `tollgate config reference` renders from the code, and the
//! README points to it.

use tollgate_config::reference::{Format, render};

#[test]
fn docs_config_md_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIG.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rendered = render(Format::Markdown, env!("CARGO_PKG_VERSION"));
    assert!(
        committed == rendered,
        "docs/CONFIG.md is out of date: run `cargo run -p tollgate -- config reference --out docs/CONFIG.md` and \
         commit it"
    );
}

#[test]
fn the_readme_links_the_reference() {
    let readme = include_str!("../../../README.md");
    assert!(readme.contains("](docs/CONFIG.md)"), "the README links docs/CONFIG.md");
}
