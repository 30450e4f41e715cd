//! `tollgate spool dump`: every record still in a spool directory, as JSON lines.

use std::path::Path;
use std::process::ExitCode;

/// Prints every record of the spool in `dir` (side spools included), oldest segment first;
/// fails (after printing what it could read) when a segment is damaged.
pub fn dump(dir: &Path) -> anyhow::Result<ExitCode> {
    if !dir.is_dir() {
        anyhow::bail!("no spool directory {}", dir.display());
    }
    let mut damaged = false;
    let mut segments = tollgate_records::spool::segments(dir)?;
    for side in tollgate_records::spool::side::side_dirs(dir)? {
        segments.extend(tollgate_records::spool::segments(&side)?);
    }
    for seg in segments {
        let contents = tollgate_records::spool::read_segment(&seg)?;
        for r in &contents.records {
            outln!("{}", serde_json::to_string(r)?)?;
        }
        if let Some(d) = contents.damage {
            eprintln!("{}: {d}", seg.display());
            damaged = true;
        }
    }
    Ok(if damaged { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
