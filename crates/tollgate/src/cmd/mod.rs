//! One module per subcommand: parses nothing (clap did), calls the crates, prints.

pub mod agent;
pub mod config;
pub mod srp;
