//! `murmur tenant create|ls` and `murmur token create|ls|revoke`: tenants, and the API and
//! worker tokens that belong to one. A token is printed once at creation and only its hash is
//! kept; a revoked token is refused at once by this store's server (see `store::tokens`).

use anyhow::bail;
use murmur_engine::store::tenants::is_tenant_name;
use murmur_engine::{Clock, Store, SystemClock};

use crate::Exit;
use crate::cli::DbArgs;
use crate::context::{block_on, open_store, repository_for};
use crate::output::emit_line;
use crate::terminal::sanitize;

#[derive(Debug, clap::Subcommand)]
pub enum TenantCommand {
    /// Create tenant NAME (lowercase letters, digits, `-` and `_`)
    Create {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the tenants
    Ls {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

pub fn run(command: TenantCommand) -> anyhow::Result<Exit> {
    match command {
        TenantCommand::Create { name, db } => create(&db, &name),
        TenantCommand::Ls { json, db } => list(&db, json),
    }
}

fn create(db: &DbArgs, name: &str) -> anyhow::Result<Exit> {
    if !is_tenant_name(name) {
        bail!(
            "`{}` is no tenant name: use lowercase letters, digits, `-` and `_`, starting with a letter or digit, at most 64 characters",
            sanitize(name)
        );
    }
    let repo = repository_for(None);
    block_on(async {
        let store = open_store(db, &repo).await?;
        if !store.create_tenant(name, &SystemClock.stamp()).await? {
            bail!("tenant `{name}` exists already; `murmur tenant ls` lists them");
        }
        eprintln!(
            "tenant `{name}` created; `murmur token create --name N --tenant {name}` gives it a token"
        );
        Ok(Exit::Success)
    })
}

fn list(db: &DbArgs, json: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let tenants = open_store(db, &repo).await?.tenants().await?;
        if json {
            emit_line(&serde_json::to_string_pretty(&tenants)?);
            return Ok(Exit::Success);
        }
        for tenant in &tenants {
            emit_line(&format!("{:<32} {}", tenant.name, tenant.created_at));
        }
        Ok(Exit::Success)
    })
}

/// The store scoped to `tenant` (the store's own when `None`); an unknown tenant is an error.
async fn scoped(db: &DbArgs, tenant: Option<&str>) -> anyhow::Result<Store> {
    in_tenant(open_store(db, &repository_for(None)).await?, tenant).await
}

/// `store` scoped to `tenant` (as it is when `None`); an unknown tenant is an error.
pub(crate) async fn in_tenant(store: Store, tenant: Option<&str>) -> anyhow::Result<Store> {
    let Some(tenant) = tenant else {
        return Ok(store);
    };
    match store.for_tenant(tenant).await? {
        Some(scoped) => Ok(scoped),
        None => bail!(
            "no tenant `{}`; `murmur tenant create NAME` makes one",
            sanitize(tenant)
        ),
    }
}

/// What `token create` makes: an API token, or a worker token for one pool.
pub struct NewToken<'a> {
    pub name: &'a str,
    pub pool: Option<&'a str>,
    pub tenant: Option<&'a str>,
}

pub fn create_token(db: &DbArgs, new: &NewToken<'_>) -> anyhow::Result<Exit> {
    block_on(async {
        let store = scoped(db, new.tenant).await?;
        let at = SystemClock.stamp();
        let name = new.name;
        let tenant = store.tenant().to_owned();
        let token = match new.pool {
            Some(pool) => {
                let token = format!("murw_{}", uuid::Uuid::new_v4().simple());
                store.add_worker_token(name, &token, pool, &at).await?;
                eprintln!(
                    "worker token `{name}` of tenant `{tenant}` created for pool `{pool}`; it is shown only now, so keep it (only its hash is stored):"
                );
                token
            }
            None => {
                let token = format!("mur_{}", uuid::Uuid::new_v4().simple());
                store.add_token(name, &token, &at).await?;
                eprintln!(
                    "token `{name}` of tenant `{tenant}` created; it is shown only now, so keep it (only its hash is stored):"
                );
                token
            }
        };
        emit_line(&token);
        Ok(Exit::Success)
    })
}

pub fn list_tokens(db: &DbArgs, tenant: Option<&str>, json: bool) -> anyhow::Result<Exit> {
    block_on(async {
        let tokens = scoped(db, tenant).await?.list_tokens().await?;
        if json {
            emit_line(&serde_json::to_string_pretty(&tokens)?);
            return Ok(Exit::Success);
        }
        if tokens.is_empty() {
            eprintln!("no tokens; `murmur token create --name N` makes one");
        }
        for token in &tokens {
            let pool = token.pool.as_deref().unwrap_or("-");
            let line = format!(
                "{:<32} {:<7} {:<16} {}",
                sanitize(&token.name),
                token.kind,
                sanitize(pool),
                token.created_at
            );
            emit_line(&line);
        }
        Ok(Exit::Success)
    })
}

pub fn revoke_token(db: &DbArgs, name: &str, tenant: Option<&str>) -> anyhow::Result<Exit> {
    block_on(async {
        let store = scoped(db, tenant).await?;
        let revoked = store.revoke_token(name).await?;
        if revoked == 0 {
            bail!(
                "tenant `{}` has no token `{}`; `murmur token ls` lists them",
                store.tenant(),
                sanitize(name)
            );
        }
        eprintln!(
            "token `{}` revoked: requests with it are refused from now on",
            sanitize(name)
        );
        Ok(Exit::Success)
    })
}
