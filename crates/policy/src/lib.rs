//! Call policy for tollgate: the rules an operator writes, checked, compiled and evaluated.
//!
//! What this crate owns:
//! * the policy file format (TOML, `schema = 2`, and schema 1 without the velocity condition):
//!   [`source`] parses it keeping line numbers;
//! * validation with diagnostics naming file, line and field ([`PolicyError`]);
//! * compilation into a [`CompiledPolicy`] whose evaluation cost does not grow with the number of
//!   rules (hash indexes for exact numbers and number lists, digit tries for prefixes);
//! * evaluation of one call ([`CallQuery`]) into a [`Decision`]: first matching rule wins, the
//!   default is allow;
//! * the lock-free installed-policy handle ([`InstalledPolicy`]) and the on-disk versioned store
//!   with history ([`store::PolicyStore`]).
//!
//! What it must not do: speak DNS or HTTP, or know how a decision is rendered for an SBC.

#![warn(missing_docs)]

#[cfg(test)]
mod batch_tests;
mod compile;
mod counter_view;
mod decision;
mod direction;
mod error;
mod eval;
mod installed;
pub mod lists;
pub mod migrate;
mod pattern;
mod sections;
pub mod service;
pub mod source;
pub mod store;
mod time_window;
mod trie;
pub mod velocity;

pub use compile::{CompileOptions, CompiledPolicy, PolicyMeta, RuleSummary, compile};
pub use counter_view::{CounterKind, CounterView};
pub use decision::{Action, CallQuery, Decision, Direction, MatchedRule, RedirectTarget, Termination};
pub use direction::InternalNumbers;
pub use error::{Diagnostic, PolicyError};
pub use eval::RuleVerdict;
pub use installed::InstalledPolicy;
pub use source::{ListFiles, PolicySource};
pub use velocity::{NoCounters, Velocity, VelocityCounters, VelocityTable};

/// The newest policy file schema this version of tollgate reads (and writes, when migrating).
pub const SCHEMA_VERSION: i64 = 2;

/// The oldest policy file schema this version of tollgate still reads.
pub const OLDEST_SCHEMA_VERSION: i64 = 1;
