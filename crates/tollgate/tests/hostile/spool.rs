//! Hostile-input tests: spool (filled in by its issue-11 work package).
