//! One module per subcommand: parses nothing (clap did), calls the crates, prints.

pub mod agent;
pub mod backup;
pub mod health;
pub mod upgrade;
