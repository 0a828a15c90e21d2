//! What went wrong in a cloud call, sorted by what the pool manager must do about it.

/// A cloud call's failure. The variant decides the reaction: try elsewhere
/// ([`Error::Capacity`]), stop provisioning for the pool until the configuration or the
/// credentials change ([`Error::Denied`], [`Error::Config`]), or retry later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No room for this machine in one location (a zone or a subnet's availability zone), or
    /// a quota reached: another location may still have room, so try it, then back off.
    #[error("no capacity in {location} ({code}): {message}")]
    Capacity {
        location: String,
        code: String,
        message: String,
    },
    /// The credentials were refused or lack a permission. Retrying cannot help.
    #[error(
        "{provider} refused {action} ({code}): {message}; credentials come from {chain}, \
         which must allow {action}"
    )]
    Denied {
        provider: &'static str,
        /// The SDK's standard credential chain, named so the operator knows where to look.
        chain: &'static str,
        /// The API call (and so the permission) that was refused.
        action: String,
        code: String,
        message: String,
    },
    /// The instance does not exist (any more).
    #[error("instance {id} not found")]
    NotFound { id: String },
    /// The API endpoint did not answer (down, DNS, TLS, timeout).
    #[error("cannot reach the {provider} API at {endpoint}: {message}")]
    Unreachable {
        provider: &'static str,
        endpoint: String,
        message: String,
    },
    /// The placement or machine shape is unusable; names the key to fix.
    #[error("placement {placement}: `{key}` {problem}")]
    Config {
        placement: String,
        key: String,
        problem: String,
    },
    /// Any other refusal by the API, with its code.
    #[error("{action} failed ({code}): {message}")]
    Api {
        action: String,
        code: String,
        message: String,
    },
}

impl Error {
    /// Whether another location may succeed where this one failed.
    pub fn is_capacity(&self) -> bool {
        matches!(self, Self::Capacity { .. })
    }

    /// Whether provisioning for the pool must stop until someone fixes something.
    pub fn stops_pool(&self) -> bool {
        matches!(self, Self::Denied { .. } | Self::Config { .. })
    }
}
