//! `GET/POST /v1/workspaces`, `GET/DELETE /v1/workspaces/{name}`: the token's tenant's
//! workspaces, as `murmur workspace ls|add|show|rm`.

use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use murmur_engine::executor::{Executor, WorkspaceError};
use murmur_engine::store::workspaces::Removed;
use murmur_engine::workspace::Workspace;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::body::json_body;
use super::error::{ApiError, ErrorEnvelope};
use crate::tenant::Scoped;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/workspaces", get(list_workspaces).post(add_workspace))
        .route(
            "/v1/workspaces/{name}",
            get(show_workspace).delete(remove_workspace),
        )
}

/// A workspace with, for each repository, the commit this server's mirror of its base branch
/// is at (`null` before the mirror is made).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceView {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub workspace: Workspace,
    pub heads: Vec<Option<String>>,
}

/// The view of `workspace` as this server holds it.
pub async fn view(executor: &Executor, workspace: Workspace) -> WorkspaceView {
    let heads = executor.mirror_heads(&workspace).await;
    WorkspaceView { workspace, heads }
}

/// The tenant's workspaces, by name.
#[utoipa::path(
    get, path = "/v1/workspaces", tag = "workspaces",
    responses((status = 200, description = "the workspaces", body = Vec<WorkspaceView>))
)]
pub async fn list_workspaces(Scoped(state): Scoped) -> Result<Json<Vec<WorkspaceView>>, ApiError> {
    let executor = state.executor();
    let mut views = Vec::new();
    for workspace in executor.store.workspaces().await? {
        views.push(view(executor, workspace).await);
    }
    Ok(Json(views))
}

/// Adds a workspace: `{"name", "repositories": [{"url", "base", "conflict_resolution",
/// "credential"}], "defaults": {"pool", "environment", "check", "secrets"}, "min_idle"}`.
#[utoipa::path(
    post, path = "/v1/workspaces", tag = "workspaces",
    request_body(content = Object, description = "the workspace"),
    responses(
        (status = 201, description = "added", body = WorkspaceView),
        (status = 400, description = "a name that is no slug, no repository, a URL with a credential, an unreachable or non-git repository, a missing base branch, a credential secret that cannot be opened or is refused", body = ErrorEnvelope),
        (status = 409, description = "a workspace of that name exists (`exists`)", body = ErrorEnvelope),
    )
)]
pub async fn add_workspace(
    Scoped(state): Scoped,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    let workspace: Workspace = json_body(&headers, body, "the workspace")?
        .ok_or_else(|| ApiError::invalid("a body with the workspace is needed"))?;
    let executor = state.executor().clone();
    let added = executor
        .add_workspace(workspace)
        .await
        .map_err(workspace_error)?;
    // The mirrors are made now, off the request, so the first run need not wait for a clone.
    let background = executor.clone();
    let cloned = added.clone();
    tokio::spawn(async move {
        if let Err(error) = background.ensure_mirrors(&cloned).await {
            tracing::warn!(%error, "cannot mirror the new workspace's repositories yet");
        }
    });
    Ok((StatusCode::CREATED, Json(view(&executor, added).await)))
}

/// Workspace `name`.
#[utoipa::path(
    get, path = "/v1/workspaces/{name}", tag = "workspaces",
    params(("name" = String, Path, description = "the workspace's name")),
    responses(
        (status = 200, description = "the workspace", body = WorkspaceView),
        (status = 404, description = "no such workspace", body = ErrorEnvelope),
    )
)]
pub async fn show_workspace(
    Scoped(state): Scoped,
    Path(name): Path<String>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let executor = state.executor();
    let workspace = executor
        .store
        .workspace(&name)
        .await?
        .ok_or_else(|| no_workspace(&name))?;
    Ok(Json(view(executor, workspace).await))
}

/// Removes workspace `name`; refused while runs in it have not finished.
#[utoipa::path(
    delete, path = "/v1/workspaces/{name}", tag = "workspaces",
    params(("name" = String, Path, description = "the workspace's name")),
    responses(
        (status = 204, description = "removed"),
        (status = 404, description = "no such workspace", body = ErrorEnvelope),
        (status = 409, description = "runs in it have not finished (`in_flight`, naming them)", body = ErrorEnvelope),
    )
)]
pub async fn remove_workspace(
    Scoped(state): Scoped,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    match state.executor().store.remove_workspace(&name).await? {
        Removed::Gone => Ok(StatusCode::NO_CONTENT),
        Removed::Missing => Err(no_workspace(&name)),
        Removed::InFlight(runs) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "in_flight",
            format!(
                "workspace `{name}` has runs in flight ({}); cancel them or wait for them to end",
                runs.join(", ")
            ),
        )),
    }
}

pub fn no_workspace(name: &str) -> ApiError {
    ApiError::not_found(format!("no workspace `{name}`"))
}

/// A workspace error as an answer: what the caller can fix is a 400 saying what.
pub fn workspace_error(error: WorkspaceError) -> ApiError {
    match error {
        error if error.is_internal() && !matches!(error, WorkspaceError::Store(_)) => {
            ApiError::internal(error)
        }
        WorkspaceError::Store(error) => error.into(),
        WorkspaceError::Exists(_) => {
            ApiError::new(StatusCode::CONFLICT, "exists", error.to_string())
        }
        WorkspaceError::Gone(name) => no_workspace(&name),
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_workspace",
            other.to_string(),
        ),
    }
}
