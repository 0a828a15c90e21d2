//! `murmur set flight`, `murmur get flight`, `murmur rm flight`: the catalog, in the local
//! store (author `local`) or on a server with `--server`.

use std::io::Read;

use anyhow::Context;
use murmur_engine::store::{FlightGeneration, NewGeneration};
use murmur_engine::{Clock, Store, SystemClock};
use murmur_parser::Source;
use serde_json::Value;

use crate::Exit;
use crate::cli::DbArgs;
use crate::cli::Target;
use crate::context::{block_on, existing_store, open_store, repository_for};
use crate::output::{emit, emit_line};
use crate::remote::{self, Remote};
use crate::report;
use crate::views::{FlightSummary, FlightText, SavedFlight};

/// Who saved a flight from this machine's command line.
const LOCAL_AUTHOR: &str = "local";

pub fn set(name: &str, target: &Target) -> anyhow::Result<Exit> {
    if !murmur_parser::valid_flight_name(name) {
        eprintln!(
            "error: `{name}` is not a flight name: {}",
            murmur_parser::FLIGHT_NAME_RULE
        );
        return Ok(Exit::Usage);
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("cannot read the flight from stdin")?;
    let text = String::from_utf8(bytes).context("the flight on stdin is not UTF-8 text")?;
    let source = Source::new(&text);
    let parsed = murmur_parser::parse_source(&source, name);
    if !parsed.is_valid() {
        let shown = format!("<stdin> ({name})");
        eprint!(
            "{}",
            report::render(&shown, &source, &parsed.diagnostics, report::use_colour())
        );
        eprintln!("flight `{name}` is invalid; nothing was saved");
        return Ok(Exit::Failure);
    }
    let saved = match &target.server {
        Some(url) => match Remote::new(url)?.put_markdown(&path(name), source.text()) {
            Ok(answer) => serde_json::from_value(answer).context("unexpected answer")?,
            Err(error) => return refused(error),
        },
        None => save_locally(name, source.text(), target)?,
    };
    emit_line(&format!(
        "flight {} saved as generation {} (digest {})",
        saved.name,
        saved.generation,
        saved.digest.get(..12).unwrap_or(&saved.digest)
    ));
    Ok(Exit::Success)
}

fn save_locally(name: &str, markdown: &str, target: &Target) -> anyhow::Result<SavedFlight> {
    let repo = repository_for(None);
    block_on(async {
        let store = open_store(&target.db, &repo).await?;
        let saved = store
            .save_flight(&NewGeneration {
                name,
                markdown,
                digest: &murmur_engine::run::digest(markdown),
                author: LOCAL_AUTHOR,
                created_at: &SystemClock.stamp(),
            })
            .await?;
        Ok(SavedFlight::from(saved.flight))
    })
}

/// A server's refusal: exit 1 for an invalid flight, else 2.
fn refused(error: anyhow::Error) -> anyhow::Result<Exit> {
    Ok(match remote::report(error)?.code.as_str() {
        "invalid_flight" => Exit::Failure,
        _ => Exit::Usage,
    })
}

fn path(name: &str) -> String {
    format!("/v1/flights/{name}")
}

pub fn get(
    name: &str,
    generation: Option<i64>,
    json: bool,
    target: &Target,
) -> anyhow::Result<Exit> {
    let found = match &target.server {
        Some(url) => {
            let query = generation
                .map(|n| format!("?generation={n}"))
                .unwrap_or_default();
            match Remote::new(url)?.get(&format!("{}{query}", path(name))) {
                Ok(answer) => Some(serde_json::from_value(answer).context("unexpected answer")?),
                Err(error) => return refused(error),
            }
        }
        None => local_flight(name, generation, target)?,
    };
    let Some(found) = found else {
        let which = generation
            .map(|n| format!(" generation {n}"))
            .unwrap_or_default();
        eprintln!("error: no flight `{name}`{which} in the catalog (`murmur get flight` lists it)");
        return Ok(Exit::Usage);
    };
    if json {
        emit_line(&serde_json::to_string_pretty(&found)?);
    } else {
        emit(&found.markdown);
    }
    Ok(Exit::Success)
}

fn local_flight(
    name: &str,
    generation: Option<i64>,
    target: &Target,
) -> anyhow::Result<Option<FlightText>> {
    let repo = repository_for(None);
    let saved = block_on(async {
        let store = open_store(&target.db, &repo).await?;
        Ok(store.catalog_flight(name, generation).await?)
    })?;
    Ok(saved.as_ref().and_then(text_of))
}

/// A saved flight with what its text says (a flight is valid when saved, so it parses).
fn text_of(saved: &FlightGeneration) -> Option<FlightText> {
    let source = Source::new(&saved.markdown);
    let flight = murmur_parser::parse_source(&source, &saved.name).flight?;
    Some(FlightText {
        summary: FlightSummary::new(&saved.name, &flight, source.text(), Some(saved)),
        markdown: saved.markdown.clone(),
    })
}

pub fn list(json: bool, target: &Target) -> anyhow::Result<Exit> {
    let flights: Vec<FlightSummary> = match &target.server {
        Some(url) => match Remote::new(url)?.get("/v1/flights") {
            Ok(answer) => serde_json::from_value(answer).context("unexpected answer")?,
            Err(error) => return refused(error),
        },
        None => catalog_summaries(target)?,
    };
    if json {
        emit_line(&serde_json::to_string_pretty(&flights)?);
        return Ok(Exit::Success);
    }
    emit(&table(&flights));
    Ok(Exit::Success)
}

/// The local catalog's flights, latest generation of each.
pub fn catalog_summaries(target: &Target) -> anyhow::Result<Vec<FlightSummary>> {
    let repo = repository_for(None);
    let saved = block_on(async {
        let store = open_store(&target.db, &repo).await?;
        Ok(store.catalog_flights().await?)
    })?;
    Ok(saved
        .iter()
        .filter_map(text_of)
        .map(|t| t.summary)
        .collect())
}

fn table(flights: &[FlightSummary]) -> String {
    let width = flights
        .iter()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<width$}  {:<10} {:>10}  {:<10} {:<24} {}\n",
        "NAME", "ORIGIN", "GENERATION", "AUTHOR", "SAVED", "TITLE"
    );
    for f in flights {
        let origin = serde_json::to_value(f.origin).unwrap_or(Value::Null);
        out.push_str(&format!(
            "{:<width$}  {:<10} {:>10}  {:<10} {:<24} {}\n",
            f.name,
            origin.as_str().unwrap_or(""),
            f.generation
                .map(|g| g.to_string())
                .unwrap_or_else(|| "-".into()),
            f.author.as_deref().unwrap_or("-"),
            f.created_at.as_deref().unwrap_or("-"),
            f.title
        ));
    }
    out
}

pub fn remove(name: &str, target: &Target) -> anyhow::Result<Exit> {
    let removed = match &target.server {
        Some(url) => match Remote::new(url)?.delete(&path(name)) {
            Ok(_) => true,
            Err(error) => return refused(error),
        },
        None => {
            let repo = repository_for(None);
            block_on(async {
                let store = open_store(&target.db, &repo).await?;
                Ok(store.delete_flight(name, &SystemClock.stamp()).await?)
            })?
        }
    };
    if !removed {
        eprintln!("error: no flight `{name}` in the catalog");
        return Ok(Exit::Usage);
    }
    eprintln!("flight {name} removed from the catalog");
    Ok(Exit::Success)
}

/// The local catalog's flight `argument`, when it is a flight name (not a path), a store
/// exists to look in (running never creates one), and the catalog has it, valid.
pub fn local_flight_to_run(
    argument: &str,
    db: &DbArgs,
) -> anyhow::Result<Option<(FlightGeneration, murmur_parser::Flight)>> {
    if !murmur_parser::valid_flight_name(argument) || argument.ends_with(".md") {
        return Ok(None);
    }
    let Some(url) = existing_store(db, &repository_for(None))? else {
        return Ok(None);
    };
    let saved = block_on(async {
        Ok(Store::open(&url)
            .await?
            .catalog_flight(argument, None)
            .await?)
    })?;
    let Some(saved) = saved else { return Ok(None) };
    let source = Source::new(&saved.markdown);
    let parsed = murmur_parser::parse_source(&source, &saved.name);
    let valid = parsed.is_valid();
    Ok(parsed
        .flight
        .filter(|_| valid)
        .map(|flight| (saved, flight)))
}
