//! The command line, as clap types. One enum variant per command; `main` matches on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "murmur",
    version,
    about = "Run fleets of coding agents from Markdown flights",
    long_about = "Murmur runs flights: Markdown files in .murmur/flights/ that describe a DAG of \
                  coding-agent tasks. Each agent works in its own git branch; every step is \
                  checkpointed so that a crash never loses or repeats finished work.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, draw and list flights
    Flight {
        #[command(subcommand)]
        command: FlightCommand,
    },
    /// Print a shell completion script (e.g. `murmur completions bash > /etc/bash_completion.d/murmur`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum FlightCommand {
    /// Check flights and report every problem with its line and column
    ///
    /// Exit status: 0 when every flight is valid (warnings allowed), 1 when one is invalid,
    /// 2 when a file cannot be read.
    Validate(ValidateArgs),
    /// Print a flight's DAG as Mermaid, Graphviz DOT or text
    Graph(GraphArgs),
    /// List the flights of this repository (.murmur/flights/*.md)
    Ls(LsArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Flight files, or flight names resolved to .murmur/flights/NAME.md
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Print JSON (one object per file; an array when several are given)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// A flight file, or a flight name resolved to .murmur/flights/NAME.md
    #[arg(value_name = "NAME|PATH")]
    pub flight: String,
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
    Text,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print JSON: an array of {"name", "path", "title", "agents", "triggers", "valid"}
    #[arg(long)]
    pub json: bool,
    /// The repository to look in (default: the one containing the current folder)
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
}
