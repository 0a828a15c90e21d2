//! `POST /v1/runs/{id}/agents/{slug}/approve`: a person's decision at an agent's `approve`
//! gate, as `murmur runs approve` records it. The run's driver in this process takes it in.

use crate::tenant::Scoped;
use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use murmur_engine::executor::{self, Verdict};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::json_body;
use super::error::{ApiError, ErrorEnvelope};
use super::runs::exact_run;

/// The decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `true` passes the gate; `false` sends the agent back to work on `comment`.
    pub approve: bool,
    /// A note for the record; on a rejection, what the agent should change.
    #[serde(default)]
    pub comment: Option<String>,
}

/// The decision, recorded.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Decided {
    pub run_id: String,
    pub slug: String,
    /// `approved` or `rejected`.
    pub decision: String,
}

/// Approves or rejects the agent's work at its `approve` gate.
#[utoipa::path(
    post, path = "/v1/runs/{id}/agents/{slug}/approve", tag = "runs",
    params(
        ("id" = String, Path, description = "the run's whole id"),
        ("slug" = String, Path, description = "the agent's slug"),
    ),
    request_body = Decision,
    responses(
        (status = 200, description = "the decision is recorded", body = Decided),
        (status = 400, description = "the body is not a decision", body = ErrorEnvelope),
        (status = 404, description = "no such run or agent", body = ErrorEnvelope),
        (status = 409, description = "the agent is not waiting for approval", body = ErrorEnvelope),
        (status = 415, description = "the body is not JSON", body = ErrorEnvelope),
    )
)]
pub async fn approve_agent(
    Scoped(state): Scoped,
    Path((id, slug)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let decision: Decision = json_body(&headers, body, "a decision")?
        .ok_or_else(|| ApiError::invalid("send {\"approve\": true|false, \"comment\": \"...\"}"))?;
    exact_run(state.store(), &id).await?;
    let verdict = Verdict {
        approve: decision.approve,
        comment: decision.comment,
    };
    match state.executor().decide_gate(&id, &slug, &verdict).await {
        Ok(()) => {}
        Err(executor::Error::NoAgent(_)) => {
            return Err(ApiError::not_found(format!(
                "run {id} has no agent `{slug}`"
            )));
        }
        Err(error @ executor::Error::NotAwaitingApproval { .. }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_waiting",
                error.to_string(),
            ));
        }
        Err(executor::Error::Store(error)) => return Err(error.into()),
        Err(other) => return Err(ApiError::internal(other)),
    }
    let decision = if verdict.approve {
        "approved"
    } else {
        "rejected"
    };
    Ok(Json(Decided {
        run_id: id,
        slug,
        decision: decision.to_owned(),
    }))
}
