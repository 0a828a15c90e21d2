//! `${{ … }}` references: finding them in text, parsing them, and filling them in at run time.

use std::ops::Range;
use std::sync::LazyLock;

use memchr::memmem::Finder;

/// A parsed reference expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference<'a> {
    Input(&'a str),
    /// `event` alone (the whole payload) or a dotted path into it.
    Event(Vec<&'a str>),
    Upstream {
        slug: &'a str,
        field: UpstreamField,
    },
    Item,
    RunId,
    FlightName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamField {
    Response,
    Branch,
    Prs,
    Commits,
}

impl UpstreamField {
    pub const NAMES: [&'static str; 4] = ["response", "branch", "prs", "commits"];

    fn parse(name: &str) -> Option<Self> {
        match name {
            "response" => Some(Self::Response),
            "branch" => Some(Self::Branch),
            "prs" => Some(Self::Prs),
            "commits" => Some(Self::Commits),
            _ => None,
        }
    }
}

/// Why an expression is not a reference this engine knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("`{0}` is not something a flight can refer to")]
    UnknownRoot(String),
    #[error("`{0}` needs a name after it, such as `{0}.NAME`")]
    MissingName(String),
    #[error(
        "`needs.{slug}.{field}` is not an agent result; use one of: response, branch, prs, commits"
    )]
    UnknownField { slug: String, field: String },
    #[error("`{0}` is not a known reference")]
    Unknown(String),
}

impl ReferenceError {
    /// Roots that are not ours are left alone inside code (e.g. GitHub Actions' `${{ github.sha }}`).
    pub fn is_foreign(&self) -> bool {
        matches!(self, ReferenceError::UnknownRoot(_))
    }
}

pub const ROOTS: [&str; 6] = ["inputs", "event", "needs", "item", "run", "flight"];

pub fn parse(expression: &str) -> Result<Reference<'_>, ReferenceError> {
    let mut parts = expression.trim().split('.');
    let root = parts.next().unwrap_or_default();
    if root == "event" {
        return Ok(Reference::Event(parts.collect()));
    }
    // Every other reference has at most two parts after its root, so up to three are kept, on
    // the stack (this runs for every reference in a flight): a longer one still matches no
    // reference and falls through to the errors.
    let mut rest = [""; 3];
    let mut count = 0;
    for (slot, part) in rest.iter_mut().zip(parts) {
        *slot = part;
        count += 1;
    }
    match (root, &rest[..count]) {
        ("inputs", [name]) if !name.is_empty() => Ok(Reference::Input(name)),
        ("inputs", []) => Err(ReferenceError::MissingName("inputs".into())),
        ("needs", [slug, field]) => match UpstreamField::parse(field) {
            Some(field) => Ok(Reference::Upstream { slug, field }),
            None => Err(ReferenceError::UnknownField {
                slug: (*slug).to_owned(),
                field: (*field).to_owned(),
            }),
        },
        ("needs", [_]) | ("needs", []) => Err(ReferenceError::MissingName("needs.SLUG".into())),
        ("item", []) => Ok(Reference::Item),
        ("run", ["id"]) => Ok(Reference::RunId),
        ("flight", ["name"]) => Ok(Reference::FlightName),
        (root, _) if ROOTS.contains(&root) => {
            Err(ReferenceError::Unknown(expression.trim().to_owned()))
        }
        (root, _) => Err(ReferenceError::UnknownRoot(root.to_owned())),
    }
}

/// One `${{ … }}` occurrence: the whole span, and the expression inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence<'t> {
    pub span: Range<usize>,
    pub expression: &'t str,
}

/// The delimiters, searched for with SIMD: every prompt of a flight is scanned, so this is hot.
/// Built once, as building a searcher costs more than running it over a typical prompt.
static OPEN: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("${{"));
static CLOSE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("}}"));

/// Every `${{ … }}` in `text`; offsets are relative to `text`. An unclosed `${{` ends the scan.
pub fn occurrences(text: &str) -> impl Iterator<Item = Occurrence<'_>> {
    let mut cursor = 0;
    std::iter::from_fn(move || {
        let start = cursor + OPEN.find(text.get(cursor..)?.as_bytes())?;
        let inner_start = start + 3;
        let inner_end = inner_start + CLOSE.find(&text.as_bytes()[inner_start..])?;
        cursor = inner_end + 2;
        Some(Occurrence {
            span: start..cursor,
            expression: &text[inner_start..inner_end],
        })
    })
}

/// Replaces each reference that `resolve` knows; others are kept verbatim.
/// Murmur's `{}` item placeholder is replaced when `item` is given.
pub fn render(
    text: &str,
    item: Option<&str>,
    mut resolve: impl FnMut(&Reference<'_>) -> Option<String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    for occurrence in occurrences(text) {
        out.push_str(&text[cursor..occurrence.span.start]);
        let value = parse(occurrence.expression)
            .ok()
            .and_then(|reference| match reference {
                Reference::Item => item.map(str::to_owned),
                other => resolve(&other),
            });
        match value {
            Some(value) => out.push_str(&value),
            None => out.push_str(&text[occurrence.span.clone()]),
        }
        cursor = occurrence.span.end;
    }
    out.push_str(&text[cursor..]);
    match item {
        Some(item) => out.replace("{}", item),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(parse(" inputs.target "), Ok(Reference::Input("target")));
        assert_eq!(
            parse("event.issue.number"),
            Ok(Reference::Event(vec!["issue", "number"]))
        );
        assert_eq!(
            parse("needs.plan.response"),
            Ok(Reference::Upstream {
                slug: "plan",
                field: UpstreamField::Response
            })
        );
        assert_eq!(parse("item"), Ok(Reference::Item));
        assert_eq!(parse("run.id"), Ok(Reference::RunId));
        assert_eq!(parse("flight.name"), Ok(Reference::FlightName));
        assert!(parse("github.sha").unwrap_err().is_foreign());
        assert!(!parse("needs.plan.output").unwrap_err().is_foreign());
        assert!(!parse("run.name").unwrap_err().is_foreign());
    }

    #[test]
    fn finds_occurrences_with_offsets() {
        let text = "a ${{ inputs.x }} b ${{item}} c ${{ open";
        let found: Vec<_> = occurrences(text).collect();
        assert_eq!(found.len(), 2);
        assert_eq!(&text[found[0].span.clone()], "${{ inputs.x }}");
        assert_eq!(found[1].expression, "item");
    }

    #[test]
    fn renders_known_and_keeps_unknown() {
        let text = "fix ${{ inputs.target }} in {} (${{ github.sha }})";
        let out = render(text, Some("auth"), |reference| match reference {
            Reference::Input("target") => Some("login".to_owned()),
            _ => None,
        });
        assert_eq!(out, "fix login in auth (${{ github.sha }})");
    }
}
