//! Request bodies the agent reads, each with the limit of its route: a release bundle is
//! streamed straight into a file in the staging directory (the agent never holds a bundle in
//! memory while receiving it), a request for the role's API and the small JSON bodies are read
//! into memory up to their limits. A body announced (`Content-Length`) or found to be larger
//! than its limit is refused with `413` without reading further.

use std::path::Path;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;

use crate::http::{ApiError, announced_length as announced};

/// `413`, closing the connection: the rest of the body is not read.
pub fn too_large(what: &str, limit: u64, setting: Option<&str>) -> ApiError {
    let mib = limit as f64 / f64::from(1u32 << 20);
    let hint = setting.map(|s| format!(" ({s})")).unwrap_or_default();
    ApiError::too_large(format!("{what} is larger than {mib:.2} MiB{hint}; nothing was kept")).closing()
}

/// Reads a body of at most `limit` bytes into memory; `what` names it in errors, `setting` the
/// configuration option that sets the limit.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    what: &str,
    setting: Option<&str>,
) -> Result<Bytes, ApiError> {
    if announced(headers).is_some_and(|n| n > limit) {
        return Err(too_large(what, limit, setting));
    }
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("{what}: the body broke off: {e}")).closing())?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(too_large(what, limit, setting));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// Streams a body of at most `limit` bytes into a new hidden file in `dir` (hidden files in the
/// staging directory are transfers in progress, never taken for a staged bundle). The file is
/// removed again when the returned path is dropped, unless it is persisted.
pub async fn stream_to_file(
    headers: &HeaderMap,
    body: Body,
    dir: &Path,
    limit: u64,
    what: &str,
    setting: &str,
) -> Result<tempfile::TempPath, ApiError> {
    if announced(headers).is_some_and(|n| n > limit) {
        return Err(too_large(what, limit, Some(setting)));
    }
    let internal = |e: std::io::Error| ApiError::internal(format!("{}: {e}", dir.display())).closing();
    let (file, path) = tempfile::Builder::new()
        .prefix(".incoming-")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(internal)?
        .into_parts();
    let mut file = tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(file));
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("{what}: the body broke off: {e}")).closing())?;
        written += chunk.len() as u64;
        if written > limit {
            return Err(too_large(what, limit, Some(setting)));
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    file.get_mut().sync_all().await.map_err(internal)?;
    Ok(path)
}
