//! The one error type of the HTTP API: `{"error": {"code", "message"}}` with a fitting status
//! (and `diagnostics` when a flight is invalid).
//! Messages are written for the caller; SQL, paths and internals never reach a response.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    diagnostics: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            diagnostics: None,
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid API token as `Authorization: Bearer TOKEN` (`murmur token create` makes one)",
        )
    }

    /// The parser's diagnostics, shaped as `murmur flight validate --json` prints them.
    pub fn with_diagnostics(mut self, diagnostics: Value) -> Self {
        self.diagnostics = Some(diagnostics);
        self
    }

    /// A failure of ours: logged in full on the server, reported without internals.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        eprintln!("murmur serve: internal error: {error}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not complete the request; see its log",
        )
    }
}

impl From<murmur_engine::store::Error> for ApiError {
    fn from(error: murmur_engine::store::Error) -> Self {
        use murmur_engine::store::Error as E;
        match error {
            E::NoRun(id) => ApiError::not_found(format!("no run `{id}`")),
            E::AmbiguousRun(id) => {
                ApiError::invalid(format!("`{id}` matches several runs; give the whole id"))
            }
            E::Conflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the run changed meanwhile; retry",
            ),
            E::Locked(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the store is busy; retry shortly",
            ),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(diagnostics) = self.diagnostics {
            error["diagnostics"] = diagnostics;
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}
