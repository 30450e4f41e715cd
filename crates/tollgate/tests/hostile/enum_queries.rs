//! Hostile-input tests: enum_queries (filled in by its issue-11 work package).
