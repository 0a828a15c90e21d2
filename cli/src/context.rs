//! What every command shares: the async runtime, the repository it works in, its store and
//! its executor. Commands take these from here, never from each other.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use murmur_engine::executor::{self, Executor};
use murmur_engine::lease::Owner;
use murmur_engine::{RunStatus, Store, SystemClock};

use crate::Exit;
use crate::cli::DbArgs;
use crate::config::Config;
use crate::locate;

pub fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

/// The repository a command works in: the flight's, else the current one, else this folder.
pub fn repository_for(flight_path: Option<&Path>) -> PathBuf {
    let start = flight_path
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."));
    let start = start.canonicalize().unwrap_or(start);
    locate::repository_root(&start).unwrap_or(start)
}

/// `--db` / `MURMUR_DATABASE_URL`, else the configuration's `database_url`, else the
/// repository's `.murmur/murmur.db`.
pub fn database_url(db: &DbArgs, repo: &Path) -> anyhow::Result<String> {
    if let Some(url) = &db.db {
        return Ok(url.clone());
    }
    let configured = Config::load(repo)?.database_url;
    Ok(configured.unwrap_or_else(|| repo.join(".murmur/murmur.db").display().to_string()))
}

/// The store's URL when there is one to read: `--db` (or its variable), or a configured or
/// default store that exists. Reading never creates a store.
pub fn existing_store(db: &DbArgs, repo: &Path) -> anyhow::Result<Option<String>> {
    let url = database_url(db, repo)?;
    let missing_file = !url.contains("://") && !Path::new(&url).exists();
    Ok((db.db.is_some() || !missing_file).then_some(url))
}

pub async fn open_store(db: &DbArgs, repo: &Path) -> anyhow::Result<Store> {
    Ok(Store::open(&database_url(db, repo)?).await?)
}

/// What runs leave in `.murmur/` (the store, worktrees, logs) is not the repository's content;
/// a `.murmur/.gitignore` says so, written once and never overwritten.
fn ignore_generated_files(repo: &Path) {
    let ignore = repo.join(".murmur/.gitignore");
    if repo.join(".git").exists() && !ignore.exists() {
        // Best effort: without it the files only show up in `git status`.
        let _ = std::fs::create_dir_all(repo.join(".murmur"));
        let _ = std::fs::write(
            &ignore,
            "# Written by murmur: what runs leave here.\nmurmur.db*\nwork/\nlogs/\nmurmur.local.yaml\n",
        );
    }
}

pub async fn executor(db: &DbArgs, repo: &Path) -> anyhow::Result<Executor> {
    ignore_generated_files(repo);
    let store = open_store(db, repo).await?;
    let config = Config::load(repo)?;
    let mut executor = Executor {
        store,
        clock: Arc::new(SystemClock),
        slots: config.local_slots(),
        claude: config.claude(),
        codex: config.codex(),
        retry_backoff: std::time::Duration::from_secs(10),
        github: config.github(),
        check_command: config.checks.command.clone(),
        work_root: repo.join(".murmur/work"),
        repository: repo.to_path_buf(),
        leases: executor::Leases::new(Owner::this_process(&process_kind()), lease_ttl()?),
        placements: Default::default(),
        pools: config.pool_settings(),
        environment: config
            .agent_environment(|| Ok(crate::commands::keys::Keys::load(repo)?.keyring))?,
        identity: None,
        workspace: Default::default(),
    };
    // A run may have secrets of its own (`murmur spawn -e`) where the workspace has no
    // `secrets:`: open the key that is there, never making one for that (and a key that
    // cannot be opened fails only an attempt that needs it, with the keyring's message).
    if executor.environment.keyring.is_err()
        && let Ok(Some(keys)) = crate::commands::keys::Keys::existing(repo)
    {
        executor.environment.keyring = Ok(std::sync::Arc::new(keys.keyring));
    }
    crate::commands::setup::apply_profile(&mut executor, repo).await?;
    Ok(executor)
}

/// How this process names itself as a run's driver: `murmur serve`, `murmur runs resume`, …
fn process_kind() -> String {
    let words: Vec<String> = std::env::args()
        .skip(1)
        .take_while(|arg| !arg.starts_with('-'))
        .take(2)
        .collect();
    let kind = match words.as_slice() {
        [group, action, ..] if ["flight", "runs", "queue"].contains(&group.as_str()) => {
            format!("{group} {action}")
        }
        [command, ..] => command.clone(),
        [] => String::new(),
    };
    format!("murmur {kind}").trim_end().to_owned()
}

/// How long a run's lease lasts unless renewed (`MURMUR_LEASE_TTL`, e.g. `15s`): a dead
/// driver's runs are taken over after this.
fn lease_ttl() -> anyhow::Result<std::time::Duration> {
    match std::env::var("MURMUR_LEASE_TTL") {
        Ok(text) => {
            let ttl: murmur_parser::Duration = text
                .parse()
                .with_context(|| format!("MURMUR_LEASE_TTL=`{text}`"))?;
            anyhow::ensure!(ttl.as_secs() > 0, "MURMUR_LEASE_TTL must be at least 1s");
            Ok(ttl.as_std())
        }
        Err(_) => Ok(executor::DEFAULT_TTL),
    }
}

pub fn exit_for(status: RunStatus) -> Exit {
    if status == RunStatus::Completed {
        Exit::Success
    } else {
        Exit::Failure
    }
}
