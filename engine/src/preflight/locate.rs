//! Where a directive is written in the flight's source, so that a preflight diagnostic points
//! at the line a person must change. The typed flight keeps only each agent's heading line,
//! so the directive lines are found again here, read the way the parser reads them.

use std::ops::Range;

use murmur_parser::Source;

use super::{Part, Place};

/// A `key: value` line: where its key and its value are.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    key: Range<usize>,
    value: Range<usize>,
}

impl Written {
    fn part(self, part: Part) -> Range<usize> {
        match part {
            Part::Key => self.key,
            Part::Value => self.value,
        }
    }
}

/// The bytes a place names; a directive that is not written (anymore) falls back to its
/// section's heading, a frontmatter key to the document's start.
pub(super) fn span(source: &Source, place: &Place) -> Range<usize> {
    match place {
        Place::Frontmatter { key, part } => {
            frontmatter(source, key).map_or(0..0, |written| written.part(*part))
        }
        Place::Directive {
            line,
            key,
            containing,
            part,
        } => directives(source, *line)
            .filter(|(found, _)| found == key)
            .map(|(_, written)| written)
            .find(|written| source.text()[written.value.clone()].contains(containing))
            .map_or_else(|| heading(source, *line), |written| written.part(*part)),
        Place::Heading { line } => heading(source, *line),
    }
}

fn heading(source: &Source, line: usize) -> Range<usize> {
    source.line_range(source.offset(line.max(1), 0))
}

/// The section's directive lines, as the parser reads them: after the heading (and a setext
/// underline) and any blank lines, every consecutive `> key: value` line.
fn directives(source: &Source, heading: usize) -> impl Iterator<Item = (&str, Written)> {
    let text = source.text();
    let mut lines = lines_from(source, heading + 1).peekable();
    if lines
        .peek()
        .is_some_and(|line| is_setext_underline(&text[line.clone()]))
    {
        lines.next();
    }
    lines
        .skip_while(move |line| text[line.clone()].trim().is_empty())
        .map_while(move |line| directive_on(text, line))
}

fn lines_from(source: &Source, first: usize) -> impl Iterator<Item = Range<usize>> + '_ {
    let text_len = source.text().len();
    let mut next = (first >= 1).then(|| source.offset(first, 0));
    std::iter::from_fn(move || {
        let start = next.filter(|&start| start < text_len)?;
        let line = source.line_range(start);
        next = Some(line.end + 1);
        Some(line)
    })
}

fn is_setext_underline(line: &str) -> bool {
    let line = line.trim();
    !line.is_empty() && (line.chars().all(|c| c == '-') || line.chars().all(|c| c == '='))
}

fn directive_on(text: &str, line: Range<usize>) -> Option<(&str, Written)> {
    let content = &text[line.clone()];
    let indent = content.len() - content.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let after_marker = content[indent..].strip_prefix('>')?;
    let (key, value) = after_marker.split_once(':')?;
    let key_start = line.start + indent + 1 + (key.len() - key.trim_start().len());
    let key = key.trim();
    let key_shaped = key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !key_shaped {
        return None;
    }
    let value_offset = after_marker.len() - value.len() + (value.len() - value.trim_start().len());
    let value_start = line.start + indent + 1 + value_offset;
    Some((
        key,
        Written {
            key: key_start..key_start + key.len(),
            value: value_start..value_start + value.trim().len(),
        },
    ))
}

/// A top-level `key:` of the frontmatter.
fn frontmatter(source: &Source, key: &str) -> Option<Written> {
    let text = source.text();
    if !text.starts_with("---\n") {
        return None;
    }
    lines_from(source, 2)
        .take_while(|line| !matches!(&text[line.clone()], "---" | "..."))
        .find_map(|line| {
            let rest = text[line.clone()].strip_prefix(key)?.strip_prefix(':')?;
            let value_start = line.end - rest.len() + (rest.len() - rest.trim_start().len());
            Some(Written {
                key: line.start..line.start + key.len(),
                value: value_start..value_start + rest.trim().len(),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLIGHT: &str = "---\npersona: architect\npool:  fleet\n---\n# T\n\n## a\n\n> persona: tester\n>gate: review\n> gate: ci\n\nText.\n> persona: not a directive\n\nb\n-\n> model: m\n";

    fn at(source: &Source, place: Place) -> (&str, usize, usize) {
        let span = span(source, &place);
        let position = source.position(span.start);
        (&source.text()[span], position.line, position.column)
    }

    fn directive(line: usize, key: &'static str, containing: &'static str) -> Place {
        Place::Directive {
            line,
            key,
            containing,
            part: Part::Value,
        }
    }

    #[test]
    fn directives_and_frontmatter_keys_are_found_where_the_parser_reads_them() {
        let agents = murmur_parser::parse(FLIGHT, "t").flight.unwrap().agents;
        assert_eq!((agents[0].line, agents[1].line), (7, 16));
        let source = Source::new(FLIGHT);
        assert_eq!(at(&source, directive(7, "persona", "")), ("tester", 9, 12));
        assert_eq!(at(&source, directive(7, "gate", "ci")), ("ci", 11, 9));
        assert_eq!(at(&source, directive(7, "gate", "")), ("review", 10, 8));
        assert_eq!(at(&source, directive(7, "model", "")), ("## a", 7, 1));
        assert_eq!(at(&source, directive(16, "model", "")), ("m", 18, 10));
        let pool = Place::Frontmatter {
            key: "pool",
            part: Part::Value,
        };
        assert_eq!(at(&source, pool), ("fleet", 3, 8));
        let key = Place::Frontmatter {
            key: "persona",
            part: Part::Key,
        };
        assert_eq!(at(&source, key), ("persona", 2, 1));
        let absent = Place::Frontmatter {
            key: "model",
            part: Part::Key,
        };
        assert_eq!(at(&source, absent), ("", 1, 1));
    }
}
