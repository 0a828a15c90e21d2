//! Key-encryption keys (KEKs) and the keyring that holds them. A data key is stored wrapped
//! by the keyring's current KEK, with that KEK's id beside it; older KEKs stay in the keyring
//! only to open data keys that are not yet re-wrapped, which is all a rotation has to do:
//! secrets themselves are never re-encrypted.

mod env;
mod file;
#[cfg(feature = "kms")]
mod kms;
mod local;

pub use env::{KEK_PREVIOUS_VAR, KEK_VAR, keyring_from_env, keyring_from_values};
pub use file::KeyFile;
#[cfg(feature = "kms")]
pub use kms::KmsKek;
pub use local::LocalKek;

use crate::{DataKey, Error};

/// A data key as the store keeps it: wrapped, with the id of the KEK that wrapped it.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub kek_id: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WrappedKey({}, {} bytes)", self.kek_id, self.bytes.len())
    }
}

/// One key-encryption key, wherever it lives. `Debug` shows its id only.
#[derive(Debug)]
pub enum Kek {
    /// A key held in this process (from a key file or an environment variable).
    Local(LocalKek),
    /// A key that never leaves AWS KMS.
    #[cfg(feature = "kms")]
    Kms(KmsKek),
}

impl Kek {
    /// The id recorded with every data key this KEK wraps.
    pub fn id(&self) -> &str {
        match self {
            Kek::Local(kek) => kek.id(),
            #[cfg(feature = "kms")]
            Kek::Kms(kek) => kek.id(),
        }
    }

    async fn wrap(&self, tenant: &str, key: &DataKey) -> Result<WrappedKey, Error> {
        match self {
            Kek::Local(kek) => kek.wrap(tenant, key),
            #[cfg(feature = "kms")]
            Kek::Kms(kek) => kek.wrap(tenant, key).await,
        }
    }

    async fn unwrap(&self, tenant: &str, wrapped: &WrappedKey) -> Result<DataKey, Error> {
        match self {
            Kek::Local(kek) => kek.unwrap(tenant, wrapped),
            #[cfg(feature = "kms")]
            Kek::Kms(kek) => kek.unwrap(tenant, wrapped).await,
        }
    }
}

/// The current KEK and the older ones still needed to open data keys wrapped before a
/// rotation.
pub struct Keyring {
    current: Kek,
    previous: Vec<Kek>,
}

impl Keyring {
    pub fn new(current: Kek) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    /// Adds an older KEK, used only to open data keys it wrapped.
    pub fn with_previous(mut self, kek: Kek) -> Self {
        if kek.id() != self.current.id() && self.find(kek.id()).is_none() {
            self.previous.push(kek);
        }
        self
    }

    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// Every KEK id this keyring can open, the current one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(Kek::id)
    }

    fn find(&self, id: &str) -> Option<&Kek> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|kek| kek.id() == id)
    }

    /// A fresh data key for `tenant`, and its wrapped form to store.
    pub async fn new_data_key(&self, tenant: &str) -> Result<(DataKey, WrappedKey), Error> {
        let key = DataKey::generate()?;
        let wrapped = self.current.wrap(tenant, &key).await?;
        Ok((key, wrapped))
    }

    /// Opens a stored data key of `tenant` with whichever KEK wrapped it.
    pub async fn unwrap(&self, tenant: &str, wrapped: &WrappedKey) -> Result<DataKey, Error> {
        let kek = self
            .find(&wrapped.kek_id)
            .ok_or_else(|| Error::UnknownKek {
                id: wrapped.kek_id.clone(),
            })?;
        kek.unwrap(tenant, wrapped).await
    }

    /// The data key wrapped by the current KEK, or `None` when it already is.
    pub async fn rewrap(
        &self,
        tenant: &str,
        wrapped: &WrappedKey,
    ) -> Result<Option<WrappedKey>, Error> {
        if wrapped.kek_id == self.current.id() {
            return Ok(None);
        }
        let key = self.unwrap(tenant, wrapped).await?;
        self.current.wrap(tenant, &key).await.map(Some)
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.ids()).finish()
    }
}
