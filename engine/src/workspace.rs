//! Workspaces: a tenant's named set of repositories and the defaults their runs take
//! (`murmur workspace add`). A run in a workspace works in the server's mirror of its first
//! repository (`runtime::mirror`); a run without one works in the repository its server or
//! command runs in, the implicit workspace, as before workspaces existed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What an agent of a long-lived run does when its base branch moves on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictResolution {
    /// Merge the new base into the agent's branch.
    #[default]
    Merge,
    /// Rebase the agent's branch onto the new base.
    Rebase,
    /// Leave the branch where it started.
    None,
}

impl std::str::FromStr for ConflictResolution {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "merge" => Ok(Self::Merge),
            "rebase" => Ok(Self::Rebase),
            "none" => Ok(Self::None),
            other => Err(format!(
                "`{other}` is no conflict resolution: use merge, rebase or none"
            )),
        }
    }
}

/// One repository of a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRepository {
    /// A clone URL or a local path; never with a credential in it.
    pub url: String,
    /// The branch agents start from; `None` is the origin's default branch.
    #[serde(default)]
    pub base: Option<String>,
    #[serde(default)]
    pub conflict_resolution: ConflictResolution,
    /// The tenant secret holding the token git authenticates to `url` with.
    #[serde(default)]
    pub credential: Option<String>,
}

/// What every run of the workspace takes unless its flight says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceDefaults {
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    /// The check command of the `ci` gate.
    #[serde(default)]
    pub check: Option<String>,
    /// Tenant secrets every agent of the workspace gets as environment variables.
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// A workspace as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub name: String,
    pub repositories: Vec<WorkspaceRepository>,
    #[serde(default)]
    pub defaults: WorkspaceDefaults,
    #[serde(default)]
    pub min_idle: u32,
    #[serde(default)]
    pub created_at: String,
}

/// Why a workspace cannot be recorded as given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Invalid {
    #[error(
        "`{0}` is not a workspace name: use lowercase letters, digits and `-` (at most 64, starting with a letter or digit)"
    )]
    Name(String),
    #[error("workspace `{0}` needs at least one repository (--repo URL|PATH)")]
    NoRepository(String),
    #[error(
        "the repository URL of workspace `{0}` carries a credential; name a secret instead (--credential SECRET)"
    )]
    CredentialInUrl(String),
    #[error("`{0}` is not a repository URL or path")]
    Url(String),
    #[error("`{0}` is not a branch name")]
    Branch(String),
}

/// Whether `name` is a slug: lowercase letters, digits and `-`, starting with a letter or
/// digit, at most 64 characters.
pub fn is_slug(name: &str) -> bool {
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(valid)
}

/// Whether a URL has a `user:password@` (or `token@`) part over HTTP: such a URL would put
/// the credential in the store and in every message that names the repository.
fn has_credential(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    scheme.starts_with("http") && authority.contains('@')
}

/// A branch name git would take, and that cannot be read as an option.
fn is_branch(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name.contains("..")
        && !name.ends_with('/')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

impl Workspace {
    /// Checks what can be checked without the network: the name, the repositories' URLs
    /// and base branch names.
    pub fn check(&self) -> Result<(), Invalid> {
        if !is_slug(&self.name) {
            return Err(Invalid::Name(self.name.clone()));
        }
        if self.repositories.is_empty() {
            return Err(Invalid::NoRepository(self.name.clone()));
        }
        for repository in &self.repositories {
            if repository.url.trim().is_empty() || repository.url.starts_with('-') {
                return Err(Invalid::Url(repository.url.clone()));
            }
            if has_credential(&repository.url) {
                return Err(Invalid::CredentialInUrl(self.name.clone()));
            }
            if let Some(base) = &repository.base
                && !is_branch(base)
            {
                return Err(Invalid::Branch(base.clone()));
            }
        }
        Ok(())
    }

    /// Where this server keeps its mirror of repository `index`, below `root`.
    pub fn mirror_of(&self, root: &Path, tenant: &str, index: usize) -> PathBuf {
        let url = self.repositories.get(index).map_or("", |r| r.url.as_str());
        root.join(tenant).join(&self.name).join(format!(
            "{index}-{}",
            murmur_attempt::repository_folder(url)
        ))
    }

    /// Whether one of its repositories is `url` (a clone URL, `owner/name` or a path).
    pub fn has_repository(&self, candidates: &[String]) -> bool {
        self.repositories.iter().any(|repository| {
            let ours = normalise(&repository.url);
            candidates
                .iter()
                .any(|c| !c.is_empty() && normalise(c) == ours)
        })
    }
}

/// A repository address compared without its scheme, `.git` suffix, trailing `/` or case:
/// `https://github.com/acme/app.git` and `git@github.com:acme/app` are one repository.
fn normalise(url: &str) -> String {
    let url = url.trim().trim_end_matches('/').trim_end_matches(".git");
    let url = url.split_once("://").map_or(url, |(_, rest)| rest);
    let url = url.rsplit_once('@').map_or(url, |(_, rest)| rest);
    url.replacen(':', "/", 1).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(name: &str, url: &str) -> Workspace {
        Workspace {
            name: name.to_owned(),
            repositories: vec![WorkspaceRepository {
                url: url.to_owned(),
                base: None,
                conflict_resolution: ConflictResolution::Merge,
                credential: None,
            }],
            defaults: WorkspaceDefaults::default(),
            min_idle: 0,
            created_at: String::new(),
        }
    }

    #[test]
    fn names_are_slugs() {
        for good in ["a", "backend-team", "9lives"] {
            assert!(is_slug(good), "{good}");
        }
        for bad in [
            "",
            "Backend",
            "-x",
            "a_b",
            "a b",
            "a/b",
            "../x",
            &"a".repeat(65),
        ] {
            assert!(!is_slug(bad), "{bad}");
            assert_eq!(
                workspace(bad, "/r").check(),
                Err(Invalid::Name(bad.to_owned()))
            );
        }
    }

    #[test]
    fn credentials_never_ride_in_urls() {
        let leaky = workspace("a", "https://x-access-token:s3cr3t@github.com/acme/app.git");
        let error = leaky.check().expect_err("refused");
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
        assert!(
            workspace("a", "git@github.com:acme/app.git")
                .check()
                .is_ok()
        );
        assert!(workspace("a", "/srv/app.git").check().is_ok());
    }

    #[test]
    fn one_repository_under_several_spellings() {
        let ws = workspace("a", "https://github.com/Acme/app.git");
        assert!(ws.has_repository(&["git@github.com:acme/app".to_owned()]));
        assert!(ws.has_repository(&["github.com/acme/app/".to_owned()]));
        assert!(!ws.has_repository(&["https://github.com/acme/other".to_owned()]));
        assert!(!ws.has_repository(&[String::new()]));
    }

    #[test]
    fn mirror_folders_stay_below_their_root() {
        let ws = workspace("a", "../../etc/passwd");
        let path = ws.mirror_of(Path::new("/m"), "local", 0);
        assert!(path.starts_with("/m/local/a"), "{}", path.display());
        assert!(!path.to_string_lossy().contains(".."), "{}", path.display());
    }
}
