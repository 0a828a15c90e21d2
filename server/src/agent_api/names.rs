//! Reading and steering the caller's subtree: names resolve under the calling agent (`SLUG`
//! is its child, `SLUG/AGENT` an agent of a child flight) or name a run of its subtree
//! (`RUN/SLUG`); anything else is outside the subtree and refused.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use murmur_engine::children::Error as ChildError;
use murmur_engine::executor;
use murmur_engine::store::children::{Child, Parent};
use murmur_engine::store::{AgentRow, RunRow};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AgentApi, Caller};
use crate::error::ApiError;

/// An agent (or a whole child flight) in the caller's subtree.
struct Target {
    name: String,
    run: RunRow,
    /// The agent meant; `None` for a child flight named as a whole.
    agent: Option<AgentRow>,
    /// Whether the name is a child of the caller's, so that its run is the caller's to end.
    child: bool,
}

pub(super) async fn status(
    State(api): State<AgentApi>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let target = resolve(&api, &caller, &name).await?;
    ensure_driven(&api, &target.run);
    Ok(Json(view(&api, &target).await?))
}

pub(super) async fn list(
    State(api): State<AgentApi>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let parent = Parent {
        run: &caller.0.run,
        slug: &caller.0.slug,
    };
    let mut children = Vec::new();
    for child in api.executor.store.children(&parent).await? {
        let target = child_target(&api, &child).await?;
        children.push(view(&api, &target).await?);
    }
    Ok(Json(Value::Array(children)))
}

#[derive(Deserialize)]
pub(super) struct Named {
    name: String,
}

pub(super) async fn kill(
    State(api): State<AgentApi>,
    caller: Caller,
    Json(body): Json<Named>,
) -> Result<Json<Value>, ApiError> {
    let target = resolve(&api, &caller, &body.name).await?;
    let executor = &api.executor;
    let canceled = match (&target.agent, target.child) {
        (Some(agent), false) => {
            let killed = match executor.kill(&target.run.id, &agent.slug).await {
                Ok(()) => 1,
                Err(executor::Error::AlreadyEnded { .. }) => 0,
                Err(error) => return Err(executor_error(error)),
            };
            killed
                + executor
                    .kill_children(&target.run.id, &agent.slug)
                    .await
                    .map_err(child_error)?
        }
        _ => executor
            .cancel_tree(&target.run.id)
            .await
            .map_err(child_error)?,
    };
    Ok(Json(json!({ "name": target.name, "killed": canceled })))
}

#[derive(Deserialize)]
pub(super) struct QueueBody {
    name: String,
    text: String,
}

pub(super) async fn queue_add(
    State(api): State<AgentApi>,
    caller: Caller,
    Json(body): Json<QueueBody>,
) -> Result<Json<Value>, ApiError> {
    let target = resolve(&api, &caller, &body.name).await?;
    let Some(agent) = &target.agent else {
        return Err(ApiError::invalid(format!(
            "`{}` is a flight: name one of its agents as {}/AGENT",
            target.name, target.name
        )));
    };
    let reopened = api
        .executor
        .queue_follow_up(&target.run.id, &agent.slug, &body.text)
        .await
        .map_err(executor_error)?;
    if reopened {
        (api.drive)(target.run.id.clone());
    }
    Ok(Json(json!({ "name": target.name, "queued": true })))
}

async fn resolve(api: &AgentApi, caller: &Caller, name: &str) -> Result<Target, ApiError> {
    let store = &api.executor.store;
    let parent = Parent {
        run: &caller.0.run,
        slug: &caller.0.slug,
    };
    let outside = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "outside_subtree",
            ChildError::OutsideSubtree(name.to_owned()).to_string(),
        )
    };
    let (first, rest) = match name.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    if let Some(child) = store.child(&parent, first).await? {
        let mut target = child_target(api, &child).await?;
        if let Some(slug) = rest {
            target.agent = Some(agent_of(api, &target.run, slug).await?);
            target.child = false;
            target.name = name.to_owned();
        }
        return Ok(target);
    }
    let Some(slug) = rest else {
        return Err(outside());
    };
    // `RUN/SLUG`: a run id (or unique prefix) of the caller's subtree.
    let Ok(run) = store.run(first).await else {
        return Err(outside());
    };
    let inside = api
        .executor
        .descends_from(&run.id, (&caller.0.run, &caller.0.slug))
        .await
        .map_err(child_error)?;
    if !inside {
        return Err(outside());
    }
    let agent = agent_of(api, &run, slug).await?;
    Ok(Target {
        name: name.to_owned(),
        run,
        agent: Some(agent),
        child: false,
    })
}

async fn child_target(api: &AgentApi, child: &Child) -> Result<Target, ApiError> {
    let run = api.executor.store.run(&child.run_id).await?;
    let agent = api
        .executor
        .store
        .agents(&run.id)
        .await?
        .into_iter()
        .find(|agent| agent.slug == child.slug);
    Ok(Target {
        name: child.slug.clone(),
        run,
        agent,
        child: true,
    })
}

async fn agent_of(api: &AgentApi, run: &RunRow, slug: &str) -> Result<AgentRow, ApiError> {
    api.executor
        .store
        .agents(&run.id)
        .await?
        .into_iter()
        .find(|agent| agent.slug == slug)
        .ok_or_else(|| ApiError::not_found(format!("run {} has no agent `{slug}`", run.id)))
}

/// The answer of `status`, `wait` and `ls`: the agent, or a child flight as a whole (its
/// state is then the run's status, its response the last agent's).
async fn view(api: &AgentApi, target: &Target) -> Result<Value, ApiError> {
    let parent = api
        .executor
        .store
        .spawned_as(&target.run.id)
        .await?
        .map(|spawn| format!("{}/{}", spawn.parent_run, spawn.parent_slug));
    let run = &target.run;
    let answer = match &target.agent {
        Some(agent) => json!({
            "name": target.name, "run": run.id, "flight": run.flight, "slug": agent.slug,
            "state": agent.state, "attempts": agent.attempts, "response": agent.response,
            "error": agent.error, "session_id": agent.session_id, "branch": agent.branch,
            "cost_usd": agent.cost_usd, "parent": parent, "run_status": run.status,
        }),
        None => {
            let agents = api.executor.store.agents(&run.id).await?;
            let last = agents.iter().max_by_key(|agent| agent.position);
            json!({
                "name": target.name, "run": run.id, "flight": run.flight, "slug": null,
                "state": run.status, "response": last.and_then(|a| a.response.clone()),
                "error": last.and_then(|a| a.error.clone()), "parent": parent,
                "run_status": run.status,
                "agents": agents.iter().map(|a| json!({"slug": a.slug, "state": a.state}))
                    .collect::<Vec<_>>(),
            })
        }
    };
    Ok(answer)
}

/// A child whose driver died with its process (a restarted engine) is driven again here
/// when its parent looks at it; one that is driven already is left to its driver.
pub(super) fn ensure_driven(api: &AgentApi, run: &RunRow) {
    let finished = murmur_engine::RunStatus::parse(&run.status)
        .is_some_and(murmur_engine::RunStatus::is_terminal);
    let now = api.executor.clock.stamp();
    // Never driven: its creator died between recording it and starting its driver (one
    // this API started may simply not have taken its lease yet).
    let never_driven = run.lease_epoch == 0 && run.lease_owner.is_none() && !api.started(&run.id);
    if finished {
        return;
    }
    if never_driven {
        api.start(&run.id);
    } else if run.shown_status(&now) == "interrupted" {
        (api.drive)(run.id.clone());
    }
}

pub(super) fn executor_error(error: executor::Error) -> ApiError {
    use executor::Error as E;
    match error {
        E::Store(error) => error.into(),
        error @ (E::CannotFollowUp { .. }
        | E::RunEnded { .. }
        | E::AlreadyEnded { .. }
        | E::NoAgent(_)) => ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string()),
        error @ E::Prepare(_) => ApiError::invalid(error.to_string()),
        E::Workspace(error) => crate::workspaces::workspace_error(error),
        error => ApiError::internal(error),
    }
}

pub(super) fn child_error(error: ChildError) -> ApiError {
    match error {
        ChildError::TooDeep { .. } | ChildError::TooManyChildren { .. } => {
            ApiError::new(StatusCode::FORBIDDEN, "limit", error.to_string())
        }
        ChildError::OutsideSubtree(_) => {
            ApiError::new(StatusCode::FORBIDDEN, "outside_subtree", error.to_string())
        }
        ChildError::Pending(_) => ApiError::new(StatusCode::CONFLICT, "busy", error.to_string()),
        ChildError::SecretNotHeld(_) => {
            ApiError::new(StatusCode::FORBIDDEN, "secret_not_held", error.to_string())
        }
        ChildError::BadSecret(_) | ChildError::UnknownSecret(_) => {
            ApiError::invalid(error.to_string())
        }
        ChildError::Executor(error) => executor_error(error),
        ChildError::Store(error) => error.into(),
    }
}
