//! Checks that look at several agents at once: names, `continues`, cycles and references.

use std::collections::hash_map::Entry;
use std::ops::Range;

use rustc_hash::FxHashMap;

use crate::dag::{find_cycles, has_cycle};
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

/// Drops every agent (and its spans) whose slug was already used, reporting each repeat.
pub(crate) fn dedupe(agents: &mut Vec<Agent>, spans: &mut Vec<Spans>, sink: &mut Sink<'_>) {
    let firsts = first_of_each_slug(agents, spans, sink);
    if firsts.contains(&false) {
        keep_where(agents, &firsts);
        keep_where(spans, &firsts);
    }
}

/// For each agent, whether it is the first with its slug; reports the others.
fn first_of_each_slug(agents: &[Agent], spans: &[Spans], sink: &mut Sink<'_>) -> Vec<bool> {
    let mut first_line: FxHashMap<&str, usize> = FxHashMap::default();
    first_line.reserve(agents.len());
    let mut firsts = Vec::with_capacity(agents.len());
    for (agent, spans) in agents.iter().zip(spans) {
        match first_line.entry(&agent.slug) {
            Entry::Vacant(entry) => {
                entry.insert(agent.line);
                firsts.push(true);
            }
            Entry::Occupied(entry) => {
                sink.error(
                    Code::DuplicateSlug,
                    spans.heading.clone(),
                    format!(
                        "agent `{}` is already defined on line {}",
                        agent.slug,
                        entry.get()
                    ),
                )
                .help("give each agent section its own slug");
                firsts.push(false);
            }
        }
    }
    firsts
}

/// Keeps the items whose flag is set (`retain` visits items once, in order).
fn keep_where<T>(items: &mut Vec<T>, keep: &[bool]) {
    let mut flags = keep.iter();
    items.retain(|_| flags.next().copied().unwrap_or(true));
}

pub(crate) fn check(flight: &Flight, spans: &[Spans], context: &Context<'_>, sink: &mut Sink<'_>) {
    let slugs: Vec<&str> = flight.agents.iter().map(|a| a.slug.as_str()).collect();
    let index = index_by_slug(flight);
    let upstreams: Vec<Vec<usize>> = flight
        .agents
        .iter()
        .zip(spans)
        .map(|(agent, spans)| check_names(agent, spans, &slugs, &index, sink))
        .collect();
    check_continues(flight, spans, &index, sink);
    if has_cycle(&upstreams) {
        report_cycles(flight, spans, sink);
    }
    let mut references = References::new(flight, index, upstreams);
    for (index, (agent, spans)) in flight.agents.iter().zip(spans).enumerate() {
        for range in spans.with_references() {
            references.check(Some((index, agent)), range.clone(), context, sink);
        }
    }
    for range in context.notes {
        references.check(None, range.clone(), context, sink);
    }
}

/// Each slug's agent index: the first agent with that slug, as [`Flight::agent`] finds it.
/// A map, so that lookups stay constant-time in flights with thousands of agents; hashed with
/// Fx, which is several times faster than the default SipHash on short keys such as slugs.
fn index_by_slug(flight: &Flight) -> FxHashMap<&str, usize> {
    let mut index = FxHashMap::default();
    index.reserve(flight.agents.len());
    for (at, agent) in flight.agents.iter().enumerate() {
        index.entry(agent.slug.as_str()).or_insert(at);
    }
    index
}

/// Reports the `needs` and `continues` names that are no agent of the flight, and returns the
/// indexes of those that are (the agent's upstreams, in the order of [`Agent::upstreams`]):
/// the one graph that the cycle and reference checks both walk.
fn check_names(
    agent: &Agent,
    spans: &Spans,
    slugs: &[&str],
    index: &FxHashMap<&str, usize>,
    sink: &mut Sink<'_>,
) -> Vec<usize> {
    let mut upstreams = Vec::with_capacity(agent.upstreams().count());
    let mentioned = agent.needs.iter().zip(spans.needs.iter().cloned());
    let continued = agent.continues.iter().zip(spans.continues.iter().cloned());
    for (slug, span) in mentioned.chain(continued) {
        if let Some(&upstream) = index.get(slug.as_str()) {
            upstreams.push(upstream);
        } else {
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
    upstreams
}

fn check_continues(
    flight: &Flight,
    spans: &[Spans],
    index: &FxHashMap<&str, usize>,
    sink: &mut Sink<'_>,
) {
    let mut continued_by: FxHashMap<&str, &str> = FxHashMap::default();
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
        let fans_out = index
            .get(upstream)
            .is_some_and(|&up| flight.agents[up].each.is_some());
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

/// Reports one cycle per group of agents that wait for each other. Only called once
/// [`has_cycle`] found one: naming the cycles needs a second, costlier graph.
fn report_cycles(flight: &Flight, spans: &[Spans], sink: &mut Sink<'_>) {
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
///
/// Whether one agent runs before another is answered per reference, by a walk up the graph
/// that stops as soon as it meets the agent. Materialising every agent's ancestor set instead
/// costs quadratic time and memory on long chains (10 s for a 10,000-agent flight).
struct References<'f> {
    flight: &'f Flight,
    index: FxHashMap<&'f str, usize>,
    /// Each agent's upstreams, from [`check_names`].
    upstreams: Vec<Vec<usize>>,
    /// Scratch space for [`References::runs_before`]: all `false` between calls.
    seen: Vec<bool>,
    queue: Vec<usize>,
}

impl<'f> References<'f> {
    fn new(
        flight: &'f Flight,
        index: FxHashMap<&'f str, usize>,
        upstreams: Vec<Vec<usize>>,
    ) -> Self {
        Self {
            flight,
            index,
            upstreams,
            seen: vec![false; flight.agents.len()],
            queue: Vec::new(),
        }
    }

    /// Whether `target` is reached from `owner` by following upstream links at least once
    /// (so an agent runs before itself only when it sits on a cycle).
    fn runs_before(&mut self, target: usize, owner: usize) -> bool {
        self.queue.clear();
        self.queue.push(owner);
        let mut found = false;
        let mut head = 0;
        'walk: while let Some(&current) = self.queue.get(head) {
            head += 1;
            for &up in &self.upstreams[current] {
                if up == target {
                    found = true;
                    break 'walk;
                }
                if !self.seen[up] {
                    self.seen[up] = true;
                    self.queue.push(up);
                }
            }
        }
        for &visited in &self.queue {
            self.seen[visited] = false;
        }
        found
    }

    /// `owner` is the agent whose text this is; `None` for the notes, which every agent sees.
    fn check(
        &mut self,
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
        &mut self,
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
        &mut self,
        owner: Option<usize>,
        slug: &str,
        span: Range<usize>,
        sink: &mut Sink<'_>,
    ) {
        let Some(&target) = self.index.get(slug) else {
            let close = did_you_mean(slug, self.flight.agents.iter().map(|a| a.slug.as_str()));
            sink.error(
                Code::UnknownReference,
                span,
                format!("there is no agent `{slug}` in this flight"),
            )
            .help_opt(close.map(|c| format!("did you mean `{c}`?")));
            return;
        };
        let Some(owner) = owner else {
            sink.error(
                Code::ReferenceNotUpstream,
                span,
                format!("the notes are shown to every agent, so they cannot use `{slug}`'s result"),
            )
            .help("move the reference into the section of an agent that needs it");
            return;
        };
        if !self.runs_before(target, owner) {
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
