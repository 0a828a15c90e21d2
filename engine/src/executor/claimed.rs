//! Runs created under a claim (an Idempotency-Key, a webhook delivery, a schedule tick): each
//! run is checked first, then the claim and every run are committed in one transaction, so
//! concurrent requests for one claim create one set of runs (see `store::claims`).

use serde_json::Value;

use super::{Error, Executor, StartRequest};
use crate::run;
use crate::state::RunStatus;
use crate::store::claims::{Claim, Claimed};
use crate::store::{NewRun, RunRow};

/// A run whose inputs and agents were checked, not recorded yet.
#[derive(Debug, Clone)]
pub struct PreparedRun {
    pub id: String,
    pub flight: String,
    flight_path: Option<String>,
    source: String,
    digest: String,
    inputs: Value,
    agents: Vec<String>,
    event: Option<Value>,
    /// Stamped when it was checked: what the row will say, so the driver need not read it.
    created_at: String,
}

impl PreparedRun {
    /// The run's row as its creation in `tenant` records it (queued, never leased).
    pub fn created_row(&self, tenant: &str) -> RunRow {
        RunRow {
            id: self.id.clone(),
            tenant: tenant.to_owned(),
            flight: self.flight.clone(),
            flight_path: self.flight_path.clone(),
            source: self.source.clone(),
            digest: self.digest.clone(),
            inputs: self.inputs.to_string(),
            status: RunStatus::Queued.as_str().to_owned(),
            version: 0,
            created_at: self.created_at.clone(),
            finished_at: None,
            event: self.event.as_ref().map(Value::to_string),
            lease_owner: None,
            lease_holder: None,
            lease_epoch: 0,
            lease_expires_at: None,
        }
    }
}

impl Executor {
    /// Checks a start as [`Executor::create`] does, records nothing.
    pub fn prepare(&self, request: &StartRequest<'_>) -> Result<PreparedRun, Error> {
        let inputs = run::resolve_inputs(request.flight, request.inputs)?;
        let agents = run::agents_of(request.flight);
        let has_check = self.check_command.is_some();
        run::check_runnable(request.flight, &agents, &self.repository, has_check)?;
        Ok(PreparedRun {
            id: uuid::Uuid::now_v7().simple().to_string(),
            flight: request.flight_name.to_owned(),
            flight_path: request.flight_path.map(str::to_owned),
            source: request.source.to_owned(),
            digest: run::digest(request.source),
            inputs: serde_json::to_value(&inputs).unwrap_or_default(),
            agents: agents.into_iter().map(|agent| agent.slug).collect(),
            event: request.event.cloned(),
            created_at: self.clock.stamp(),
        })
    }

    /// Records `runs` (queued) under `claim`, all or nothing. Drive them only when the answer
    /// is [`Claimed::Won`]; otherwise none of them exists.
    pub async fn create_claimed(
        &self,
        claim: Option<Claim<'_>>,
        runs: &[PreparedRun],
    ) -> Result<Claimed, Error> {
        let at = self.clock.stamp();
        let new: Vec<NewRun<'_>> = runs
            .iter()
            .map(|run| NewRun {
                id: &run.id,
                flight: &run.flight,
                flight_path: run.flight_path.as_deref(),
                source: &run.source,
                digest: &run.digest,
                inputs: &run.inputs,
                created_at: &run.created_at,
                agents: &run.agents,
                event: run.event.as_ref(),
            })
            .collect();
        Ok(self.store.create_runs(claim, &new, &at).await?)
    }
}
