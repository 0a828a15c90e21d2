//! Flights per workspace: besides the catalog and the server's own repository (`catalog`),
//! each workspace's `.murmur/flights/` at its base branch, read from this server's mirror of
//! its first repository. A catalog flight belongs to the workspace its `workspace:` names and
//! wins over that workspace's file of the same name. A name found in several workspaces must
//! be chosen with `workspace`: otherwise it is a 409 `ambiguous_flight`.

use axum::http::StatusCode;
use murmur_engine::executor::Executor;
use murmur_engine::workspace::Workspace;
use murmur_parser::valid_flight_name;

use super::AppState;
use super::catalog::{self, Known, Origin};
use super::error::ApiError;
use super::parsed::Version;
use super::workspaces::{no_workspace, workspace_error};

/// Flight `name` in workspace `wanted` (or wherever it is, when that is one place).
pub async fn find_in(
    state: &AppState,
    name: &str,
    wanted: Option<&str>,
) -> Result<Option<Known>, ApiError> {
    if let Some(wanted) = wanted
        && state.store().workspace(wanted).await?.is_none()
    {
        return Err(no_workspace(wanted));
    }
    let mut chosen: Vec<Found> = candidates(state, name)
        .await?
        .into_iter()
        .filter(|(place, _)| wanted.is_none() || place.as_deref() == wanted)
        .collect();
    if chosen.len() > 1 {
        let mut places: Vec<String> = chosen
            .iter()
            .map(|(place, _)| {
                place
                    .as_deref()
                    .unwrap_or("(the server's repository)")
                    .to_owned()
            })
            .collect();
        places.sort();
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ambiguous_flight",
            format!(
                "flight `{name}` exists in several workspaces ({}); choose one with `workspace` (--workspace W)",
                places.join(", ")
            ),
        ));
    }
    chosen.pop().map(|(_, found)| found).transpose()
}

/// A place a flight was found (its workspace, `None` for the server's repository), and the
/// flight or why it cannot run.
type Found = (Option<String>, Result<Known, ApiError>);

/// Every place flight `name` is: the catalog's or the server's repository's, then each
/// workspace's file not shadowed by a catalog flight of that workspace. An invalid file is
/// kept as its error, so a run of it can say why it cannot start.
async fn candidates(state: &AppState, name: &str) -> Result<Vec<Found>, ApiError> {
    if !valid_flight_name(name) {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    let mut claimed = None;
    match catalog::find(state, name).await {
        Ok(Some(known)) => {
            claimed.clone_from(&known.workspace);
            found.push((known.workspace.clone(), Ok(known)));
        }
        Ok(None) => {}
        Err(error) => found.push((None, Err(error))),
    }
    for workspace in state.store().workspaces().await? {
        if claimed.as_deref() == Some(workspace.name.as_str()) {
            continue;
        }
        if let Some(file) = workspace_file(state, &workspace, name).await {
            found.push((Some(workspace.name.clone()), file));
        }
    }
    Ok(found)
}

/// Workspace `workspace`'s flight file `name`, when its mirror has one.
async fn workspace_file(
    state: &AppState,
    workspace: &Workspace,
    name: &str,
) -> Option<Result<Known, ApiError>> {
    let dir = flights_dir(state.executor(), workspace).await?;
    let path = dir.join(format!("{name}.md"));
    let text = std::fs::read_to_string(&path).ok()?;
    Some(parse_file(state, workspace, name, &text, path))
}

fn parse_file(
    state: &AppState,
    workspace: &Workspace,
    name: &str,
    text: &str,
    path: std::path::PathBuf,
) -> Result<Known, ApiError> {
    // Kept apart from the server's own files of the same name in the parse cache.
    let key = format!("{}/{}", state.store().tenant(), workspace.name);
    let parse = state
        .inner
        .parsed
        .parse(&key, name, Version::Text(text.into()), text);
    let mut known = catalog::known(name, parse, Origin::Repository(path))?;
    known.workspace = Some(workspace.name.clone());
    Ok(known)
}

/// The flights folder of the workspace's mirror, made first where this server has none.
async fn flights_dir(executor: &Executor, workspace: &Workspace) -> Option<std::path::PathBuf> {
    if let Err(error) = executor.ensure_mirrors(workspace).await {
        tracing::warn!(%error, "cannot read the workspace's flights");
        return None;
    }
    Some(executor.mirror_of(workspace, 0).join(".murmur/flights"))
}

/// Every valid flight: the catalog's and the server's repository's, then each workspace's.
pub async fn all(state: &AppState) -> Vec<Known> {
    let mut known = catalog::flights(state).await;
    let workspaces = match state.store().workspaces().await {
        Ok(workspaces) => workspaces,
        Err(error) => {
            tracing::error!(%error, "cannot read the workspaces");
            Vec::new()
        }
    };
    for workspace in &workspaces {
        for file in of_workspace(state, workspace).await {
            let shadowed = known
                .iter()
                .any(|k| k.name == file.name && k.workspace == file.workspace);
            if !shadowed {
                known.push(file);
            }
        }
    }
    known
}

/// The valid flight files of one workspace.
pub async fn of_workspace(state: &AppState, workspace: &Workspace) -> Vec<Known> {
    let Some(dir) = flights_dir(state.executor(), workspace).await else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<Known> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .filter_map(|path| {
            let name = path.file_stem()?.to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).ok()?;
            valid_flight_name(&name).then_some(())?;
            parse_file(state, workspace, &name, &text, path).ok()
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

/// The flight a start runs, and the executor that prepares it: for a workspace's flight,
/// the workspace's mirrors are fetched first and the flight is read again from there, so a
/// run starts from the base branch as its origin has it now. `base`, the start's own base
/// branch, is checked to exist there; a flight of the server's repository takes none.
pub async fn for_start(
    state: &AppState,
    name: &str,
    wanted: Option<&str>,
    base: Option<&str>,
) -> Result<Option<(Known, Executor)>, ApiError> {
    let Some(known) = find_in(state, name, wanted).await? else {
        return Ok(None);
    };
    let Some(workspace_name) = known.workspace.clone() else {
        if base.is_some() {
            return Err(ApiError::invalid(format!(
                "`base` chooses the base branch of a workspace's repository, and flight `{name}` runs in the server's own repository, whose checked-out branch is its base; run it in a workspace (`workspace`) or leave `base` out"
            )));
        }
        return Ok(Some((known, state.executor().clone())));
    };
    let executor = state.executor();
    let workspace = executor.store.workspace(&workspace_name).await?.ok_or_else(|| {
        ApiError::invalid(format!(
            "flight `{name}` works in workspace `{workspace_name}`, which does not exist; add it (`murmur workspace add`) or change its `workspace:`"
        ))
    })?;
    executor
        .fetch_mirrors(&workspace)
        .await
        .map_err(workspace_error)?;
    if let Some(base) = base {
        executor
            .ensure_base(&workspace, base)
            .await
            .map_err(workspace_error)?;
    }
    let known = match known.origin {
        Origin::Repository(_) => find_in(state, name, Some(&workspace_name))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no flight `{name}`")))?,
        Origin::Catalog(_) => known,
    };
    Ok(Some((known, executor.in_workspace_on(&workspace, base))))
}
