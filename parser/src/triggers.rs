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
            "push" => triggers.push = read_filter(reader, &name, value, &["repos", "branches"]),
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
            _ => {
                let place = format!("the `{trigger}` trigger");
                reader.unknown_key(&key, span, &place, allowed);
                continue;
            }
        };
        let values = reader.strings(&key, value).unwrap_or_default();
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
