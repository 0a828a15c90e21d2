//! The developer's profile, `.murmur/murmur.local.yaml` (gitignored): the keys `murmur setup`
//! gathered (Anthropic, OpenAI, GitHub), sealed under the store's tenant's data key
//! (`murmur_vault::Profile`, tenant and developer as associated data). The engine opens it
//! when it starts and gives the credentials to that tenant's agents as it gives secrets; a
//! profile of another tenant, or one that does not open, is an error that says so, never a
//! silently different key.

use std::io::Write;
use std::path::{Path, PathBuf};

use murmur_vault::{Keyring, Profile, SecretSet, WrappedKey};

use crate::Store;
use crate::secrets::Secrets;

/// Where the profile lives, relative to the repository.
pub const FILE: &str = ".murmur/murmur.local.yaml";

/// The credentials `murmur setup` gathers, as the agents' CLIs and GitHub read them.
pub const CREDENTIALS: &[&str] = &["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GITHUB_TOKEN"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Vault(#[from] murmur_vault::Error),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(
        "{path} is the profile of tenant `{file}`, but this store serves tenant `{store}`; run `murmur setup` for this tenant",
        path = path.display()
    )]
    OtherTenant {
        path: PathBuf,
        file: String,
        store: String,
    },
    #[error("cannot read the profile {path}: {source}", path = path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the profile {path}: {source}", path = path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Seals `credentials` of `developer` for the store's tenant and writes them to `path`
/// (mode 0600, replacing the file whole).
pub async fn write(
    store: &Store,
    keyring: &Keyring,
    developer: &str,
    credentials: &SecretSet,
    path: &Path,
    at: &str,
) -> Result<(), Error> {
    let key = Secrets::new(store, keyring).data_key(at).await?;
    let profile = Profile::seal(&key, store.tenant(), developer, credentials)?;
    let failed = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    let partial = path.with_extension("yaml.partial");
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    let mut file = file.open(&partial).map_err(failed)?;
    file.write_all(profile.to_text().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(failed)?;
    std::fs::rename(&partial, path).map_err(failed)
}

/// The profile at `path` opened with the store's tenant's key; `None` when there is none.
pub async fn read(
    store: &Store,
    keyring: &Keyring,
    path: &Path,
) -> Result<Option<(Profile, SecretSet)>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let profile = Profile::from_text(&text)?;
    if profile.tenant != store.tenant() {
        return Err(Error::OtherTenant {
            path: path.to_owned(),
            file: profile.tenant,
            store: store.tenant().to_owned(),
        });
    }
    // Only an existing data key can open it: reading never makes one.
    let refused = || murmur_vault::Error::Profile {
        tenant: profile.tenant.clone(),
        developer: profile.developer.clone(),
    };
    let stored = store.data_key().await?.ok_or_else(refused)?;
    let wrapped = WrappedKey {
        kek_id: stored.kek_id,
        bytes: stored.wrapped,
    };
    let key = keyring.unwrap(store.tenant(), &wrapped).await?;
    let credentials = profile.open(&key)?;
    Ok(Some((profile, credentials)))
}
