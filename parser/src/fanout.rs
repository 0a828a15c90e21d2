//! Fan-out (`each`): where an agent's item list comes from, and how instances are named.

use crate::names::{slugify, split_list};
use crate::reference::occurrences;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FanOut {
    /// `[auth, billing, search]`: known when the flight is parsed.
    Items(Vec<String>),
    /// `${{ needs.plan.response }}` (or any reference): a JSON array of strings, or one item a line.
    FromValue(String),
    /// Free text, Murmur style: a planning agent turns it into a list, once, and the answer is recorded.
    Describe(String),
}

impl FanOut {
    pub fn parse(each: &str) -> Self {
        let each = each.trim();
        if each.starts_with('[') && each.ends_with(']') {
            return FanOut::Items(
                split_list(each)
                    .into_iter()
                    .map(|item| item.text.to_owned())
                    .collect(),
            );
        }
        let mut found = occurrences(each);
        if let Some(only) = found.next()
            && found.next().is_none()
            && only.span == (0..each.len())
        {
            return FanOut::FromValue(only.expression.trim().to_owned());
        }
        FanOut::Describe(each.to_owned())
    }
}

/// Reads items from an upstream's text: a JSON array of strings anywhere in it, else one item a line.
pub fn items_from_text(text: &str) -> Vec<String> {
    if let Some(items) = json_array_in(text) {
        return items;
    }
    text.lines()
        .map(|line| line.trim().trim_start_matches(['-', '*']).trim())
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

fn json_array_in(text: &str) -> Option<Vec<String>> {
    let start = text.find('[')?;
    let end = text.rfind(']')?;
    if end <= start {
        return None;
    }
    serde_json::from_str::<Vec<String>>(&text[start..=end]).ok()
}

/// `<slug>-<item>`, the item lowercased with anything else folded into `-`, cut to 60 characters.
pub fn instance_slug(slug: &str, item: &str) -> String {
    let item = slugify(item, 60);
    if item.is_empty() {
        slug.to_owned()
    } else {
        format!("{slug}-{item}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_each_form() {
        assert_eq!(
            FanOut::parse("[auth, billing]"),
            FanOut::Items(vec!["auth".into(), "billing".into()])
        );
        assert_eq!(
            FanOut::parse("${{ needs.plan.response }}"),
            FanOut::FromValue("needs.plan.response".into())
        );
        assert_eq!(
            FanOut::parse("every public module"),
            FanOut::Describe("every public module".into())
        );
    }

    #[test]
    fn reads_items_from_json_or_lines() {
        assert_eq!(items_from_text("Plan:\n[\"a\", \"b\"]\n"), ["a", "b"]);
        assert_eq!(items_from_text("- a\n- b\n\n"), ["a", "b"]);
    }

    #[test]
    fn names_instances() {
        assert_eq!(instance_slug("docs", "Auth Service"), "docs-auth-service");
        assert_eq!(instance_slug("docs", &"x".repeat(80)).len(), 65);
    }
}
