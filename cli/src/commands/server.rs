//! `murmur serve` and `murmur token create`.

use murmur_engine::{Clock, SystemClock};

use crate::Exit;
use crate::cli::{DbArgs, ServeArgs};
use crate::context::{block_on, executor, open_store, repository_for};
use crate::output::emit_line;

pub fn serve(args: &ServeArgs) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let mut executor = executor(&args.db, &repo).await?;
        // `PUT /v1/secrets/{name}` needs a key even where no agent is given secrets; a key
        // that cannot be loaded leaves the route answering why.
        if executor.environment.keyring.is_err() {
            executor.environment.keyring = crate::commands::keys::Keys::load(&repo)
                .map(|keys| std::sync::Arc::new(keys.keyring))
                .map_err(|e| format!("{e:#}"));
        }
        let rate_limit = crate::config::Config::load(&repo)?.rate_limit()?;
        let config = crate::config::Config::load(&repo)?;
        let pools = crate::commands::pools::pool_specs(&config);
        let cloud = crate::cloud::serve_pools(&config).await?;
        let webhook_secret = std::env::var("MURMUR_GITHUB_WEBHOOK_SECRET")
            .ok()
            .filter(|secret| !secret.is_empty());
        murmur_server::serve(murmur_server::ServeOptions {
            executor,
            repository: repo,
            bind: args.bind.clone(),
            webhook_secret,
            rate_limit,
            pools,
            cloud,
        })
        .await?;
        Ok(Exit::Success)
    })
}

pub fn create_token(db: &DbArgs, name: &str) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let store = open_store(db, &repo).await?;
        let token = format!("mur_{}", uuid::Uuid::new_v4().simple());
        store.add_token(name, &token, &SystemClock.stamp()).await?;
        eprintln!(
            "token `{name}` created; it is shown only now, so keep it (only its hash is stored):"
        );
        emit_line(&token);
        Ok(Exit::Success)
    })
}
