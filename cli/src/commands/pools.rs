//! `murmur pool status` and `murmur pool flush`: the pools of `.murmur/murmur.yaml` (and the
//! built-in `local`) with their machines by state and the agents waiting for one; and the end
//! of a pool's spare machines.

use anyhow::bail;
use clap::Subcommand;
use murmur_engine::machine::{PoolSpec, PoolStatus, flush_pool};
use murmur_engine::{Clock, Store, SystemClock};
use murmur_server::machines::{PoolView, pool_views, with_local};

use crate::Exit;
use crate::cli::DbArgs;
use crate::config::Config;
use crate::context::{block_on, existing_store, repository_for};
use crate::output::{emit, emit_line};
use crate::terminal::sanitize;

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Show each pool (or POOL): placement, max_vms, min_idle, its machines by state and how
    /// many agents are queued for it
    Status {
        /// Only this pool (one of `pools:` in .murmur/murmur.yaml, or `local`)
        pool: Option<String>,
        /// Print JSON: an array of {"pool", "placement", "max_vms", "min_idle", "machines":
        /// {"idle": n, "busy": n, …}, "queued_agents"}
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Drain and terminate the idle and sleeping machines of POOL (of every pool without
    /// one); busy machines are left to their agents. Sleeping agents lose their machine and
    /// start on a fresh one from their branch when woken.
    Flush {
        /// Only this pool; every pool without it
        pool: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Show the cloud API calls that provisioning a machine of cloud pool POOL makes (`murmur
    /// serve` keeps the pool's machines up; this makes no call)
    Up {
        /// A pool whose placement is one of `placements:`
        pool: String,
        /// Print the calls instead of making them (the only mode: the server provisions)
        #[arg(long, required = true)]
        dry_run: bool,
    },
}

pub fn run(command: PoolCommand) -> anyhow::Result<Exit> {
    match command {
        PoolCommand::Status { pool, json, db } => status(&db, pool.as_deref(), json),
        PoolCommand::Flush { pool, db } => flush(&db, pool.as_deref()),
        PoolCommand::Up { pool, .. } => {
            let config = Config::load(&repository_for(None))?;
            let calls = block_on(super::cloud_pool::dry_run(&config, &pool))?;
            emit(
                &calls
                    .iter()
                    .map(|call| format!("{}\n", sanitize(call)))
                    .collect::<String>(),
            );
            Ok(Exit::Success)
        }
    }
}

/// The pools of `pools:` as the engine and the server take them. A pool without
/// `placement` runs on this host (`local`); one without `max_vms` gets as many as this host
/// has cores, like `local`.
pub fn pool_specs(config: &Config) -> Vec<PoolSpec> {
    config
        .pools
        .iter()
        .map(|(name, pool)| PoolSpec {
            name: name.clone(),
            placement: pool.placement.clone().unwrap_or_else(|| "local".to_owned()),
            max_vms: config.max_vms_of(name),
            min_idle: pool.min_idle.unwrap_or(0),
        })
        .collect()
}

/// `local` first, then the configured pools; only `wanted` when given (an unknown name is
/// refused with the names there are).
fn pools_of(config: &Config, wanted: Option<&str>) -> anyhow::Result<Vec<PoolSpec>> {
    let pools = with_local(&pool_specs(config), config.local_slots());
    let Some(wanted) = wanted else {
        return Ok(pools);
    };
    if !pools.iter().any(|pool| pool.name == wanted) {
        let names: Vec<&str> = pools.iter().map(|pool| pool.name.as_str()).collect();
        bail!(
            "no pool `{}`; the pools are {} (`pools:` in .murmur/murmur.yaml)",
            sanitize(wanted),
            names.join(", ")
        );
    }
    Ok(pools
        .into_iter()
        .filter(|pool| pool.name == wanted)
        .collect())
}

/// A pool as `pool status` shows it: with its VMs when it is a cloud pool.
#[derive(serde::Serialize)]
struct Shown {
    #[serde(flatten)]
    view: PoolView,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    instances: Vec<super::cloud_pool::InstanceView>,
}

fn status(db: &DbArgs, wanted: Option<&str>, json: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    let config = Config::load(&repo)?;
    let pools = pools_of(&config, wanted)?;
    block_on(async {
        let store = match existing_store(db, &repo)? {
            Some(url) => Some(Store::open(&url).await?),
            None => None,
        };
        let views: Vec<PoolView> = match &store {
            Some(store) => pool_views(store, &pools).await?,
            // Reading never creates a store: without one, every pool is empty.
            None => pools
                .iter()
                .map(PoolStatus::empty)
                .map(PoolView::from)
                .collect(),
        };
        let mut shown = Vec::new();
        for view in views {
            let instances = match &store {
                Some(store) => super::cloud_pool::instances(store, &config, &view.pool).await?,
                None => Vec::new(),
            };
            shown.push(Shown { view, instances });
        }
        if json {
            emit_line(&serde_json::to_string_pretty(&shown)?);
        } else {
            emit(&table(&shown));
        }
        Ok(Exit::Success)
    })
}

fn table(pools: &[Shown]) -> String {
    let mut out = format!(
        "{:<16} {:<10} {:>7} {:>8} {:>7}  {}\n",
        "POOL", "PLACEMENT", "MAX_VMS", "MIN_IDLE", "QUEUED", "MACHINES"
    );
    for shown in pools {
        let pool = &shown.view;
        let machines: Vec<String> = pool
            .machines
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(state, count)| format!("{count} {state}"))
            .collect();
        let machines = if machines.is_empty() {
            "none".to_owned()
        } else {
            machines.join(", ")
        };
        out.push_str(&format!(
            "{:<16} {:<10} {:>7} {:>8} {:>7}  {}\n",
            sanitize(&pool.pool),
            sanitize(&pool.placement),
            pool.max_vms,
            pool.min_idle,
            pool.queued_agents,
            machines
        ));
        out.push_str(&super::cloud_pool::table(&shown.instances));
        out.push_str(&super::cloud_pool::story(pool));
    }
    out
}

fn flush(db: &DbArgs, wanted: Option<&str>) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    let config = Config::load(&repo)?;
    block_on(async {
        let Some(url) = existing_store(db, &repo)? else {
            pools_of(&config, wanted)?;
            eprintln!("nothing to flush: there is no store yet");
            return Ok(Exit::Success);
        };
        let store = Store::open(&url).await?;
        // A pool no longer configured may still have machines: those can be flushed too.
        if let Some(name) = wanted
            && store
                .machines(&murmur_engine::store::MachineFilter {
                    pool: Some(name),
                    state: None,
                })
                .await?
                .is_empty()
        {
            pools_of(&config, wanted)?;
        }
        let flushed = flush_pool(&store, wanted, &SystemClock.stamp()).await?;
        let scope = wanted.map_or("any pool".to_owned(), |pool| {
            format!("pool {}", sanitize(pool))
        });
        if flushed.is_empty() {
            eprintln!("nothing to flush: {scope} has no idle or sleeping machine");
            return Ok(Exit::Success);
        }
        let mut out = String::new();
        for ended in &flushed {
            out.push_str(&format!(
                "terminated {} (pool {}, was {})\n",
                sanitize(&ended.machine.id),
                sanitize(&ended.machine.pool),
                ended.was
            ));
        }
        emit(&out);
        eprintln!("flushed {} machine(s) of {scope}", flushed.len());
        Ok(Exit::Success)
    })
}
