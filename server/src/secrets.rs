//! `GET /v1/secrets`, `PUT /v1/secrets/{name}`, `DELETE /v1/secrets/{name}`: the token's
//! tenant's secrets over HTTP, as `murmur secret ls|set|rm`. Names, who and when, never a
//! value: a value goes in (`PUT`, encrypted before it is stored) and never comes out.

use crate::tenant::Scoped;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Extension, Json, Router};
use murmur_engine::secrets::{Error as SecretsError, Secrets};
use murmur_engine::store::secrets::{SecretEntry, Written};
use murmur_vault::SecretValue;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::AppState;
use super::auth::Caller;
use super::body::json_body;
use super::error::{ApiError, ErrorEnvelope};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/secrets", get(list_secrets)).route(
        "/v1/secrets/{name}",
        axum::routing::put(set_secret).delete(remove_secret),
    )
}

/// A secret as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecretView {
    pub name: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_by: String,
    pub updated_at: String,
}

impl From<SecretEntry> for SecretView {
    fn from(entry: SecretEntry) -> Self {
        Self {
            name: entry.name,
            created_by: entry.created_by,
            created_at: entry.created_at,
            updated_by: entry.updated_by,
            updated_at: entry.updated_at,
        }
    }
}

/// `PUT`'s body: the value, as text.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
    value: String,
}

/// The tenant's secrets, by name: names, who and when, never values.
#[utoipa::path(
    get, path = "/v1/secrets", tag = "secrets",
    responses((status = 200, description = "the secrets", body = Vec<SecretView>))
)]
pub async fn list_secrets(Scoped(state): Scoped) -> Result<Json<Vec<SecretView>>, ApiError> {
    let entries = state.executor().store.secrets().await?;
    Ok(Json(entries.into_iter().map(SecretView::from).collect()))
}

/// Sets secret `name` to the body's value (encrypted before it is stored).
#[utoipa::path(
    put, path = "/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "letters, digits and `_`, as an environment variable's name")),
    request_body(content = SecretBody, description = "`{\"value\": \"...\"}`"),
    responses(
        (status = 201, description = "created", body = SecretView),
        (status = 200, description = "replaced", body = SecretView),
        (status = 400, description = "a bad name, an empty value, no body", body = ErrorEnvelope),
        (status = 503, description = "the server holds no key-encryption key", body = ErrorEnvelope),
    )
)]
pub async fn set_secret(
    Scoped(state): Scoped,
    Path(name): Path<String>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SecretView>), ApiError> {
    murmur_vault::check_name(&name).map_err(|e| ApiError::invalid(e.to_string()))?;
    let body: SecretBody = json_body(&headers, body, "the secret")?
        .ok_or_else(|| ApiError::invalid("a body `{\"value\": \"...\"}` is needed"))?;
    let value = SecretValue::checked(&name, Zeroizing::new(body.value).as_bytes().to_vec())
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let executor = state.executor();
    let keyring = executor.environment.keyring.as_ref().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_key",
            "the server holds no key-encryption key: start it with MURMUR_KEK or MURMUR_KEY_FILE",
        )
    })?;
    let by = caller.map_or_else(|| "api".to_owned(), |Extension(Caller(name))| name);
    let at = executor.clock.stamp();
    let secrets = Secrets::new(&executor.store, keyring);
    let written = secrets
        .set(&name, &value, &by, &at)
        .await
        .map_err(secret_error)?;
    let view = secrets
        .list()
        .await
        .map_err(secret_error)?
        .into_iter()
        .find(|entry| entry.name == name)
        .map(SecretView::from)
        .ok_or_else(|| ApiError::not_found(format!("no secret `{name}`")))?;
    let status = match written {
        Written::Created => StatusCode::CREATED,
        Written::Replaced => StatusCode::OK,
    };
    Ok((status, Json(view)))
}

/// Removes secret `name`.
#[utoipa::path(
    delete, path = "/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "the secret's name")),
    responses(
        (status = 204, description = "removed"),
        (status = 404, description = "no such secret", body = ErrorEnvelope),
    )
)]
pub async fn remove_secret(
    Scoped(state): Scoped,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.executor().store.remove_secret(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no secret `{}`",
            name.escape_debug()
        )))
    }
}

/// Never a value, never a key: the vault's and store's messages name secrets only.
fn secret_error(error: SecretsError) -> ApiError {
    match error {
        SecretsError::Store(error) => error.into(),
        SecretsError::NoSecret(name) => ApiError::not_found(format!("no secret `{name}`")),
        SecretsError::Vault(error) => ApiError::internal(error),
    }
}
