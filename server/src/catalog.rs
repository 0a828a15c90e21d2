//! The flights this server knows: the catalog in the store (`PUT /v1/flights/{name}`) and the
//! repository's `.murmur/flights/*.md`. A catalog flight wins over a file of the same name:
//! the catalog is what API users manage, and it must not depend on what is checked out.

use std::path::PathBuf;

use axum::http::StatusCode;
use murmur_engine::store::FlightGeneration;
use murmur_parser::{Flight, Parsed, Source};

use super::AppState;
use super::error::ApiError;
use super::parsed::{Parse, Version};

/// Where a flight came from.
#[derive(Debug, Clone)]
pub enum Origin {
    Catalog(FlightGeneration),
    Repository(PathBuf),
}

/// A valid flight with its name and the exact text a run will be pinned to.
#[derive(Clone)]
pub struct Known {
    pub name: String,
    pub source: String,
    pub flight: Flight,
    pub origin: Origin,
    /// The workspace its runs work in; `None` for the repository the server runs in.
    pub workspace: Option<String>,
}

use murmur_parser::valid_flight_name;

impl Known {
    /// The start of a run of this flight that `event` triggered (a webhook's payload, a
    /// schedule's tick): no inputs but their defaults.
    pub fn triggered_by<'a>(
        &'a self,
        event: &'a serde_json::Value,
    ) -> murmur_engine::executor::StartRequest<'a> {
        murmur_engine::executor::StartRequest {
            flight_name: &self.name,
            flight_path: None,
            source: &self.source,
            flight: &self.flight,
            inputs: &[],
            event: Some(event),
        }
    }
}

/// Parses `text` as flight `name`; the 400 with every diagnostic when it is invalid.
pub fn parse_valid(name: &str, text: &str) -> Result<(Source, Flight), ApiError> {
    let source = Source::new(text);
    let parsed = murmur_parser::parse_source(&source, name);
    match parsed.flight.clone().filter(|_| parsed.is_valid()) {
        Some(flight) => Ok((source, flight)),
        None => Err(invalid(name, &parsed)),
    }
}

fn invalid(name: &str, parsed: &Parsed) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_flight",
        format!("flight `{name}` is invalid; see the diagnostics"),
    )
    .with_diagnostics(&parsed.diagnostics)
}

/// Flight `name`: the catalog's latest generation, else the repository's file; `None` when
/// neither exists. An invalid file is an error, so the caller can show why it cannot run.
/// Parsed once per generation or file text (see `parsed`).
pub async fn find(state: &AppState, name: &str) -> Result<Option<Known>, ApiError> {
    if !valid_flight_name(name) {
        return Ok(None);
    }
    if let Some(saved) = state.store().catalog_flight(name, None).await? {
        return cached_catalog(state, saved).map(Some);
    }
    let Some(path) = file_of(state, name) else {
        return Ok(None);
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let parse = state.inner.parsed.parse(
        state.store().tenant(),
        name,
        Version::Text(text.as_str().into()),
        &text,
    );
    known(name, parse, Origin::Repository(path)).map(Some)
}

/// A catalog generation, parsed once.
pub(crate) fn cached_catalog(state: &AppState, saved: FlightGeneration) -> Result<Known, ApiError> {
    let version = Version::Generation(saved.generation);
    let tenant = state.store().tenant();
    let parse = state
        .inner
        .parsed
        .parse(tenant, &saved.name, version, &saved.markdown);
    known(&saved.name.clone(), parse, Origin::Catalog(saved))
}

/// A flight from its kept parse; the 400 with every diagnostic when it is invalid.
pub(crate) fn known(name: &str, parse: Parse, origin: Origin) -> Result<Known, ApiError> {
    match parse {
        Parse::Valid { source, flight } => Ok(Known {
            name: name.to_owned(),
            source: source.as_ref().to_owned(),
            workspace: catalog_workspace(&origin, &flight),
            flight: Flight::clone(&flight),
            origin,
        }),
        Parse::Invalid(parsed) => Err(invalid(name, &parsed)),
    }
}

pub fn from_catalog(saved: FlightGeneration) -> Result<Known, ApiError> {
    let (source, flight) = parse_valid(&saved.name, &saved.markdown)?;
    Ok(Known {
        name: saved.name.clone(),
        source: source.text().to_owned(),
        workspace: flight.workspace.clone(),
        flight,
        origin: Origin::Catalog(saved),
    })
}

/// A catalog flight works in the workspace its `workspace:` names; a file, in the workspace
/// it lives in (set by whoever read it from there).
fn catalog_workspace(origin: &Origin, flight: &Flight) -> Option<String> {
    match origin {
        Origin::Catalog(_) => flight.workspace.clone(),
        Origin::Repository(_) => None,
    }
}

/// The repository's file of flight `name`; `None` for another tenant than the server's.
fn file_of(state: &AppState, name: &str) -> Option<PathBuf> {
    Some(state.flights_dir()?.join(format!("{name}.md")))
}

/// Every valid flight, by name, the catalog's first where both have one. Invalid files are
/// left out (`murmur flight ls` shows them); a store that cannot be read leaves only files.
pub async fn flights(state: &AppState) -> Vec<Known> {
    let mut known: Vec<Known> = match state.store().catalog_flights().await {
        Ok(saved) => saved
            .into_iter()
            .filter_map(|s| cached_catalog(state, s).ok())
            .collect(),
        Err(error) => {
            tracing::error!(%error, "cannot read the flight catalog");
            Vec::new()
        }
    };
    let files: Vec<Known> = repository_files(state)
        .into_iter()
        .filter(|file| known.iter().all(|k| k.name != file.name))
        .collect();
    known.extend(files);
    known.sort_by(|a, b| a.name.cmp(&b.name));
    known
}

fn repository_files(state: &AppState) -> Vec<Known> {
    let Some(dir) = state.flights_dir() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .filter_map(|path| {
            let name = path.file_stem()?.to_string_lossy().into_owned();
            if !valid_flight_name(&name) {
                return None;
            }
            let text = std::fs::read_to_string(&path).ok()?;
            let version = Version::Text(text.as_str().into());
            let parse = state
                .inner
                .parsed
                .parse(state.store().tenant(), &name, version, &text);
            known(&name, parse, Origin::Repository(path)).ok()
        })
        .collect()
}
