//! Hostile-input tests: login (filled in by its issue-11 work package).
