//! Fuzzes what a collector does with a shipper's zstd batch body (`Content-Encoding: zstd` on
//! `POST /api/v1/ingest`): decompression under a cap, then each line read as a record and
//! validated; nothing panics, nothing decodes past the cap, and bodies round-trip. The checks
//! live in `tollgate_records::wire::fuzzing`, shared with the seed replay of `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate_records::wire::fuzzing::check(data));
