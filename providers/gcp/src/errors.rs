//! Compute Engine errors sorted into the pool's kinds: the HTTP answer's status, or the error
//! codes of a finished operation.

use google_cloud_gax::error::rpc::Code;
use murmur_pool::Error;

use crate::Gce;

/// Where the client looks for credentials, named in every refusal.
pub const CHAIN: &str = "Google application default credentials (GOOGLE_APPLICATION_CREDENTIALS, \
                         `gcloud auth application-default login`, or the VM's service account)";

/// Operation error codes that mean "no room here": another zone may have it.
const CAPACITY: &[&str] = &[
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "QUOTA_EXCEEDED",
    "RESOURCE_EXHAUSTED",
];

impl Gce {
    /// Sorts a failed request; `subject` is the zone or instance it was about.
    pub(crate) fn error(
        &self,
        action: &str,
        subject: &str,
        error: google_cloud_compute_v1::Error,
    ) -> Error {
        if unreachable(&error) {
            return Error::Unreachable {
                provider: "gcp",
                endpoint: self.endpoint.clone(),
                message: error.to_string(),
            };
        }
        if error.is_authentication() {
            return self.denied(action, "credentials", error.to_string());
        }
        let http = error.http_status_code();
        let (code, message) = match error.status() {
            Some(status) => (status.code, status.message.clone()),
            None => (Code::Unknown, error.to_string()),
        };
        match (http, code) {
            (Some(404), _) | (_, Code::NotFound) => Error::NotFound { id: subject.into() },
            (Some(401 | 403), _) | (_, Code::PermissionDenied | Code::Unauthenticated)
                if !message.to_ascii_lowercase().contains("quota") =>
            {
                self.denied(action, code.name(), message)
            }
            (_, Code::ResourceExhausted) | (Some(403 | 429), _) => Error::Capacity {
                location: subject.into(),
                code: code.name().into(),
                message,
            },
            _ => Error::Api {
                action: action.into(),
                code: http.map_or_else(
                    || code.name().to_owned(),
                    |h| format!("{h} {}", code.name()),
                ),
                message,
            },
        }
    }

    fn denied(&self, action: &str, code: &str, message: String) -> Error {
        Error::Denied {
            provider: "gcp",
            chain: CHAIN,
            action: format!("compute.{action}"),
            code: code.into(),
            message,
        }
    }

    /// Sorts the first error of a finished operation by its code.
    pub(crate) fn operation_error(
        &self,
        action: &str,
        subject: &str,
        code: &str,
        message: String,
    ) -> Error {
        if CAPACITY.contains(&code) {
            Error::Capacity {
                location: subject.into(),
                code: code.into(),
                message,
            }
        } else if code == "RESOURCE_NOT_FOUND" {
            Error::NotFound { id: subject.into() }
        } else if code.contains("PERMISSION") || code == "FORBIDDEN" {
            self.denied(action, code, message)
        } else {
            Error::Api {
                action: action.into(),
                code: code.into(),
                message,
            }
        }
    }
}

/// Whether the request never got an answer: a connection refused, a timeout, or a retry
/// policy that gave up on those (its error wraps the last one).
fn unreachable(error: &google_cloud_compute_v1::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        if let Some(gax) = cause.downcast_ref::<google_cloud_compute_v1::Error>()
            && (gax.is_connect() || gax.is_io() || gax.is_timeout() || gax.is_transport())
        {
            return true;
        }
        current = cause.source();
    }
    false
}

/// How long a call keeps retrying what the API calls transient (unavailable, a dropped
/// connection) before the pool hears of it; the pool retries later on its own.
pub fn retry_policy() -> impl google_cloud_gax::retry_policy::RetryPolicy {
    use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt};
    Aip194Strict
        .with_attempt_limit(4)
        .with_time_limit(std::time::Duration::from_secs(20))
}
