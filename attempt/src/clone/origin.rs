//! Which repository a worker clones: the workspace repository's origin when the worker
//! reaches it (a host on another machine cannot reach the server's mirror path), with the
//! attempt's credential for it; else the server's mirror, as before. A clone of the origin
//! that also reaches the mirror pushes the agent's branch to both.

use std::path::{Path, PathBuf};

use murmur_protocol::{RepositoryOrigin, WorkspaceSpec};
use murmur_runtime::mirror::{self, Credential};
use murmur_vault::SecretSet;

use super::{prepare, prepare_with};
use crate::Machine;

/// The remote of a clone of an origin that names the server's mirror.
pub(super) const MIRROR: &str = "murmur-mirror";

/// The clone an attempt works in (see the module's comment), with `branches` taken.
async fn prepare_for(
    spec: &WorkspaceSpec,
    secrets: &SecretSet,
    root: &Path,
    branches: &[&str],
) -> Result<PathBuf, String> {
    let origin = spec.origin.as_ref();
    prepare_from(&spec.repository, origin, secrets, root, branches).await
}

/// Where an attempt's repositories are on `machine`, the first and then the others of a
/// multi-repository workspace in the spec's order: on a machine that clones, its clones of
/// them (with `branches` taken in the first, the agent's and its upstreams' branches in the
/// others); else the repositories themselves.
pub async fn sources_for(
    machine: &Machine,
    spec: &WorkspaceSpec,
    secrets: &SecretSet,
    branches: &[&str],
) -> Result<(PathBuf, Vec<PathBuf>), String> {
    if !machine.clones {
        let extra = spec.extra.iter().map(|e| PathBuf::from(&e.repository));
        return Ok((PathBuf::from(&spec.repository), extra.collect()));
    }
    let root = &machine.work_root;
    let first = prepare_for(spec, secrets, root, branches).await?;
    let mut extra = Vec::new();
    let mut extra_branches = vec![spec.branch.as_str()];
    extra_branches.extend(spec.extra_merge.iter().map(String::as_str));
    for repository in &spec.extra {
        let (source, origin) = (&repository.repository, repository.origin.as_ref());
        extra.push(prepare_from(source, origin, secrets, root, &extra_branches).await?);
    }
    Ok((first, extra))
}

/// The clone of one repository: of its origin when this machine reaches it, else of
/// `mirror_path`, the server's mirror.
async fn prepare_from(
    mirror_path: &str,
    origin: Option<&RepositoryOrigin>,
    secrets: &SecretSet,
    root: &Path,
    branches: &[&str],
) -> Result<PathBuf, String> {
    let Some(origin) = origin else {
        return prepare(mirror_path, root, branches).await;
    };
    let credential = match &origin.credential {
        Some(name) => Some(credential_in(secrets, name)?),
        None => None,
    };
    match mirror::check_remote(&origin.url, None, credential.as_ref()).await {
        Ok(_) => {}
        Err(mirror::Error::Refused { .. }) => {
            let name = origin.credential.as_deref().unwrap_or_default();
            return Err(format!(
                "the repository {} refused the credential in secret `{name}`; set a valid token with `murmur secret set {name}`",
                origin.url
            ));
        }
        // Not reachable from here: the server's mirror is.
        Err(_) => return prepare(mirror_path, root, branches).await,
    }
    let clone = prepare_with(&origin.url, credential, root, branches).await?;
    name_mirror(&clone, mirror_path).await?;
    Ok(clone)
}

/// The token in the attempt's secret `name`, which the engine seals with the agent's.
fn credential_in(secrets: &SecretSet, name: &str) -> Result<Credential, String> {
    secrets
        .get(name)
        .map(|value| Credential::token(value.expose()))
        .ok_or_else(|| {
            format!(
                "the workspace's repository authenticates with secret `{name}`, which this attempt was not given; set it with `murmur secret set {name}`"
            )
        })
}

/// Records the server's mirror as a remote of the clone when this machine reaches it.
async fn name_mirror(clone: &Path, mirror_path: &str) -> Result<(), String> {
    let reachable = Path::new(mirror_path).join(".git").is_dir();
    let remotes = murmur_runtime::git::git(clone, &["remote"])
        .await
        .map_err(|e| e.to_string())?;
    let named = remotes.lines().any(|r| r == MIRROR);
    let args: &[&str] = match (reachable, named) {
        (true, false) => &["remote", "add", MIRROR, mirror_path],
        (true, true) => &["remote", "set-url", MIRROR, mirror_path],
        (false, true) => &["remote", "remove", MIRROR],
        (false, false) => return Ok(()),
    };
    murmur_runtime::git::git(clone, args)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
#[path = "origin_tests.rs"]
mod tests;
