//! Policy uploads: a `policy` part (the TOML file) and its number lists, either as
//! `list:NAME` parts (the API) or as `lists` file parts named `NAME.txt` (the web form). List
//! parts are streamed to temporary files, so lists of millions of numbers do not sit in
//! memory. Other text parts (form buttons) are returned by name.

use std::collections::BTreeMap;
use std::io::Write;

use axum::extract::Multipart;
use axum::extract::multipart::Field;
use tempfile::TempDir;
use tollgate_policy::PolicySource;

/// A received policy with its lists on disk (deleted when dropped).
pub(crate) struct Upload {
    pub(crate) source: PolicySource,
    /// Other text fields of the form (e.g. which button was pressed).
    pub(crate) fields: BTreeMap<String, String>,
    _dir: TempDir,
}

fn valid_list_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

async fn store_list(mut field: Field<'_>, dir: &TempDir, list: &str) -> Result<std::path::PathBuf, String> {
    let path = dir.path().join(format!("{list}.txt"));
    let mut file = std::fs::File::create(&path).map_err(|e| format!("storing list {list}: {e}"))?;
    while let Some(chunk) = field.chunk().await.map_err(|e| format!("reading list {list}: {e}"))? {
        file.write_all(&chunk).map_err(|e| format!("storing list {list}: {e}"))?;
    }
    Ok(path)
}

/// Reads an upload; the error says what is missing or wrong.
pub(crate) async fn read_upload(mut multipart: Multipart) -> Result<Upload, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let mut policy: Option<(String, String)> = None;
    let mut lists = BTreeMap::new();
    let mut fields = BTreeMap::new();
    while let Some(field) = multipart.next_field().await.map_err(|e| format!("bad multipart body: {e}"))? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "policy" {
            let file = field.file_name().filter(|f| !f.is_empty()).unwrap_or("policy.toml").to_string();
            let bytes = field.bytes().await.map_err(|e| format!("reading part `policy`: {e}"))?;
            if bytes.is_empty() {
                continue;
            }
            let text =
                String::from_utf8(bytes.to_vec()).map_err(|_| format!("{file}: the policy is not UTF-8 text"))?;
            policy = Some((file, text));
        } else if let Some(list) = name.strip_prefix("list:") {
            if !valid_list_name(list) {
                return Err(format!("bad list part name {name:?}: use list:NAME with letters, digits, '_' or '-'"));
            }
            let list = list.to_string();
            let path = store_list(field, &dir, &list).await?;
            lists.insert(list, path);
        } else if name == "lists" {
            let Some(file) = field.file_name().filter(|f| !f.is_empty()).map(String::from) else { continue };
            let list = file.rsplit_once('.').map_or(file.as_str(), |(stem, _)| stem).to_string();
            if !valid_list_name(&list) {
                return Err(format!("list file {file:?}: name list files NAME.txt after the list they hold"));
            }
            let path = store_list(field, &dir, &list).await?;
            lists.insert(list, path);
        } else {
            let value = field.text().await.map_err(|e| format!("reading part {name:?}: {e}"))?;
            fields.insert(name, value);
        }
    }
    let (file, text) = policy.ok_or("the upload has no `policy` file")?;
    Ok(Upload { source: PolicySource::from_text(file, text, lists), fields, _dir: dir })
}
