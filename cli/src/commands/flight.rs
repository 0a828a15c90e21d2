//! `murmur flight validate | graph | ls`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use murmur_engine::Store;
use murmur_engine::preflight::{self, machine};
use murmur_parser::{Dag, Diagnostic, Flight, Parsed, Source};
use serde_json::{Value, json};

use crate::Exit;
use crate::cli::{DbArgs, GraphArgs, GraphFormat, LsArgs, ValidateArgs};
use crate::config::Config;
use crate::locate;
use crate::output::{emit, emit_line};
use crate::report;

/// A flight file read and parsed, with its source kept for rendering diagnostics.
pub struct Loaded {
    pub path: PathBuf,
    pub source: Source,
    pub parsed: Parsed,
}

/// The flight a run starts from: its name, text and, for a file, where it is.
pub struct Chosen {
    pub name: String,
    pub source: String,
    pub flight: murmur_parser::Flight,
    pub path: Option<PathBuf>,
    pub repo: PathBuf,
}

pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|error| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            error.utf8_error().valid_up_to()
        )
    })?;
    let source = Source::new(&text);
    let fallback = locate::flight_name(path).unwrap_or_else(|| "flight".to_owned());
    let parsed = murmur_parser::parse_source(&source, &fallback);
    Ok(Loaded {
        path: path.to_path_buf(),
        source,
        parsed,
    })
}

pub fn validate(args: &ValidateArgs) -> anyhow::Result<Exit> {
    let mut exit = Exit::Success;
    let mut objects = Vec::new();
    let colour = report::use_colour();
    for argument in &args.paths {
        let loaded = locate::resolve_flight(argument)
            .and_then(|path| load(&path))
            .and_then(with_repository_checks);
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                eprintln!("error: {error:#}");
                objects.push(json!({"path": argument, "valid": false, "flight": null, "diagnostics": [], "error": format!("{error:#}")}));
                exit = Exit::Usage;
                continue;
            }
        };
        if !loaded.parsed.is_valid() && exit == Exit::Success {
            exit = Exit::Failure;
        }
        if args.json {
            objects.push(validation_json(&loaded));
        } else {
            emit(&human_summary(&loaded, colour));
        }
    }
    if args.json {
        let value = if objects.len() == 1 {
            objects.remove(0)
        } else {
            Value::Array(objects)
        };
        emit_line(&serde_json::to_string_pretty(&value)?);
    }
    Ok(exit)
}

/// Adds what preflight finds against the flight's repository (its personas, its
/// configuration) to the parser's diagnostics; a flight outside any repository is checked
/// against the built-ins and the default configuration.
fn with_repository_checks(mut loaded: Loaded) -> anyhow::Result<Loaded> {
    let Some(flight) = &loaded.parsed.flight else {
        return Ok(loaded);
    };
    let folder = loaded
        .path
        .canonicalize()
        .unwrap_or_else(|_| loaded.path.clone());
    let repo = folder.parent().and_then(locate::repository_root);
    let config = match &repo {
        Some(repo) => Config::load(repo)?,
        None => Config::default(),
    };
    let found = preflight::check(flight, &loaded.source, &config.facts(repo.as_deref()));
    let diagnostics = &mut loaded.parsed.diagnostics;
    diagnostics.extend(found);
    preflight::sort(diagnostics);
    Ok(loaded)
}

/// What `flight run` checks before it records a run, in one pass: the flight against the
/// repository (the diagnostics `flight validate` shows), then this machine (a clean tree,
/// the agent CLIs, remotes). `Err` is the exit status, after saying what is wrong.
pub fn preflight(chosen: &Chosen) -> anyhow::Result<Result<(), Exit>> {
    let config = Config::load(&chosen.repo)?;
    let facts = config.facts(Some(&chosen.repo));
    let source = Source::new(&chosen.source);
    let errors: Vec<Diagnostic> = preflight::check(&chosen.flight, &source, &facts)
        .into_iter()
        .filter(Diagnostic::is_error)
        .collect();
    if !errors.is_empty() {
        let shown = match &chosen.path {
            Some(path) => path.display().to_string(),
            None => format!("flight `{}`", chosen.name),
        };
        eprint!(
            "{}",
            report::render(&shown, &source, &errors, report::use_colour())
        );
        eprintln!(
            "{shown}: cannot run ({} error{}; `murmur flight validate` reports the same)",
            errors.len(),
            plural(errors.len())
        );
        return Ok(Err(Exit::Usage));
    }
    let (claude, codex) = (config.claude(), config.codex());
    let host = machine::Host {
        repository: &chosen.repo,
        claude: &claude.binary,
        codex: &codex.binary,
        github_token: config.github().token.is_some(),
    };
    let refusals = crate::context::block_on(async {
        Ok(machine::check(&chosen.flight, &facts, &host).await)
    })?;
    if refusals.is_empty() {
        return Ok(Ok(()));
    }
    for refusal in &refusals {
        eprintln!("error: {refusal}");
    }
    eprintln!("nothing was started: fix the above and run the flight again");
    Ok(Err(Exit::Usage))
}

fn validation_json(loaded: &Loaded) -> Value {
    json!({
        "path": loaded.path.display().to_string(),
        "valid": loaded.parsed.is_valid(),
        "flight": loaded.parsed.flight,
        "diagnostics": loaded.parsed.diagnostics,
    })
}

fn human_summary(loaded: &Loaded, colour: bool) -> String {
    let path = loaded.path.display().to_string();
    let mut out = report::render(&path, &loaded.source, &loaded.parsed.diagnostics, colour);
    let errors = loaded.parsed.errors().count();
    let warnings = loaded.parsed.diagnostics.len() - errors;
    let agents = loaded.parsed.flight.as_ref().map_or(0, |f| f.agents.len());
    let verdict = if errors == 0 { "valid" } else { "invalid" };
    out.push_str(&format!(
        "{path}: {verdict} ({agents} agent{}, {errors} error{}, {warnings} warning{})\n",
        plural(agents),
        plural(errors),
        plural(warnings)
    ));
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Loads a flight and insists that it is valid, printing its diagnostics otherwise.
pub fn load_valid(argument: &str) -> anyhow::Result<Result<(Loaded, Flight, Dag), Exit>> {
    let loaded = load(&locate::resolve_flight(argument)?)?;
    if !loaded.parsed.is_valid() {
        eprint!("{}", human_summary(&loaded, report::use_colour()));
        return Ok(Err(Exit::Failure));
    }
    let flight = loaded
        .parsed
        .flight
        .clone()
        .context("a valid flight always has a body")?;
    let dag =
        Dag::build(&flight.agents).map_err(|_| anyhow::anyhow!("a valid flight has no cycle"))?;
    Ok(Ok((loaded, flight, dag)))
}

pub fn graph(args: &GraphArgs) -> anyhow::Result<Exit> {
    let (_, flight, dag) = match load_valid(&args.flight)? {
        Ok(valid) => valid,
        Err(exit) => return Ok(exit),
    };
    let rendered = match args.format {
        GraphFormat::Mermaid => murmur_parser::graph::mermaid(&flight, &dag),
        GraphFormat::Dot => murmur_parser::graph::dot(&flight, &dag),
        GraphFormat::Text => murmur_parser::graph::text(&flight, &dag),
    };
    emit(&rendered);
    Ok(Exit::Success)
}

pub fn ls(args: &LsArgs) -> anyhow::Result<Exit> {
    let root = match &args.repo {
        Some(dir) => dir.clone(),
        None => locate::current_repository()?,
    };
    let mut rows: Vec<Value> = locate::flight_files(&root)?
        .iter()
        .map(|path| listing(&root, path))
        .collect();
    rows.extend(catalog_listing(&args.db, &root)?);
    if args.json {
        emit_line(&serde_json::to_string_pretty(&rows)?);
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        emit_line(&format!(
            "no flights in {}",
            root.join(locate::FLIGHTS_DIR).display()
        ));
        return Ok(Exit::Success);
    }
    emit(&table(&rows));
    Ok(Exit::Success)
}

fn listing(root: &Path, path: &Path) -> Value {
    let name = locate::flight_name(path).unwrap_or_default();
    let shown = path
        .strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string();
    match load(path) {
        Ok(loaded) => {
            let flight = loaded.parsed.flight.as_ref();
            json!({
                "name": name,
                "origin": "repository",
                "path": shown,
                "title": flight.map(|f| f.title.clone()),
                "agents": flight.map_or(0, |f| f.agents.len()),
                "triggers": flight.map(|f| f.frontmatter.on.names()).unwrap_or_default(),
                "valid": loaded.parsed.is_valid(),
            })
        }
        Err(error) => {
            json!({"name": name, "origin": "repository", "path": shown, "title": null, "agents": 0, "triggers": [], "valid": false, "error": format!("{error:#}")})
        }
    }
}

/// The catalog's flights, when there is a store to read: `--db`, or the repository's default
/// store if it exists (listing never creates one).
fn catalog_listing(db: &DbArgs, root: &Path) -> anyhow::Result<Vec<Value>> {
    let Some(url) = crate::context::existing_store(db, root)? else {
        return Ok(Vec::new());
    };
    let saved =
        crate::context::block_on(async { Ok(Store::open(&url).await?.catalog_flights().await?) })?;
    Ok(saved
        .iter()
        .map(|saved| {
            let source = Source::new(&saved.markdown);
            let parsed = murmur_parser::parse_source(&source, &saved.name);
            let flight = parsed.flight.as_ref();
            json!({
                "name": saved.name,
                "origin": "catalog",
                "path": null,
                "generation": saved.generation,
                "title": flight.map(|f| f.title.clone()),
                "agents": flight.map_or(0, murmur_engine::executor::agent_count),
                "triggers": flight.map(|f| f.frontmatter.on.names()).unwrap_or_default(),
                "valid": parsed.is_valid(),
            })
        })
        .collect())
}

fn table(rows: &[Value]) -> String {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|row| {
            let triggers: Vec<&str> = row["triggers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut title = row["title"].as_str().unwrap_or("").to_owned();
            if row["valid"] != Value::Bool(true) {
                title.push_str("  (invalid: run `murmur flight validate`)");
            }
            if let Some(generation) = row["generation"].as_i64() {
                title.push_str(&format!("  (catalog, generation {generation})"));
            }
            [
                row["name"].as_str().unwrap_or("").to_owned(),
                row["agents"].to_string(),
                if triggers.is_empty() {
                    "-".to_owned()
                } else {
                    triggers.join(",")
                },
                title,
            ]
        })
        .collect();
    let header = [
        "NAME".to_owned(),
        "AGENTS".to_owned(),
        "TRIGGERS".to_owned(),
        "TITLE".to_owned(),
    ];
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            cells
                .iter()
                .chain([&header])
                .map(|c| c[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        out.push_str(&format!(
            "{:w0$}  {:>w1$}  {:w2$}  {}\n",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        ));
    }
    out
}
