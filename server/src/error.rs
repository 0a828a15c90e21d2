//! The one error type of the HTTP API: `{"error": {"code", "message"}}` with a fitting status
//! (and `diagnostics` when a flight is invalid). Messages are written for the caller; SQL,
//! paths and internals never reach a response.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use murmur_parser::{Diagnostic, Severity};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    diagnostics: Option<Vec<DiagnosticView>>,
}

/// Every error response: `{"error": {...}}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable identifier: `invalid_input`, `invalid_flight`, `invalid_name`, `not_found`,
    /// `unauthorized`, `rate_limited`, `conflict`, `finished`, `nothing_to_retry`, `body`,
    /// `unsupported_media_type`, `busy`, `internal`, ...
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
    /// With `invalid_flight`: every problem, as `murmur flight validate --json` prints them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Vec<DiagnosticView>>,
}

/// One problem of a flight, the JSON shape of the parser's diagnostics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticView {
    pub severity: SeverityName,
    /// A stable diagnostic code such as `cycle` or `unknown-agent` (surface.md).
    pub code: String,
    pub message: String,
    pub line: usize,
    pub column: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeverityName {
    Error,
    Warning,
}

impl From<&Diagnostic> for DiagnosticView {
    fn from(d: &Diagnostic) -> Self {
        Self {
            severity: match d.severity {
                Severity::Error => SeverityName::Error,
                Severity::Warning => SeverityName::Warning,
            },
            code: d.code.as_str().to_owned(),
            message: d.message.clone(),
            line: d.line,
            column: d.column,
            help: d.help.clone(),
        }
    }
}

impl ApiError {
    /// What went wrong, as the response says it.
    pub fn message(&self) -> &str {
        &self.message
    }

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

    pub fn with_diagnostics(mut self, diagnostics: &[Diagnostic]) -> Self {
        self.diagnostics = Some(diagnostics.iter().map(DiagnosticView::from).collect());
        self
    }

    /// A failure of ours: logged in full on the server, reported without internals.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
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
        let envelope = ErrorEnvelope {
            error: ErrorBody {
                code: self.code.to_owned(),
                message: self.message,
                diagnostics: self.diagnostics,
            },
        };
        (self.status, Json(envelope)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::DiagnosticView;

    /// The documented shape is the parser's: every diagnostic it serialises reads back whole.
    #[test]
    fn diagnostics_keep_the_parsers_json_shape() {
        let text = "---\nbogus: 1\n---\n# T\n\n## a\n> needs: zzz\n\n## b\n";
        let parsed = murmur_parser::parse_source(&murmur_parser::Source::new(text), "t");
        assert!(parsed.diagnostics.len() >= 2, "{:?}", parsed.diagnostics);
        for diagnostic in &parsed.diagnostics {
            let json = serde_json::to_value(diagnostic).expect("serialises");
            let view: DiagnosticView = serde_json::from_value(json.clone()).expect("same shape");
            assert_eq!(view, DiagnosticView::from(diagnostic));
            assert_eq!(serde_json::to_value(&view).expect("serialises"), json);
        }
    }
}
