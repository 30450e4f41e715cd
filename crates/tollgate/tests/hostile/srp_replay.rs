//! Hostile-input tests: srp_replay (filled in by its issue-11 work package).
