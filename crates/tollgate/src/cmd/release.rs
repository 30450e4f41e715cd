//! `tollgate release keygen | build | verify`: release bundles (the seed's "ISO"), signed with
//! ed25519, holding this tollgate binary.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use tollgate_upgrade::bundle::{
    self, BundleFile, BundleSpec, TrustedKeys, parse_signing_key, public_key_hex, signing_key_from_seed,
};
use tollgate_upgrade::release::{Release, ReleasePattern};

use crate::cli::ReleaseCommand;

/// Writes a new signing key (hex seed) to `path`, a new file of mode 0600 from the start (never
/// readable by others, not even for a moment, and never written into a file someone else
/// holds open); returns the public key.
pub fn keygen(path: &Path) -> anyhow::Result<String> {
    let seed: [u8; 32] = rand::random();
    let key = signing_key_from_seed(seed);
    let text = format!("{}\n", hex_encode(&seed));
    tollgate_files::private_files::write_private(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(public_key_hex(&key.verifying_key()))
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Builds a bundle of this binary.
pub fn build(
    key_file: &Path,
    application: &str,
    version: &str,
    upgrades_from: &[String],
    max_policy_schema: Option<i64>,
    binary: Option<&Path>,
    out: &Path,
) -> anyhow::Result<()> {
    let key = parse_signing_key(std::fs::read_to_string(key_file)?.trim())
        .map_err(|e| anyhow!("{}: {e}", key_file.display()))?;
    let binary = match binary {
        Some(b) => b.to_path_buf(),
        None => std::env::current_exe().context("cannot find this tollgate binary")?,
    };
    let data = std::fs::read(&binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let spec = BundleSpec {
        application: application.parse().map_err(|e| anyhow!("--application: {e}"))?,
        version: Release::new(version).map_err(|e| anyhow!("--version: {e}"))?,
        upgrades_from: upgrades_from
            .iter()
            .map(|p| ReleasePattern::new(p).map_err(|e| anyhow!("--upgrades-from: {e}")))
            .collect::<anyhow::Result<_>>()?,
        description: format!("tollgate {version} ({application})"),
        max_policy_schema,
    };
    bundle::build_file(out, &spec, &[BundleFile { path: "tollgate".into(), data, executable: true }], &key)
        .map_err(|e| anyhow!("{e}"))
}

/// Runs a release command.
pub fn run(command: &ReleaseCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReleaseCommand::Keygen { out } => {
            let public = keygen(out)?;
            println!("{public}");
            eprintln!(
                "signing key written to {} (keep it secret); trust the public key above in [agent] trusted_keys",
                out.display()
            );
        }
        ReleaseCommand::Build { key, application, version, upgrades_from, max_policy_schema, binary, out } => {
            build(key, application, version, upgrades_from, *max_policy_schema, binary.as_deref(), out)?;
            println!("{}", out.display());
        }
        ReleaseCommand::Verify { file, trusted_keys } => {
            let trusted = TrustedKeys::from_hex(trusted_keys).map_err(|e| anyhow!("--trusted-key: {e}"))?;
            let b = bundle::verify_file(file, &trusted, &Default::default())
                .map_err(|e| anyhow!("{}: {e}", file.display()))?;
            println!(
                "{}: {} {} (upgrades from {}), signed by {}",
                file.display(),
                b.manifest.application.as_str(),
                b.manifest.version.as_str(),
                b.manifest.upgrades_from.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "),
                public_key_hex(&b.signer)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
