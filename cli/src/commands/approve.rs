//! `murmur runs approve RUN SLUG [--reject] [--comment TEXT]`: a person's decision at an
//! agent's `approve` gate.

use murmur_engine::executor::{self, Verdict};

use crate::Exit;
use crate::cli::DbArgs;
use crate::context::{block_on, executor, repository_for};

pub fn run(
    db: &DbArgs,
    run: &str,
    slug: &str,
    approve: bool,
    comment: Option<String>,
) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let executor = executor(db, &repo).await?;
        let row = executor.store.run(run).await?;
        let verdict = Verdict { approve, comment };
        match executor.decide_gate(&row.id, slug, &verdict).await {
            Ok(()) => {}
            Err(
                error @ (executor::Error::NoAgent(_) | executor::Error::NotAwaitingApproval { .. }),
            ) => {
                eprintln!("error: {error}");
                return Ok(Exit::Failure);
            }
            Err(error) => return Err(error.into()),
        }
        let what = if approve {
            "approved"
        } else {
            "rejected; the agent works on the comment"
        };
        eprintln!(
            "{slug} in run {}: {what}. The process driving the run carries on (if none does: murmur runs resume {})",
            row.id, row.id
        );
        Ok(Exit::Success)
    })
}
