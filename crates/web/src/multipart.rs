//! Policy uploads: a `policy` part (the TOML file) and one `list:NAME` part per number list.
//! List parts are streamed to temporary files, so lists of millions of numbers do not sit in
//! memory.

use std::collections::BTreeMap;
use std::io::Write;

use axum::extract::Multipart;
use tempfile::TempDir;
use tollgate_policy::PolicySource;

/// A received policy with its lists on disk (deleted when dropped).
pub(crate) struct Upload {
    pub(crate) source: PolicySource,
    _dir: TempDir,
}

/// Reads an upload; the error says what is missing or wrong.
pub(crate) async fn read_upload(mut multipart: Multipart) -> Result<Upload, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let mut policy: Option<(String, String)> = None;
    let mut lists = BTreeMap::new();
    while let Some(mut field) = multipart.next_field().await.map_err(|e| format!("bad multipart body: {e}"))? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "policy" {
            let file = field.file_name().unwrap_or("policy.toml").to_string();
            let bytes = field.bytes().await.map_err(|e| format!("reading part `policy`: {e}"))?;
            let text =
                String::from_utf8(bytes.to_vec()).map_err(|_| format!("{file}: the policy is not UTF-8 text"))?;
            policy = Some((file, text));
        } else if let Some(list) = name.strip_prefix("list:") {
            if list.is_empty() || !list.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(format!("bad list part name {name:?}: use list:NAME with letters, digits, '_' or '-'"));
            }
            let path = dir.path().join(format!("{list}.txt"));
            let mut file = std::fs::File::create(&path).map_err(|e| format!("storing list {list}: {e}"))?;
            while let Some(chunk) = field.chunk().await.map_err(|e| format!("reading list {list}: {e}"))? {
                file.write_all(&chunk).map_err(|e| format!("storing list {list}: {e}"))?;
            }
            lists.insert(list.to_string(), path);
        } else {
            return Err(format!("unexpected part {name:?}: send `policy` and `list:NAME` parts"));
        }
    }
    let (file, text) = policy.ok_or("the upload has no `policy` part")?;
    Ok(Upload { source: PolicySource::from_text(file, text, lists), _dir: dir })
}
