//! Text made safe to use as (part of) a file name: now in `tollgate_upgrade::names`, shared by
//! the agent and the manager runtime.

pub use tollgate_upgrade::names::file_word;
