//! The demo policy shipped inside the binary.

use std::path::Path;

use anyhow::Context;
use tollgate_policy::PolicySource;
use tollgate_policy::service::PolicyService;

/// The demo policy text.
pub const DEMO_POLICY: &str = include_str!("../../assets/demo-policy.toml");
/// The demo robocaller list.
pub const DEMO_ROBOCALLERS: &str = include_str!("../../assets/demo-lists/robocallers.txt");

/// Writes the demo policy and its list into `dir` and returns the policy file path.
pub fn write_demo(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir.join("demo-lists"))?;
    std::fs::write(dir.join("demo-lists/robocallers.txt"), DEMO_ROBOCALLERS)?;
    let path = dir.join("demo-policy.toml");
    std::fs::write(&path, DEMO_POLICY)?;
    Ok(path)
}

/// Installs the demo policy.
pub fn install(service: &PolicyService) -> anyhow::Result<u64> {
    let dir = tempfile::tempdir()?;
    let path = write_demo(dir.path())?;
    let mut source = PolicySource::from_path(&path)?;
    source.file = "demo-policy.toml".into();
    let info = service.install(&source, "demo").context("installing the demo policy")?;
    Ok(info.version)
}
