//! Hostile-input tests: connections (filled in by its issue-11 work package).
