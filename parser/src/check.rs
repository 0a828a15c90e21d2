//! Checks that look at several agents at once: names, `continues`, cycles and references.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use crate::dag::find_cycles;
use crate::diagnostic::{Code, Sink};
use crate::flight::{Agent, Flight};
use crate::names::did_you_mean;
use crate::outline::in_code;
use crate::reference::{Reference, occurrences, parse};
use crate::section::Spans;

pub(crate) struct Context<'a> {
    pub text: &'a str,
    pub code: &'a [Range<usize>],
    pub notes: &'a [Range<usize>],
}

/// Drops every agent whose slug was already used, reporting each repeat.
pub(crate) fn dedupe(agents: Vec<(Agent, Spans)>, sink: &mut Sink<'_>) -> Vec<(Agent, Spans)> {
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut kept = Vec::with_capacity(agents.len());
    for (agent, spans) in agents {
        if let Some(line) = first_line.get(&agent.slug) {
            sink.error(
                Code::DuplicateSlug,
                spans.heading.clone(),
                format!("agent `{}` is already defined on line {line}", agent.slug),
            )
            .help("give each agent section its own slug");
            continue;
        }
        first_line.insert(agent.slug.clone(), agent.line);
        kept.push((agent, spans));
    }
    kept
}

pub(crate) fn check(flight: &Flight, spans: &[Spans], context: &Context<'_>, sink: &mut Sink<'_>) {
    let slugs: Vec<&str> = flight.agents.iter().map(|a| a.slug.as_str()).collect();
    for (agent, spans) in flight.agents.iter().zip(spans) {
        check_names(agent, spans, &slugs, sink);
    }
    check_continues(flight, spans, sink);
    check_cycles(flight, spans, sink);
    let references = References::new(flight);
    for (index, (agent, spans)) in flight.agents.iter().zip(spans).enumerate() {
        for range in &spans.templated {
            references.check(Some((index, agent)), range.clone(), context, sink);
        }
    }
    for range in context.notes {
        references.check(None, range.clone(), context, sink);
    }
}

fn check_names(agent: &Agent, spans: &Spans, slugs: &[&str], sink: &mut Sink<'_>) {
    let mentioned = agent.needs.iter().zip(spans.needs.iter().cloned());
    let continued = agent.continues.iter().zip(spans.continues.iter().cloned());
    for (slug, span) in mentioned.chain(continued) {
        if !slugs.contains(&slug.as_str()) {
            let added = sink.error(
                Code::UnknownAgent,
                span,
                format!("there is no agent `{slug}` in this flight"),
            );
            added.help_opt(
                did_you_mean(slug, slugs.iter().copied())
                    .map(|close| format!("did you mean `{close}`?")),
            );
        }
    }
    if let (false, Some(span)) = (agent.needs.is_empty(), spans.continues.clone()) {
        sink.error(Code::NeedsAndContinues, span, format!("agent `{}` has both `needs` and `continues`", agent.slug))
            .help("`continues` already waits for the agent it continues; drop `needs`, or make this a fresh agent without `continues`");
    }
}

fn check_continues(flight: &Flight, spans: &[Spans], sink: &mut Sink<'_>) {
    let mut continued_by: HashMap<&str, &str> = HashMap::new();
    for (agent, spans) in flight.agents.iter().zip(spans) {
        let (Some(upstream), Some(span)) = (agent.continues.as_deref(), spans.continues.clone())
        else {
            continue;
        };
        if let Some(first) = continued_by.get(upstream) {
            sink.error(Code::ContinuesNotOneToOne, span, format!("`{upstream}` is already continued by `{first}`"))
                .help("a session has one next turn; chain them (`b` continues `a`, `c` continues `b`) or use `needs`");
            continue;
        }
        continued_by.insert(upstream, &agent.slug);
        let fans_out = flight.agent(upstream).is_some_and(|up| up.each.is_some());
        if fans_out || agent.each.is_some() {
            sink.error(
                Code::InvalidValue,
                span,
                "`continues` cannot be combined with a fan-out (`each`)",
            )
            .help("use `needs` to wait for every instance of a fan-out");
        }
    }
}

fn check_cycles(flight: &Flight, spans: &[Spans], sink: &mut Sink<'_>) {
    for cycle in find_cycles(&flight.agents) {
        let Some(&first) = cycle.0.first() else {
            continue;
        };
        let names: Vec<&str> = cycle
            .0
            .iter()
            .map(|&i| flight.agents[i].slug.as_str())
            .collect();
        let span = cycle_span(
            &flight.agents[first],
            &spans[first],
            names.get(names.len().saturating_sub(2)).copied(),
        );
        sink.error(
            Code::Cycle,
            span,
            format!("these agents wait for each other: {}", names.join(" -> ")),
        )
        .help("a flight is a DAG; remove one of the `needs`/`continues` links in the cycle");
    }
}

/// Points at the directive of `agent` that names its predecessor in the cycle.
fn cycle_span(agent: &Agent, spans: &Spans, predecessor: Option<&str>) -> Range<usize> {
    let from_needs = agent
        .needs
        .iter()
        .position(|slug| Some(slug.as_str()) == predecessor)
        .and_then(|i| spans.needs.get(i).cloned());
    from_needs
        .or_else(|| spans.continues.clone())
        .unwrap_or_else(|| spans.heading.clone())
}

/// What each agent may refer to: inputs, and the agents upstream of it.
struct References<'f> {
    flight: &'f Flight,
    ancestors: Vec<HashSet<&'f str>>,
}

impl<'f> References<'f> {
    fn new(flight: &'f Flight) -> Self {
        let by_slug: HashMap<&str, &Agent> =
            flight.agents.iter().map(|a| (a.slug.as_str(), a)).collect();
        let ancestors = flight
            .agents
            .iter()
            .map(|agent| ancestors_of(agent, &by_slug))
            .collect();
        Self { flight, ancestors }
    }

    /// `owner` is the agent whose text this is; `None` for the notes, which every agent sees.
    fn check(
        &self,
        owner: Option<(usize, &Agent)>,
        range: Range<usize>,
        context: &Context<'_>,
        sink: &mut Sink<'_>,
    ) {
        let text = &context.text[range.clone()];
        for occurrence in occurrences(text) {
            let span = range.start + occurrence.span.start..range.start + occurrence.span.end;
            match parse(occurrence.expression) {
                Ok(reference) => self.check_reference(owner, &reference, span, sink),
                Err(error) if error.is_foreign() && in_code(context.code, span.start) => {}
                Err(error) => {
                    sink.error(Code::UnknownReference, span, error.to_string())
                        .help("references are `inputs.NAME`, `event.PATH`, `needs.SLUG.response|branch|prs|commits`, `item`, `run.id`, `flight.name`");
                }
            }
        }
    }

    fn check_reference(
        &self,
        owner: Option<(usize, &Agent)>,
        reference: &Reference<'_>,
        span: Range<usize>,
        sink: &mut Sink<'_>,
    ) {
        match (reference, owner) {
            (Reference::Input(name), _) => {
                let inputs = &self.flight.frontmatter.inputs;
                if !inputs.contains_key(*name) {
                    let close = did_you_mean(name, inputs.keys().map(String::as_str));
                    sink.error(
                        Code::UnknownReference,
                        span,
                        format!("there is no input `{name}`"),
                    )
                    .help(close.map_or_else(
                        || format!("declare `{name}` under `inputs:` in the frontmatter"),
                        |c| format!("did you mean `{c}`?"),
                    ));
                }
            }
            (Reference::Upstream { slug, .. }, owner) => {
                self.check_upstream(owner.map(|(index, _)| index), slug, span, sink)
            }
            (Reference::Item, Some((_, agent))) if agent.each.is_some() => {}
            (Reference::Item, _) => {
                sink.error(
                    Code::UnknownReference,
                    span,
                    "`item` exists only in a fan-out agent (one with `each`)",
                );
            }
            _ => {}
        }
    }

    fn check_upstream(
        &self,
        owner: Option<usize>,
        slug: &str,
        span: Range<usize>,
        sink: &mut Sink<'_>,
    ) {
        if self.flight.agent(slug).is_none() {
            let close = did_you_mean(slug, self.flight.agents.iter().map(|a| a.slug.as_str()));
            sink.error(
                Code::UnknownReference,
                span,
                format!("there is no agent `{slug}` in this flight"),
            )
            .help_opt(close.map(|c| format!("did you mean `{c}`?")));
            return;
        }
        let Some(owner) = owner else {
            sink.error(
                Code::ReferenceNotUpstream,
                span,
                format!("the notes are shown to every agent, so they cannot use `{slug}`'s result"),
            )
            .help("move the reference into the section of an agent that needs it");
            return;
        };
        if !self.ancestors[owner].contains(slug) {
            let me = &self.flight.agents[owner].slug;
            sink.error(
                Code::ReferenceNotUpstream,
                span,
                format!("`{me}` refers to `{slug}`, which does not run before it"),
            )
            .help(format!("add `> needs: {slug}` to `{me}`"));
        }
    }
}

fn ancestors_of<'f>(agent: &'f Agent, by_slug: &HashMap<&str, &'f Agent>) -> HashSet<&'f str> {
    let mut seen = HashSet::new();
    let mut stack: Vec<&str> = agent.upstreams().collect();
    while let Some(slug) = stack.pop() {
        if let Some(up) = by_slug.get(slug)
            && seen.insert(up.slug.as_str())
        {
            stack.extend(up.upstreams());
        }
    }
    seen
}
