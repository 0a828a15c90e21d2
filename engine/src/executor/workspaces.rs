//! Runs in a workspace: the executor as it runs that workspace's agents (its first
//! repository's mirror as the repository, its check command, variables and secrets), and the mirrors
//! this host keeps of the workspace's repositories.

use std::path::PathBuf;

use murmur_protocol::ExtraRepository;
use murmur_runtime::mirror::{self, Credential};

use super::Executor;
use crate::secrets::Secrets;
use crate::store::workspaces::RunPlace;
use crate::workspace::{RunSettings, Workspace, WorkspaceRepository};

/// Why a workspace's repositories cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(
        "workspace `{0}` does not exist (any more); `murmur workspace ls` lists the workspaces"
    )]
    Gone(String),
    #[error("workspace `{workspace}`: {source}")]
    Mirror {
        workspace: String,
        source: mirror::Error,
    },
    #[error(
        "workspace `{workspace}` authenticates to its repository with secret `{secret}`, which cannot be opened: {why}"
    )]
    Credential {
        workspace: String,
        secret: String,
        why: String,
    },
    #[error(
        "workspace `{workspace}`: the repository refused the credential in secret `{secret}` ({source}); set a valid token with `murmur secret set {secret}`"
    )]
    Refused {
        workspace: String,
        secret: String,
        source: mirror::Error,
    },
    #[error(
        "cannot start agents from branch `{base}` of this repository: {why} (`git branch --list` shows its branches)"
    )]
    NoLocalBase { base: String, why: String },
    #[error(transparent)]
    Invalid(#[from] crate::workspace::Invalid),
    #[error("workspace `{0}` exists already; `murmur workspace rm {0}` removes it")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

impl WorkspaceError {
    /// Whether the fault is this host's (a mirror it cannot update, the store) rather than
    /// the workspace's: such an error's text (paths on this host) is for the log only.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Self::Store(_)
                | Self::Mirror {
                    source: mirror::Error::Update { .. } | mirror::Error::Missing(_),
                    ..
                }
        )
    }
}

impl Executor {
    /// Records a new workspace of the store's tenant, once its name and every repository
    /// (reachable, a git repository, its base branch there) checked out; the origin's default
    /// branch becomes the base of a repository given none.
    pub async fn add_workspace(
        &self,
        mut workspace: Workspace,
    ) -> Result<Workspace, WorkspaceError> {
        workspace.check()?;
        if self.store.workspace(&workspace.name).await?.is_some() {
            return Err(WorkspaceError::Exists(workspace.name));
        }
        self.check_repositories(&mut workspace).await?;
        workspace.created_at = self.clock.stamp();
        // Mirrors left by an earlier workspace of this name are not this one's repositories.
        let old = self.mirror_of(&workspace, 0);
        if let Some(folder) = old.parent() {
            let _ = std::fs::remove_dir_all(folder);
        }
        if !self.store.add_workspace(&workspace).await? {
            return Err(WorkspaceError::Exists(workspace.name));
        }
        Ok(workspace)
    }

    /// Where this process keeps its mirrors of workspace repositories: beside the agents'
    /// working folders, in the server's state folder.
    pub fn mirror_root(&self) -> PathBuf {
        self.work_root.with_file_name("mirrors")
    }

    /// Where this process keeps the mirror of `workspace`'s repository `index`.
    pub fn mirror_of(&self, workspace: &Workspace, index: usize) -> PathBuf {
        workspace.mirror_of(&self.mirror_root(), self.store.tenant(), index)
    }

    /// The commit each of this host's mirrors of `workspace` has its base branch at (`None`
    /// for one not made yet).
    pub async fn mirror_heads(&self, workspace: &Workspace) -> Vec<Option<String>> {
        let mut heads = Vec::new();
        for index in 0..workspace.repositories.len() {
            heads.push(mirror::head(&self.mirror_of(workspace, index)).await.ok());
        }
        heads
    }

    /// For a run in a multi-repository workspace, its repositories beside the first: the
    /// other mirrors in the folder of the one this executor works in, in repository order.
    pub fn extra_repositories(&self) -> Vec<ExtraRepository> {
        let Ok(inside) = self.repository.strip_prefix(self.mirror_root()) else {
            return Vec::new();
        };
        let (Some(dir), 3) = (self.repository.parent(), inside.components().count()) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut mirrors: Vec<(usize, String)> = entries
            .flatten()
            .filter(|e| e.path().join(".git").is_dir())
            .filter_map(|e| {
                let folder = e.file_name().to_string_lossy().into_owned();
                let (index, _) = folder.split_once('-')?;
                Some((index.parse().ok()?, folder))
            })
            .filter(|(index, _)| *index > 0)
            .collect();
        mirrors.sort();
        let mut extra: Vec<ExtraRepository> = Vec::new();
        for (index, folder) in mirrors {
            let mut name = readable(&folder);
            if extra.iter().any(|e| e.name == name) {
                name = format!("{name}-{index}");
            }
            let repository = dir.join(&folder).display().to_string();
            let origin = self.workspace.origins.get(index).cloned();
            extra.push(ExtraRepository {
                name,
                repository,
                origin,
            });
        }
        extra
    }

    /// This executor as it runs agents of `workspace`, on its first repository's base.
    pub fn in_workspace(&self, workspace: &Workspace) -> Executor {
        self.in_workspace_on(workspace, None)
    }

    /// This executor as it runs agents of `workspace`, on `base` when the run's start named
    /// one (else its first repository's).
    pub fn in_workspace_on(&self, workspace: &Workspace, base: Option<&str>) -> Executor {
        let mut executor = self.clone();
        executor.repository = self.mirror_of(workspace, 0);
        executor.workspace = RunSettings::of(workspace, base);
        let defaults = &workspace.defaults;
        if defaults.check.is_some() {
            executor.check_command.clone_from(&defaults.check);
        }
        executor.environment.variables = defaults
            .environment
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        // A worker opens the origins' credentials from the attempt's sealed secrets, so the
        // agent gets them too, as a CI job gets its repository token.
        let credentials = executor
            .workspace
            .origins
            .iter()
            .filter_map(|o| o.credential.as_ref());
        let wanted: Vec<String> = defaults
            .secrets
            .iter()
            .chain(credentials)
            .cloned()
            .collect();
        for secret in wanted {
            if !executor.environment.secrets.contains(&secret) {
                executor.environment.secrets.push(secret);
            }
        }
        executor
    }

    /// The executor that drives run `run_id`: [`Self::for_place`] of the place its start
    /// recorded.
    pub async fn for_run(&self, run_id: &str) -> Result<Executor, WorkspaceError> {
        self.for_place(&self.store.run_place(run_id).await?).await
    }

    /// The executor that runs agents at `place`: this one for the implicit workspace (on
    /// the place's base, which must be a branch of this repository, when it names one), else
    /// [`Self::in_workspace_on`], with the mirrors made first where this host has none.
    pub async fn for_place(&self, place: &RunPlace) -> Result<Executor, WorkspaceError> {
        let base = place.base.as_deref();
        let Some(name) = &place.workspace else {
            let mut executor = self.clone();
            if let Some(base) = base {
                self.ensure_local_base(base).await?;
                executor.workspace.base = Some(base.to_owned());
            }
            return Ok(executor);
        };
        let workspace = self
            .store
            .workspace(name)
            .await?
            .ok_or_else(|| WorkspaceError::Gone(name.clone()))?;
        self.ensure_mirrors(&workspace).await?;
        if let Some(base) = base {
            self.ensure_base(&workspace, base).await?;
        }
        Ok(self.in_workspace_on(&workspace, base))
    }

    /// Refuses `base` unless it is a branch of this executor's own repository.
    async fn ensure_local_base(&self, base: &str) -> Result<(), WorkspaceError> {
        if !crate::workspace::is_branch(base) {
            return Err(crate::workspace::Invalid::Branch(base.to_owned()).into());
        }
        murmur_runtime::workspace::Repository::open(&self.repository, Some(base))
            .await
            .map(drop)
            .map_err(|error| WorkspaceError::NoLocalBase {
                base: base.to_owned(),
                why: error.to_string(),
            })
    }

    /// Makes `base`, a run's own base branch, a branch of the mirror of `workspace`'s first
    /// repository, as the origin had it at the mirror's last fetch. A base the origin does
    /// not have is an error naming the workspace, the repository and the branch.
    pub async fn ensure_base(
        &self,
        workspace: &Workspace,
        base: &str,
    ) -> Result<(), WorkspaceError> {
        if !crate::workspace::is_branch(base) {
            return Err(crate::workspace::Invalid::Branch(base.to_owned()).into());
        }
        let Some(repository) = workspace.repositories.first() else {
            return Err(crate::workspace::Invalid::NoRepository(workspace.name.clone()).into());
        };
        mirror::take_branch(&self.mirror_of(workspace, 0), base)
            .await
            .map_err(|e| failed(workspace, repository, named(e, &repository.url)))
    }

    /// Clones every repository of `workspace` this host has no mirror of yet.
    pub async fn ensure_mirrors(&self, workspace: &Workspace) -> Result<(), WorkspaceError> {
        for (index, repository) in workspace.repositories.iter().enumerate() {
            let dir = self.mirror_of(workspace, index);
            if dir.join(".git").is_dir() {
                continue;
            }
            let credential = self.credential(workspace, repository).await?;
            let base = match workspace.base_of(repository) {
                Some(base) => base.to_owned(),
                None => mirror::check_remote(&repository.url, None, credential.as_ref())
                    .await
                    .map_err(|e| failed(workspace, repository, e))?,
            };
            mirror::ensure(&repository.url, &dir, &base, credential.as_ref())
                .await
                .map_err(|e| failed(workspace, repository, e))?;
        }
        Ok(())
    }

    /// Brings every mirror of `workspace` up to date with its origin (made first where
    /// missing); answers each base branch's commit, in repository order.
    pub async fn fetch_mirrors(
        &self,
        workspace: &Workspace,
    ) -> Result<Vec<String>, WorkspaceError> {
        self.ensure_mirrors(workspace).await?;
        let mut heads = Vec::new();
        for (index, repository) in workspace.repositories.iter().enumerate() {
            let credential = self.credential(workspace, repository).await?;
            let dir = self.mirror_of(workspace, index);
            let head = mirror::fetch(&dir, credential.as_ref())
                .await
                .map_err(|e| failed(workspace, repository, e))?;
            heads.push(head);
        }
        Ok(heads)
    }

    /// Checks that each repository of `workspace` is a reachable git repository with its
    /// base branch (its own, else the workspace's, else the origin's default branch, which
    /// is recorded as the repository's).
    pub async fn check_repositories(
        &self,
        workspace: &mut Workspace,
    ) -> Result<(), WorkspaceError> {
        let checked = workspace.clone();
        for repository in &mut workspace.repositories {
            let credential = self.credential(&checked, repository).await?;
            let base = mirror::check_remote(
                &repository.url,
                checked.base_of(repository),
                credential.as_ref(),
            )
            .await
            .map_err(|e| failed(&checked, repository, e))?;
            repository.base = Some(base);
        }
        Ok(())
    }

    /// The token in the repository's credential secret, opened in memory.
    async fn credential(
        &self,
        workspace: &Workspace,
        repository: &WorkspaceRepository,
    ) -> Result<Option<Credential>, WorkspaceError> {
        let Some(secret) = &repository.credential else {
            return Ok(None);
        };
        let fail = |why: String| WorkspaceError::Credential {
            workspace: workspace.name.clone(),
            secret: secret.clone(),
            why,
        };
        let keyring = self
            .environment
            .keyring
            .as_ref()
            .map_err(|w| fail(w.clone()))?;
        let opened = Secrets::new(&self.store, keyring)
            .open(&[secret.as_str()])
            .await
            .map_err(|e| fail(e.to_string()))?;
        let value = opened
            .get(secret)
            .ok_or_else(|| fail("it is not set".to_owned()))?;
        Ok(Some(Credential::token(value.expose())))
    }
}

/// A mirror's error as its repository's: the mirror's own path is this host's business.
fn named(error: mirror::Error, url: &str) -> mirror::Error {
    match error {
        mirror::Error::NoBase { base, .. } => mirror::Error::NoBase {
            url: url.to_owned(),
            base,
        },
        other => other,
    }
}

/// A mirror folder's name (`INDEX-NAME-HASH`) as agents see it: `NAME`.
fn readable(folder: &str) -> String {
    let named = folder.split_once('-').map_or(folder, |(_, rest)| rest);
    named
        .rsplit_once('-')
        .map_or(named, |(name, _)| name)
        .to_owned()
}

fn failed(
    workspace: &Workspace,
    repository: &WorkspaceRepository,
    source: mirror::Error,
) -> WorkspaceError {
    match (&source, &repository.credential) {
        (mirror::Error::Refused { .. }, Some(secret)) => WorkspaceError::Refused {
            workspace: workspace.name.clone(),
            secret: secret.clone(),
            source,
        },
        _ => WorkspaceError::Mirror {
            workspace: workspace.name.clone(),
            source,
        },
    }
}
