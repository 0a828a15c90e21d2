//! The store's tenant's secrets, encrypted with `murmur-vault`: the one place where the store
//! (which keeps only ciphertext and wrapped keys) and a keyring (which opens them) meet, so
//! the CLI and the server set, read and rotate secrets the same way.

use murmur_vault::{DataKey, Keyring, Sealed, SecretSet, SecretValue, WrappedKey};

use crate::Store;
use crate::store::secrets::{NewSecret, SecretEntry, StoredKey, Written};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Vault(#[from] murmur_vault::Error),
    #[error("no secret `{0}`; `murmur secret ls` lists them, `murmur secret set` adds one")]
    NoSecret(String),
}

/// What a rotation did across every tenant's data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Data keys now wrapped by the current KEK that were not before.
    pub rewrapped: usize,
    /// Data keys that already were.
    pub current: usize,
    /// Data keys another process re-wrapped while this one worked (run the rotation again).
    pub raced: usize,
}

pub struct Secrets<'a> {
    store: &'a Store,
    keyring: &'a Keyring,
}

impl<'a> Secrets<'a> {
    pub fn new(store: &'a Store, keyring: &'a Keyring) -> Self {
        Self { store, keyring }
    }

    fn tenant(&self) -> &str {
        self.store.tenant()
    }

    /// The tenant's data key; made (and stored wrapped) the first time one is needed.
    pub(crate) async fn data_key(&self, at: &str) -> Result<DataKey, Error> {
        if let Some(stored) = self.store.data_key().await? {
            return self.unwrap(&stored).await;
        }
        let (_, wrapped) = self.keyring.new_data_key(self.tenant()).await?;
        let fresh = StoredKey {
            kek_id: wrapped.kek_id,
            wrapped: wrapped.bytes,
        };
        // Whoever stored first wins; everyone uses what was kept.
        let kept = self.store.data_key_or_insert(&fresh, at).await?;
        self.unwrap(&kept).await
    }

    async fn unwrap(&self, stored: &StoredKey) -> Result<DataKey, Error> {
        let wrapped = WrappedKey {
            kek_id: stored.kek_id.clone(),
            bytes: stored.wrapped.clone(),
        };
        Ok(self.keyring.unwrap(self.tenant(), &wrapped).await?)
    }

    /// Encrypts and stores `value` as secret `name`, set by `by` at `at`.
    pub async fn set(
        &self,
        name: &str,
        value: &SecretValue,
        by: &str,
        at: &str,
    ) -> Result<Written, Error> {
        murmur_vault::check_name(name)?;
        value.check(name)?;
        let key = self.data_key(at).await?;
        let sealed = key.encrypt(self.tenant(), name, value)?;
        let secret = NewSecret {
            name,
            ciphertext: &sealed.ciphertext,
            nonce: &sealed.nonce,
            by,
            at,
        };
        Ok(self.store.set_secret(&secret).await?)
    }

    /// Names, who set them and when; never values.
    pub async fn list(&self) -> Result<Vec<SecretEntry>, Error> {
        Ok(self.store.secrets().await?)
    }

    /// The named secrets in plaintext (in memory only); a name the tenant lacks is an error.
    pub async fn open(&self, names: &[&str]) -> Result<SecretSet, Error> {
        let stored = self.store.secret_ciphertexts(names).await?;
        if let Some(missing) = names.iter().find(|n| !stored.iter().any(|s| s.name == **n)) {
            return Err(Error::NoSecret((*missing).to_owned()));
        }
        let mut set = SecretSet::new();
        if stored.is_empty() {
            return Ok(set);
        }
        let stored_key = self.store.data_key().await?.ok_or_else(|| {
            crate::store::Error::Corrupt(format!(
                "tenant `{}` has secrets but no data key",
                self.tenant()
            ))
        })?;
        let key = self.unwrap(&stored_key).await?;
        for secret in stored {
            let sealed = Sealed {
                nonce: secret.nonce,
                ciphertext: secret.ciphertext,
            };
            let value = key.decrypt(self.tenant(), &secret.name, &sealed)?;
            set.insert(&secret.name, value)?;
        }
        Ok(set)
    }

    /// Removes secret `name`; an error when there is none.
    pub async fn remove(&self, name: &str) -> Result<(), Error> {
        if self.store.remove_secret(name).await? {
            Ok(())
        } else {
            Err(Error::NoSecret(name.to_owned()))
        }
    }

    /// Re-wraps every tenant's data key with the keyring's current KEK; secrets are not
    /// touched. The keyring must still hold the KEKs that wrapped them before.
    pub async fn rotate(&self, at: &str) -> Result<Rotation, Error> {
        let mut rotation = Rotation {
            rewrapped: 0,
            current: 0,
            raced: 0,
        };
        for tenant_key in self.store.all_data_keys().await? {
            let wrapped = WrappedKey {
                kek_id: tenant_key.key.kek_id.clone(),
                bytes: tenant_key.key.wrapped.clone(),
            };
            let Some(new) = self.keyring.rewrap(&tenant_key.tenant, &wrapped).await? else {
                rotation.current += 1;
                continue;
            };
            let to = StoredKey {
                kek_id: new.kek_id,
                wrapped: new.bytes,
            };
            let store = self.store;
            if store
                .rewrap_data_key(&tenant_key.tenant, &tenant_key.key, &to, at)
                .await?
            {
                rotation.rewrapped += 1;
            } else {
                rotation.raced += 1;
            }
        }
        Ok(rotation)
    }

    /// The ids of the KEKs that wrap some tenant's data key: the keys a key file must keep.
    pub async fn kek_ids_in_use(&self) -> Result<Vec<String>, Error> {
        let mut ids: Vec<String> = self
            .store
            .all_data_keys()
            .await?
            .into_iter()
            .map(|k| k.key.kek_id)
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}
