//! Diagnostics for people: rustc-style snippets with a caret and a hint, coloured on a
//! terminal unless `NO_COLOR` is set.

use std::io::IsTerminal;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use murmur_parser::{Diagnostic, Severity, Source};

/// Whether to colour what goes to stdout.
pub fn use_colour() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

pub fn render(path: &str, source: &Source, diagnostics: &[Diagnostic], colour: bool) -> String {
    let renderer = if colour {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(
            &renderer
                .render(&report(path, source, diagnostic))
                .to_string(),
        );
        out.push_str("\n\n");
    }
    out
}

fn report<'a>(path: &'a str, source: &'a Source, diagnostic: &'a Diagnostic) -> Vec<Group<'a>> {
    let level = match diagnostic.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let span = visible_span(source, diagnostic);
    let snippet = Snippet::source(source.text())
        .path(path)
        .fold(true)
        .annotation(AnnotationKind::Primary.span(span));
    let mut groups = vec![
        level
            .primary_title(diagnostic.message.as_str())
            .id(diagnostic.code.as_str())
            .element(snippet),
    ];
    if let Some(help) = &diagnostic.help {
        groups.push(Group::with_title(
            Level::HELP.secondary_title(help.as_str()),
        ));
    }
    groups
}

/// At least one character wide, and on one line, so the caret has something to point at.
fn visible_span(source: &Source, diagnostic: &Diagnostic) -> std::ops::Range<usize> {
    let text = source.text();
    let start = diagnostic.span.start.min(text.len());
    let line = source.line_range(start);
    let end = diagnostic.span.end.clamp(start, line.end.max(start));
    if end > start {
        start..end
    } else {
        let next = text[start..]
            .chars()
            .next()
            .map_or(start, |c| start + c.len_utf8());
        start..next
    }
}
