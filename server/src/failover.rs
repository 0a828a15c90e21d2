//! Failover: every server takes over the runs nobody drives — at start, and then every
//! second — so a dead server's runs go on elsewhere once their leases expire (at once when
//! the dead driver ran on this host). Taking a run is a lease, so two servers racing for
//! one run end with one driver.

use std::time::Duration;

use super::AppState;

/// How often the store is asked for runs without a driver.
pub const SCAN_EVERY: Duration = Duration::from_secs(1);

/// Runs until the server stops; every tenant's runs, each driven in its tenant.
pub async fn take_over(state: AppState) {
    let mut scan = tokio::time::interval(SCAN_EVERY);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        scan.tick().await;
        let tenants = match state.store().tenants().await {
            Ok(tenants) => tenants,
            Err(error) => {
                tracing::warn!(%error, "cannot look for runs without a driver");
                continue;
            }
        };
        for tenant in tenants {
            match state.for_tenant(&tenant.name).await {
                Ok(scoped) => take_over_in(&scoped).await,
                Err(error) => tracing::warn!(tenant = %tenant.name, ?error, "cannot scan a tenant"),
            }
        }
    }
}

/// Drives the runs of `state`'s tenant that nobody drives.
async fn take_over_in(state: &AppState) {
    let now = state.executor().clock.stamp();
    match state.store().runs_without_driver(&now).await {
        Ok(runs) => {
            for run in runs {
                if !state.drives(&run) {
                    tracing::info!(run = %run, tenant = state.store().tenant(), "taking over a run nobody drives");
                    state.drive(run);
                }
            }
        }
        Err(error) => tracing::warn!(%error, "cannot look for runs without a driver"),
    }
}
