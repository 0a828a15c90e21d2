//! `murmur workspace add|ls|show|rm`: the tenant's workspaces, in the store this folder's
//! commands use (a `murmur serve` on the same store sees them at once).

use std::collections::BTreeMap;

use anyhow::bail;
use murmur_engine::store::workspaces::Removed;
use murmur_engine::workspace::{
    ConflictResolution, Workspace, WorkspaceDefaults, WorkspaceRepository,
};

use crate::Exit;
use crate::cli::DbArgs;
use crate::context::{block_on, executor, repository_for};
use crate::output::emit_line;
use crate::terminal::sanitize;

#[derive(Debug, clap::Subcommand)]
pub enum WorkspaceCommand {
    /// Add workspace NAME with its repositories (the first is where agents work)
    Add(AddArgs),
    /// List the workspaces
    Ls {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Show workspace NAME: its repositories, defaults and mirrors
    Show {
        /// The workspace's name
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Remove workspace NAME (refused while runs in it have not finished)
    Rm {
        /// The workspace's name
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// A slug: lowercase letters, digits and `-`
    name: String,
    /// A repository's clone URL or local path (repeat for more repositories)
    #[arg(long = "repo", required = true)]
    repos: Vec<String>,
    /// The base branch of the repository given in the same place (the n-th `--base` is the
    /// n-th `--repo`'s); default: the origin's default branch
    #[arg(long = "base")]
    bases: Vec<String>,
    /// The base branch of every repository given no --base of its own (default: each
    /// origin's default branch)
    #[arg(long, value_name = "BRANCH")]
    default_base: Option<String>,
    /// When a long-lived agent's base moves: merge (default), rebase or none
    #[arg(long, default_value = "merge")]
    conflict_resolution: ConflictResolution,
    /// The tenant secret holding the token git authenticates with (never put it in the URL)
    #[arg(long)]
    credential: Option<String>,
    /// The check command of the `ci` gate
    #[arg(long)]
    check: Option<String>,
    /// A tenant secret every agent of the workspace gets (repeat)
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// A variable every agent of the workspace gets in its environment, as NAME=VALUE
    /// (repeat); the value is passed as it is, never run by a shell
    #[arg(long = "env", value_name = "NAME=VALUE")]
    variables: Vec<String>,
    /// The pool its agents run on unless a flight says otherwise
    #[arg(long)]
    pool: Option<String>,
    /// Warm machines its default pool keeps ready for it (a cloud pool keeps the sum of
    /// its workspaces', or its own min_idle when that is more)
    #[arg(long, default_value_t = 0)]
    min_idle: u32,
    #[command(flatten)]
    db: DbArgs,
}

pub fn run(command: WorkspaceCommand) -> anyhow::Result<Exit> {
    match command {
        WorkspaceCommand::Add(args) => add(args),
        WorkspaceCommand::Ls { json, db } => list(&db, json),
        WorkspaceCommand::Show { name, json, db } => show(&db, &name, json),
        WorkspaceCommand::Rm { name, db } => remove(&db, &name),
    }
}

fn workspace_of(args: &AddArgs) -> anyhow::Result<Workspace> {
    if args.bases.len() > args.repos.len() {
        bail!("more --base than --repo: each --base is the base branch of the --repo in its place");
    }
    let repositories = args
        .repos
        .iter()
        .enumerate()
        .map(|(index, url)| WorkspaceRepository {
            url: url.clone(),
            base: args.bases.get(index).cloned(),
            conflict_resolution: args.conflict_resolution,
            credential: args.credential.clone(),
        })
        .collect();
    Ok(Workspace {
        name: args.name.clone(),
        repositories,
        defaults: WorkspaceDefaults {
            base: args.default_base.clone(),
            pool: args.pool.clone(),
            environment: variables_of(&args.variables)?,
            check: args.check.clone(),
            secrets: args.secrets.clone(),
        },
        min_idle: args.min_idle,
        created_at: String::new(),
    })
}

/// `--env NAME=VALUE` as the workspace's variables; the names are checked with the rest.
fn variables_of(given: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut variables = BTreeMap::new();
    for pair in given {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--env `{}` needs the form NAME=VALUE", sanitize(pair));
        };
        if variables
            .insert(name.to_owned(), value.to_owned())
            .is_some()
        {
            bail!("--env gives `{}` twice", sanitize(name));
        }
    }
    Ok(variables)
}

fn add(args: AddArgs) -> anyhow::Result<Exit> {
    let workspace = workspace_of(&args)?;
    let repo = repository_for(None);
    block_on(async {
        let executor = executor(&args.db, &repo).await?;
        let added = executor.add_workspace(workspace).await?;
        eprintln!(
            "workspace `{}` added with {} repository(ies); `murmur flight run NAME --workspace {}` runs its flights",
            added.name,
            added.repositories.len(),
            added.name
        );
        Ok(Exit::Success)
    })
}

fn list(db: &DbArgs, json: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let workspaces = executor(db, &repo).await?.store.workspaces().await?;
        if json {
            emit_line(&serde_json::to_string_pretty(&workspaces)?);
            return Ok(Exit::Success);
        }
        for workspace in &workspaces {
            let urls: Vec<&str> = workspace
                .repositories
                .iter()
                .map(|r| r.url.as_str())
                .collect();
            emit_line(&sanitize(&format!(
                "{:<24} {}",
                workspace.name,
                urls.join(" ")
            )));
        }
        Ok(Exit::Success)
    })
}

fn show(db: &DbArgs, name: &str, json: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let executor = executor(db, &repo).await?;
        let Some(workspace) = executor.store.workspace(name).await? else {
            bail!(
                "no workspace `{}`; `murmur workspace ls` lists them",
                sanitize(name)
            );
        };
        let heads = executor.mirror_heads(&workspace).await;
        if json {
            let mut value = serde_json::to_value(&workspace)?;
            value["heads"] = serde_json::to_value(&heads)?;
            emit_line(&serde_json::to_string_pretty(&value)?);
            return Ok(Exit::Success);
        }
        emit_line(&format!("workspace {}", workspace.name));
        for (repository, head) in workspace.repositories.iter().zip(&heads) {
            let line = format!(
                "  repo {} base {} ({:?}){}{}",
                repository.url,
                repository.base.as_deref().unwrap_or("(default)"),
                repository.conflict_resolution,
                repository
                    .credential
                    .as_ref()
                    .map_or(String::new(), |c| format!(" credential secret {c}")),
                head.as_ref()
                    .map_or(String::new(), |h| format!(" mirror at {h}")),
            );
            emit_line(&sanitize(&line));
        }
        let defaults = &workspace.defaults;
        if let Some(check) = &defaults.check {
            emit_line(&sanitize(&format!("  check {check}")));
        }
        if !defaults.secrets.is_empty() {
            emit_line(&sanitize(&format!(
                "  secrets {}",
                defaults.secrets.join(", ")
            )));
        }
        for (name, value) in &defaults.environment {
            emit_line(&sanitize(&format!("  env {name}={value}")));
        }
        if let Some(pool) = &defaults.pool {
            emit_line(&sanitize(&format!("  pool {pool}")));
        }
        emit_line(&format!("  min_idle {}", workspace.min_idle));
        Ok(Exit::Success)
    })
}

fn remove(db: &DbArgs, name: &str) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let store = executor(db, &repo).await?.store;
        match store.remove_workspace(name).await? {
            Removed::Gone => {
                eprintln!("workspace `{}` removed", sanitize(name));
                Ok(Exit::Success)
            }
            Removed::Missing => bail!(
                "no workspace `{}`; `murmur workspace ls` lists them",
                sanitize(name)
            ),
            Removed::InFlight(runs) => bail!(
                "workspace `{}` has runs in flight ({}); cancel them (`murmur runs cancel RUN`) or wait for them to end",
                sanitize(name),
                runs.join(", ")
            ),
        }
    })
}
