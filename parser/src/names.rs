//! Slugs, "did you mean" suggestions and the small lexical helpers shared by the stages.

/// `[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?`: the shape of agent slugs and tags.
pub fn is_slug(text: &str) -> bool {
    let bytes = text.as_bytes();
    let edge_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= 63
                && edge_ok(first)
                && edge_ok(last)
                && bytes.iter().all(|b| edge_ok(b) || *b == b'-')
        }
        _ => false,
    }
}

/// Lowercase, runs of anything else folded into one `-`, cut to `max` characters.
pub fn slugify(text: &str, max: usize) -> String {
    let mut slug = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.truncate(max);
    slug.trim_end_matches('-').to_owned()
}

/// The candidate closest to `wanted`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (wanted.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(wanted, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// "did you mean `x`?" or a list of what is allowed.
pub fn suggestion(wanted: &str, candidates: &[&str]) -> String {
    match did_you_mean(wanted, candidates.iter().copied()) {
        Some(close) => format!("did you mean `{close}`?"),
        None => format!("expected one of: {}", candidates.join(", ")),
    }
}

/// One item of a comma list, with its byte offset inside the list text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListItem<'a> {
    pub text: &'a str,
    pub offset: usize,
}

/// Splits `a, b`, `[a, b]` or `["a", 'b']` into items, keeping offsets for diagnostics.
pub fn split_list(text: &str) -> Vec<ListItem<'_>> {
    list_items(text).collect()
}

/// As [`split_list`], without collecting: for lists read once per agent.
pub fn list_items(text: &str) -> impl Iterator<Item = ListItem<'_>> {
    let (inner, base) = match text.trim().strip_prefix('[') {
        Some(rest) => {
            let start = text.len() - text.trim_start().len() + 1;
            (rest.strip_suffix(']').unwrap_or(rest), start)
        }
        None => (text, 0),
    };
    let mut cursor = 0;
    inner.split(',').filter_map(move |part| {
        let lead = part.len() - part.trim_start().len();
        let trimmed = part.trim();
        let unquoted = strip_quotes(trimmed);
        let quote_lead = usize::from(unquoted.len() != trimmed.len());
        let offset = base + cursor + lead + quote_lead;
        cursor += part.len() + 1;
        (!unquoted.is_empty()).then_some(ListItem {
            text: unquoted,
            offset,
        })
    })
}

fn strip_quotes(text: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
            return inner;
        }
    }
    text
}

/// How a flight name is spelled, for messages.
pub const FLIGHT_NAME_RULE: &str =
    "a flight name is 1 to 100 letters, digits, `-`, `_` or `.`, not starting with `.`";

/// A name is a file stem that is safe in paths and URLs; the catalog takes no other.
pub fn valid_flight_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_shape() {
        assert!(is_slug("design"));
        assert!(is_slug("step-2"));
        assert!(is_slug("a"));
        assert!(!is_slug("-a"));
        assert!(!is_slug("a-"));
        assert!(!is_slug("Design"));
        assert!(!is_slug("a_b"));
        assert!(!is_slug(""));
        assert!(!is_slug(&"a".repeat(64)));
        assert!(is_slug(&"a".repeat(63)));
    }

    #[test]
    fn slugify_folds_punctuation() {
        assert_eq!(
            slugify("Step 1: Check the build!", 60),
            "step-1-check-the-build"
        );
        assert_eq!(slugify("Design", 60), "design");
        assert_eq!(slugify("a/b c", 2), "a");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("desing", ["design", "build"]), Some("design"));
        assert_eq!(did_you_mean("zzz", ["design", "build"]), None);
    }

    #[test]
    fn lists_keep_offsets() {
        let text = "[auth, \"billing\" ,search]";
        let items = split_list(text);
        let texts: Vec<_> = items.iter().map(|i| i.text).collect();
        assert_eq!(texts, ["auth", "billing", "search"]);
        for item in &items {
            assert_eq!(&text[item.offset..item.offset + item.text.len()], item.text);
        }
        assert_eq!(split_list("a,b").len(), 2);
        assert!(split_list(" ").is_empty());
    }
}
