//! The tenant's workspaces and which workspace each run works in.

use sea_query::{Expr, ExprTrait, Iden, OnConflict, Order, Query};

use super::schema::Runs;
use super::{Error, Store};
use crate::state::RunStatus;
use crate::workspace::Workspace;

#[derive(Iden, Clone, Copy)]
enum Workspaces {
    Table,
    Tenant,
    Name,
    Repositories,
    Defaults,
    MinIdle,
    CreatedAt,
}

#[derive(Iden, Clone, Copy)]
enum RunWorkspaces {
    Table,
    Tenant,
    RunId,
    Workspace,
    Base,
}

/// Where a run works, as its start recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunPlace {
    /// Its workspace; `None` is the implicit one (the repository its server or command runs
    /// in).
    pub workspace: Option<String>,
    /// The base branch its start named (a spawn's `--base`), over its repository's.
    pub base: Option<String>,
}

/// How `run_workspaces` holds a run of the implicit workspace that names its own base: no
/// workspace is named `""` (names are slugs).
const IMPLICIT: &str = "";

/// What removing a workspace did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Gone,
    /// The tenant has no workspace of that name.
    Missing,
    /// Refused: these runs have not finished.
    InFlight(Vec<String>),
}

#[derive(sqlx::FromRow)]
struct Row {
    tenant: String,
    name: String,
    repositories: String,
    defaults: String,
    min_idle: i32,
    created_at: String,
}

impl Row {
    fn decode(self) -> Result<(String, Workspace), Error> {
        let corrupt = |e: serde_json::Error| {
            Error::Corrupt(format!("workspace `{}` cannot be read: {e}", self.name))
        };
        let workspace = Workspace {
            repositories: serde_json::from_str(&self.repositories).map_err(corrupt)?,
            defaults: serde_json::from_str(&self.defaults).map_err(corrupt)?,
            min_idle: u32::try_from(self.min_idle).unwrap_or(0),
            created_at: self.created_at.clone(),
            name: self.name.clone(),
        };
        Ok((self.tenant, workspace))
    }
}

const COLUMNS: [Workspaces; 6] = [
    Workspaces::Tenant,
    Workspaces::Name,
    Workspaces::Repositories,
    Workspaces::Defaults,
    Workspaces::MinIdle,
    Workspaces::CreatedAt,
];

impl Store {
    /// Records `workspace` (checked by the caller); false when the tenant has one of that name.
    pub async fn add_workspace(&self, workspace: &Workspace) -> Result<bool, Error> {
        let encode = |e: serde_json::Error| Error::Corrupt(e.to_string());
        let repositories = serde_json::to_string(&workspace.repositories).map_err(encode)?;
        let defaults = serde_json::to_string(&workspace.defaults).map_err(encode)?;
        let insert = Query::insert()
            .into_table(Workspaces::Table)
            .columns(COLUMNS)
            .values_panic([
                self.tenant.as_str().into(),
                workspace.name.as_str().into(),
                repositories.into(),
                defaults.into(),
                i32::try_from(workspace.min_idle).unwrap_or(i32::MAX).into(),
                workspace.created_at.as_str().into(),
            ])
            .on_conflict(
                OnConflict::columns([Workspaces::Tenant, Workspaces::Name])
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        Ok(self.execute(&insert).await? == 1)
    }

    /// The tenant's workspaces, by name.
    pub async fn workspaces(&self) -> Result<Vec<Workspace>, Error> {
        let select = Query::select()
            .columns(COLUMNS)
            .from(Workspaces::Table)
            .and_where(Expr::col(Workspaces::Tenant).eq(self.tenant.as_str()))
            .order_by(Workspaces::Name, Order::Asc)
            .to_owned();
        let rows: Vec<Row> = self.fetch(&select).await?;
        rows.into_iter().map(|r| Ok(r.decode()?.1)).collect()
    }

    /// Workspace `name` of the tenant.
    pub async fn workspace(&self, name: &str) -> Result<Option<Workspace>, Error> {
        let select = Query::select()
            .columns(COLUMNS)
            .from(Workspaces::Table)
            .and_where(Expr::col(Workspaces::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(Workspaces::Name).eq(name))
            .to_owned();
        let rows: Vec<Row> = self.fetch(&select).await?;
        match rows.into_iter().next() {
            Some(row) => Ok(Some(row.decode()?.1)),
            None => Ok(None),
        }
    }

    /// Removes workspace `name`, unless runs that have not finished work in it.
    pub async fn remove_workspace(&self, name: &str) -> Result<Removed, Error> {
        let in_flight = self.runs_in_workspace(name, true).await?;
        if !in_flight.is_empty() {
            return Ok(Removed::InFlight(in_flight));
        }
        let delete = Query::delete()
            .from_table(Workspaces::Table)
            .and_where(Expr::col(Workspaces::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(Workspaces::Name).eq(name))
            .to_owned();
        Ok(if self.execute(&delete).await? == 1 {
            Removed::Gone
        } else {
            Removed::Missing
        })
    }

    /// Ids of the workspace's runs, only those not finished when `unfinished`.
    pub async fn runs_in_workspace(
        &self,
        name: &str,
        unfinished: bool,
    ) -> Result<Vec<String>, Error> {
        let mut select = Query::select()
            .column((Runs::Table, Runs::Id))
            .from(RunWorkspaces::Table)
            .inner_join(
                Runs::Table,
                Expr::col((Runs::Table, Runs::Id))
                    .equals((RunWorkspaces::Table, RunWorkspaces::RunId))
                    .and(
                        Expr::col((Runs::Table, Runs::Tenant))
                            .equals((RunWorkspaces::Table, RunWorkspaces::Tenant)),
                    ),
            )
            .and_where(
                Expr::col((RunWorkspaces::Table, RunWorkspaces::Tenant)).eq(self.tenant.as_str()),
            )
            .and_where(Expr::col((RunWorkspaces::Table, RunWorkspaces::Workspace)).eq(name))
            .order_by((Runs::Table, Runs::CreatedAt), Order::Asc)
            .to_owned();
        if unfinished {
            select.and_where(
                Expr::col((Runs::Table, Runs::Status))
                    .is_in([RunStatus::Queued.as_str(), RunStatus::Running.as_str()]),
            );
        }
        let ids: Vec<(String,)> = self.fetch(&select).await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Records that run `run_id` works in workspace `name`, on base branch `base` when the
    /// start named one. Written before the run itself, so a run never exists without its
    /// workspace; a row whose run was never created is harmless.
    pub async fn set_run_workspace(
        &self,
        run_id: &str,
        name: &str,
        base: Option<&str>,
    ) -> Result<(), Error> {
        let insert = Query::insert()
            .into_table(RunWorkspaces::Table)
            .columns([
                RunWorkspaces::Tenant,
                RunWorkspaces::RunId,
                RunWorkspaces::Workspace,
                RunWorkspaces::Base,
            ])
            .values_panic([
                self.tenant.as_str().into(),
                run_id.into(),
                name.into(),
                base.map(str::to_owned).into(),
            ])
            .on_conflict(
                OnConflict::columns([RunWorkspaces::Tenant, RunWorkspaces::RunId])
                    .update_columns([RunWorkspaces::Workspace, RunWorkspaces::Base])
                    .to_owned(),
            )
            .to_owned();
        self.execute(&insert).await.map(drop)
    }

    /// Records that run `run_id` of the implicit workspace starts its agents from `base`
    /// instead of the repository's checked-out branch. Written before the run, as
    /// [`Store::set_run_workspace`].
    pub async fn set_run_base(&self, run_id: &str, base: &str) -> Result<(), Error> {
        self.set_run_workspace(run_id, IMPLICIT, Some(base)).await
    }

    /// The workspace run `run_id` works in; `None` for the implicit one.
    pub async fn run_workspace(&self, run_id: &str) -> Result<Option<String>, Error> {
        Ok(self.run_place(run_id).await?.workspace)
    }

    /// The workspace run `run_id` works in and the base branch its start named, if any.
    pub async fn run_place(&self, run_id: &str) -> Result<RunPlace, Error> {
        let select = Query::select()
            .columns([RunWorkspaces::Workspace, RunWorkspaces::Base])
            .from(RunWorkspaces::Table)
            .and_where(Expr::col(RunWorkspaces::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(RunWorkspaces::RunId).eq(run_id))
            .to_owned();
        let found: Vec<(String, Option<String>)> = self.fetch(&select).await?;
        Ok(found
            .into_iter()
            .next()
            .map(|(workspace, base)| RunPlace {
                workspace: (workspace != IMPLICIT).then_some(workspace),
                base,
            })
            .unwrap_or_default())
    }
}
