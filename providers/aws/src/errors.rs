//! EC2 errors sorted into the pool's kinds by their error code.

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use murmur_pool::Error;

use crate::Ec2;

/// Where the SDK looks for credentials, named in every refusal.
pub const CHAIN: &str = "the AWS SDK's standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
                         AWS_PROFILE and ~/.aws, or the instance role)";

/// Not enough room in one availability zone or account: another subnet may have it.
const CAPACITY: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientHostCapacity",
    "InsufficientCapacity",
    "InsufficientReservedInstanceCapacity",
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
];

/// Credentials refused or a permission missing.
const DENIED: &[&str] = &[
    "AuthFailure",
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "OptInRequired",
    "Blocked",
];

impl Ec2 {
    /// Sorts a failed call; `subject` is the subnet, instance or cluster it was about.
    pub(crate) fn error<E, R>(
        &self,
        action: &str,
        subject: impl ToString,
        error: SdkError<E, R>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        if matches!(
            error,
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
        ) {
            return Error::Unreachable {
                provider: "aws",
                endpoint: self.endpoint.clone(),
                message: DisplayErrorContext(&error).to_string(),
            };
        }
        let code = error.code().unwrap_or("unknown").to_owned();
        let message = error
            .message()
            .map(str::to_owned)
            .unwrap_or_else(|| DisplayErrorContext(&error).to_string());
        sort(action, &subject.to_string(), code, message)
    }
}

fn sort(action: &str, subject: &str, code: String, message: String) -> Error {
    if CAPACITY.contains(&code.as_str()) {
        Error::Capacity {
            location: if subject.is_empty() {
                "the default subnet".into()
            } else {
                subject.into()
            },
            code,
            message,
        }
    } else if DENIED.contains(&code.as_str()) {
        Error::Denied {
            provider: "aws",
            chain: CHAIN,
            action: format!("ec2:{action}"),
            code,
            message,
        }
    } else if code.starts_with("InvalidInstanceID.NotFound") {
        Error::NotFound { id: subject.into() }
    } else {
        Error::Api {
            action: action.into(),
            code,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_sort_into_kinds() {
        let capacity = sort(
            "RunInstances",
            "subnet-1",
            "InsufficientInstanceCapacity".into(),
            "x".into(),
        );
        assert!(capacity.is_capacity());
        let quota = sort("RunInstances", "", "VcpuLimitExceeded".into(), "x".into());
        assert!(
            matches!(quota, Error::Capacity { location, .. } if location == "the default subnet")
        );
        let denied = sort(
            "StopInstances",
            "i-1",
            "UnauthorizedOperation".into(),
            "no".into(),
        );
        assert!(denied.stops_pool());
        let text = denied.to_string();
        assert!(
            text.contains("ec2:StopInstances") && text.contains("AWS_PROFILE"),
            "{text}"
        );
        let gone = sort(
            "TerminateInstances",
            "i-1",
            "InvalidInstanceID.NotFound".into(),
            "x".into(),
        );
        assert_eq!(gone, Error::NotFound { id: "i-1".into() });
        let other = sort(
            "RunInstances",
            "",
            "InvalidAMIID.Malformed".into(),
            "bad".into(),
        );
        assert!(matches!(other, Error::Api { .. }) && !other.stops_pool());
    }
}
