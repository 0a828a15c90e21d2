//! New runs written by the store's writer, in the group transaction of whatever else is
//! queued with them (see `writer`). The statements are built by the caller; the writer only
//! runs them, each creation in a savepoint of its own, its claim first (see `claims`).

use super::backend::Tx;
use super::claims::{SET_CLAIM_WAIT, lock_not_available};

/// New runs and their agents, with the claim they are made under.
pub(super) struct Creation {
    /// Inserts the claim's row; touching no row means someone else holds the claim.
    pub claim: Option<sea_query::InsertStatement>,
    /// The runs, their agents and what the claim names, in order.
    pub inserts: Vec<sea_query::InsertStatement>,
}

/// What writing a creation came to; on anything but `Won`, nothing of it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Created {
    Won,
    /// The claim was someone else's first (committed, or earlier in this very group).
    Lost,
    /// Another transaction holds the claim past [`super::claims::CLAIM_WAIT`] (PostgreSQL).
    Pending,
}

pub(super) async fn write(tx: &mut Tx, creation: &Creation) -> sqlx::Result<Created> {
    tx.raw("SAVEPOINT creation").await?;
    if let Some(claim) = &creation.claim {
        let postgres = matches!(tx, Tx::Postgres(_));
        if postgres {
            // Bounds this insert's wait for a claimant on another server; reset below, or
            // undone with the savepoint, so the group's other writes wait as they always do.
            tx.raw(SET_CLAIM_WAIT).await?;
        }
        match tx.execute(claim).await {
            Ok(0) => return undo(tx, Created::Lost).await,
            Ok(_) => {}
            Err(error) if lock_not_available(&error) => return undo(tx, Created::Pending).await,
            Err(error) => return Err(error),
        }
        if postgres {
            tx.raw("SET LOCAL lock_timeout TO DEFAULT").await?;
        }
    }
    for insert in &creation.inserts {
        tx.execute(insert).await?;
    }
    tx.raw("RELEASE SAVEPOINT creation").await?;
    Ok(Created::Won)
}

async fn undo(tx: &mut Tx, outcome: Created) -> sqlx::Result<Created> {
    tx.raw("ROLLBACK TO SAVEPOINT creation").await?;
    tx.raw("RELEASE SAVEPOINT creation").await?;
    Ok(outcome)
}
