//! The live view's layout: which rows fit a terminal of a given size and how each one reads.
//! Pure, so every size can be tested; the live view supplies the rows and the size.

use std::collections::BTreeMap;

use crate::terminal::{self, Size};

/// One agent's row as the layout sees it. `note` is sanitised text already.
pub struct Row<'a> {
    pub slug: &'a str,
    pub state: &'a str,
    pub time: String,
    pub note: &'a str,
}

/// The frame's lines: the header, as many rows as fit and, when some did not, a line saying
/// what they are. Never more lines than `size.rows - 1` (the cursor sits on the last one, so
/// a full frame would scroll the terminal), none wider than `size.columns`.
pub fn lines(header: &str, rows: &[Row], size: Size) -> Vec<String> {
    let budget = size.rows.saturating_sub(1).max(1);
    let shown = shown(rows, budget);
    let slug_width = shown
        .iter()
        .map(|&i| terminal::width(rows[i].slug))
        .max()
        .unwrap_or(0);
    let mut out = vec![header.to_owned()];
    for &index in &shown {
        let row = &rows[index];
        let pad = slug_width - terminal::width(row.slug);
        out.push(format!(
            "  {}{:pad$}  {:<14} {:>7}  {}",
            row.slug, "", row.state, row.time, row.note
        ));
    }
    if shown.len() < rows.len() && out.len() < budget {
        out.push(summary(rows, &shown));
    }
    out.into_iter()
        .map(|line| terminal::clip(&line, size.columns).into_owned())
        .collect()
}

/// Indices of the rows to show: all of them in order when they fit with the header; else
/// as many as fit with the header and the summary line, the ones at work first.
fn shown(rows: &[Row], budget: usize) -> Vec<usize> {
    if rows.len() < budget {
        return (0..rows.len()).collect();
    }
    let room = budget.saturating_sub(2);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rank(rows[i].state));
    order.truncate(room);
    order
}

/// Which rows a person watching wants first: at work, then waiting for something, then
/// failures, then what has not started, then what is done.
fn rank(state: &str) -> u8 {
    match state {
        "running" | "starting" => 0,
        "failed" => 2,
        "pending" => 3,
        "completed" | "canceled" | "skipped" => 4,
        _ => 1,
    }
}

/// `… 37 more: 20 completed, 17 pending`, the states in the order rows are ranked.
fn summary(rows: &[Row], shown: &[usize]) -> String {
    let mut counts: BTreeMap<(u8, &str), usize> = BTreeMap::new();
    let hidden = (0..rows.len()).filter(|i| !shown.contains(i));
    for index in hidden {
        let state = rows[index].state;
        *counts.entry((rank(state), state)).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    let parts: Vec<String> = counts
        .iter()
        .map(|((_, state), count)| format!("{count} {state}"))
        .collect();
    let more = if shown.is_empty() { "agents" } else { "more" };
    format!("  … {total} {more}: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(slug: &'a str, state: &'a str) -> Row<'a> {
        Row {
            slug,
            state,
            time: "1.0s".into(),
            note: "",
        }
    }

    fn size(columns: usize, rows: usize) -> Size {
        Size { columns, rows }
    }

    #[test]
    fn every_row_in_order_when_they_fit() {
        let rows = [row("plan", "completed"), row("build", "running")];
        let lines = lines("run x — running 2.0s", &rows, size(80, 4));
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert_eq!(lines[0], "run x — running 2.0s");
        assert!(lines[1].starts_with("  plan   completed"), "{lines:#?}");
        assert!(lines[2].starts_with("  build  running"), "{lines:#?}");
    }

    #[test]
    fn too_many_rows_show_the_running_first_and_a_summary() {
        let mut rows = Vec::new();
        let slugs: Vec<String> = (0..40).map(|i| format!("a{i}")).collect();
        for (i, slug) in slugs.iter().enumerate() {
            let state = match i {
                0..20 => "completed",
                20..23 => "running",
                _ => "pending",
            };
            rows.push(row(slug, state));
        }
        let lines = lines("header", &rows, size(50, 12));
        assert_eq!(lines.len(), 11, "{lines:#?}");
        for (line, slug) in lines[1..4].iter().zip(["a20", "a21", "a22"]) {
            assert!(
                line.starts_with(&format!("  {slug}  running")),
                "{lines:#?}"
            );
        }
        assert!(lines[4].contains("pending"), "{lines:#?}");
        assert_eq!(lines[10], "  … 31 more: 11 pending, 20 completed");
    }

    #[test]
    fn no_size_ever_gets_more_lines_than_it_has_or_wider_ones() {
        let slugs: Vec<String> = (0..30).map(|i| format!("agent-{i}")).collect();
        let rows: Vec<Row> = slugs
            .iter()
            .map(|slug| Row {
                slug,
                state: "queued",
                time: String::new(),
                note: "漢字 output that goes on and on and on and on",
            })
            .collect();
        for height in 0..40 {
            for width in [0, 1, 10, 50, 200] {
                let lines = lines(
                    "a header wider than ten columns",
                    &rows,
                    size(width, height),
                );
                assert!(
                    lines.len() <= height.saturating_sub(1).max(1),
                    "{width}×{height}"
                );
                for line in &lines {
                    assert!(terminal::width(line) <= width, "{width}×{height}: {line}");
                }
            }
        }
    }

    #[test]
    fn two_lines_hold_the_header_and_the_summary() {
        let rows = [row("a", "pending"), row("b", "completed")];
        let lines = lines("h", &rows, size(80, 3));
        assert_eq!(lines, ["h", "  … 2 agents: 1 pending, 1 completed"]);
        assert_eq!(super::lines("h", &rows, size(80, 1)), ["h"]);
    }
}
