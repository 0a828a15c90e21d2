//! Pull requests kept in the store, for remotes that are not GitHub: `out: pr` works on any
//! git remote, and `murmur pr ls / show / merge` act on these records.

use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};
use serde::Serialize;

use super::schema::PullRequests;
use super::{Error, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PullRequest {
    pub id: String,
    pub run_id: String,
    pub slug: String,
    pub branch: String,
    pub base: String,
    pub title: String,
    pub body: String,
    /// `open` or `merged`.
    pub state: String,
    pub created_at: String,
    pub merged_at: Option<String>,
}

const COLUMNS: [PullRequests; 10] = [
    PullRequests::Id,
    PullRequests::RunId,
    PullRequests::Slug,
    PullRequests::Branch,
    PullRequests::Base,
    PullRequests::Title,
    PullRequests::Body,
    PullRequests::State,
    PullRequests::CreatedAt,
    PullRequests::MergedAt,
];

impl Store {
    /// Records a pull request; opening the same id again (a retried attempt) updates it.
    pub async fn open_pull_request(&self, pr: &PullRequest) -> Result<(), Error> {
        let upsert = Query::insert()
            .into_table(PullRequests::Table)
            .columns(COLUMNS)
            .values_panic([
                pr.id.as_str().into(),
                pr.run_id.as_str().into(),
                pr.slug.as_str().into(),
                pr.branch.as_str().into(),
                pr.base.as_str().into(),
                pr.title.as_str().into(),
                pr.body.as_str().into(),
                pr.state.as_str().into(),
                pr.created_at.as_str().into(),
                pr.merged_at.clone().into(),
            ])
            .on_conflict(
                OnConflict::column(PullRequests::Id)
                    .update_columns([
                        PullRequests::Title,
                        PullRequests::Body,
                        PullRequests::Branch,
                    ])
                    .to_owned(),
            )
            .to_owned();
        self.execute(&upsert).await.map(drop)
    }

    pub async fn pull_requests(&self) -> Result<Vec<PullRequest>, Error> {
        let select = Query::select()
            .columns(COLUMNS)
            .from(PullRequests::Table)
            .order_by(PullRequests::CreatedAt, Order::Desc)
            .to_owned();
        self.fetch(&select).await
    }

    pub async fn pull_request(&self, id: &str) -> Result<Option<PullRequest>, Error> {
        let select = Query::select()
            .columns(COLUMNS)
            .from(PullRequests::Table)
            .and_where(Expr::col(PullRequests::Id).eq(id))
            .to_owned();
        Ok(self.fetch(&select).await?.into_iter().next())
    }

    /// Marks an open pull request merged; false when it was not open.
    pub async fn mark_merged(&self, id: &str, at: &str) -> Result<bool, Error> {
        let update = Query::update()
            .table(PullRequests::Table)
            .value(PullRequests::State, "merged")
            .value(PullRequests::MergedAt, at)
            .and_where(Expr::col(PullRequests::Id).eq(id))
            .and_where(Expr::col(PullRequests::State).eq("open"))
            .to_owned();
        Ok(self.execute(&update).await? == 1)
    }
}
