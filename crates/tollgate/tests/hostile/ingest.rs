//! Hostile-input tests: ingest (filled in by its issue-11 work package).
