//! Children: the runs agents spawned, each recorded under the agent that spawned it. A child
//! is created at most once per (parent run, parent agent, child slug): the child's row is the
//! claim of its creation (inserted first, in the transaction that creates the run), so a
//! retried spawn, or a parent that runs again after a restart, finds the child it made.

use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};

use super::creation::{Created, Creation};
use super::{Error, NewRun, Store};

#[derive(sea_query::Iden, Clone, Copy)]
enum AgentChildren {
    Table,
    Tenant,
    ParentRun,
    ParentSlug,
    Slug,
    RunId,
    Depth,
    CreatedAt,
}

#[derive(sea_query::Iden, Clone, Copy)]
enum RunSecrets {
    Table,
    Tenant,
    RunId,
    Name,
}

const CHILD_COLUMNS: [AgentChildren; 5] = [
    AgentChildren::ParentRun,
    AgentChildren::ParentSlug,
    AgentChildren::Slug,
    AgentChildren::RunId,
    AgentChildren::Depth,
];

/// The agent a child run was spawned by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent<'a> {
    pub run: &'a str,
    pub slug: &'a str,
}

/// One recorded child.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Child {
    pub parent_run: String,
    pub parent_slug: String,
    /// The child's slug under its parent (also its agent's slug in the child run).
    pub slug: String,
    pub run_id: String,
    /// 1 for a child of a top-level run's agent.
    pub depth: i64,
}

/// What spawning a child came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spawned {
    /// The child's run was created by this call.
    Created,
    /// The parent had spawned this child before: that child, nothing new was kept.
    Existing(Child),
    /// A concurrent spawn of the same child has not committed yet; asking again finds it.
    Pending,
}

impl Store {
    /// Creates `run` as the child `slug` of `parent` at `depth`, its agents given `secrets`
    /// besides the workspace's, unless `parent` has a child of that slug already.
    pub async fn create_child(
        &self,
        parent: &Parent<'_>,
        slug: &str,
        depth: i64,
        run: &NewRun<'_>,
        secrets: &[String],
    ) -> Result<Spawned, Error> {
        let claim = Query::insert()
            .into_table(AgentChildren::Table)
            .columns([
                AgentChildren::Tenant,
                AgentChildren::ParentRun,
                AgentChildren::ParentSlug,
                AgentChildren::Slug,
                AgentChildren::RunId,
                AgentChildren::Depth,
                AgentChildren::CreatedAt,
            ])
            .values_panic([
                self.tenant.as_str().into(),
                parent.run.into(),
                parent.slug.into(),
                slug.into(),
                run.id.into(),
                depth.into(),
                run.created_at.into(),
            ])
            .on_conflict(
                OnConflict::columns([
                    AgentChildren::Tenant,
                    AgentChildren::ParentRun,
                    AgentChildren::ParentSlug,
                    AgentChildren::Slug,
                ])
                .do_nothing()
                .to_owned(),
            )
            .to_owned();
        let mut inserts = self.run_inserts(run);
        inserts.extend(self.grant_insert(run.id, secrets));
        let creation = Creation {
            claim: Some(claim),
            inserts,
        };
        match self.writer.create(creation).await? {
            Created::Won => Ok(Spawned::Created),
            Created::Pending => Ok(Spawned::Pending),
            Created::Lost => match self.child(parent, slug).await? {
                Some(child) => Ok(Spawned::Existing(child)),
                None => Ok(Spawned::Pending),
            },
        }
    }

    /// The child `slug` of `parent`, if it spawned one.
    pub async fn child(&self, parent: &Parent<'_>, slug: &str) -> Result<Option<Child>, Error> {
        let select = self
            .children_select()
            .and_where(Expr::col(AgentChildren::ParentRun).eq(parent.run))
            .and_where(Expr::col(AgentChildren::ParentSlug).eq(parent.slug))
            .and_where(Expr::col(AgentChildren::Slug).eq(slug))
            .to_owned();
        Ok(self.fetch(&select).await?.into_iter().next())
    }

    /// Every child `parent` spawned, oldest first.
    pub async fn children(&self, parent: &Parent<'_>) -> Result<Vec<Child>, Error> {
        let select = self
            .children_select()
            .and_where(Expr::col(AgentChildren::ParentRun).eq(parent.run))
            .and_where(Expr::col(AgentChildren::ParentSlug).eq(parent.slug))
            .order_by(AgentChildren::CreatedAt, Order::Asc)
            .order_by(AgentChildren::RunId, Order::Asc)
            .to_owned();
        self.fetch(&select).await
    }

    /// Every child spawned by any agent of `run`.
    pub async fn children_of_run(&self, run: &str) -> Result<Vec<Child>, Error> {
        let select = self
            .children_select()
            .and_where(Expr::col(AgentChildren::ParentRun).eq(run))
            .order_by(AgentChildren::CreatedAt, Order::Asc)
            .to_owned();
        self.fetch(&select).await
    }

    /// How `run` was spawned, when an agent spawned it.
    pub async fn spawned_as(&self, run: &str) -> Result<Option<Child>, Error> {
        let select = self
            .children_select()
            .and_where(Expr::col(AgentChildren::RunId).eq(run))
            .to_owned();
        Ok(self.fetch(&select).await?.into_iter().next())
    }

    /// Creates `run` (nobody's child) with `secrets` given to its agents besides the
    /// workspace's, in one transaction, so that no driver sees the run without them.
    pub async fn create_granted_run(
        &self,
        run: &NewRun<'_>,
        secrets: &[String],
    ) -> Result<(), Error> {
        let mut inserts = self.run_inserts(run);
        inserts.extend(self.grant_insert(run.id, secrets));
        let creation = Creation {
            claim: None,
            inserts,
        };
        match self.writer.create(creation).await? {
            Created::Won => Ok(()),
            other => Err(Error::NotWritten(format!(
                "a run without a claim was not written ({other:?})"
            ))),
        }
    }

    /// The secrets given to `run`'s agents besides the workspace's (`murmur spawn -e`).
    pub async fn run_secrets(&self, run: &str) -> Result<Vec<String>, Error> {
        let select = Query::select()
            .column(RunSecrets::Name)
            .from(RunSecrets::Table)
            .and_where(Expr::col(RunSecrets::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(RunSecrets::RunId).eq(run))
            .order_by(RunSecrets::Name, Order::Asc)
            .to_owned();
        let rows: Vec<(String,)> = self.fetch(&select).await?;
        Ok(rows.into_iter().map(|(name,)| name).collect())
    }

    fn grant_insert(&self, run: &str, secrets: &[String]) -> Option<sea_query::InsertStatement> {
        if secrets.is_empty() {
            return None;
        }
        let mut insert = Query::insert()
            .into_table(RunSecrets::Table)
            .columns([RunSecrets::Tenant, RunSecrets::RunId, RunSecrets::Name])
            .on_conflict(
                OnConflict::columns([RunSecrets::Tenant, RunSecrets::RunId, RunSecrets::Name])
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        for name in secrets {
            insert.values_panic([self.tenant.as_str().into(), run.into(), name.into()]);
        }
        Some(insert)
    }

    fn children_select(&self) -> sea_query::SelectStatement {
        Query::select()
            .columns(CHILD_COLUMNS)
            .from(AgentChildren::Table)
            .and_where(Expr::col(AgentChildren::Tenant).eq(self.tenant.as_str()))
            .to_owned()
    }
}
