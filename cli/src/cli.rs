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
    /// Print the line log (one line per event) instead of the live view, as when stdout is not
    /// a terminal or TERM=dumb
    #[arg(long, global = true)]
    pub plain: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, draw and list flights
    Flight {
        #[command(subcommand)]
        command: FlightCommand,
    },
    /// Inspect and act on runs
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Save a flight to the catalog: `murmur set flight NAME < flight.md`
    Set {
        #[command(subcommand)]
        command: SetCommand,
    },
    /// Read the catalog: `murmur get flight` lists it, `murmur get flight NAME` prints one
    Get {
        #[command(subcommand)]
        command: GetCommand,
    },
    /// Remove a flight from the catalog: `murmur rm flight NAME`
    Rm {
        #[command(subcommand)]
        command: RmCommand,
    },
    /// Serve the HTTP API (runs, live events, the flight catalog, approvals, webhooks, cron, metrics) with the executor inside
    Serve(ServeArgs),
    /// Run attempts for a `murmur serve` as a machine of its `workers` pool (connects out; no inbound port)
    Worker(WorkerArgs),
    /// The MCP server (stdio) an agent uses to spawn and steer other agents: tools spawn,
    /// status, wait, ls, kill, queue_add. Runs inside an agent (its MURMUR_AGENT_TOKEN)
    Mcp,
    /// API tokens for `murmur serve`
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Tenants: each sees only its own runs, flights, machines, secrets and tokens
    Tenant {
        #[command(subcommand)]
        command: crate::commands::tenant::TenantCommand,
    },
    /// Workspaces: named sets of repositories (and their defaults) the server works in
    Workspace {
        #[command(subcommand)]
        command: crate::commands::workspace::WorkspaceCommand,
    },
    /// Pull requests that agents opened with `out: pr` (remotes other than GitHub)
    Pr {
        #[command(subcommand)]
        command: PrCommand,
    },
    #[command(flatten)]
    Agents(crate::agent_cli::AgentCommand),
    /// Your own keys (Anthropic, OpenAI, GitHub) into `.murmur/murmur.local.yaml`, encrypted
    /// for this server's tenant; agents get them as environment variables
    Setup(crate::commands::setup::SetupArgs),
    /// Secrets for agents, encrypted at rest: `murmur secret set NAME < value`
    Secret {
        #[command(subcommand)]
        command: crate::commands::secret::SecretCommand,
    },
    /// The machines agents run on, in every pool
    Machines {
        #[command(subcommand)]
        command: crate::commands::machines::MachinesCommand,
    },
    /// Pools: their machines by state and the agents waiting for one; flush their spare machines
    Pool {
        #[command(subcommand)]
        command: crate::commands::pools::PoolCommand,
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
    /// List the flights of this repository (.murmur/flights/*.md) and of the catalog
    Ls(LsArgs),
    /// Run a flight on this machine, checkpointed to the store
    ///
    /// Exit status: 0 when the run completed, 1 when it failed or was canceled, 2 for invalid
    /// input (an invalid flight, a missing or unknown input, an unusable database).
    Run(RunArgs),
}

/// Where catalog and run commands act: a server, or the local store.
#[derive(Debug, Args)]
pub struct Target {
    /// Act on this `murmur serve` (e.g. http://127.0.0.1:8080) instead of the local store; the
    /// API token is read from MURMUR_TOKEN
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// Save the Markdown on stdin as the next generation of flight NAME; it is validated
    /// first, and an invalid flight is refused with its diagnostics (exit status 1)
    Flight {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// Without NAME, list the catalog; with NAME, print the flight's Markdown
    Flight {
        name: Option<String>,
        /// An older generation instead of the latest
        #[arg(long, requires = "name")]
        generation: Option<i64>,
        /// Print JSON (the list, or the flight with its generation, digest and author)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum RmCommand {
    /// Delete flight NAME from the catalog (its generation numbers are never reused)
    Flight {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// The store: a SQLite file path or sqlite://PATH, or postgres://USER:PASS@HOST/DB
    /// (default: .murmur/murmur.db in the repository)
    #[arg(long, global = true, env = "MURMUR_DATABASE_URL", value_name = "URL")]
    pub db: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A flight file, or a flight name resolved to .murmur/flights/NAME.md
    #[arg(value_name = "NAME|PATH")]
    pub flight: String,
    /// A run input, NAME=VALUE (repeatable)
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// Start the run in the background and print its id
    #[arg(long)]
    pub detach: bool,
    /// Print one JSON object per event instead of the human view
    #[arg(long)]
    pub json: bool,
    /// Start the run on this `murmur serve` (NAME is the server's flight) and follow its event
    /// stream; the API token is read from MURMUR_TOKEN
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// With --server: the workspace whose flight NAME runs (needed when several have one)
    #[arg(long, value_name = "W", requires = "server")]
    pub workspace: Option<String>,
    /// With --server: the branch the run's agents start from, over the workspace
    /// repository's base branch
    #[arg(long, value_name = "BRANCH", requires = "server")]
    pub base: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Which runs `murmur runs ls` shows.
#[derive(Debug, Clone, Args)]
pub struct RunsPage {
    /// Only runs of this flight
    #[arg(long)]
    pub flight: Option<String>,
    /// Only runs in this status
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(murmur_engine::store::listing::STATUSES))]
    pub status: Option<String>,
    /// How many runs to show (1 to 1000)
    #[arg(long, default_value_t = murmur_engine::store::listing::DEFAULT_LIMIT)]
    pub limit: u64,
    /// Continue after the previous page: the cursor `runs ls` printed on stderr
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first, a page at a time
    Ls {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        page: RunsPage,
        #[command(flatten)]
        target: Target,
    },
    /// Show a run and its agents
    Show {
        /// Run id (a unique prefix is enough)
        run: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Print a run's event log, optionally for one agent
    Logs {
        run: String,
        slug: Option<String>,
        /// Keep printing new events until the run ends
        #[arg(long, short = 'f')]
        follow: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Cancel a run: running agents are stopped, the rest marked canceled
    Cancel {
        run: String,
        #[command(flatten)]
        target: Target,
    },
    /// Run a failed or canceled run again: failed, skipped and canceled agents run, succeeded
    /// agents are kept and never repeated
    Retry {
        run: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Decide an agent's `approve` gate: approve it, or reject it with a comment that goes
    /// back to the agent, which then works again
    Approve {
        run: String,
        slug: String,
        /// Reject instead of approving
        #[arg(long)]
        reject: bool,
        /// A note for the record; on a rejection, what the agent should change
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Continue an interrupted run: finished agents are kept, in-flight ones retried
    Resume {
        run: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Remove the worktrees (and with --branches the branches) of runs that finished long
    /// ago, and say how much space that freed
    ///
    /// Completed runs are pruned; failed and canceled ones only with --include-retryable,
    /// since `murmur runs retry` could still run them; queued and running runs never.
    Prune(crate::commands::prune::PruneArgs),
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
    /// Print JSON: an array of {"name", "origin", "path", "title", "agents", "triggers", "valid"}
    /// (catalog flights also have "generation")
    #[arg(long)]
    pub json: bool,
    /// The repository to look in (default: the one containing the current folder)
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum PrCommand {
    /// List pull requests, newest first
    Ls {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Show one pull request
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Merge the pull request's branch into its base branch
    Merge {
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed on stderr)
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub bind: String,
    /// How log lines on stderr are written: `human` or `json` (one object per line)
    #[arg(long, value_enum, env = "MURMUR_LOG_FORMAT", default_value = "human")]
    pub log_format: crate::logging::LogFormat,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; it is printed once and only its hash is stored
    Create {
        #[arg(long)]
        name: String,
        /// A worker token instead: it only registers `murmur worker` machines of `--pool`,
        /// which run the agents of the token's tenant only
        #[arg(long, requires = "pool")]
        worker: bool,
        /// The `workers` pool a worker token registers machines of
        #[arg(long, requires = "worker", value_name = "NAME")]
        pool: Option<String>,
        /// The tenant the token belongs to (default: the store's own, `local`)
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List a tenant's tokens: names, kinds, pools and dates, never the tokens
    Ls {
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a tenant's token NAME: requests with it are refused from now on
    Revoke {
        name: String,
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The server's URL, e.g. `http://10.0.0.5:8080`
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// A worker token (`murmur token create --worker --pool NAME` on the server)
    #[arg(
        long,
        env = "MURMUR_WORKER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: String,
    /// The pool this machine joins; by default the one the token is for
    #[arg(long, value_name = "NAME")]
    pub pool: Option<String>,
    /// Where the attempts' workspaces go: a new or empty folder, emptied whenever the worker takes
    /// another tenant's work
    #[arg(long, default_value = "murmur-worker", value_name = "DIR")]
    pub dir: std::path::PathBuf,
}
