//! An agent's branch that its machine pushed to the workspace repository's origin: a worker
//! that cannot reach this server's mirror (another host) pushes there only, so once its
//! attempt ends the branch is taken from the origin into the mirror, where the engine and
//! the local pool's agents look for it.

use std::path::PathBuf;

use murmur_protocol::{AttemptKey, WorkspaceSpec};
use murmur_runtime::mirror::{self, Credential};
use murmur_vault::SecretSet;

/// Where the attempt's branch is taken to and how the origin is asked.
pub struct PushedBranch {
    mirror: PathBuf,
    branch: String,
    credential: Option<Credential>,
}

impl PushedBranch {
    /// For an attempt in a workspace repository with an origin; its credential (a secret of
    /// the attempt) from `secrets`.
    pub fn of(workspace: &WorkspaceSpec, secrets: Option<&SecretSet>) -> Option<Self> {
        let origin = workspace.origin.as_ref()?;
        let credential = origin
            .credential
            .as_deref()
            .and_then(|name| secrets?.get(name))
            .map(|value| Credential::token(value.expose()));
        Some(Self {
            mirror: PathBuf::from(&workspace.repository),
            branch: workspace.branch.clone(),
            credential,
        })
    }

    /// Takes the branch; a failure is said, not the attempt's: the branch is safe on the
    /// origin, and whatever needs it here next names what is missing.
    pub async fn take(&self, attempt: &AttemptKey) {
        let taken =
            mirror::take_pushed_branch(&self.mirror, &self.branch, self.credential.as_ref()).await;
        match taken {
            Ok(true) => {
                tracing::debug!(%attempt, branch = %self.branch, "took the agent's branch from the origin into the mirror");
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%attempt, branch = %self.branch, %error, "cannot take the agent's branch from the origin into the mirror");
            }
        }
    }
}
