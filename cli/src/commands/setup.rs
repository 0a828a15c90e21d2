//! `murmur setup`: the developer's own keys (Anthropic, OpenAI, GitHub) into
//! `.murmur/murmur.local.yaml`, sealed under the tenant's data key (`engine::profile`). Each
//! key comes from the environment when set there, else it is asked for without echo on a
//! terminal, or read as one line of standard input when that is not a terminal (scripts);
//! an empty answer skips it. The engine then gives the keys to that tenant's agents.

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use anyhow::{Context, bail};
use murmur_engine::executor::Executor;
use murmur_engine::profile::{self, CREDENTIALS};
use murmur_engine::{Clock, SystemClock};
use murmur_vault::{SecretSet, SecretValue};

use super::keys::Keys;
use crate::Exit;
use crate::cli::DbArgs;
use crate::context::{block_on, open_store, repository_for};
use crate::terminal::sanitize;

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// The tenant the profile is for; the store's own (`local`) unless given
    #[arg(long)]
    pub tenant: Option<String>,
    /// Whose profile it is; `git config user.email`, else `$USER`, unless given
    #[arg(long)]
    pub developer: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Where a credential came from, for the summary.
enum Source {
    Environment,
    Asked,
}

pub fn run(args: &SetupArgs) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    let developer = match &args.developer {
        Some(developer) => developer.clone(),
        None => developer_of(&repo)?,
    };
    let gathered = gather()?;
    if gathered.is_empty() {
        bail!(
            "no credentials given: set {} in the environment or answer the prompts",
            CREDENTIALS.join(", ")
        );
    }
    let mut credentials = SecretSet::new();
    for (name, value, _) in &gathered {
        credentials.insert(name, value.clone())?;
    }
    block_on(async {
        let mut store = open_store(&args.db, &repo).await?;
        if let Some(tenant) = &args.tenant {
            store = store.for_tenant(tenant).await?.with_context(|| {
                format!(
                    "no tenant `{}`; `murmur tenant ls` lists them",
                    sanitize(tenant)
                )
            })?;
        }
        let keys = Keys::load(&repo)?;
        let path = repo.join(profile::FILE);
        let at = SystemClock.stamp();
        profile::write(&store, &keys.keyring, &developer, &credentials, &path, &at).await?;
        ignore_profile(&repo);
        eprintln!(
            "wrote {} for `{}` in tenant `{}`, encrypted (only this server's key opens it):",
            profile::FILE,
            sanitize(&developer),
            store.tenant()
        );
        for (name, _, source) in &gathered {
            let from = match source {
                Source::Environment => "from the environment",
                Source::Asked => "as entered",
            };
            eprintln!("  {name} ({from})");
        }
        Ok(Exit::Success)
    })
}

/// Every credential the environment has or the developer gives, in [`CREDENTIALS`] order.
fn gather() -> anyhow::Result<Vec<(&'static str, SecretValue, Source)>> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let mut lines = stdin.lock();
    let mut gathered = Vec::new();
    for &name in CREDENTIALS {
        if let Some(value) = std::env::var_os(name).filter(|v| !v.is_empty()) {
            let bytes = value.into_encoded_bytes();
            gathered.push((name, checked(name, bytes)?, Source::Environment));
            continue;
        }
        let answer = if terminal {
            let prompt = format!("{name} (not shown; empty to skip): ");
            rpassword::prompt_password(prompt).with_context(|| format!("cannot read {name}"))?
        } else {
            let mut line = String::new();
            lines
                .read_line(&mut line)
                .with_context(|| format!("cannot read {name} from standard input"))?;
            line
        };
        let answer = zeroize::Zeroizing::new(answer);
        let answer = answer.trim_end_matches(['\r', '\n']);
        if !answer.is_empty() {
            let value = checked(name, answer.as_bytes().to_vec())?;
            gathered.push((name, value, Source::Asked));
        }
    }
    Ok(gathered)
}

fn checked(name: &str, bytes: Vec<u8>) -> anyhow::Result<SecretValue> {
    Ok(SecretValue::checked(name, bytes)?)
}

/// The developer the profile is bound to: git's `user.email`, else the login name.
fn developer_of(repo: &Path) -> anyhow::Result<String> {
    let email = std::process::Command::new("git")
        .args(["config", "user.email"])
        .current_dir(repo)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|email| email.trim().to_owned())
        .filter(|email| !email.is_empty());
    let user = || std::env::var("USER").ok().filter(|user| !user.is_empty());
    email
        .or_else(user)
        .context("cannot tell who you are: give --developer NAME")
}

/// Keeps the profile out of commits: `.murmur/.gitignore` names it (best effort, as for
/// the store's files).
fn ignore_profile(repo: &Path) {
    let ignore = repo.join(".murmur/.gitignore");
    let name = "murmur.local.yaml";
    let current = std::fs::read_to_string(&ignore).unwrap_or_default();
    if current.lines().any(|line| line.trim() == name) {
        return;
    }
    let separator = if current.is_empty() || current.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let _ = std::fs::write(&ignore, format!("{current}{separator}{name}\n"));
}

/// Gives the executor's agents the profile's credentials (as environment variables), when
/// the repository has one. A profile that does not open stops the command with why: a
/// tampered or copied file never runs agents with other keys. The GitHub token is not made
/// the host's `out: pr` token: a server drives other tenants' runs with those settings.
pub async fn apply_profile(executor: &mut Executor, repo: &Path) -> anyhow::Result<()> {
    let path = repo.join(profile::FILE);
    if !path.exists() {
        return Ok(());
    }
    let keys = Keys::load(repo)?;
    let Some((_, credentials)) = profile::read(&executor.store, &keys.keyring, &path).await? else {
        return Ok(());
    };
    if executor.environment.keyring.is_err() {
        executor.environment.keyring = Ok(std::sync::Arc::new(keys.keyring));
    }
    executor.environment.profile = Some(std::sync::Arc::new(credentials));
    Ok(())
}
