//! Cron triggers: which tick a schedule owes at a given time. Pure, so it is tested on a
//! simulated clock; the server claims each owed tick in the store, once.

use chrono::{DateTime, Utc};
use murmur_parser::Schedule;

/// How many occurrences are walked at most when catching up (a minutely schedule over ten
/// days); beyond that the walk stops, which can only ever lose a tick, never add one.
const CATCH_UP_LIMIT: usize = 15_000;

/// The latest occurrence of `schedule` in `(after, now]`, if any. Ticks missed while the
/// server was down collapse into this one: a late start runs the flight once, not once per
/// missed tick.
pub fn owed(
    schedule: &Schedule,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut latest = None;
    let mut cursor = after;
    for _ in 0..CATCH_UP_LIMIT {
        match schedule.next_after(cursor) {
            Ok(next) if next <= now => {
                latest = Some(next);
                cursor = next;
            }
            _ => break,
        }
    }
    latest
}

/// The store key of a flight's schedule: its workspace (none for the server's own flights),
/// its name and its position in `on.schedule`.
pub fn schedule_key(workspace: Option<&str>, flight: &str, index: usize) -> String {
    match workspace {
        // A flight name holds no `/`, so a workspace's keys never meet the server's own.
        Some(workspace) => format!("{workspace}/{flight}#{index}"),
        None => format!("{flight}#{index}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn daily_at_two_berlin() -> Schedule {
        Schedule {
            cron: "0 2 * * *".into(),
            timezone: "Europe/Berlin".into(),
        }
    }

    #[test]
    fn nothing_is_owed_before_the_first_tick() {
        let schedule = daily_at_two_berlin();
        assert_eq!(
            owed(
                &schedule,
                at("2026-03-01T10:00:00Z"),
                at("2026-03-02T00:59:00Z")
            ),
            None
        );
    }

    #[test]
    fn the_tick_is_owed_once_it_has_passed() {
        let schedule = daily_at_two_berlin();
        let tick = owed(
            &schedule,
            at("2026-03-01T10:00:00Z"),
            at("2026-03-02T01:00:00Z"),
        );
        assert_eq!(
            tick,
            Some(at("2026-03-02T01:00:00Z")),
            "02:00 in Berlin is 01:00 UTC in winter"
        );
        assert_eq!(
            owed(&schedule, tick.unwrap(), at("2026-03-02T12:00:00Z")),
            None,
            "taken ticks are not owed again"
        );
    }

    #[test]
    fn missed_ticks_collapse_into_the_latest() {
        let schedule = daily_at_two_berlin();
        let down_for_three_days = owed(
            &schedule,
            at("2026-03-01T01:00:00Z"),
            at("2026-03-04T09:00:00Z"),
        );
        assert_eq!(down_for_three_days, Some(at("2026-03-04T01:00:00Z")));
    }

    #[test]
    fn summer_time_moves_the_tick_in_utc() {
        let schedule = daily_at_two_berlin();
        assert_eq!(
            owed(
                &schedule,
                at("2026-07-01T12:00:00Z"),
                at("2026-07-02T00:30:00Z")
            ),
            Some(at("2026-07-02T00:00:00Z"))
        );
    }
}
