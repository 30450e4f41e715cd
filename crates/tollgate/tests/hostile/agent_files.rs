//! Hostile-input tests: agent_files (filled in by its issue-11 work package).
