//! Triggers (`on:` in the frontmatter): which events and schedules start a flight.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::CronParser;
use serde::{Deserialize, Serialize};

use crate::diagnostic::Code;
use crate::yaml::{Node, Reader};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triggers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_opened: Option<EventFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_opened: Option<EventFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_labeled: Option<EventFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<EventFilter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<Schedule>,
    /// `POST /v1/flights/NAME/runs` may start this flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<EventFilter>,
}

impl Triggers {
    pub fn is_empty(&self) -> bool {
        self == &Triggers::default()
    }

    /// Trigger names that are set, for listings.
    pub fn names(&self) -> Vec<&'static str> {
        let events = [
            ("issue_opened", self.issue_opened.is_some()),
            ("pr_opened", self.pr_opened.is_some()),
            ("pr_labeled", self.pr_labeled.is_some()),
            ("push", self.push.is_some()),
            ("schedule", !self.schedule.is_empty()),
            ("http", self.http.is_some()),
        ];
        events
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| name)
            .collect()
    }
}

/// Narrows an event trigger; an empty list matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<String>,
    /// `push` only: tag globs (`v*`), matched against `refs/tags/…`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl EventFilter {
    /// Whether `repos` admits the repository `full_name` (`owner/name`) on `host`: an entry is
    /// `owner/name` (any host) or a clone URL of it, compared case-insensitively (spec §6).
    pub fn admits_repo(&self, full_name: &str, host: &str) -> bool {
        let Some(event) = RepoName::parse(full_name) else {
            return self.repos.is_empty();
        };
        let host = normal_host(host);
        self.repos.is_empty()
            || self
                .repos
                .iter()
                .filter_map(|e| RepoName::parse(e))
                .any(|entry| {
                    entry.path == event.path && entry.host.as_ref().is_none_or(|h| *h == host)
                })
    }

    /// Whether a push of `git_ref` passes `branches` (globs over `refs/heads/…`) and `tags`
    /// (globs over `refs/tags/…`). With neither, every push does; with only one of them, a
    /// push of the other kind of ref does not.
    pub fn admits_push(&self, git_ref: &str) -> bool {
        if self.branches.is_empty() && self.tags.is_empty() {
            return true;
        }
        let any = |patterns: &[String], name: Option<&str>| {
            name.is_some_and(|name| patterns.iter().any(|p| glob_matches(p, name)))
        };
        any(&self.branches, git_ref.strip_prefix("refs/heads/"))
            || any(&self.tags, git_ref.strip_prefix("refs/tags/"))
    }

    /// Whether a pull request into `base` passes `branches` (globs).
    pub fn admits_branch(&self, base: Option<&str>) -> bool {
        self.branches.is_empty()
            || base.is_some_and(|b| self.branches.iter().any(|p| glob_matches(p, b)))
    }
}

/// A repository as a trigger or an event names it: `owner/name` lowercased, and the host
/// when a URL gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RepoName {
    host: Option<String>,
    path: String,
}

impl RepoName {
    /// `owner/name`, `https://host/owner/name[.git]`, `ssh://git@host[:port]/owner/name.git`
    /// or `git@host:owner/name.git`.
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (host, path) = if let Some((_, rest)) = text.split_once("://") {
            let (authority, path) = rest.split_once('/')?;
            let host = authority.rsplit('@').next().unwrap_or(authority);
            let host = host.split(':').next().unwrap_or(host);
            (Some(host), path)
        } else if let Some((before, path)) = text.split_once(':')
            && !before.contains('/')
        {
            (Some(before.rsplit('@').next().unwrap_or(before)), path)
        } else {
            (None, text)
        };
        let path = path.trim_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        let mut parts = path.split('/');
        let (owner, name) = (parts.next()?, parts.next()?);
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if parts.next().is_some() || !valid(owner) || !valid(name) {
            return None;
        }
        Some(Self {
            host: host.map(normal_host),
            path: format!("{owner}/{name}").to_ascii_lowercase(),
        })
    }
}

fn normal_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    host.strip_prefix("www.").map(str::to_owned).unwrap_or(host)
}

/// GitHub's filter globs: `*` is any run of characters but `/`, `**` any run at all, `?` one
/// character but `/`; everything else stands for itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    glob_at(&pattern, &text)
}

fn glob_at(pattern: &[char], text: &[char]) -> bool {
    match pattern {
        [] => text.is_empty(),
        ['*', '*', rest @ ..] => (0..=text.len()).any(|skip| glob_at(rest, &text[skip..])),
        ['*', rest @ ..] => {
            let run = text.iter().take_while(|&&c| c != '/').count();
            (0..=run).any(|skip| glob_at(rest, &text[skip..]))
        }
        ['?', rest @ ..] => text.first().is_some_and(|&c| c != '/') && glob_at(rest, &text[1..]),
        [c, rest @ ..] => text.first() == Some(c) && glob_at(rest, &text[1..]),
    }
}

/// A 5-field cron expression in an IANA time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub cron: String,
    pub timezone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid cron expression `{expression}`: {reason}")]
    Cron { expression: String, reason: String },
    #[error("unknown time zone `{0}`: use an IANA name such as `Europe/Berlin` or `UTC`")]
    TimeZone(String),
}

impl Schedule {
    /// The first tick strictly after `after`, in UTC.
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
        let zone = parse_zone(&self.timezone)?;
        let cron = parse_cron(&self.cron)?;
        let local = after.with_timezone(&zone);
        cron.find_next_occurrence(&local, false)
            .map(|next| next.with_timezone(&Utc))
            .map_err(|error| ScheduleError::Cron {
                expression: self.cron.clone(),
                reason: error.to_string(),
            })
    }
}

fn parse_zone(name: &str) -> Result<chrono_tz::Tz, ScheduleError> {
    chrono_tz::Tz::from_str(name).map_err(|_| ScheduleError::TimeZone(name.to_owned()))
}

/// Five fields (minute hour day-of-month month day-of-week) or an `@daily`-style nickname.
pub fn parse_cron(expression: &str) -> Result<Cron, ScheduleError> {
    let fields = expression.split_whitespace().count();
    let invalid = |reason: String| ScheduleError::Cron {
        expression: expression.to_owned(),
        reason,
    };
    if !expression.trim_start().starts_with('@') && fields != 5 {
        return Err(invalid(format!(
            "it has {fields} fields; a cron expression has 5: minute hour day-of-month month day-of-week"
        )));
    }
    CronParser::new()
        .parse(expression)
        .map_err(|error| invalid(error.to_string()))
}

const TRIGGER_KEYS: [&str; 6] = [
    "issue_opened",
    "pr_opened",
    "pr_labeled",
    "push",
    "schedule",
    "http",
];

pub(crate) fn read_triggers(reader: &mut Reader<'_, '_>, node: &Node<'_>) -> Triggers {
    let mut triggers = Triggers::default();
    let Some(entries) = reader.entries("on", node) else {
        return triggers;
    };
    for (name, span, value) in entries {
        match name.as_str() {
            "issue_opened" => {
                triggers.issue_opened = read_filter(reader, &name, value, &["repos", "labels"])
            }
            "pr_opened" => {
                triggers.pr_opened =
                    read_filter(reader, &name, value, &["repos", "labels", "branches"])
            }
            "pr_labeled" => {
                triggers.pr_labeled = read_filter(reader, &name, value, &["repos", "labels"])
            }
            "push" => {
                triggers.push = read_filter(reader, &name, value, &["repos", "branches", "tags"])
            }
            "http" => triggers.http = read_filter(reader, &name, value, &[]),
            "schedule" => triggers.schedule = read_schedules(reader, value),
            _ => {
                let help = crate::names::suggestion(&name, &TRIGGER_KEYS);
                reader
                    .sink
                    .error(
                        Code::InvalidTrigger,
                        span,
                        format!("unknown trigger `{name}`"),
                    )
                    .help(help);
            }
        }
    }
    triggers
}

fn read_filter(
    reader: &mut Reader<'_, '_>,
    trigger: &str,
    node: &Node<'_>,
    allowed: &[&str],
) -> Option<EventFilter> {
    let mut filter = EventFilter::default();
    let entries = reader.entries(trigger, node)?;
    for (key, span, value) in entries {
        let target = match key.as_str() {
            "repos" if allowed.contains(&"repos") => &mut filter.repos,
            "labels" if allowed.contains(&"labels") => &mut filter.labels,
            "branches" if allowed.contains(&"branches") => &mut filter.branches,
            "tags" if allowed.contains(&"tags") => &mut filter.tags,
            _ => {
                let place = format!("the `{trigger}` trigger");
                reader.unknown_key(&key, span, &place, allowed);
                continue;
            }
        };
        let values = reader.strings(&key, value).unwrap_or_default();
        if key == "repos" {
            for (text, span) in values.iter().filter(|(t, _)| RepoName::parse(t).is_none()) {
                reader
                    .sink
                    .error(
                        Code::InvalidTrigger,
                        span.clone(),
                        format!("`{text}` is not a repository"),
                    )
                    .help(
                        "write `owner/name` or a clone URL such as `https://github.com/owner/name`",
                    );
            }
        }
        *target = values.into_iter().map(|(text, _)| text).collect();
    }
    Some(filter)
}

fn read_schedules(reader: &mut Reader<'_, '_>, node: &Node<'_>) -> Vec<Schedule> {
    use saphyr::YamlData;
    match &crate::yaml::unwrap_tag(node).data {
        YamlData::Sequence(items) => items
            .iter()
            .filter_map(|item| read_schedule(reader, item))
            .collect(),
        _ => read_schedule(reader, node).into_iter().collect(),
    }
}

fn read_schedule(reader: &mut Reader<'_, '_>, node: &Node<'_>) -> Option<Schedule> {
    let entries = reader.entries("schedule", node)?;
    let mut cron = None;
    let mut timezone = None;
    for (key, span, value) in entries {
        match key.as_str() {
            "cron" => {
                cron = reader
                    .string("cron", value)
                    .map(|text| (text, reader.frame.span(value)))
            }
            "timezone" => {
                timezone = reader
                    .string("timezone", value)
                    .map(|text| (text, reader.frame.span(value)))
            }
            _ => reader.unknown_key(&key, span, "the `schedule` trigger", &["cron", "timezone"]),
        }
    }
    let Some((cron, cron_span)) = cron else {
        let span = reader.frame.span(node);
        reader
            .sink
            .error(
                Code::InvalidTrigger,
                span,
                "a schedule needs a `cron` expression",
            )
            .help("for example `cron: \"0 2 * * 1-5\"` runs at 02:00 on weekdays");
        return None;
    };
    let mut valid = true;
    if let Err(error) = parse_cron(&cron) {
        valid = false;
        reader
            .sink
            .error(Code::InvalidCron, cron_span, error.to_string())
            .help("fields: minute (0-59) hour (0-23) day-of-month (1-31) month (1-12) day-of-week (0-6)");
    }
    let timezone = match timezone {
        Some((zone, span)) => {
            if let Err(error) = parse_zone(&zone) {
                valid = false;
                reader
                    .sink
                    .error(Code::InvalidTrigger, span, error.to_string());
            }
            zone
        }
        None => "UTC".to_owned(),
    };
    valid.then_some(Schedule { cron, timezone })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_needs_five_fields() {
        assert!(parse_cron("0 2 * * 1-5").is_ok());
        assert!(parse_cron("@daily").is_ok());
        assert!(parse_cron("61 * * * *").is_err());
        assert!(parse_cron("0 0 2 * * 1").is_err());
        assert!(parse_cron("* * *").is_err());
    }

    fn filter(repos: &[&str], branches: &[&str], tags: &[&str]) -> EventFilter {
        let own = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        EventFilter {
            repos: own(repos),
            branches: own(branches),
            tags: own(tags),
            ..EventFilter::default()
        }
    }

    #[test]
    fn repos_match_names_and_clone_urls_in_any_case() {
        for entry in [
            "acme/api",
            "Acme/API",
            "https://github.com/acme/api",
            "https://github.com/Acme/Api.git",
            "https://www.github.com/acme/api/",
            "http://github.com/acme/api",
            "git@github.com:acme/api.git",
            "git@GitHub.com:acme/api",
            "ssh://git@github.com/acme/api.git",
            "ssh://git@github.com:22/acme/api.git",
        ] {
            let f = filter(&[entry], &[], &[]);
            assert!(f.admits_repo("acme/api", "github.com"), "{entry}");
            assert!(f.admits_repo("ACME/api", "GitHub.com"), "{entry}");
            assert!(!f.admits_repo("acme/api-web", "github.com"), "{entry}");
            assert!(!f.admits_repo("other/api", "github.com"), "{entry}");
        }
        let elsewhere = filter(&["https://gitlab.com/acme/api"], &[], &[]);
        assert!(!elsewhere.admits_repo("acme/api", "github.com"));
        assert!(filter(&[], &[], &[]).admits_repo("any/repo", "github.com"));
        for junk in ["acme", "https://github.com/acme", "a/b/c", "acme/ap i", ""] {
            assert_eq!(RepoName::parse(junk), None, "{junk}");
        }
    }

    #[test]
    fn branches_and_tags_filter_their_own_refs_only() {
        let branches = filter(&[], &["main", "release/*"], &[]);
        assert!(branches.admits_push("refs/heads/main"));
        assert!(branches.admits_push("refs/heads/release/1.2"));
        assert!(!branches.admits_push("refs/heads/release/1/2"));
        assert!(
            !branches.admits_push("refs/tags/main"),
            "a tag is no branch"
        );
        let tags = filter(&[], &[], &["v*"]);
        assert!(tags.admits_push("refs/tags/v1.0.0"));
        assert!(!tags.admits_push("refs/tags/nightly"));
        assert!(!tags.admits_push("refs/heads/v1"), "a branch is no tag");
        let both = filter(&[], &["main"], &["v*"]);
        assert!(both.admits_push("refs/heads/main") && both.admits_push("refs/tags/v2"));
        assert!(filter(&[], &[], &[]).admits_push("refs/tags/anything"));
        assert!(glob_matches("feature/**", "feature/a/b"));
        assert!(glob_matches("v?.*", "v1.0"));
        assert!(!glob_matches("v?", "v10"));
    }

    #[test]
    fn push_reads_tags_and_bad_repos_are_reported() {
        let parsed = crate::parse(
            "---\non:\n  push: { branches: [main], tags: [\"v*\"] }\n  issue_opened: { repos: [acme, https://github.com/acme/api] }\n---\n# T\n\nx\n",
            "t",
        );
        let flight = parsed.flight.expect("flight");
        let push = flight.frontmatter.on.push.expect("push");
        assert_eq!(
            (push.branches, push.tags),
            (vec!["main".to_owned()], vec!["v*".to_owned()])
        );
        let messages: Vec<&str> = parsed
            .diagnostics
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(messages, ["`acme` is not a repository"]);
        let tags_on_issues = crate::parse(
            "---\non:\n  issue_opened: { tags: [v1] }\n---\n# T\n\nx\n",
            "t",
        );
        assert!(!tags_on_issues.is_valid(), "`tags` is for `push` only");
    }

    #[test]
    fn next_tick_respects_the_time_zone() {
        let schedule = Schedule {
            cron: "30 6 * * *".into(),
            timezone: "Europe/Berlin".into(),
        };
        let after = DateTime::parse_from_rfc3339("2026-01-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let next = schedule.next_after(after).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-01-11T05:30:00+00:00");
    }
}
