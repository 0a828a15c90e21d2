//! A KEK held in this process. Its id is derived from the key (a truncated SHA-256 under a
//! label of its own), so the same key always has the same id and no key has to be named.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::WrappedKey;
use crate::aead::{KEY_LEN, NONCE_LEN, SymmetricKey, associated_data};
use crate::{DataKey, Error};

const WRAP_LABEL: &str = "murmur data key v1";
const ID_LABEL: &[u8] = b"murmur kek id v1";

pub struct LocalKek {
    key: SymmetricKey,
    id: String,
}

impl std::fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalKek({})", self.id)
    }
}

impl LocalKek {
    pub fn generate() -> Result<Self, Error> {
        SymmetricKey::generate().map(Self::from_key)
    }

    pub(crate) fn from_key(key: SymmetricKey) -> Self {
        let digest = Sha256::new()
            .chain_update(ID_LABEL)
            .chain_update(key.bytes())
            .finalize();
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            key,
            id: format!("local:{hex}"),
        }
    }

    /// A key given as standard base64 of 32 bytes. The error says why, never what it saw.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| "it is not standard base64".to_owned())?,
        );
        let key = SymmetricKey::from_slice(&bytes)
            .ok_or_else(|| format!("it decodes to {} bytes, not {KEY_LEN}", bytes.len()))?;
        Ok(Self::from_key(key))
    }

    /// The key as standard base64, for writing it to its key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.key.bytes()))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn wrap(&self, tenant: &str, key: &DataKey) -> Result<WrappedKey, Error> {
        let ad = associated_data(WRAP_LABEL, &[tenant, &self.id]);
        let (nonce, ciphertext) = self.key.seal(&ad, key.0.bytes())?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        Ok(WrappedKey {
            kek_id: self.id.clone(),
            bytes,
        })
    }

    pub(crate) fn unwrap(&self, tenant: &str, wrapped: &WrappedKey) -> Result<DataKey, Error> {
        let refused = || Error::Unwrap {
            tenant: tenant.to_owned(),
            id: wrapped.kek_id.clone(),
        };
        if wrapped.kek_id != self.id || wrapped.bytes.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, ciphertext) = wrapped.bytes.split_at(NONCE_LEN);
        let ad = associated_data(WRAP_LABEL, &[tenant, &self.id]);
        let plain = self.key.open(&ad, nonce, ciphertext).ok_or_else(refused)?;
        SymmetricKey::from_slice(&plain)
            .map(DataKey)
            .ok_or_else(refused)
    }
}
