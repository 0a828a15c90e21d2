//! The worker's folder holds one tenant's work at a time. A machine of the server's own
//! tenant runs every tenant's agents, and an agent can read anything its machine keeps (other
//! runs' worktrees, the repositories cloned for them); so before it runs an attempt of another
//! tenant than the one whose work the folder holds, it empties the folder. A later attempt of
//! an agent whose workspace went with it starts afresh from the agent's branch.
//!
//! The tenant is written in a marker file; a folder with files but no marker is not the
//! worker's to empty, and it refuses to start there.

use std::io;
use std::path::{Path, PathBuf};

/// The marker of a worker's folder: the tenant whose work it holds (empty: none yet).
const MARKER: &str = ".murmur-worker";

/// Why the worker cannot use a folder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{0} holds files this worker did not make; give `--dir` an empty or new folder (the worker empties it whenever it takes another tenant's work)"
    )]
    Foreign(PathBuf),
    #[error("cannot use {dir} as the worker's folder: {source}")]
    Io { dir: PathBuf, source: io::Error },
}

/// A worker's folder, with the tenant whose work it holds.
#[derive(Debug)]
pub struct Folder {
    root: PathBuf,
}

impl Folder {
    /// `root` as this worker's folder: made when missing, marked when new, refused when it
    /// holds files but no marker.
    pub fn open(root: &Path) -> Result<Self, Error> {
        let io_error = |source| Error::Io {
            dir: root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root).map_err(io_error)?;
        let root = root.canonicalize().map_err(io_error)?;
        let folder = Self { root };
        if !folder.marker().exists() {
            let empty = std::fs::read_dir(&folder.root)
                .map_err(io_error)?
                .next()
                .is_none();
            if !empty {
                return Err(Error::Foreign(folder.root));
            }
            std::fs::write(folder.marker(), "").map_err(io_error)?;
        }
        Ok(folder)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn marker(&self) -> PathBuf {
        self.root.join(MARKER)
    }

    /// Makes the folder hold `tenant`'s work only: when it holds another tenant's, everything
    /// in it is removed first. Returns whether it was emptied.
    pub fn hold(&self, tenant: &str) -> io::Result<bool> {
        let held = std::fs::read_to_string(self.marker())?;
        if held == tenant {
            return Ok(false);
        }
        // Unmarked first: a removal cut short leaves a folder that is emptied again.
        std::fs::write(self.marker(), "\n")?;
        for entry in std::fs::read_dir(&self.root)? {
            let path = entry?.path();
            if path.file_name().is_some_and(|name| name == MARKER) {
                continue;
            }
            if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
        std::fs::write(self.marker(), tenant)?;
        Ok(!held.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_tenants_work_is_removed_before_a_tenant_is_served() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = Folder::open(&dir.path().join("w")).expect("a new folder");
        assert!(!folder.hold("acme").expect("hold"), "nothing to empty yet");
        std::fs::create_dir_all(folder.root().join("run-1/a")).expect("mkdir");
        std::fs::write(folder.root().join("run-1/a/secret.txt"), "acme's").expect("write");
        assert!(
            !folder.hold("acme").expect("hold"),
            "the same tenant keeps its work"
        );
        assert!(folder.root().join("run-1/a/secret.txt").exists());

        assert!(
            folder.hold("globex").expect("hold"),
            "another tenant's: emptied"
        );
        let left: Vec<_> = std::fs::read_dir(folder.root())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, [MARKER], "only the marker is left");

        let again = Folder::open(folder.root()).expect("its own folder again");
        assert!(
            !again.hold("globex").expect("hold"),
            "the tenant is remembered"
        );
    }

    #[test]
    fn a_folder_with_files_the_worker_did_not_make_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("notes.txt"), "mine").expect("write");
        let error = Folder::open(dir.path()).expect_err("refused");
        assert!(matches!(error, Error::Foreign(_)), "{error}");
        assert!(dir.path().join("notes.txt").exists(), "nothing was touched");
    }

    #[test]
    fn a_cut_short_emptying_is_finished_next_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = Folder::open(dir.path()).expect("a new folder");
        folder.hold("acme").expect("hold");
        std::fs::write(folder.root().join("left.txt"), "acme's").expect("write");
        std::fs::write(folder.marker(), "\n").expect("cut short");
        assert!(folder.hold("acme").expect("hold"), "emptied again");
        assert!(!folder.root().join("left.txt").exists());
    }
}
