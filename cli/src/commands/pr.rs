//! `murmur pr ls | show | merge`: the pull requests agents opened with `out: pr` on remotes
//! that are not GitHub, kept in the store.

use anyhow::{Context, bail};
use murmur_engine::store::PullRequest;
use murmur_engine::{Clock, SystemClock};
use murmur_runtime::workspace::Repository;

use crate::Exit;
use crate::cli::DbArgs;
use crate::context::{block_on, open_store, repository_for};
use crate::output::{emit, emit_line};
use crate::terminal::{sanitize, sanitize_block};

pub fn list(db: &DbArgs, json: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let prs = open_store(db, &repo).await?.pull_requests().await?;
        if json {
            emit_line(&serde_json::to_string_pretty(&prs)?);
            return Ok(Exit::Success);
        }
        let mut out = format!(
            "{:<32}  {:<7} {:<40} {}\n",
            "PR", "STATE", "BRANCH", "TITLE"
        );
        for pr in &prs {
            out.push_str(&format!(
                "{:<32}  {:<7} {:<40} {}\n",
                pr.id,
                pr.state,
                pr.branch,
                sanitize(&pr.title)
            ));
        }
        emit(&out);
        Ok(Exit::Success)
    })
}

pub fn show(db: &DbArgs, id: &str, json: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let pr = find(&open_store(db, &repo).await?, id).await?;
        if json {
            emit_line(&serde_json::to_string_pretty(&pr)?);
        } else {
            emit(&format!(
                "{}  [{}]\n{} -> {}  (run {}, agent {})\n\n{}\n",
                sanitize(&pr.title),
                pr.state,
                pr.branch,
                pr.base,
                pr.run_id,
                pr.slug,
                sanitize_block(&pr.body)
            ));
        }
        Ok(Exit::Success)
    })
}

pub fn merge(db: &DbArgs, id: &str) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let store = open_store(db, &repo).await?;
        let pr = find(&store, id).await?;
        if pr.state != "open" {
            bail!("pull request {} is {}, not open", pr.id, pr.state);
        }
        let repository = Repository::open(&repo, Some(&pr.base)).await?;
        let scratch = repo.join(".murmur/work/merge").join(&pr.id);
        let message = format!("Merge {} ({})", pr.branch, pr.title);
        let commit = repository
            .merge_into_base(&pr.branch, &message, &scratch)
            .await?;
        store.mark_merged(&pr.id, &SystemClock.stamp()).await?;
        eprintln!(
            "merged {} into {} at {}",
            pr.branch,
            pr.base,
            commit.get(..12).unwrap_or(&commit)
        );
        Ok(Exit::Success)
    })
}

async fn find(store: &murmur_engine::Store, id: &str) -> anyhow::Result<PullRequest> {
    store
        .pull_request(id)
        .await?
        .with_context(|| format!("no pull request `{id}`; `murmur pr ls` lists them"))
}
