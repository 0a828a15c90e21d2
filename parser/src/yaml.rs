//! A thin view over saphyr's positioned YAML tree: typed reads that report into the sink
//! instead of failing, with every position mapped back into the flight's source.

use std::borrow::Cow;
use std::ops::Range;

use saphyr::{MarkedYaml, Scalar, YamlData};
use saphyr_parser::Marker;

use crate::diagnostic::{Code, Sink};
use crate::source::Source;

/// Where the YAML text sits in the flight, so that YAML markers map to flight offsets.
#[derive(Clone, Copy)]
pub(crate) struct Frame<'s> {
    pub source: &'s Source,
    /// 1-based flight line of the YAML text's first line.
    pub first_line: usize,
}

impl Frame<'_> {
    pub fn offset(&self, marker: &Marker) -> usize {
        self.source
            .offset(self.first_line + marker.line() - 1, marker.col())
    }

    pub fn span(&self, node: &MarkedYaml<'_>) -> Range<usize> {
        let start = self.offset(&node.span.start);
        let end = self.offset(&node.span.end).max(start);
        if end == start {
            start..self.source.line_range(start).end.max(start)
        } else {
            start..end
        }
    }
}

/// The name [`Reader::entries`] takes for the frontmatter itself.
pub(crate) const ROOT: &str = "the frontmatter";

pub(crate) type Node<'a> = MarkedYaml<'a>;

pub(crate) fn unwrap_tag<'n, 'a>(node: &'n Node<'a>) -> &'n Node<'a> {
    match &node.data {
        YamlData::Tagged(_, inner) => unwrap_tag(inner),
        _ => node,
    }
}

/// A scalar as text: strings as they are, numbers and booleans as YAML wrote them.
pub(crate) fn scalar_text<'n>(node: &'n Node<'_>) -> Option<Cow<'n, str>> {
    match &unwrap_tag(node).data {
        YamlData::Value(Scalar::String(text)) => Some(Cow::Borrowed(text.as_ref())),
        YamlData::Value(Scalar::Integer(n)) => Some(Cow::Owned(n.to_string())),
        YamlData::Value(Scalar::FloatingPoint(f)) => Some(Cow::Owned(f.to_string())),
        YamlData::Value(Scalar::Boolean(b)) => Some(Cow::Owned(b.to_string())),
        YamlData::Representation(text, ..) => Some(Cow::Borrowed(text.as_ref())),
        _ => None,
    }
}

pub(crate) fn is_null(node: &Node<'_>) -> bool {
    matches!(unwrap_tag(node).data, YamlData::Value(Scalar::Null))
}

pub(crate) fn describe(node: &Node<'_>) -> &'static str {
    match &unwrap_tag(node).data {
        YamlData::Value(Scalar::Null) => "nothing",
        YamlData::Value(Scalar::Boolean(_)) => "a boolean",
        YamlData::Value(Scalar::Integer(_) | Scalar::FloatingPoint(_)) => "a number",
        YamlData::Value(Scalar::String(_)) | YamlData::Representation(..) => "text",
        YamlData::Sequence(_) => "a list",
        YamlData::Mapping(_) => "a map",
        _ => "an unsupported YAML value",
    }
}

/// Typed reads of one YAML value; each reports a mismatch once and yields `None`.
pub(crate) struct Reader<'r, 's> {
    pub frame: Frame<'s>,
    pub sink: &'r mut Sink<'s>,
}

impl Reader<'_, '_> {
    pub fn string(&mut self, key: &str, node: &Node<'_>) -> Option<String> {
        match scalar_text(node) {
            Some(text) if !is_null(node) => Some(text.into_owned()),
            _ => self.mismatch(key, node, "text"),
        }
    }

    pub fn bool(&mut self, key: &str, node: &Node<'_>) -> Option<bool> {
        match unwrap_tag(node).data {
            YamlData::Value(Scalar::Boolean(b)) => Some(b),
            _ => self.mismatch(key, node, "`true` or `false`"),
        }
    }

    pub fn count(&mut self, key: &str, node: &Node<'_>) -> Option<u32> {
        match unwrap_tag(node).data {
            YamlData::Value(Scalar::Integer(n)) => match u32::try_from(n) {
                Ok(n) => Some(n),
                Err(_) => {
                    let span = self.frame.span(node);
                    self.sink.error(
                        Code::InvalidValue,
                        span,
                        format!("`{key}` must be a whole number of 0 or more, not {n}"),
                    );
                    None
                }
            },
            _ => self.mismatch(key, node, "a whole number of 0 or more"),
        }
    }

    pub fn strings(&mut self, key: &str, node: &Node<'_>) -> Option<Vec<(String, Range<usize>)>> {
        match &unwrap_tag(node).data {
            YamlData::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let text = self.string(key, item)?;
                    out.push((text, self.frame.span(item)));
                }
                Some(out)
            }
            YamlData::Value(Scalar::String(_)) | YamlData::Representation(..) => {
                let text = self.string(key, node)?;
                Some(vec![(text, self.frame.span(node))])
            }
            _ => self.mismatch(key, node, "a list of text"),
        }
    }

    pub fn mismatch<T>(&mut self, key: &str, node: &Node<'_>, expected: &str) -> Option<T> {
        self.mismatch_of(&format!("`{key}`"), node, expected)
    }

    /// As [`Self::mismatch`], with the thing named in full ("the frontmatter").
    pub fn mismatch_of<T>(&mut self, what: &str, node: &Node<'_>, expected: &str) -> Option<T> {
        let span = self.frame.span(node);
        let found = describe(node);
        self.sink.error(
            Code::InvalidValue,
            span,
            format!("{what} must be {expected}, not {found}"),
        );
        None
    }

    /// The entries of a mapping as (key text, key span, value); reports a non-mapping.
    pub fn entries<'n, 'a>(
        &mut self,
        key: &str,
        node: &'n Node<'a>,
    ) -> Option<Vec<(String, Range<usize>, &'n Node<'a>)>> {
        match &unwrap_tag(node).data {
            YamlData::Mapping(map) => Some(
                map.iter()
                    .map(|(k, v)| {
                        let text = scalar_text(k).map(Cow::into_owned).unwrap_or_default();
                        (text, self.frame.span(k), v)
                    })
                    .collect(),
            ),
            YamlData::Value(Scalar::Null) => Some(Vec::new()),
            _ if key == ROOT => self.mismatch_of(key, node, "a map of `key: value` lines"),
            _ => self.mismatch(key, node, "a map of `key: value` lines"),
        }
    }

    pub fn unknown_key(&mut self, key: &str, span: Range<usize>, place: &str, allowed: &[&str]) {
        let help = crate::names::suggestion(key, allowed);
        self.sink
            .error(
                Code::UnknownKey,
                span,
                format!("unknown key `{key}` in {place}"),
            )
            .help(help);
    }
}
