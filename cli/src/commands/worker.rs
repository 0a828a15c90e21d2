//! `murmur worker` (a machine of a `workers` pool) and `murmur token create --worker`.

use murmur_engine::{Clock, SystemClock};

use crate::Exit;
use crate::cli::{DbArgs, WorkerArgs};
use crate::config::Config;
use crate::context::{block_on, open_store, repository_for};
use crate::output::emit_line;

/// Runs attempts for the server until it refuses this worker for good (exit 2).
pub fn run(args: &WorkerArgs) -> anyhow::Result<Exit> {
    let config = Config::load(&repository_for(None))?;
    let options = murmur_worker::Options {
        server: args.server.clone(),
        token: args.token.trim().to_owned(),
        // Empty: the pool the token registers machines of.
        pool: args.pool.clone().unwrap_or_default(),
        dir: args.dir.clone(),
        settings: murmur_attempt_settings(&config),
        host: host_name(),
    };
    block_on(async {
        match murmur_worker::run(options).await {
            Ok(()) => Ok(Exit::Success),
            Err(error) => {
                eprintln!("error: {error}");
                Ok(Exit::Usage)
            }
        }
    })
}

/// This host's runtimes and GitHub, as `.murmur/murmur.yaml` (if any) configures them.
fn murmur_attempt_settings(config: &Config) -> murmur_worker::Settings {
    murmur_worker::Settings {
        claude: config.claude(),
        codex: config.codex(),
        github: config.github(),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// A worker token for machines of `pool`: printed once, only its hash is kept.
pub fn create_token(db: &DbArgs, name: &str, pool: &str) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let store = open_store(db, &repo).await?;
        let token = format!("murw_{}", uuid::Uuid::new_v4().simple());
        store
            .add_worker_token(name, &token, pool, &SystemClock.stamp())
            .await?;
        eprintln!(
            "worker token `{name}` created for pool `{pool}`; it is shown only now, so keep it (only its hash is stored):"
        );
        emit_line(&token);
        Ok(Exit::Success)
    })
}
