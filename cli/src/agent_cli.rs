//! Murmur's agent commands as clap types: `ls`, `status`, `wait`, `kill`, `queue add`.
//! An agent is named by its slug (the newest run that has it), `RUN/SLUG`, or `--run RUN`.

use clap::{Args, Subcommand};

use crate::cli::DbArgs;

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// List agents: those at work (not finished) in every run, or with --all every agent of
    /// the newest runs
    Ls {
        #[arg(long)]
        all: bool,
        /// Print JSON: an array of {"run", "flight", "slug", "state", "attempts", "branch"}
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Show one agent: its phase, attempts, branch, session and result
    Status {
        #[command(flatten)]
        agent: AgentName,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Wait until an agent reaches a phase (default: until it is finished)
    ///
    /// Exit status: 0 when it reached the phase (or, by default, completed), 1 when it ended
    /// otherwise, 2 when the time given with --timeout ran out.
    Wait {
        #[command(flatten)]
        agent: AgentName,
        /// A phase: pending, queued, running, checks-pending, completed, failed, ...
        #[arg(long)]
        phase: Option<String>,
        /// Give up after this long (`90s`, `10m`)
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Stop an agent: its processes are killed and it is marked canceled; its run then ends as
    /// after a failure (`murmur runs retry` runs it again)
    Kill {
        #[command(flatten)]
        agent: AgentName,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Put an idle agent's machine to sleep now: its process ends, its workspace and session
    /// stay, and the machine is free for others
    Sleep {
        #[command(flatten)]
        agent: AgentName,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Wake a sleeping agent on its machine, in the same session (a follow-up wakes it too)
    Wake {
        #[command(flatten)]
        agent: AgentName,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Start one agent on a prompt (a one-agent run), or with --flight a flight
    ///
    /// Exit status as for `murmur flight run`: 0 when it completed, 1 when it failed, 2 for
    /// invalid input.
    Spawn(SpawnArgs),
    /// Follow-ups for agents
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Send a follow-up to an agent: it works on it in its own session once its current turn
    /// is over (a finished agent's run is reopened and driven here, unless --detach)
    Add {
        #[command(flatten)]
        agent: AgentName,
        /// The message
        text: String,
        /// Leave the reopened run to a background process
        #[arg(long)]
        detach: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Args)]
pub struct SpawnArgs {
    /// The agent's slug (lowercase letters, digits and `-`)
    #[arg(value_name = "SLUG", required_unless_present = "flight")]
    pub slug: Option<String>,
    /// What the agent should do; for `--runtime exec`, the command to run
    #[arg(value_name = "PROMPT", trailing_var_arg = true)]
    pub prompt: Vec<String>,
    /// Start this flight instead (as `murmur flight run NAME`)
    #[arg(long, value_name = "NAME", conflicts_with_all = ["slug", "prompt"])]
    pub flight: Option<String>,
    /// claude (default), codex or exec
    #[arg(long)]
    pub runtime: Option<String>,
    #[arg(long)]
    pub persona: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    /// What the agent delivers (`out:`: respond, pr, push, diff, report, none, ...)
    #[arg(long)]
    pub out: Option<String>,
    /// What the agent does once its turn is done (`on_idle:`)
    #[arg(long, value_name = "WHAT")]
    pub on_idle: Option<String>,
    /// An input of the --flight, as NAME=VALUE (repeatable)
    #[arg(long = "input", value_name = "NAME=VALUE", requires = "flight")]
    pub inputs: Vec<String>,
    /// One child per item read from stdin (a JSON array of strings, or one item a line),
    /// each SLUG-ITEM with `{}` in the prompt standing for its item; prints their names.
    /// Inside an agent only
    #[arg(long, conflicts_with = "flight", requires = "slug")]
    pub each: bool,
    /// Give the agent the secret NAME (set with `murmur secret set`) for its lifetime only,
    /// as the environment variable NAME (repeatable); inside an agent, only a secret the
    /// agent has itself
    #[arg(short = 'e', long = "secret", value_name = "NAME")]
    pub secrets: Vec<String>,
    /// The branch the agent starts from, over its workspace repository's base (at top
    /// level: a branch of this repository instead of the checked-out one; inside an agent:
    /// instead of the parent's base)
    #[arg(long, value_name = "BRANCH")]
    pub base: Option<String>,
    /// Run in the background and print the run id
    #[arg(long)]
    pub detach: bool,
    /// Print one JSON object per event instead of the human view
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct AgentName {
    /// The agent's slug, or RUN/SLUG
    #[arg(value_name = "SLUG")]
    pub slug: String,
    /// The run the agent belongs to (default: the newest run with an agent of that slug)
    #[arg(long)]
    pub run: Option<String>,
}
