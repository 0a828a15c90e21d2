//! Bearer tokens: every route but `/healthz` (and the GitHub webhook) needs one. A token
//! belongs to one tenant, and the request is served in that tenant (`tenant::Scoped`).

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// The name of the token a request came with, for handlers that record who did something.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let bearer = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(str::to_owned);
    // Without a bearer token, the dashboard's session cookie (with its CSRF token on changes).
    let token = match bearer {
        Some(token) => token,
        None => super::dashboard::session::token_for(
            &state.inner.dashboard,
            request.method(),
            request.headers(),
        )?
        .ok_or_else(ApiError::unauthorized)?,
    };
    let token = token.as_str();
    let Some(caller) = state.store().caller(token).await? else {
        return Err(ApiError::unauthorized());
    };
    let scoped = state.for_tenant(&caller.tenant).await?;
    let name = caller.name;
    // Each tenant names its tokens: two tenants' `ci` tokens have a budget each.
    let budget = format!("{}/{name}", caller.tenant);
    if let Err(wait) = state.inner.limiter.take(&budget, std::time::Instant::now()) {
        let seconds = super::limit::retry_after_seconds(wait);
        let message = format!("too many requests for token `{name}`; retry in {seconds}s");
        let mut refused = ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            message,
        )
        .into_response();
        refused
            .headers_mut()
            .insert(RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        return Ok(refused);
    }
    request.extensions_mut().insert(Caller(name));
    request
        .extensions_mut()
        .insert(super::tenant::TenantState(scoped));
    Ok(next.run(request).await)
}
