//! The wiring of each role: builds the runtime from the configuration, binds its listeners,
//! and runs it until a signal. No decisions here.

pub mod agent;
pub mod srp;
