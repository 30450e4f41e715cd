//! Fuzzes what an engine reads from Redis: a shared-counters batch (JSON written by another
//! engine or probe, or by anyone who can write to the Redis); nothing panics, and whatever reads
//! writes back to itself. The check lives in `tollgate_shared_counters::fuzzing`, shared with
//! the seed replay of `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate_shared_counters::fuzzing::check(data));
