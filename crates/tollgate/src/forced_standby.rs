//! The forced-standby flag file: now in [`tollgate_files::forced_standby`], shared by the agent
//! (which keeps it) and the roles (which watch it).

pub use tollgate_files::forced_standby::*;
