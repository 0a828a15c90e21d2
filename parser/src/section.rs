//! One agent section: the directive lines at its top, then the prompt.

use std::ops::Range;

use crate::diagnostic::{Code, Sink};
use crate::flight::{Agent, Gate, Runtime};
use crate::names::{is_slug, list_items, split_list, suggestion};
use crate::outline::Section;

pub const DIRECTIVES: [&str; 14] = [
    "persona",
    "model",
    "needs",
    "continues",
    "gate",
    "branch",
    "each",
    "out",
    "runtime",
    "command",
    "timeout",
    "retries",
    "pool",
    "idle_timeout",
];

/// Where an agent's parts sit in the source, for checks that span several agents.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spans {
    pub heading: Range<usize>,
    pub needs: Vec<Range<usize>>,
    pub continues: Option<Range<usize>>,
    /// Directive values that may hold `${{ }}` references, with where they start.
    pub templated: Vec<Range<usize>>,
    /// The prompt, which may hold references too; kept apart from `templated` so that the
    /// common agent, whose directives hold none, needs no list.
    pub prompt: Range<usize>,
}

impl Spans {
    /// Every range that may hold references, in source order: the directives, then the prompt.
    pub fn with_references(&self) -> impl Iterator<Item = &Range<usize>> {
        self.templated.iter().chain([&self.prompt])
    }
}

/// A directive line split into key and value, with byte positions in the source.
struct Directive<'t> {
    key: &'t str,
    key_span: Range<usize>,
    value: &'t str,
    value_span: Range<usize>,
}

/// Takes the section by value so that its slug moves into the agent instead of being copied.
pub(crate) fn read(text: &str, section: Section, sink: &mut Sink<'_>) -> (Agent, Spans) {
    let mut agent = Agent::new(section.slug, section.line);
    let mut spans = Spans {
        heading: section.heading.clone(),
        ..Spans::default()
    };
    let mut seen = SeenKeys::default();
    let mut cursor = skip_blank_lines(text, section.body.clone());
    while let Some((directive, next)) = directive_at(text, cursor, section.body.end) {
        if seen.repeats(directive.key) && !matches!(directive.key, "needs" | "gate") {
            sink.error(
                Code::InvalidValue,
                directive.key_span.clone(),
                format!("`{}` is given twice", directive.key),
            )
            .help("keep one of the two lines");
        }
        apply(&mut agent, &mut spans, &directive, sink);
        cursor = next;
    }
    spans.prompt = cursor..section.body.end;
    agent.prompt = text[spans.prompt.clone()].trim().to_owned();
    if agent.prompt.is_empty() && agent.command.is_none() {
        sink.warning(
            Code::EmptyPrompt,
            section.heading.clone(),
            format!("agent `{}` has no prompt", agent.slug),
        )
        .help("write what the agent should do below its directives");
    }
    (agent, spans)
}

/// The directive keys met so far in one section, to report repeats. Known keys are bits, so
/// that the usual section (known keys only) allocates nothing.
#[derive(Default)]
struct SeenKeys<'t> {
    /// Bit `i` stands for `DIRECTIVES[i]`.
    known: u32,
    unknown: Vec<&'t str>,
}

const _: () = assert!(
    DIRECTIVES.len() <= 32,
    "SeenKeys::known has a bit per directive"
);

impl<'t> SeenKeys<'t> {
    /// Records `key`, and tells whether it was met before.
    fn repeats(&mut self, key: &'t str) -> bool {
        match DIRECTIVES.iter().position(|known| *known == key) {
            Some(index) => {
                let bit = 1 << index;
                let repeated = self.known & bit != 0;
                self.known |= bit;
                repeated
            }
            None => {
                let repeated = self.unknown.contains(&key);
                self.unknown.push(key);
                repeated
            }
        }
    }
}

fn skip_blank_lines(text: &str, range: Range<usize>) -> usize {
    let mut cursor = range.start;
    while cursor < range.end {
        let end = line_end(text, cursor, range.end);
        if !text[cursor..end].trim().is_empty() {
            break;
        }
        cursor = (end + 1).min(range.end);
    }
    cursor
}

fn line_end(text: &str, start: usize, limit: usize) -> usize {
    // `memchr` rather than `str::find`, whose char search costs more per call on short lines.
    memchr::memchr(b'\n', &text.as_bytes()[start..limit]).map_or(limit, |at| start + at)
}

/// The directive on the line at `start`, and where the next line begins.
fn directive_at(text: &str, start: usize, limit: usize) -> Option<(Directive<'_>, usize)> {
    if start >= limit {
        return None;
    }
    let end = line_end(text, start, limit);
    let line = &text[start..end];
    let indent = line.len() - line.trim_start_matches(' ').len();
    let after_marker = line[indent..].strip_prefix('>')?;
    if indent > 3 {
        return None;
    }
    let content_start = start + indent + 1;
    let (key, value) = after_marker.split_once(':')?;
    let key_trimmed = key.trim();
    if !is_key_shaped(key_trimmed) {
        return None;
    }
    let key_start = content_start + (key.len() - key.trim_start().len());
    let value_start = content_start + key.len() + 1 + (value.len() - value.trim_start().len());
    let value_trimmed = value.trim();
    let directive = Directive {
        key: key_trimmed,
        key_span: key_start..key_start + key_trimmed.len(),
        value: value_trimmed,
        value_span: value_start..value_start + value_trimmed.len(),
    };
    Some((directive, (end + 1).min(limit)))
}

fn is_key_shaped(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn apply(agent: &mut Agent, spans: &mut Spans, directive: &Directive<'_>, sink: &mut Sink<'_>) {
    let Directive { key, value, .. } = *directive;
    let span = directive.value_span.clone();
    if value.is_empty() && DIRECTIVES.contains(&key) {
        sink.error(
            Code::InvalidValue,
            directive.key_span.clone(),
            format!("`{key}` needs a value"),
        );
        return;
    }
    match key {
        "persona" => agent.persona = Some(value.to_owned()),
        "model" => agent.model = Some(value.to_owned()),
        "out" => agent.out = Some(value.to_owned()),
        "pool" => agent.pool = Some(value.to_owned()),
        "command" => {
            agent.command = Some(value.to_owned());
            spans.templated.push(span);
        }
        "each" => {
            agent.each = Some(value.to_owned());
            spans.templated.push(span);
        }
        "branch" => {
            agent.branch = Some(value.to_owned());
            check_branch(value, span.clone(), sink);
            spans.templated.push(span);
        }
        "needs" => read_needs(agent, spans, value, span.start, sink),
        "continues" => read_continues(agent, spans, value, span, sink),
        "gate" => read_gates(agent, value, span.start, sink),
        "runtime" => agent.runtime = runtime(value, span, sink),
        "timeout" => agent.timeout = duration(key, value, span, sink),
        "idle_timeout" => agent.idle_timeout = duration(key, value, span, sink),
        "retries" => agent.retries = count(key, value, span, sink),
        _ => {
            sink.error(
                Code::UnknownKey,
                directive.key_span.clone(),
                format!("unknown directive `{key}`"),
            )
            .help(suggestion(key, &DIRECTIVES));
        }
    }
}

fn read_needs(agent: &mut Agent, spans: &mut Spans, value: &str, base: usize, sink: &mut Sink<'_>) {
    for item in list_items(value) {
        let span = base + item.offset..base + item.offset + item.text.len();
        if !is_slug(item.text) {
            sink.error(
                Code::InvalidSlug,
                span,
                format!("`{}` is not an agent slug", item.text),
            )
            .help("agent slugs are lowercase letters, digits and `-`");
            continue;
        }
        if !agent.needs.iter().any(|need| need == item.text) {
            agent.needs.push(item.text.to_owned());
            spans.needs.push(span);
        }
    }
}

fn read_continues(
    agent: &mut Agent,
    spans: &mut Spans,
    value: &str,
    span: Range<usize>,
    sink: &mut Sink<'_>,
) {
    let items = split_list(value);
    if items.len() != 1 {
        sink.error(
            Code::InvalidValue,
            span,
            "`continues` names exactly one agent",
        )
        .help("to wait for several agents, use `needs`");
        return;
    }
    if !is_slug(items[0].text) {
        sink.error(
            Code::InvalidSlug,
            span,
            format!("`{}` is not an agent slug", items[0].text),
        );
        return;
    }
    agent.continues = Some(items[0].text.to_owned());
    spans.continues = Some(span);
}

fn read_gates(agent: &mut Agent, value: &str, base: usize, sink: &mut Sink<'_>) {
    for item in list_items(value) {
        let span = base + item.offset..base + item.offset + item.text.len();
        match Gate::ALL.iter().find(|(name, _)| *name == item.text) {
            Some((_, gate)) if !agent.gate.contains(gate) => agent.gate.push(*gate),
            Some(_) => {}
            None => {
                let names: Vec<&str> = Gate::ALL.iter().map(|(name, _)| *name).collect();
                sink.error(
                    Code::InvalidGate,
                    span,
                    format!("unknown gate `{}`", item.text),
                )
                .help(suggestion(item.text, &names));
            }
        }
    }
}

fn runtime(value: &str, span: Range<usize>, sink: &mut Sink<'_>) -> Option<Runtime> {
    let found = Runtime::ALL
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, r)| *r);
    if found.is_none() {
        let names: Vec<&str> = Runtime::ALL.iter().map(|(name, _)| *name).collect();
        sink.error(
            Code::InvalidValue,
            span,
            format!("unknown runtime `{value}`"),
        )
        .help(suggestion(value, &names));
    }
    found
}

fn duration(
    key: &str,
    value: &str,
    span: Range<usize>,
    sink: &mut Sink<'_>,
) -> Option<crate::Duration> {
    value
        .parse()
        .map_err(|error: crate::duration::ParseError| {
            sink.error(
                Code::InvalidDuration,
                span,
                format!("`{key}: {value}` is not a duration"),
            )
            .help(error.to_string());
        })
        .ok()
}

fn count(key: &str, value: &str, span: Range<usize>, sink: &mut Sink<'_>) -> Option<u32> {
    value
        .parse()
        .map_err(|_| {
            sink.error(
                Code::InvalidValue,
                span,
                format!("`{key}` must be a whole number of 0 or more, not `{value}`"),
            );
        })
        .ok()
}

/// The parts of git's ref-name rules that a user can get wrong by accident.
fn check_branch(value: &str, span: Range<usize>, sink: &mut Sink<'_>) {
    if value.contains("${{") {
        return;
    }
    let bad_char = value
        .chars()
        .find(|c| c.is_whitespace() || "~^:?*[\\".contains(*c));
    let problem = if let Some(c) = bad_char {
        Some(format!("a branch name cannot contain `{c}`"))
    } else if value.contains("..") || value.contains("//") || value.contains("@{") {
        Some("a branch name cannot contain `..`, `//` or `@{`".to_owned())
    } else if value.starts_with(['-', '/'])
        || value.ends_with(['/', '.'])
        || value.ends_with(".lock")
    {
        Some(
            "a branch name cannot start with `-` or `/`, or end with `/`, `.` or `.lock`"
                .to_owned(),
        )
    } else {
        None
    };
    if let Some(problem) = problem {
        sink.error(
            Code::InvalidValue,
            span,
            format!("`{value}` is not a valid branch name: {problem}"),
        );
    }
}
