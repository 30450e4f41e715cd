//! One module per subcommand: parses nothing (clap did), calls the crates, prints.

pub mod agent;
pub mod analytics;
pub mod api_client;
pub mod backup;
pub mod cluster_policy;
pub mod config;
pub mod generate;
pub mod health;
pub mod lab;
pub mod lookup;
pub mod pki;
pub mod policy;
pub mod probe;
pub mod probe_call;
pub mod release;
pub mod spool;
pub mod srp;
pub mod token;
pub mod upgrade;
pub mod user;
