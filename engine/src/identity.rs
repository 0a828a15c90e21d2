//! Agent identity: the credential every attempt's process gets (`MURMUR_AGENT_TOKEN`, with the
//! address to call in `MURMUR_API_URL`) so that it can spawn children and read and steer its
//! own subtree, and nothing else.
//!
//! A token names one attempt (tenant, run, agent, attempt) and carries an HMAC-SHA256 under a
//! key the issuing process made at random and keeps in memory only: nothing about it is
//! stored, so nothing can leak from the store, and a token dies with the process that issued
//! it. The endpoint also checks that the attempt is still the agent's current one and has not
//! ended (see [`Grant`]), so a token expires with its attempt.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The environment variable with the agent API's address.
pub const API_URL_VAR: &str = "MURMUR_API_URL";
/// The environment variable with the attempt's credential.
pub const TOKEN_VAR: &str = "MURMUR_AGENT_TOKEN";

const PREFIX: &str = "mrma1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("the agent token is malformed")]
    Malformed,
    #[error("the agent token was not issued here (its process ended, or it was altered)")]
    Forged,
}

/// Issues and checks agent tokens for one process's agent API.
#[derive(Clone)]
pub struct Issuer {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    key: [u8; 32],
}

/// The attempt a token was issued to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub tenant: String,
    pub run: String,
    pub slug: String,
    pub attempt: u32,
}

impl Issuer {
    /// An issuer for the agent API at `url`, with a fresh random key.
    pub fn new(url: impl Into<String>) -> Self {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self {
            inner: Arc::new(Inner {
                url: url.into(),
                key,
            }),
        }
    }

    /// Where agents call.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The token of one attempt.
    pub fn mint(&self, grant: &Grant) -> String {
        let payload = serde_json::to_vec(grant).unwrap_or_default();
        let mac = self.mac(&payload);
        format!("{PREFIX}.{}.{}", hex::encode(&payload), hex::encode(mac))
    }

    /// The attempt `token` was issued to, when this issuer issued it.
    pub fn verify(&self, token: &str) -> Result<Grant, Error> {
        let mut parts = token.trim().split('.');
        let (Some(PREFIX), Some(payload), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Malformed);
        };
        let payload = hex::decode(payload).map_err(|_| Error::Malformed)?;
        let mac = hex::decode(mac).map_err(|_| Error::Malformed)?;
        let mut check =
            Hmac::<Sha256>::new_from_slice(&self.inner.key).map_err(|_| Error::Forged)?;
        check.update(&payload);
        // verify_slice compares in constant time.
        check.verify_slice(&mac).map_err(|_| Error::Forged)?;
        serde_json::from_slice(&payload).map_err(|_| Error::Malformed)
    }

    /// The environment that gives `grant`'s process its identity.
    pub fn environment(&self, grant: &Grant) -> [(String, String); 2] {
        [
            (API_URL_VAR.to_owned(), self.inner.url.clone()),
            (TOKEN_VAR.to_owned(), self.mint(grant)),
        ]
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.inner.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
    }
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            tenant: "default".into(),
            run: "r1".into(),
            slug: "lead".into(),
            attempt: 2,
        }
    }

    #[test]
    fn a_minted_token_names_its_attempt() {
        let issuer = Issuer::new("http://127.0.0.1:1");
        assert_eq!(issuer.verify(&issuer.mint(&grant())), Ok(grant()));
    }

    #[test]
    fn another_issuers_or_an_altered_token_is_refused() {
        let issuer = Issuer::new("http://127.0.0.1:1");
        let other = Issuer::new("http://127.0.0.1:1").mint(&grant());
        assert_eq!(issuer.verify(&other), Err(Error::Forged));
        let mut altered = grant();
        altered.slug = "other".into();
        let token = issuer.mint(&grant());
        let mac = token.rsplit('.').next().unwrap_or_default();
        let payload = hex::encode(serde_json::to_vec(&altered).unwrap_or_default());
        assert_eq!(
            issuer.verify(&format!("{PREFIX}.{payload}.{mac}")),
            Err(Error::Forged)
        );
        for junk in ["", "x", "mrma1.zz.zz", "mrma1.00.00.00"] {
            assert!(issuer.verify(junk).is_err(), "{junk}");
        }
    }
}
