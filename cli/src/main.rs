//! The `murmur` binary: parse the command line, run one command, exit with its status.

mod agent_cli;
mod agent_client;
mod cli;
mod cloud;
mod commands;
mod config;
mod context;
mod locate;
mod logging;
mod output;
mod remote;
mod report;
mod terminal;

use murmur_server::views;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{
    Cli, Command, FlightCommand, GetCommand, PrCommand, RmCommand, RunsCommand, SetCommand,
    TokenCommand,
};

/// What a command ends with. Errors are printed where they happen; this only carries the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done, and the result is good.
    Success = 0,
    /// Done, and the result is bad: an invalid flight, a failed run.
    Failure = 1,
    /// Could not do it: bad usage, unreadable input, unreachable store.
    Usage = 2,
    /// Following a run that nobody drives: it would never end (`runs logs --follow`).
    NotDriven = 3,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli);
    terminal::force_line_log(cli.plain);
    match run(cli) {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(Exit::Usage as u8)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Flight { command } => match command {
            FlightCommand::Validate(args) => commands::flight::validate(&args),
            FlightCommand::Graph(args) => commands::flight::graph(&args),
            FlightCommand::Ls(args) => commands::flight::ls(&args),
            FlightCommand::Run(args) => match &args.server {
                Some(url) => commands::remote_runs::start(url, &args),
                None => commands::runs::start(&args),
            },
        },
        Command::Agents(command) => commands::agents::run(command),
        Command::Runs { command } => runs(command),
        Command::Set {
            command: SetCommand::Flight { name, target },
        } => commands::catalog::set(&name, &target),
        Command::Get {
            command:
                GetCommand::Flight {
                    name,
                    generation,
                    json,
                    target,
                },
        } => match name {
            Some(name) => commands::catalog::get(&name, generation, json, &target),
            None => commands::catalog::list(json, &target),
        },
        Command::Rm {
            command: RmCommand::Flight { name, target },
        } => commands::catalog::remove(&name, &target),
        Command::Serve(args) => commands::server::serve(&args),
        Command::Worker(args) => commands::worker::run(&args),
        Command::Mcp => commands::mcp::serve(),
        Command::Token { command } => match command {
            TokenCommand::Create {
                name,
                worker,
                pool,
                tenant: Some(tenant),
                db,
            } => {
                let pool = pool.as_deref().filter(|_| worker);
                let tenant = Some(tenant.as_str());
                let new = commands::tenant::NewToken {
                    name: &name,
                    pool,
                    tenant,
                };
                commands::tenant::create_token(&db, &new)
            }
            TokenCommand::Create {
                name,
                worker: true,
                pool: Some(pool),
                db,
                ..
            } => commands::worker::create_token(&db, &name, &pool),
            TokenCommand::Create { name, db, .. } => commands::server::create_token(&db, &name),
            TokenCommand::Ls { tenant, json, db } => {
                commands::tenant::list_tokens(&db, tenant.as_deref(), json)
            }
            TokenCommand::Revoke { name, tenant, db } => {
                commands::tenant::revoke_token(&db, &name, tenant.as_deref())
            }
        },
        Command::Tenant { command } => commands::tenant::run(command),
        Command::Workspace { command } => commands::workspace::run(command),
        Command::Pr { command } => match command {
            PrCommand::Ls { json, db } => commands::pr::list(&db, json),
            PrCommand::Show { id, json, db } => commands::pr::show(&db, &id, json),
            PrCommand::Merge { id, db } => commands::pr::merge(&db, &id),
        },
        Command::Machines { command } => commands::machines::run(command),
        Command::Pool { command } => commands::pools::run(command),
        Command::Secret { command } => commands::secret::run(command),
        Command::Setup(args) => commands::setup::run(&args),
        Command::Completions { shell } => Ok(commands::completions(shell)),
    }
}

/// `murmur runs …`: on a server with `--server`, else on the local store.
fn runs(command: RunsCommand) -> anyhow::Result<Exit> {
    use commands::{remote_runs as remote, runs as local};
    match command {
        RunsCommand::Ls { json, page, target } => match &target.server {
            Some(url) => remote::list(url, &page, json),
            None => local::list(&target.db, &page, json),
        },
        RunsCommand::Show { run, json, target } => match &target.server {
            Some(url) => remote::show(url, &run, json),
            None => local::show(&target.db, &run, json),
        },
        RunsCommand::Logs {
            run,
            slug,
            follow,
            target,
        } => match &target.server {
            Some(url) => remote::logs(url, &run, slug.as_deref(), follow),
            None => local::logs(&target.db, &run, slug.as_deref(), follow),
        },
        RunsCommand::Cancel { run, target } => match &target.server {
            Some(url) => remote::cancel(url, &run),
            None => local::cancel(&target.db, &run),
        },
        RunsCommand::Resume { run, json, db } => local::resume(&db, &run, json),
        RunsCommand::Prune(args) => commands::prune::run(&args),
        RunsCommand::Retry { run, json, target } => match &target.server {
            Some(url) => remote::retry(url, &run, json),
            None => local::retry(&target.db, &run, json),
        },
        RunsCommand::Approve {
            run,
            slug,
            reject,
            comment,
            target,
        } => match &target.server {
            Some(url) => remote::approve(url, &run, &slug, !reject, comment),
            None => commands::approve::run(&target.db, &run, &slug, !reject, comment),
        },
    }
}
