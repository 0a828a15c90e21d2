//! Murmur flight documents: Markdown in, a typed [`Flight`], its [`Dag`] and every
//! [`Diagnostic`] out. Pure: no IO, no clock, and no input makes it panic.
//!
//! Parsing runs in stages over one normalised [`Source`]: frontmatter (YAML), the Markdown
//! outline (title, notes, agent sections), each section's directives, then the checks that
//! look across agents. Every stage reports into one list and keeps going.

mod check;
pub mod dag;
mod diagnostic;
mod duration;
mod fanout;
mod flight;
mod frontmatter;
pub mod graph;
mod names;
mod outline;
pub mod reference;
pub mod script;
mod section;
mod source;
mod triggers;
mod written;
mod yaml;

use serde::{Deserialize, Serialize};

pub use dag::{Cycle, Dag, Edge};
pub use diagnostic::{Code, Diagnostic, Severity};
pub use duration::{Duration, ParseError as DurationError};
pub use fanout::{FanOut, instance_slug, items_from_text};
pub use flight::{
    Agent, DEFAULT_POOL, DequeueStrategy, Flight, Frontmatter, Gate, InputSpec, OnIdle, Runtime,
};
pub use names::{FLIGHT_NAME_RULE, did_you_mean, is_slug, slugify, valid_flight_name};
pub use source::{Position, Source};
pub use triggers::{EventFilter, Schedule, ScheduleError, Triggers, parse_cron};
pub use written::{OneAgent, one_agent_flight};

/// The outcome of parsing one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parsed {
    /// Present whenever the document could be read at all, even when it has errors.
    pub flight: Option<Flight>,
    /// Sorted by position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    pub fn is_valid(&self) -> bool {
        self.flight.is_some() && !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

/// Parses and validates a flight. `fallback_title` names the flight when it has no H1
/// (the file stem, by convention).
pub fn parse(text: &str, fallback_title: &str) -> Parsed {
    let source = Source::new(text);
    parse_source(&source, fallback_title)
}

/// As [`parse`], for callers that keep the [`Source`] to render diagnostics against.
pub fn parse_source(source: &Source, fallback_title: &str) -> Parsed {
    let text = source.text();
    let mut sink = diagnostic::Sink::new(source);
    let split = frontmatter::split(text, &mut sink);
    let front = match split.yaml.clone() {
        Some(range) => frontmatter::read(text, range, &mut sink),
        None => Frontmatter::default(),
    };
    let outline = outline::outline(text, split.body_start, &mut sink);
    let title = title_or_report(&outline, split.body_start, fallback_title, &mut sink);
    // Agents and their spans side by side, so that no large (agent, spans) pairs are moved around.
    let (mut agents, mut spans): (Vec<_>, Vec<_>) = outline
        .sections
        .into_iter()
        .map(|section| section::read(text, section, &mut sink))
        .unzip();
    check::dedupe(&mut agents, &mut spans, &mut sink);
    let notes = outline
        .notes
        .iter()
        .map(|range| &text[range.clone()])
        .collect::<String>()
        .trim()
        .to_owned();
    let flight = Flight {
        title,
        workspace: front.workspace.clone(),
        notes,
        frontmatter: front,
        agents,
    };
    let context = check::Context {
        text,
        code: &outline.code,
        notes: &outline.notes,
    };
    check::check(&flight, &spans, &context, &mut sink);
    Parsed {
        flight: Some(flight),
        diagnostics: sink.finish(),
    }
}

fn title_or_report(
    outline: &outline::Outline,
    body_start: usize,
    fallback: &str,
    sink: &mut diagnostic::Sink<'_>,
) -> String {
    match &outline.title {
        Some(heading) if !heading.text.is_empty() => heading.text.clone(),
        other => {
            let span = other
                .as_ref()
                .map_or(body_start..body_start, |h| h.range.clone());
            sink.error(Code::MissingTitle, span, "the flight has no title")
                .help("start the document (after the frontmatter) with a `# Title` line");
            fallback.to_owned()
        }
    }
}
