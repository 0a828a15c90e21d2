//! `murmur serve` and `murmur token create`.

use murmur_engine::{Clock, SystemClock};

use crate::Exit;
use crate::cli::{DbArgs, ServeArgs};
use crate::commands::runs::{block_on, executor, open_store, repository_for};
use crate::output::emit_line;

pub fn serve(args: &ServeArgs) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let executor = executor(&args.db, &repo).await?;
        crate::serve::serve(executor, repo, &args.bind).await
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
