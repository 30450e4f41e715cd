//! The wiring of each role: builds the runtime from the configuration, binds its listeners,
//! and runs it until a signal. No decisions here.

pub mod agent;
pub mod connection_alarm;
pub mod counter_alarm;
pub mod demo;
pub mod manager;
pub mod metrics;
pub mod notify;
pub mod probe;
pub mod probe_srp;
pub mod record_alarms;
pub mod reload;
pub mod serve;
pub mod service_address;
pub mod shared_counters;
pub mod srp;
pub mod tls;
pub mod uplink;
