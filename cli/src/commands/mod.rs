//! One module per command group; each function is one command.

pub mod agent_calls;
pub mod agents;
pub mod approve;
pub mod catalog;
pub mod cloud_pool;
pub mod flight;
pub mod follow;
mod frame;
pub(crate) mod keys;
mod live;
pub mod machines;
pub mod mcp;
pub mod pools;
pub mod pr;
pub mod prune;
mod prune_disk;
pub mod remote_runs;
pub mod runs;
pub mod secret;
pub mod server;
pub mod setup;
mod spawn;
mod stream;
pub mod tenant;
mod view;
pub mod worker;
pub mod workspace;

use clap::CommandFactory;

use crate::Exit;
use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> Exit {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "murmur", &mut script);
    crate::output::emit(&String::from_utf8_lossy(&script));
    Exit::Success
}
