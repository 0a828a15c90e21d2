//! KEKs kept in a key file outside the repository: one standard-base64 key per line, the
//! first one current. The file is created with mode 0600 on first use, and refused when
//! anyone but its owner may read or write it. Every change is written to a temporary file
//! and moved into place, so a crash never leaves a half-written key file.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{Kek, Keyring, LocalKek};
use crate::Error;

const HEADER: &str = "# Murmur key-encryption keys, one per line; the first is current, older ones open data\n\
# keys not yet re-wrapped. Keep this file outside any repository, readable by its owner only.\n";

pub struct KeyFile {
    path: PathBuf,
    /// The current key first.
    keys: Vec<LocalKek>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyFile({}, {:?})", self.path.display(), self.ids())
    }
}

impl KeyFile {
    /// Opens the key file at `path`, creating it (mode 0600, parent folders 0700) with one
    /// new key when it does not exist.
    pub fn open_or_create(path: &Path) -> Result<Self, Error> {
        if !path.exists() {
            let key = LocalKek::generate()?;
            let contents = render(std::slice::from_ref(&key));
            if create(path, &contents).map_err(|e| io_error(path, &e))? {
                return Ok(Self {
                    path: path.to_owned(),
                    keys: vec![key],
                });
            }
            // Another process created it first: use theirs.
        }
        Self::open(path)
    }

    /// Opens an existing key file.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let metadata = fs::metadata(path).map_err(|e| io_error(path, &e))?;
        if !metadata.is_file() {
            return Err(key_file_error(path, "it is not a regular file"));
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::LooseKeyFile {
                path: path.to_owned(),
                mode,
            });
        }
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| io_error(path, &e))?);
        let keys = parse(path, &text)?;
        Ok(Self {
            path: path.to_owned(),
            keys,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn current_id(&self) -> &str {
        self.keys[0].id()
    }

    /// Every key's id, the current one first.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id().to_owned()).collect()
    }

    /// A keyring of this file's keys.
    pub fn keyring(&self) -> Result<Keyring, Error> {
        let copy = |kek: &LocalKek| {
            LocalKek::from_base64(&kek.to_base64())
                .map(Kek::Local)
                .map_err(|reason| key_file_error(&self.path, &reason))
        };
        let mut keyring = Keyring::new(copy(&self.keys[0])?);
        for kek in &self.keys[1..] {
            keyring = keyring.with_previous(copy(kek)?);
        }
        Ok(keyring)
    }

    /// Makes a new key current, keeping the older ones; returns the new key's id. Re-wrap the
    /// data keys next, then [`Self::retire`] the keys nothing uses any more.
    pub fn rotate(&mut self) -> Result<String, Error> {
        let key = LocalKek::generate()?;
        let id = key.id().to_owned();
        let mut keys = vec![key];
        keys.append(&mut self.keys);
        self.keys = keys;
        self.save()?;
        Ok(id)
    }

    /// Drops the older keys whose ids are not in `in_use` (the current key always stays);
    /// returns the ids dropped.
    pub fn retire(&mut self, in_use: &[&str]) -> Result<Vec<String>, Error> {
        let current = self.keys.remove(0);
        let (kept, dropped): (Vec<_>, Vec<_>) = std::mem::take(&mut self.keys)
            .into_iter()
            .partition(|k| in_use.contains(&k.id()));
        self.keys = std::iter::once(current).chain(kept).collect();
        if !dropped.is_empty() {
            self.save()?;
        }
        Ok(dropped.iter().map(|k| k.id().to_owned()).collect())
    }

    fn save(&self) -> Result<(), Error> {
        replace(&self.path, &render(&self.keys)).map_err(|e| io_error(&self.path, &e))
    }
}

fn render(keys: &[LocalKek]) -> Zeroizing<String> {
    let mut text = Zeroizing::new(HEADER.to_owned());
    for key in keys {
        text.push_str(&key.to_base64());
        text.push('\n');
    }
    text
}

fn parse(path: &Path, text: &str) -> Result<Vec<LocalKek>, Error> {
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = LocalKek::from_base64(line).map_err(|reason| {
            key_file_error(path, &format!("line {} holds no key: {reason}", index + 1))
        })?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(key_file_error(
            path,
            "it holds no key; remove it to have a new one made, or restore it from a backup",
        ));
    }
    Ok(keys)
}

/// Writes a new file at `path` unless one exists; false when another process was first.
fn create(path: &Path, contents: &str) -> std::io::Result<bool> {
    let temporary = write_temporary(path, contents)?;
    // A hard link never replaces an existing file, so two creators cannot both win.
    let linked = fs::hard_link(&temporary, path);
    fs::remove_file(&temporary)?;
    match linked {
        Ok(()) => sync_parent(path).map(|()| true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

fn replace(path: &Path, contents: &str) -> std::io::Result<()> {
    let temporary = write_temporary(path, contents)?;
    fs::rename(&temporary, path)?;
    sync_parent(path)
}

fn write_temporary(path: &Path, contents: &str) -> std::io::Result<PathBuf> {
    let parent = parent(path);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let temporary = parent.join(format!(".{name}.{}-{nanos}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(temporary)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    fs::File::open(parent(path))?.sync_all()
}

fn io_error(path: &Path, error: &std::io::Error) -> Error {
    key_file_error(path, &error.to_string())
}

fn key_file_error(path: &Path, reason: &str) -> Error {
    Error::KeyFile {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}
