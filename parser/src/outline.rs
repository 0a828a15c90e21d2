//! The document's outline: title, notes and agent sections, found with a real Markdown parser
//! so that headings inside fenced code stay prompt text.

use std::ops::Range;

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};

use crate::diagnostic::{Code, Sink};
use crate::names::{is_slug, slugify};

pub(crate) struct Outline {
    pub title: Option<Heading>,
    /// Pieces of text that make up the notes (the title line cut out).
    pub notes: Vec<Range<usize>>,
    pub sections: Vec<Section>,
    /// Inline code and code blocks, sorted by start.
    pub code: Vec<Range<usize>>,
}

pub(crate) struct Heading {
    pub text: String,
    pub range: Range<usize>,
}

/// An agent section: a slug-shaped H2 and everything up to the next one.
pub(crate) struct Section {
    pub slug: String,
    /// The heading's line.
    pub line: usize,
    pub heading: Range<usize>,
    pub body: Range<usize>,
}

struct RawHeading {
    level: HeadingLevel,
    text: String,
    range: Range<usize>,
}

pub(crate) fn outline(text: &str, body_start: usize, sink: &mut Sink<'_>) -> Outline {
    let mut title: Option<Heading> = None;
    let mut sections: Vec<Section> = Vec::new();
    let mut lines = sink.source().line_cursor();
    // Each heading is placed as soon as it ends, rather than collected for a second pass.
    let code = scan(text, body_start, |heading| match heading.level {
        HeadingLevel::H1 => take_title(&mut title, heading, !sections.is_empty(), sink),
        HeadingLevel::H2 if is_slug(&heading.text) => {
            if let Some(previous) = sections.last_mut() {
                previous.body.end = heading.range.start;
            }
            sections.push(Section {
                slug: heading.text,
                line: lines.line_of(heading.range.start),
                body: heading.range.end..text.len(),
                heading: heading.range,
            });
        }
        HeadingLevel::H2 => warn_non_slug(&heading, sections.last(), sink),
        _ => {}
    });
    let notes_end = sections.first().map_or(text.len(), |s| s.heading.start);
    let notes = cut_out(
        body_start..notes_end,
        title.as_ref().map(|t| t.range.clone()),
    );
    Outline {
        title,
        notes,
        sections,
        code,
    }
}

fn take_title(
    title: &mut Option<Heading>,
    heading: RawHeading,
    inside_section: bool,
    sink: &mut Sink<'_>,
) {
    if title.is_some() {
        sink.error(
            Code::InvalidValue,
            heading.range,
            "a flight has one H1 title; this is a second one",
        )
        .help("make it an H3 (`###`) or wrap it in a code block if it is prompt text");
        return;
    }
    if inside_section {
        sink.error(
            Code::InvalidValue,
            heading.range.clone(),
            "the H1 title must come before the first agent section",
        )
        .help("move the `# title` line above the first `## agent` heading");
    }
    *title = Some(Heading {
        text: heading.text,
        range: heading.range,
    });
}

fn warn_non_slug(heading: &RawHeading, section: Option<&Section>, sink: &mut Sink<'_>) {
    let belongs_to = match section {
        Some(section) => format!("agent `{}`'s prompt", section.slug),
        None => "the notes".to_owned(),
    };
    let slug = slugify(&heading.text, 63);
    let obvious = is_slug(&slug) && slug.split('-').count() <= 3;
    let added = sink.warning(
        Code::NonSlugHeading,
        heading.range.clone(),
        format!(
            "`## {}` is not an agent slug, so it is read as part of {belongs_to}",
            heading.text
        ),
    );
    if obvious {
        added.help(format!("to make it an agent, write `## {slug}`"));
    } else {
        added.help("agent headings are slugs: lowercase letters, digits and `-`");
    }
}

fn cut_out(range: Range<usize>, hole: Option<Range<usize>>) -> Vec<Range<usize>> {
    match hole {
        Some(hole) if hole.start >= range.start && hole.end <= range.end => {
            vec![range.start..hole.start, hole.end..range.end]
        }
        _ => vec![range],
    }
}

/// Hands each heading to `on_heading` as it ends; returns the code spans.
fn scan(
    text: &str,
    body_start: usize,
    mut on_heading: impl FnMut(RawHeading),
) -> Vec<Range<usize>> {
    let mut code = Vec::new();
    let mut open: Option<RawHeading> = None;
    let body = &text[body_start..];
    for (event, range) in Parser::new(body).into_offset_iter() {
        let range = range.start + body_start..range.end + body_start;
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                open = Some(RawHeading {
                    level,
                    text: String::new(),
                    range,
                });
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(mut heading) = open.take() {
                    trim_in_place(&mut heading.text);
                    on_heading(heading);
                }
            }
            Event::Text(piece) if open.is_some() => {
                if let Some(heading) = open.as_mut() {
                    heading.text.push_str(&piece);
                }
            }
            Event::Code(piece) if open.is_some() => {
                if let Some(heading) = open.as_mut() {
                    heading.text.push_str(&piece);
                }
                code.push(range);
            }
            Event::Code(_) | Event::Start(Tag::CodeBlock(_)) => code.push(range),
            _ => {}
        }
    }
    code
}

/// Trims without allocating a copy: most heading texts become agent slugs as they are.
fn trim_in_place(text: &mut String) {
    text.truncate(text.trim_end().len());
    let lead = text.len() - text.trim_start().len();
    text.drain(..lead);
}

pub(crate) fn in_code(code: &[Range<usize>], offset: usize) -> bool {
    let index = code.partition_point(|range| range.start <= offset);
    index > 0 && code[index - 1].end > offset
}
