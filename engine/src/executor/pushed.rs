//! An agent's branches that its machine pushed to the workspace repositories' origins: a
//! worker that cannot reach this server's mirrors (another host) pushes there only, so once
//! its attempt ends each branch is taken from its origin into the mirror, where the engine
//! and the local pool's agents look for it. A multi-repository workspace has the agent's
//! branch in every repository.

use std::path::PathBuf;

use murmur_protocol::{AttemptKey, RepositoryOrigin, WorkspaceSpec};
use murmur_runtime::mirror::{self, Credential};
use murmur_vault::SecretSet;

/// Where the attempt's branch is taken to, repository by repository, and how each origin is
/// asked.
pub struct PushedBranch {
    branch: String,
    mirrors: Vec<(PathBuf, Option<Credential>)>,
}

impl PushedBranch {
    /// For an attempt in workspace repositories with origins; their credentials (secrets of
    /// the attempt) from `secrets`. `None` when no repository has an origin.
    pub fn of(workspace: &WorkspaceSpec, secrets: Option<&SecretSet>) -> Option<Self> {
        let first = (&workspace.repository, workspace.origin.as_ref());
        let extra = workspace
            .extra
            .iter()
            .map(|extra| (&extra.repository, extra.origin.as_ref()));
        let mirrors: Vec<(PathBuf, Option<Credential>)> = std::iter::once(first)
            .chain(extra)
            .filter_map(|(mirror, origin)| {
                let credential = credential(origin?, secrets);
                Some((PathBuf::from(mirror), credential))
            })
            .collect();
        (!mirrors.is_empty()).then(|| Self {
            branch: workspace.branch.clone(),
            mirrors,
        })
    }

    /// Takes the branch into every mirror; a failure is said, not the attempt's: the branch
    /// is safe on the origin, and whatever needs it here next names what is missing.
    pub async fn take(&self, attempt: &AttemptKey) {
        for (mirror, credential) in &self.mirrors {
            let taken = mirror::take_pushed_branch(mirror, &self.branch, credential.as_ref()).await;
            match taken {
                Ok(true) => {
                    tracing::debug!(%attempt, branch = %self.branch, mirror = %mirror.display(), "took the agent's branch from the origin into the mirror");
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%attempt, branch = %self.branch, mirror = %mirror.display(), %error, "cannot take the agent's branch from the origin into the mirror");
                }
            }
        }
    }
}

/// The token an origin is asked with, from the attempt's secrets.
fn credential(origin: &RepositoryOrigin, secrets: Option<&SecretSet>) -> Option<Credential> {
    let name = origin.credential.as_deref()?;
    let value = secrets?.get(name)?;
    Some(Credential::token(value.expose()))
}
