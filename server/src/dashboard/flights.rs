//! What the flights pages need beyond `/v1/flights`: every flight with its validation
//! diagnostics, invalid repository files included (the API lists only runnable ones), and
//! one flight's text, generations, graph and inputs (`GET /ui/flights/{name}`).

use crate::tenant::Scoped;
use std::path::PathBuf;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use murmur_engine::store::FlightGeneration;
use murmur_parser::{Dag, Parsed};
use serde::{Deserialize, Serialize};

use super::graph::{self, Node};
use crate::AppState;
use crate::error::{ApiError, DiagnosticView};

/// Older generations listed with a flight, newest first.
const GENERATIONS: i64 = 50;

#[derive(Debug, Serialize)]
pub struct Listed {
    pub name: String,
    /// `catalog` or `repository`.
    pub origin: &'static str,
    pub title: String,
    pub agents: usize,
    pub generation: Option<i64>,
    pub valid: bool,
    pub errors: usize,
    pub warnings: usize,
}

#[derive(Debug, Serialize)]
pub struct Generation {
    pub generation: i64,
    pub author: String,
    pub created_at: String,
    pub digest: String,
}

#[derive(Debug, Serialize)]
pub struct Input {
    pub name: String,
    pub description: Option<String>,
    pub default: Option<String>,
    pub required: bool,
}

#[derive(Debug, Serialize)]
pub struct Detail {
    pub name: String,
    pub origin: &'static str,
    pub generation: Option<i64>,
    pub generations: Vec<Generation>,
    /// A repository file of the same name that the catalog flight hides.
    pub shadows_file: bool,
    pub title: String,
    pub markdown: String,
    pub valid: bool,
    pub diagnostics: Vec<DiagnosticView>,
    pub inputs: Vec<Input>,
    pub graph: Vec<Node>,
    /// `murmur flight graph --format text`.
    pub graph_text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Which {
    generation: Option<i64>,
}

/// The repository's file of flight `name`; `None` for another tenant than the server's.
fn file_of(state: &AppState, name: &str) -> Option<PathBuf> {
    Some(state.flights_dir()?.join(format!("{name}.md")))
}

/// Whether `name` is a catalog flight or a repository file (valid or not).
pub async fn exists(state: &AppState, name: &str) -> bool {
    if !murmur_parser::valid_flight_name(name) {
        return false;
    }
    matches!(state.store().catalog_flight(name, None).await, Ok(Some(_)))
        || file_of(state, name).is_some_and(|path| path.is_file())
}

fn counts(parsed: &Parsed) -> (usize, usize) {
    let errors = parsed.errors().count();
    (errors, parsed.diagnostics.len() - errors)
}

pub async fn list(Scoped(state): Scoped) -> Result<Json<Vec<Listed>>, ApiError> {
    let mut listed: Vec<Listed> = Vec::new();
    for saved in state.store().catalog_flights().await? {
        let parsed = murmur_parser::parse(&saved.markdown, &saved.name);
        listed.push(entry(
            &saved.name,
            "catalog",
            Some(saved.generation),
            &parsed,
        ));
    }
    // Another tenant than the server's has no repository files.
    let mut files: Vec<(String, PathBuf)> = state
        .flights_dir()
        .and_then(|dir| std::fs::read_dir(dir).ok())
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "md"))
                .filter_map(|p| Some((p.file_stem()?.to_str()?.to_owned(), p)))
                .filter(|(name, _)| murmur_parser::valid_flight_name(name))
                .collect()
        })
        .unwrap_or_default();
    files.retain(|(name, _)| listed.iter().all(|l| &l.name != name));
    for (name, path) in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let parsed = murmur_parser::parse(&text, &name);
        listed.push(entry(&name, "repository", None, &parsed));
    }
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(listed))
}

fn entry(name: &str, origin: &'static str, generation: Option<i64>, parsed: &Parsed) -> Listed {
    let (errors, warnings) = counts(parsed);
    Listed {
        name: name.to_owned(),
        origin,
        title: parsed
            .flight
            .as_ref()
            .map_or_else(|| name.to_owned(), |f| f.title.clone()),
        agents: parsed
            .flight
            .as_ref()
            .map_or(0, murmur_engine::executor::agent_count),
        generation,
        valid: parsed.is_valid(),
        errors,
        warnings,
    }
}

pub async fn show(
    Scoped(state): Scoped,
    Path(name): Path<String>,
    which: Result<Query<Which>, QueryRejection>,
) -> Result<Json<Detail>, ApiError> {
    let Query(which) = which.map_err(|e| ApiError::invalid(e.body_text()))?;
    let missing = || ApiError::not_found(format!("no flight `{name}`"));
    if !murmur_parser::valid_flight_name(&name) {
        return Err(missing());
    }
    let store = state.store();
    let saved = store.catalog_flight(&name, which.generation).await?;
    let file = file_of(&state, &name);
    let (origin, generation, markdown) = match (&saved, which.generation) {
        (Some(saved), _) => ("catalog", Some(saved.generation), saved.markdown.clone()),
        (None, Some(_)) => return Err(missing()),
        (None, None) => match file.as_ref().map(std::fs::read_to_string) {
            Some(Ok(text)) => ("repository", None, text),
            _ => return Err(missing()),
        },
    };
    let generations = match &saved {
        Some(saved) => generations(&state, &name, saved).await?,
        None => Vec::new(),
    };
    let parsed = murmur_parser::parse(&markdown, &name);
    Ok(Json(detail(DetailParts {
        name,
        origin,
        generation,
        generations,
        shadows_file: saved.is_some() && file.is_some_and(|path| path.is_file()),
        markdown,
        parsed,
    })))
}

struct DetailParts {
    name: String,
    origin: &'static str,
    generation: Option<i64>,
    generations: Vec<Generation>,
    shadows_file: bool,
    markdown: String,
    parsed: Parsed,
}

fn detail(parts: DetailParts) -> Detail {
    let parsed = &parts.parsed;
    let flight = parsed.flight.as_ref();
    let graph_text = flight
        .and_then(|f| Dag::build(&f.agents).ok().map(|dag| (f, dag)))
        .map(|(f, dag)| murmur_parser::graph::text(f, &dag))
        .unwrap_or_default();
    let inputs = flight
        .map(|f| {
            f.frontmatter
                .inputs
                .iter()
                .map(|(name, spec)| Input {
                    name: name.clone(),
                    description: spec.description.clone(),
                    default: spec.default.clone(),
                    required: spec.required,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut diagnostics: Vec<DiagnosticView> = parsed
        .diagnostics
        .iter()
        .map(DiagnosticView::from)
        .collect();
    diagnostics.sort_by_key(|d| (d.line, d.column));
    Detail {
        title: flight.map_or_else(|| parts.name.clone(), |f| f.title.clone()),
        valid: parsed.is_valid(),
        graph: flight.map(graph::of_flight).unwrap_or_default(),
        graph_text,
        inputs,
        diagnostics,
        name: parts.name,
        origin: parts.origin,
        generation: parts.generation,
        generations: parts.generations,
        shadows_file: parts.shadows_file,
        markdown: parts.markdown,
    }
}

/// The newest generations of a catalog flight, from the latest down.
async fn generations(
    state: &AppState,
    name: &str,
    shown: &FlightGeneration,
) -> Result<Vec<Generation>, ApiError> {
    let latest = match state.store().catalog_flight(name, None).await? {
        Some(latest) => latest.generation,
        None => shown.generation,
    };
    let mut found = Vec::new();
    let oldest = (latest - GENERATIONS + 1).max(1);
    for number in (oldest..=latest).rev() {
        if let Some(saved) = state.store().catalog_flight(name, Some(number)).await? {
            found.push(Generation {
                generation: saved.generation,
                author: saved.author,
                created_at: saved.created_at,
                digest: saved.digest,
            });
        }
    }
    Ok(found)
}
