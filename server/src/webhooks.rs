//! `POST /v1/webhooks/github`: a signed GitHub event starts every flight whose `on:` matches.
//! Unsigned or wrongly signed deliveries are refused before anything is read from them, and a
//! delivery GitHub sends again (same `X-GitHub-Delivery`) starts nothing new. A delivery for
//! a repository that workspaces hold starts those workspaces' flights, each in the
//! workspace's tenant, and a push brings the mirrors of that repository up to date first.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use murmur_engine::executor::{self, Executor, PreparedRun};
use murmur_engine::store::claims::{Claim, Claimed, ClaimedRun, delivery_key};
use murmur_engine::workspace::Workspace;
use murmur_parser::{EventFilter, Triggers};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use utoipa::ToSchema;

use super::AppState;
use super::catalog::Known;
use super::error::{ApiError, ErrorEnvelope};
use super::supervisor;

/// Whether `signature` (`sha256=HEX`) is the HMAC-SHA256 of `body` under `secret`; the
/// comparison takes the same time however many bytes match.
pub fn signature_matches(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hex_digest) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// What a delivery did: the runs it started, or why it started none.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct WebhookAnswer {
    pub runs: Vec<StartedRun>,
    /// A `ping` delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pong: Option<bool>,
    /// An event kind no trigger maps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    /// A delivery seen before (`X-GitHub-Delivery`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<String>,
    /// With `duplicate`: the runs the first delivery of this id started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_runs: Vec<StartedRun>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StartedRun {
    pub flight: String,
    pub run_id: String,
}

/// A GitHub delivery, signed with `MURMUR_GITHUB_WEBHOOK_SECRET` instead of a token.
#[utoipa::path(
    post, path = "/v1/webhooks/github", tag = "webhooks", security(()),
    params(
        ("X-Hub-Signature-256" = Option<String>, Header, description = "`sha256=HEX`, the HMAC of the body"),
        ("X-GitHub-Event" = Option<String>, Header, description = "`issues`, `pull_request`, `push`, `ping`"),
        ("X-GitHub-Delivery" = Option<String>, Header, description = "the delivery's id; a redelivery starts nothing"),
    ),
    request_body(content = Object, content_type = "application/json", description = "GitHub's payload"),
    responses(
        (status = 200, description = "nothing started", body = WebhookAnswer),
        (status = 202, description = "runs started", body = WebhookAnswer),
        (status = 400, description = "the payload is not JSON", body = ErrorEnvelope),
        (status = 401, description = "missing or wrong signature, or no secret configured", body = ErrorEnvelope),
        (status = 409, description = "a concurrent delivery with this id is still starting its runs (`in_progress`: retry shortly)", body = ErrorEnvelope),
        (status = 413, description = "the body is too large", body = ErrorEnvelope),
    )
)]
pub async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let body =
        body.map_err(|rejection| ApiError::new(rejection.status(), "body", rejection.body_text()))?;
    let secret = state.inner.webhook_secret.as_deref().ok_or_else(|| {
        ApiError::new(StatusCode::UNAUTHORIZED, "unsigned", "this server has no webhook secret (MURMUR_GITHUB_WEBHOOK_SECRET); every delivery is refused")
    })?;
    let signature = header(&headers, "x-hub-signature-256").unwrap_or_default();
    if !signature_matches(secret.as_bytes(), &body, signature) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "missing or wrong X-Hub-Signature-256",
        ));
    }
    let kind = header(&headers, "x-github-event")
        .unwrap_or_default()
        .to_owned();
    let delivery = header(&headers, "x-github-delivery").map(str::to_owned);
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("the payload is not JSON: {e}")))?;
    if kind == "ping" {
        let pong = WebhookAnswer {
            pong: Some(true),
            ..WebhookAnswer::default()
        };
        return Ok((StatusCode::OK, Json(pong)));
    }
    let Some(event) = GitHubEvent::from(&kind, &payload) else {
        let ignored = WebhookAnswer {
            ignored: Some(kind),
            ..WebhookAnswer::default()
        };
        return Ok((StatusCode::OK, Json(ignored)));
    };
    // The delivery is claimed in the transaction that creates its runs: concurrent deliveries
    // of one id (on any server of the store) start one set of runs.
    let claim = delivery.as_deref().map(delivery_key);
    if let Some(key) = &claim
        && let Some(earlier) = state.store().claimed_runs(key).await?
    {
        return Ok(duplicate(delivery, earlier));
    }
    let workspaces = matching_workspaces(&state, &payload).await;
    if event.trigger == Trigger::Push {
        // The repository moved: every mirror of it is brought up to date now, whatever
        // flights start, so the next run of each of its workspaces starts from the push.
        for (tenant, workspace) in &workspaces {
            if let Err(error) = tenant.executor().fetch_mirrors(workspace).await {
                tracing::warn!(%error, "a push delivery could not update a workspace's mirror");
            }
        }
    }
    let mut groups = vec![(state.clone(), own_runs(&state, &event, &payload).await)];
    for (tenant, workspace) in &workspaces {
        let runs = workspace_runs(tenant, workspace, &event, &payload).await?;
        match groups
            .iter_mut()
            .find(|(s, _)| s.store().tenant() == tenant.store().tenant())
        {
            Some((_, group)) => group.extend(runs),
            None => groups.push((tenant.clone(), runs)),
        }
    }
    groups.retain(|(_, runs)| !runs.is_empty());
    let mut started = Vec::new();
    let mut earlier = Vec::new();
    for (tenant, prepared) in groups {
        match start_group(tenant, claim.clone(), prepared).await? {
            Ok(runs) => started.extend(runs),
            Err(lost) => earlier.extend(lost),
        }
    }
    if started.is_empty() && !earlier.is_empty() {
        return Ok(duplicate(delivery, earlier));
    }
    let status = if started.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let answer = WebhookAnswer {
        runs: started,
        ..WebhookAnswer::default()
    };
    Ok((status, Json(answer)))
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The answer to a delivery seen before: the runs its first delivery started.
fn duplicate(
    delivery: Option<String>,
    earlier: Vec<ClaimedRun>,
) -> (StatusCode, Json<WebhookAnswer>) {
    let earlier_runs = earlier
        .into_iter()
        .map(|run| StartedRun {
            flight: run.flight,
            run_id: run.run_id,
        })
        .collect();
    let answer = WebhookAnswer {
        duplicate: delivery,
        earlier_runs,
        ..WebhookAnswer::default()
    };
    (StatusCode::OK, Json(answer))
}

/// The trigger a GitHub event stands for, with what the filters compare.
struct GitHubEvent {
    trigger: Trigger,
    /// `owner/name`, and the host it lives on (from the payload's `html_url`).
    repo: String,
    host: String,
    labels: Vec<String>,
    /// A pull request's base branch, or the ref a push updated (`refs/heads/…`, `refs/tags/…`).
    git_ref: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Trigger {
    IssueOpened,
    PrOpened,
    PrLabeled,
    Push,
}

impl GitHubEvent {
    /// `None` for an event no trigger maps, and for a push that deleted a branch or tag (it
    /// has no commit to work on: spec §6).
    fn from(kind: &str, payload: &Value) -> Option<Self> {
        let action = payload["action"].as_str().unwrap_or_default();
        let trigger = match (kind, action) {
            ("issues", "opened") => Trigger::IssueOpened,
            ("pull_request", "opened") => Trigger::PrOpened,
            ("pull_request", "labeled") => Trigger::PrLabeled,
            ("push", _) if is_deletion(payload) => return None,
            ("push", _) => Trigger::Push,
            _ => return None,
        };
        let names = |labels: &Value| {
            labels
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["name"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        };
        let labels = match trigger {
            Trigger::IssueOpened => names(&payload["issue"]["labels"]),
            Trigger::PrLabeled => payload["label"]["name"]
                .as_str()
                .map(str::to_owned)
                .into_iter()
                .collect(),
            Trigger::PrOpened => names(&payload["pull_request"]["labels"]),
            Trigger::Push => Vec::new(),
        };
        let git_ref = match trigger {
            Trigger::Push => payload["ref"].as_str().map(str::to_owned),
            Trigger::PrOpened | Trigger::PrLabeled => payload["pull_request"]["base"]["ref"]
                .as_str()
                .map(str::to_owned),
            Trigger::IssueOpened => None,
        };
        let repository = &payload["repository"];
        let repo = repository["full_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let host = repository["html_url"]
            .as_str()
            .and_then(|url| url.split_once("://"))
            .and_then(|(_, rest)| rest.split('/').next())
            .unwrap_or("github.com")
            .to_owned();
        Some(Self {
            trigger,
            repo,
            host,
            labels,
            git_ref,
        })
    }

    fn filter<'t>(&self, triggers: &'t Triggers) -> Option<&'t EventFilter> {
        match self.trigger {
            Trigger::IssueOpened => triggers.issue_opened.as_ref(),
            Trigger::PrOpened => triggers.pr_opened.as_ref(),
            Trigger::PrLabeled => triggers.pr_labeled.as_ref(),
            Trigger::Push => triggers.push.as_ref(),
        }
    }

    /// Every list in the filter that is not empty must admit the event.
    fn admitted_by(&self, filter: &EventFilter) -> bool {
        let repo_ok = filter.admits_repo(&self.repo, &self.host);
        let labels_ok =
            filter.labels.is_empty() || filter.labels.iter().any(|l| self.labels.contains(l));
        let ref_ok = match self.trigger {
            Trigger::Push => self
                .git_ref
                .as_deref()
                .is_some_and(|git_ref| filter.admits_push(git_ref)),
            _ => filter.admits_branch(self.git_ref.as_deref()),
        };
        repo_ok && labels_ok && ref_ok
    }
}

/// A push that deleted its ref: `deleted: true`, or `after` all zeros.
fn is_deletion(payload: &Value) -> bool {
    let after = payload["after"].as_str().unwrap_or_default();
    payload["deleted"].as_bool() == Some(true)
        || (!after.is_empty() && after.bytes().all(|b| b == b'0'))
}

/// The flights among `known` whose `on:` admits the event.
fn matching(event: &GitHubEvent, known: Vec<Known>) -> Vec<Known> {
    known
        .into_iter()
        .filter(|known| {
            event
                .filter(&known.flight.frontmatter.on)
                .is_some_and(|filter| event.admitted_by(filter))
        })
        .collect()
}

/// Runs of the server's own flights (its catalog's without a workspace, its repository's)
/// that the event starts, as before workspaces existed.
async fn own_runs(state: &AppState, event: &GitHubEvent, payload: &Value) -> Vec<PreparedRun> {
    let own = super::catalog::flights(state)
        .await
        .into_iter()
        .filter(|known| known.workspace.is_none())
        .collect();
    let mut prepared = Vec::new();
    for known in matching(event, own) {
        if let Some(run) = prepare(state.executor(), &known, payload) {
            prepared.push(run);
        }
    }
    prepared
}

/// Runs of workspace `workspace`'s flights (its tenant's catalog flights of it, then its
/// files) that the event starts, each recorded as working in the workspace.
async fn workspace_runs(
    tenant: &AppState,
    workspace: &Workspace,
    event: &GitHubEvent,
    payload: &Value,
) -> Result<Vec<PreparedRun>, ApiError> {
    let mut known: Vec<Known> = super::catalog::flights(tenant)
        .await
        .into_iter()
        .filter(|k| k.workspace.as_deref() == Some(workspace.name.as_str()))
        .collect();
    for file in super::workspace_flights::of_workspace(tenant, workspace).await {
        if known.iter().all(|k| k.name != file.name) {
            known.push(file);
        }
    }
    let executor = tenant.executor().in_workspace(workspace);
    let mut prepared = Vec::new();
    for known in matching(event, known) {
        if let Some(run) = prepare(&executor, &known, payload) {
            tenant
                .store()
                .set_run_workspace(&run.id, &workspace.name, None)
                .await?;
            prepared.push(run);
        }
    }
    Ok(prepared)
}

fn prepare(executor: &Executor, known: &Known, payload: &Value) -> Option<PreparedRun> {
    match executor.prepare(&known.triggered_by(payload)) {
        Ok(run) => Some(run),
        Err(error) => {
            tracing::warn!(flight = %known.name, %error, "a webhook delivery did not start the flight");
            None
        }
    }
}

/// The workspaces, of every tenant, that hold the delivery's repository, each with its
/// tenant's state: a delivery is the business of whoever connected that repository.
async fn matching_workspaces(state: &AppState, payload: &Value) -> Vec<(AppState, Workspace)> {
    let repository = &payload["repository"];
    let mut names: Vec<String> = ["clone_url", "html_url", "ssh_url", "git_url", "url"]
        .iter()
        .filter_map(|key| repository[*key].as_str().map(str::to_owned))
        .collect();
    if let Some(full_name) = repository["full_name"].as_str() {
        names.push(format!("github.com/{full_name}"));
    }
    let tenants = match state.store().tenants().await {
        Ok(tenants) => tenants,
        Err(error) => {
            tracing::error!(%error, "cannot read the tenants for a webhook delivery");
            return Vec::new();
        }
    };
    let mut found = Vec::new();
    for tenant in tenants {
        // Each tenant's workspaces through its own scoped state: no read crosses tenants.
        let Ok(scoped) = state.for_tenant(&tenant.name).await else {
            continue;
        };
        let workspaces = match scoped.store().workspaces().await {
            Ok(workspaces) => workspaces,
            Err(error) => {
                tracing::error!(%error, tenant = %tenant.name, "cannot read a tenant's workspaces");
                continue;
            }
        };
        for workspace in workspaces {
            if workspace.has_repository(&names) {
                found.push((scoped.clone(), workspace));
            }
        }
    }
    found
}

/// Records one tenant's runs under the delivery's claim in that tenant and hands them over:
/// the runs started, or (`Err`) those an earlier delivery of this id started there.
async fn start_group(
    tenant: AppState,
    claim: Option<String>,
    prepared: Vec<PreparedRun>,
) -> Result<Result<Vec<StartedRun>, Vec<ClaimedRun>>, ApiError> {
    let started: Vec<StartedRun> = prepared
        .iter()
        .map(|run| StartedRun {
            flight: run.flight.clone(),
            run_id: run.id.clone(),
        })
        .collect();
    // On a task of its own, so a client that goes away cannot cut committed runs off from
    // their driver.
    let committing = tokio::spawn(async move {
        let claim = claim.as_deref().map(Claim::Key);
        tenant
            .start_runs(claim, &prepared, supervisor::Trigger::Webhook)
            .await
    });
    match committing.await.map_err(ApiError::internal)? {
        Ok(Claimed::Won) => Ok(Ok(started)),
        Ok(Claimed::Lost(earlier)) => Ok(Err(earlier)),
        Ok(Claimed::Pending) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "in_progress",
            "another delivery with this X-GitHub-Delivery is still starting its runs; retry shortly",
        )),
        Err(executor::Error::Store(error)) => Err(error.into()),
        Err(other) => Err(ApiError::internal(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::signature_matches;

    #[test]
    fn signatures_are_checked() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_matches(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            good
        ));
        assert!(!signature_matches(
            b"another secret",
            b"Hello, World!",
            good
        ));
        assert!(!signature_matches(
            b"It's a Secret to Everybody",
            b"Hello, World?",
            good
        ));
        assert!(!signature_matches(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            "sha1=abc"
        ));
        assert!(!signature_matches(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            "sha256=zz"
        ));
    }
}
