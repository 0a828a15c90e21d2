//! The flight catalog: flights kept in the store rather than in a repository's files. Each
//! save is a new numbered generation; a run pins the text it started from by digest anyway,
//! so older generations are history, never needed to resume a run.

use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};

use super::schema::FlightGenerations as G;
use super::{Error, Store};

/// One saved version of a catalog flight.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct FlightGeneration {
    pub name: String,
    pub generation: i64,
    pub markdown: String,
    pub digest: String,
    /// Who saved it: the API token's name, or `local` for the CLI on this machine.
    pub author: String,
    pub created_at: String,
}

/// A flight text to save as the next generation of `name`.
pub struct NewGeneration<'a> {
    pub name: &'a str,
    pub markdown: &'a str,
    pub digest: &'a str,
    pub author: &'a str,
    pub created_at: &'a str,
}

/// What saving did: the new generation, and whether it replaced a flight that existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub flight: FlightGeneration,
    pub replaced: bool,
}

#[derive(sqlx::FromRow)]
struct Newest {
    generation: i64,
    deleted_at: Option<String>,
}

/// Two saves of one name racing for the same number: the loser tries the next one.
const SAVE_ATTEMPTS: usize = 16;

const COLUMNS: [G; 6] = [
    G::Name,
    G::Generation,
    G::Markdown,
    G::Digest,
    G::Author,
    G::CreatedAt,
];

impl Store {
    /// Saves `new` as the next generation of its flight (numbers are never reused, also
    /// after a delete).
    pub async fn save_flight(&self, new: &NewGeneration<'_>) -> Result<Saved, Error> {
        for _ in 0..SAVE_ATTEMPTS {
            let newest = self.newest_generation(new.name).await?;
            let generation = newest.as_ref().map_or(1, |n| n.generation + 1);
            if self.insert_generation(new, generation).await? {
                let replaced = newest.is_some_and(|n| n.deleted_at.is_none());
                let flight = FlightGeneration {
                    name: new.name.to_owned(),
                    generation,
                    markdown: new.markdown.to_owned(),
                    digest: new.digest.to_owned(),
                    author: new.author.to_owned(),
                    created_at: new.created_at.to_owned(),
                };
                return Ok(Saved { flight, replaced });
            }
        }
        Err(Error::NotWritten(format!(
            "flight `{}` is being saved by many writers at once; try again",
            new.name
        )))
    }

    async fn newest_generation(&self, name: &str) -> Result<Option<Newest>, Error> {
        let select = Query::select()
            .columns([G::Generation, G::DeletedAt])
            .from(G::Table)
            .and_where(Expr::col(G::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(G::Name).eq(name))
            .order_by(G::Generation, Order::Desc)
            .limit(1)
            .to_owned();
        let rows: Vec<Newest> = self.fetch(&select).await?;
        Ok(rows.into_iter().next())
    }

    /// False when another save took `generation` first.
    async fn insert_generation(
        &self,
        new: &NewGeneration<'_>,
        generation: i64,
    ) -> Result<bool, Error> {
        let insert = Query::insert()
            .into_table(G::Table)
            .columns([
                G::Tenant,
                G::Name,
                G::Generation,
                G::Markdown,
                G::Digest,
                G::Author,
                G::CreatedAt,
            ])
            .values_panic([
                self.tenant.as_str().into(),
                new.name.into(),
                generation.into(),
                new.markdown.into(),
                new.digest.into(),
                new.author.into(),
                new.created_at.into(),
            ])
            .on_conflict(
                OnConflict::columns([G::Tenant, G::Name, G::Generation])
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        Ok(self.execute(&insert).await? == 1)
    }

    /// A flight's latest generation, or generation `generation`; `None` when there is no
    /// such flight or it was deleted.
    pub async fn catalog_flight(
        &self,
        name: &str,
        generation: Option<i64>,
    ) -> Result<Option<FlightGeneration>, Error> {
        let mut select = Query::select()
            .columns(COLUMNS)
            .from(G::Table)
            .and_where(Expr::col(G::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(G::Name).eq(name))
            .and_where(Expr::col(G::DeletedAt).is_null())
            .order_by(G::Generation, Order::Desc)
            .limit(1)
            .to_owned();
        if let Some(generation) = generation {
            select.and_where(Expr::col(G::Generation).eq(generation));
        }
        let rows: Vec<FlightGeneration> = self.fetch(&select).await?;
        Ok(rows.into_iter().next())
    }

    /// The latest generation of every flight in the catalog, by name.
    pub async fn catalog_flights(&self) -> Result<Vec<FlightGeneration>, Error> {
        let live = || {
            Query::select()
                .from(G::Table)
                .and_where(Expr::col(G::Tenant).eq(self.tenant.as_str()))
                .and_where(Expr::col(G::DeletedAt).is_null())
                .to_owned()
        };
        let newest = live()
            .column(G::Name)
            .expr(Expr::col(G::Generation).max())
            .group_by_col(G::Name)
            .to_owned();
        let select = live()
            .columns(COLUMNS)
            .and_where(
                Expr::tuple([Expr::col(G::Name), Expr::col(G::Generation)]).in_subquery(newest),
            )
            .order_by(G::Name, Order::Asc)
            .to_owned();
        self.fetch(&select).await
    }

    /// Marks every generation of `name` deleted; false when there was no such flight.
    pub async fn delete_flight(&self, name: &str, at: &str) -> Result<bool, Error> {
        let update = Query::update()
            .table(G::Table)
            .value(G::DeletedAt, at)
            .and_where(Expr::col(G::Tenant).eq(self.tenant.as_str()))
            .and_where(Expr::col(G::Name).eq(name))
            .and_where(Expr::col(G::DeletedAt).is_null())
            .to_owned();
        Ok(self.execute(&update).await? > 0)
    }
}
