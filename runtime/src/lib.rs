//! Agent runtimes: how an agent's work is actually carried out on a machine.
//!
//! Each runtime takes a request (what to run, where, with which environment) and reports
//! output lines as they happen through a channel, then an [`Outcome`]. Runtimes know nothing
//! about runs, the store or the DAG.

mod cgroup;
mod child;
pub mod claude;
pub mod cli_agent;
pub mod codex;
pub mod exec;
pub mod git;
pub mod github;
mod lines;
pub mod mirror;
mod process;
mod procfs;
mod spawn;
mod tree;
pub mod workspace;

pub use exec::{Error, ExecRequest, Outcome};
pub use process::{contained_by_cgroups, find_program, kill_marked, sealed_environment};

/// What a runtime reports while an agent works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    Line(Line),
    /// The agent's conversation, as soon as it is known (runtimes with sessions).
    Session(String),
}

/// One line of agent output, as it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub stream: Stream,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}
