//! Where this machine's key-encryption keys come from: `MURMUR_KEK` (with
//! `MURMUR_KEK_PREVIOUS`) when set, else the key file (`MURMUR_KEY_FILE`, or
//! `$XDG_CONFIG_HOME/murmur/keys`, or `~/.config/murmur/keys`), created 0600 on first use and
//! refused inside the repository, where it could be committed next to what it protects.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use murmur_vault::{KeyFile, Keyring};

/// The keyring in use, and the key file when that is where its keys live (so that
/// `rotate-key` can add a key to it).
pub struct Keys {
    pub keyring: Keyring,
    pub file: Option<KeyFile>,
}

impl Keys {
    pub fn load(repo: &Path) -> anyhow::Result<Self> {
        if std::env::var_os(murmur_vault::kek::KEK_VAR).is_some_and(|v| !v.is_empty()) {
            let keyring = murmur_vault::keyring_from_env()?;
            return Ok(Self {
                keyring,
                file: None,
            });
        }
        let path = key_file_path()?;
        refuse_inside(&path, repo)?;
        let file = KeyFile::open_or_create(&path)?;
        Ok(Self {
            keyring: file.keyring()?,
            file: Some(file),
        })
    }

    /// As [`Self::load`] when a key source is there already; `None` rather than making a
    /// key file (for runs that may need a key without the workspace's `secrets:` saying so).
    pub fn existing(repo: &Path) -> anyhow::Result<Option<Self>> {
        let set = std::env::var_os(murmur_vault::kek::KEK_VAR).is_some_and(|v| !v.is_empty());
        if set || key_file_path().is_ok_and(|path| path.exists()) {
            return Self::load(repo).map(Some);
        }
        Ok(None)
    }
}

fn key_file_path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("MURMUR_KEY_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")));
    match config {
        Some(config) => Ok(config.join("murmur").join("keys")),
        None => bail!(
            "no key file: set MURMUR_KEY_FILE to a path outside the repository, or MURMUR_KEK"
        ),
    }
}

fn refuse_inside(path: &Path, repo: &Path) -> anyhow::Result<()> {
    let absolute = |p: &Path| -> anyhow::Result<PathBuf> {
        let joined = std::env::current_dir()
            .context("cannot read the current folder")?
            .join(p);
        // The file may not exist yet: resolve the deepest folder that does.
        let existing = joined
            .ancestors()
            .find(|a| a.exists())
            .unwrap_or(Path::new("/"));
        let rest = joined.strip_prefix(existing).unwrap_or(Path::new(""));
        Ok(existing
            .canonicalize()
            .unwrap_or(existing.to_owned())
            .join(rest))
    };
    let (file, repo) = (absolute(path)?, absolute(repo)?);
    if file.starts_with(&repo) {
        bail!(
            "the key file {} is inside the repository {}; keep it outside (set MURMUR_KEY_FILE), where it cannot be committed",
            file.display(),
            repo.display()
        );
    }
    Ok(())
}
