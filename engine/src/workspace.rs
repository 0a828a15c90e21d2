//! Workspaces: a tenant's named set of repositories and the defaults their runs take
//! (`murmur workspace add`). A run in a workspace works in the server's mirror of its first
//! repository (`runtime::mirror`); a run without one works in the repository its server or
//! command runs in, the implicit workspace, as before workspaces existed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

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
    /// The base branch of a repository that names none (before the origin's default branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The pool of a flight that names none (`local`, the default, counts as none).
    #[serde(default)]
    pub pool: Option<String>,
    /// Variables every agent of the workspace gets, over the machine's environment; the
    /// run's `MURMUR_*` context and the secrets win over them. Values are data, never run.
    #[serde(default, deserialize_with = "variables")]
    pub environment: BTreeMap<String, String>,
    /// The check command of the `ci` gate.
    #[serde(default)]
    pub check: Option<String>,
    /// Tenant secrets every agent of the workspace gets as environment variables.
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// `defaults.environment` as stored: a map of variables; `null`, and the unused name this
/// field held before it carried variables, are none.
fn variables<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Variables(BTreeMap<String, String>),
        Name(#[expect(dead_code, reason = "read only to be told apart from a map")] String),
    }
    Ok(match Option::<Stored>::deserialize(deserializer)? {
        Some(Stored::Variables(variables)) => variables,
        Some(Stored::Name(_)) | None => BTreeMap::new(),
    })
}

/// The longest value a workspace variable may have.
const MAX_VARIABLE: usize = 32 * 1024;

impl WorkspaceDefaults {
    /// Refuses a variable name the environment cannot hold (or one of the run's own
    /// `MURMUR_*`), and a value no process environment can carry.
    fn check_variables(&self) -> Result<(), Invalid> {
        for (name, value) in &self.environment {
            if murmur_vault::check_name(name).is_err() {
                return Err(Invalid::Variable(name.escape_debug().to_string()));
            }
            if value.contains('\0') || value.len() > MAX_VARIABLE {
                return Err(Invalid::VariableValue(name.clone()));
            }
        }
        Ok(())
    }
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

/// How an executor sets up the agents of a run in a workspace: its base branch and how a
/// long-lived agent follows it, and the pool its flight's agents run on unless they name
/// one. Empty for the implicit workspace, whose agents branch from the repository's checked
/// out branch and are never moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSettings {
    pub base: Option<String>,
    pub follow_base: Option<murmur_protocol::FollowBase>,
    pub pool: Option<String>,
    /// Its repositories' origins in repository order, which a worker clones from when it
    /// reaches them.
    pub origins: Vec<murmur_protocol::RepositoryOrigin>,
}

impl RunSettings {
    /// The settings of a run of `workspace`, on `base` when its start named one (the spawn's
    /// or flight run's value), else on its first repository's base.
    pub fn of(workspace: &Workspace, base: Option<&str>) -> Self {
        let first = workspace.repositories.first();
        let follow_base = match first.map(|r| r.conflict_resolution).unwrap_or_default() {
            ConflictResolution::Merge => Some(murmur_protocol::FollowBase::Merge),
            ConflictResolution::Rebase => Some(murmur_protocol::FollowBase::Rebase),
            ConflictResolution::None => None,
        };
        Self {
            base: base
                .map(str::to_owned)
                .or_else(|| first.and_then(|r| r.base.clone())),
            follow_base,
            pool: workspace.defaults.pool.clone(),
            origins: workspace
                .repositories
                .iter()
                .map(|r| murmur_protocol::RepositoryOrigin {
                    url: r.url.clone(),
                    credential: r.credential.clone(),
                })
                .collect(),
        }
    }

    /// The first repository's origin: the one an agent's worktree is of.
    pub fn origin(&self) -> Option<&murmur_protocol::RepositoryOrigin> {
        self.origins.first()
    }

    /// `flight` as a run of the workspace has it: its default pool where it names none.
    pub fn apply(&self, flight: &mut murmur_parser::Flight) {
        if flight.frontmatter.pool.is_none() {
            flight.frontmatter.pool.clone_from(&self.pool);
        }
    }

    /// The pool of `flight`'s agents that name none, in a run of the workspace: the flight's
    /// own (`pool: local` too), else the workspace's default.
    pub fn flight_pool<'a>(&'a self, flight: &'a murmur_parser::Flight) -> &'a str {
        let front = &flight.frontmatter;
        front
            .pool
            .as_deref()
            .or(self.pool.as_deref())
            .unwrap_or(murmur_parser::DEFAULT_POOL)
    }
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
    #[error(
        "`{0}` is no name for a workspace variable: letters, digits and `_`, not starting with a digit nor `MURMUR_`"
    )]
    Variable(String),
    #[error("the value of workspace variable `{0}` holds a NUL byte or is longer than 32 KiB")]
    VariableValue(String),
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
pub fn is_branch(name: &str) -> bool {
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
        if let Some(base) = &self.defaults.base
            && !is_branch(base)
        {
            return Err(Invalid::Branch(base.clone()));
        }
        self.defaults.check_variables()
    }

    /// Where this server keeps its mirror of repository `index`, below `root`.
    pub fn mirror_of(&self, root: &Path, tenant: &str, index: usize) -> PathBuf {
        let url = self.repositories.get(index).map_or("", |r| r.url.as_str());
        root.join(tenant).join(&self.name).join(format!(
            "{index}-{}",
            murmur_attempt::repository_folder(url)
        ))
    }

    /// The base branch of repository `repository` as given: its own, else the workspace's
    /// (`None`: the origin's default branch).
    pub fn base_of<'a>(&'a self, repository: &'a WorkspaceRepository) -> Option<&'a str> {
        repository.base.as_deref().or(self.defaults.base.as_deref())
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
    fn a_runs_base_is_its_starts_then_its_repositorys() {
        let mut ws = workspace("a", "/r");
        ws.defaults.base = Some("develop".to_owned());
        assert_eq!(ws.base_of(&ws.repositories[0]), Some("develop"));
        ws.repositories[0].base = Some("main".to_owned());
        assert_eq!(ws.base_of(&ws.repositories[0]), Some("main"));
        assert_eq!(RunSettings::of(&ws, None).base.as_deref(), Some("main"));
        let own = RunSettings::of(&ws, Some("release"));
        assert_eq!(own.base.as_deref(), Some("release"));
        assert_eq!(own.follow_base, Some(murmur_protocol::FollowBase::Merge));
        ws.repositories[0].conflict_resolution = ConflictResolution::None;
        assert_eq!(RunSettings::of(&ws, None).follow_base, None);
        ws.defaults.base = Some("-x".to_owned());
        assert_eq!(ws.check(), Err(Invalid::Branch("-x".to_owned())));
    }

    #[test]
    fn a_flight_naming_no_pool_takes_the_workspaces() {
        let text = "---\nruntime: exec\n---\n# T\n\n## a\n> command: true\n";
        let named = "---\nruntime: exec\npool: gpu\n---\n# T\n\n## a\n> command: true\n";
        let local = "---\nruntime: exec\npool: local\n---\n# T\n\n## a\n> command: true\n";
        let mut ws = workspace("a", "/r");
        ws.defaults.pool = Some("fleet".to_owned());
        let settings = RunSettings::of(&ws, None);
        let mut flight = murmur_parser::parse(text, "t").flight.expect("flight");
        settings.apply(&mut flight);
        assert_eq!(flight.frontmatter.pool(), "fleet");
        let mut flight = murmur_parser::parse(named, "t").flight.expect("flight");
        settings.apply(&mut flight);
        assert_eq!(flight.frontmatter.pool(), "gpu");
        let mut flight = murmur_parser::parse(local, "t").flight.expect("flight");
        assert_eq!(
            settings.flight_pool(&flight),
            "local",
            "named, even as the default"
        );
        settings.apply(&mut flight);
        assert_eq!(flight.frontmatter.pool(), "local");
        let mut flight = murmur_parser::parse(text, "t").flight.expect("flight");
        RunSettings::default().apply(&mut flight);
        assert_eq!(flight.frontmatter.pool(), "local");
    }

    #[test]
    fn variables_are_checked_and_old_rows_read() {
        let mut ws = workspace("a", "/r");
        ws.defaults
            .environment
            .insert("STAGE".to_owned(), "$(rm -rf /)".to_owned());
        assert_eq!(ws.check(), Ok(()));
        for bad in ["1X", "A-B", "", "MURMUR_RUN_ID"] {
            let mut ws = ws.clone();
            ws.defaults
                .environment
                .insert(bad.to_owned(), "v".to_owned());
            assert_eq!(ws.check(), Err(Invalid::Variable(bad.to_owned())));
        }
        let mut nul = ws.clone();
        nul.defaults
            .environment
            .insert("X".to_owned(), "a\0b".to_owned());
        assert_eq!(nul.check(), Err(Invalid::VariableValue("X".to_owned())));
        for stored in [
            r#"{"environment": null}"#,
            r#"{"environment": "standard"}"#,
            "{}",
        ] {
            let read: WorkspaceDefaults = serde_json::from_str(stored).expect(stored);
            assert!(read.environment.is_empty(), "{stored}");
        }
        let read: WorkspaceDefaults =
            serde_json::from_str(r#"{"environment": {"A": "1"}}"#).expect("a map");
        assert_eq!(read.environment.get("A").map(String::as_str), Some("1"));
    }

    #[test]
    fn mirror_folders_stay_below_their_root() {
        let ws = workspace("a", "../../etc/passwd");
        let path = ws.mirror_of(Path::new("/m"), "local", 0);
        assert!(path.starts_with("/m/local/a"), "{}", path.display());
        assert!(!path.to_string_lossy().contains(".."), "{}", path.display());
    }
}
