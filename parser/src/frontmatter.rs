//! The YAML frontmatter: split off the document, then read key by key so that every bad key
//! is reported, not just the first.

use std::ops::Range;

use saphyr::{LoadableYamlNode, MarkedYaml};

use crate::diagnostic::{Code, Sink};
use crate::duration::Duration;
use crate::flight::{DequeueStrategy, Frontmatter, InputSpec, OnIdle, Runtime};
use crate::names::{is_slug, suggestion};
use crate::yaml::{Frame, Node, Reader};

pub const KEYS: [&str; 17] = [
    "workspace",
    "on",
    "max_concurrent",
    "persona",
    "model",
    "out",
    "dequeue_strategy",
    "daemon",
    "service_profile",
    "idle_timeout",
    "on_idle",
    "tags",
    "inputs",
    "runtime",
    "timeout",
    "retries",
    "pool",
];

const MAX_TAGS: usize = 8;

/// Where the frontmatter's YAML and the Markdown body sit in the source.
pub(crate) struct Split {
    pub yaml: Option<Range<usize>>,
    pub body_start: usize,
}

/// Frontmatter is a `---` line at the very top, closed by a `---` (or `...`) line.
pub(crate) fn split(text: &str, sink: &mut Sink<'_>) -> Split {
    let Some(first_line_end) = opening_fence(text) else {
        return Split {
            yaml: None,
            body_start: 0,
        };
    };
    let yaml_start = first_line_end;
    let mut line_start = yaml_start;
    while line_start < text.len() {
        let line_end = text[line_start..]
            .find('\n')
            .map_or(text.len(), |at| line_start + at);
        let line = text[line_start..line_end].trim_end();
        if line == "---" || line == "..." {
            let body_start = (line_end + 1).min(text.len());
            return Split {
                yaml: Some(yaml_start..line_start),
                body_start,
            };
        }
        line_start = line_end + 1;
    }
    sink.error(
        Code::FrontmatterSyntax,
        0..3,
        "the frontmatter is never closed",
    )
    .help("end the YAML block with a line containing only `---`");
    Split {
        yaml: None,
        body_start: first_line_end.min(text.len()),
    }
}

fn opening_fence(text: &str) -> Option<usize> {
    let first_line = text.split('\n').next()?;
    (first_line.trim_end() == "---").then(|| (first_line.len() + 1).min(text.len()))
}

pub(crate) fn read(text: &str, range: Range<usize>, sink: &mut Sink<'_>) -> Frontmatter {
    let source = sink.source();
    let frame = Frame {
        source,
        first_line: source.position(range.start).line,
    };
    let yaml = &text[range.clone()];
    let documents = match MarkedYaml::load_from_str(yaml) {
        Ok(documents) => documents,
        Err(error) => {
            let at = frame.offset(error.marker());
            let line = source.line_range(at);
            sink.error(Code::FrontmatterSyntax, at..line.end.max(at + 1).min(text.len()), format!("the frontmatter is not valid YAML: {}", error.info()))
                .help("frontmatter is YAML between `---` lines; quote values that contain `: `, `#`, `[` or `{`");
            return Frontmatter::default();
        }
    };
    let mut reader = Reader { frame, sink };
    match documents.first() {
        Some(root) if !crate::yaml::is_null(root) => read_root(&mut reader, root),
        _ => Frontmatter::default(),
    }
}

fn read_root(reader: &mut Reader<'_, '_>, root: &Node<'_>) -> Frontmatter {
    let mut front = Frontmatter::default();
    let Some(entries) = reader.entries(crate::yaml::ROOT, root) else {
        return front;
    };
    for (key, span, value) in entries {
        read_key(reader, &mut front, &key, span, value);
    }
    front
}

fn read_key(
    reader: &mut Reader<'_, '_>,
    front: &mut Frontmatter,
    key: &str,
    span: Range<usize>,
    value: &Node<'_>,
) {
    match key {
        "workspace" => front.workspace = reader.string(key, value),
        "on" => front.on = crate::triggers::read_triggers(reader, value),
        "max_concurrent" => front.max_concurrent = reader.count(key, value).unwrap_or(0),
        "persona" => set(&mut front.persona, reader.string(key, value)),
        "model" => front.model = reader.string(key, value),
        "out" => front.out = reader.string(key, value),
        "dequeue_strategy" => set(
            &mut front.dequeue_strategy,
            choice(reader, key, value, &DequeueStrategy::ALL),
        ),
        "daemon" => set(&mut front.daemon, reader.bool(key, value)),
        "service_profile" => front.service_profile = reader.string(key, value),
        "idle_timeout" => set(&mut front.idle_timeout, duration(reader, key, value)),
        "on_idle" => set(&mut front.on_idle, choice(reader, key, value, &OnIdle::ALL)),
        "tags" => front.tags = tags(reader, value),
        "inputs" => front.inputs = inputs(reader, value),
        "runtime" => set(
            &mut front.runtime,
            choice(reader, key, value, &Runtime::ALL),
        ),
        "timeout" => front.timeout = duration(reader, key, value),
        "retries" => front.retries = reader.count(key, value).unwrap_or(0),
        "pool" => front.pool = reader.string(key, value),
        _ => reader.unknown_key(key, span, "the frontmatter", &KEYS),
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

fn choice<T: Copy>(
    reader: &mut Reader<'_, '_>,
    key: &str,
    node: &Node<'_>,
    options: &[(&str, T)],
) -> Option<T> {
    let text = reader.string(key, node)?;
    if let Some((_, value)) = options.iter().find(|(name, _)| *name == text) {
        return Some(*value);
    }
    let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
    let span = reader.frame.span(node);
    reader
        .sink
        .error(
            Code::InvalidValue,
            span,
            format!("`{text}` is not a valid `{key}`"),
        )
        .help(suggestion(&text, &names));
    None
}

fn duration(reader: &mut Reader<'_, '_>, key: &str, node: &Node<'_>) -> Option<Duration> {
    let text = reader.string(key, node)?;
    match text.parse() {
        Ok(duration) => Some(duration),
        Err(error) => {
            let span = reader.frame.span(node);
            reader
                .sink
                .error(
                    Code::InvalidDuration,
                    span,
                    format!("`{key}: {text}` is not a duration"),
                )
                .help(error.to_string());
            None
        }
    }
}

fn tags(reader: &mut Reader<'_, '_>, node: &Node<'_>) -> Vec<String> {
    let tags = reader.strings("tags", node).unwrap_or_default();
    if tags.len() > MAX_TAGS {
        let span = reader.frame.span(node);
        reader
            .sink
            .error(
                Code::TooManyTags,
                span,
                format!("{} tags given; a flight has at most {MAX_TAGS}", tags.len()),
            )
            .help("drop the least useful tags");
    }
    for (tag, span) in &tags {
        if !is_slug(tag) {
            reader
                .sink
                .error(
                    Code::InvalidSlug,
                    span.clone(),
                    format!("tag `{tag}` is not slug-shaped"),
                )
                .help(format!(
                    "use lowercase letters, digits and `-`, e.g. `{}`",
                    crate::names::slugify(tag, 63)
                ));
        }
    }
    tags.into_iter().map(|(tag, _)| tag).collect()
}

const INPUT_KEYS: [&str; 3] = ["description", "default", "required"];

fn inputs(
    reader: &mut Reader<'_, '_>,
    node: &Node<'_>,
) -> std::collections::BTreeMap<String, InputSpec> {
    let mut inputs = std::collections::BTreeMap::new();
    for (name, span, value) in reader.entries("inputs", node).unwrap_or_default() {
        if !is_input_name(&name) {
            reader
                .sink
                .error(
                    Code::InvalidValue,
                    span.clone(),
                    format!("`{name}` is not a valid input name"),
                )
                .help("input names start with a letter and use letters, digits, `_` and `-`");
        }
        let mut spec = InputSpec::default();
        for (key, key_span, field) in reader
            .entries(&format!("inputs.{name}"), value)
            .unwrap_or_default()
        {
            match key.as_str() {
                "description" => spec.description = reader.string(&key, field),
                "default" => spec.default = reader.string(&key, field),
                "required" => spec.required = reader.bool(&key, field).unwrap_or(false),
                _ => reader.unknown_key(&key, key_span, &format!("input `{name}`"), &INPUT_KEYS),
            }
        }
        inputs.insert(name, spec);
    }
    inputs
}

pub(crate) fn is_input_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
