//! `murmur machines ls`: the machines agents run on, from the store.

use clap::Subcommand;
use murmur_engine::Store;
use murmur_engine::store::MachineFilter;
use murmur_server::machines::MachineView;

use crate::Exit;
use crate::cli::DbArgs;
use crate::context::{block_on, existing_store, repository_for};
use crate::output::{emit, emit_line};
use crate::terminal::sanitize;

#[derive(Debug, Subcommand)]
pub enum MachinesCommand {
    /// List machines by pool, oldest first: their placement, state, the agent each holds and
    /// when it last answered
    Ls {
        /// Only machines of this pool
        #[arg(long, value_name = "POOL")]
        pool: Option<String>,
        /// The machines of this tenant (its workers'); default: the store's own tenant's,
        /// which also run every other tenant's agents
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
        /// Print JSON: an array of {"id", "pool", "placement", "provider_id", "state",
        /// "agent", "last_seen_at"} ("agent" is RUN/SLUG or null)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

pub fn run(command: MachinesCommand) -> anyhow::Result<Exit> {
    match command {
        MachinesCommand::Ls {
            pool,
            tenant,
            json,
            db,
        } => ls(&db, pool.as_deref(), tenant.as_deref(), json),
    }
}

fn ls(db: &DbArgs, pool: Option<&str>, tenant: Option<&str>, json: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        // Reading never creates a store: without one there are no machines.
        let machines = match existing_store(db, &repo)? {
            Some(url) => {
                let store = super::tenant::in_tenant(Store::open(&url).await?, tenant).await?;
                listed(&store, pool).await?
            }
            None => Vec::new(),
        };
        if json {
            emit_line(&serde_json::to_string_pretty(&machines)?);
        } else {
            emit(&table(&machines));
        }
        Ok(Exit::Success)
    })
}

async fn listed(store: &Store, pool: Option<&str>) -> anyhow::Result<Vec<MachineView>> {
    let filter = MachineFilter { pool, state: None };
    let machines = store.machines(&filter).await?;
    Ok(machines.iter().map(MachineView::from).collect())
}

fn table(machines: &[MachineView]) -> String {
    if machines.is_empty() {
        return "no machines\n".to_owned();
    }
    let mut out = format!(
        "{:<24} {:<12} {:<10} {:<12} {:<32} {}\n",
        "MACHINE", "POOL", "PLACEMENT", "STATE", "AGENT", "LAST SEEN"
    );
    for machine in machines {
        out.push_str(&format!(
            "{:<24} {:<12} {:<10} {:<12} {:<32} {}\n",
            sanitize(&machine.id),
            sanitize(&machine.pool),
            sanitize(&machine.placement),
            machine.state,
            machine.agent.as_deref().map_or("-".into(), sanitize),
            machine.last_seen_at.as_deref().unwrap_or("-"),
        ));
    }
    out
}
