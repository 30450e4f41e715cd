//! The check the `shared_batch` fuzz target runs on any bytes (an entry another process, or
//! anyone with access to Redis, appended), shared with the seed replay of `cargo test`: reading
//! never panics, and whatever reads writes back to a batch that reads the same.

use crate::wire::Batch;

/// Reads `data` as a batch; a batch that reads must write back to itself, and its calls must
/// convert without panicking.
pub fn check(data: &[u8]) {
    if let Ok(batch) = Batch::decode(data) {
        let again = Batch::decode(batch.encode().as_bytes()).expect("a batch that was read must read again");
        assert_eq!(again, batch);
        let _ = batch.counted_calls();
        let _ = batch.in_progress_calls();
    }
}
