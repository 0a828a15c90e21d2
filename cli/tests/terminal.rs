//! The live view and the line log on a real terminal: the `murmur` binary runs in a tmux pane
//! of a given size on a flight whose agents print escape sequences, carriage returns, bells,
//! a 500-column line and wide characters; the pane's screen and scrollback are captured after
//! the run. The screen must stay intact: the frame drawn in place (once in the scrollback),
//! where it is expected, no line wider than the pane, what the agents wrote shown escaped and
//! nothing of it acted on (no colours, no title, no cleared screen).

mod support;

use support::db::Backend;
use support::fixture::Fixture;
use support::session::{last_is, start};
use support::tmux::{Tmux, shell_line};
use unicode_width::UnicodeWidthStr;

/// The agents and what each one prints last (`\033` is ESC for the agent's `printf`).
const NOISY: [(&str, &str); 7] = [
    ("clear", r"printf 'before\n\033[2J\033[Hafter clear\n'"),
    ("title", r"printf '\033]0;title\007osc\n'"),
    ("cr", r"printf 'progress 10%%\rprogress 99%%\n'"),
    ("red", r"printf '\033[31mred\033[0m plain\n'"),
    ("bell", r"printf 'ding\007 back\010\010x\tz\n'"),
    ("long", "head -c 500 /dev/zero | tr '\\0' L; echo"),
    ("wide", "WIDE"),
];
/// What each noisy agent's row shows, escaped, at any width the note has room for 15 columns.
const SHOWN: [(&str, &str); 5] = [
    ("clear", r"\x1b[2J\x1b[Haft"),
    ("title", r"\x1b]0;title\x07"),
    ("cr", r"progress 10%\rp"),
    ("red", r"\x1b[31mred\x1b["),
    ("bell", r"ding\x07 back\x0"),
];
const QUIET: usize = 8;

fn noisy_flight() -> String {
    let mut text = "---\nruntime: exec\n---\n# Escapes\n".to_owned();
    for (slug, command) in NOISY {
        let command = command.replace("WIDE", &format!("echo {}", "漢".repeat(100)));
        text.push_str(&format!("\n## {slug}\n> command: {command}\n"));
    }
    for i in 1..=QUIET {
        text.push_str(&format!("\n## q{i}\n> command: echo quiet\n"));
    }
    text
}

/// `murmur flight run esc ARGS` with `env` in a `columns`×`rows` pane, run to its end.
fn run_in_pane(columns: u16, rows: u16, env: &[(&str, &str)], args: &[&str]) -> (Tmux, Fixture) {
    let fixture = Fixture::new(&Backend::Sqlite, "terminal");
    fixture.write_flight("esc", &noisy_flight());
    let mut command = fixture.command(&["flight", "run", "esc"]);
    command.args(args).envs(env.iter().copied());
    let tmux = Tmux::start(columns, rows, &shell_line(&command, fixture.repo()));
    let status = tmux.wait();
    assert_eq!(status, 0, "the run failed:\n{}", tmux.history());
    (tmux, fixture)
}

/// What no capture may show: an escape sequence acted on (colour, title) or a wrapped line.
fn assert_nothing_acted_on(tmux: &Tmux, columns: usize, history: &str) {
    let styled = tmux.styled();
    assert!(
        !styled.contains('\x1b'),
        "a cell has colours or attributes:\n{styled:?}"
    );
    assert_ne!(tmux.pane_title(), "title", "the agent set the pane's title");
    for line in history.lines() {
        // `flight run`'s own first line (`run ID of esc (15 agents)`) is plain text printed
        // before the view starts; it is 53 columns and wraps in a narrower pane.
        if line.starts_with("run ") && line.ends_with("agents)") {
            continue;
        }
        assert!(
            line.width() <= columns,
            "a line wrapped ({} columns):\n{line}\nin:\n{history}",
            line.width()
        );
    }
}

/// The header's line in `history`: exactly one, since every frame is drawn over the last.
fn header_at(history: &str) -> usize {
    let lines: Vec<&str> = history.lines().collect();
    let headers: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(" of esc — "))
        .collect();
    assert_eq!(
        headers.len(),
        1,
        "frames landed in the scrollback:\n{history}"
    );
    assert!(
        lines[headers[0]].contains(" of esc — completed "),
        "{history}"
    );
    headers[0]
}

fn assert_noisy_rows(rows: &[&str], history: &str) {
    for (row, (slug, shown)) in rows.iter().zip(SHOWN) {
        let start = format!("  {slug:<5}  completed  ");
        assert!(row.starts_with(&start), "`{start}` expected:\n{history}");
        assert!(row.contains(shown), "`{shown}` expected in:\n{row}");
    }
}

#[test]
fn a_small_terminal_keeps_the_frame_in_place_and_summarises_the_rest() {
    let (tmux, _fixture) = run_in_pane(50, 12, &[], &[]);
    let history = tmux.history();
    assert_nothing_acted_on(&tmux, 50, &history);
    let lines: Vec<&str> = history.lines().collect();
    let header = header_at(&history);
    // 11 lines of 12: the header, 9 agents (in flight order, all being completed), a summary.
    let rows = &lines[header + 1..header + 10];
    assert_noisy_rows(rows, &history);
    let tail: Vec<&str> = rows[5..].iter().map(|r| &r[..7]).collect();
    assert_eq!(
        tail,
        ["  long ", "  wide ", "  q1   ", "  q2   "],
        "{history}"
    );
    assert!(
        rows[5].ends_with("LLLLL…") && rows[5].width() == 50,
        "{history}"
    );
    assert!(rows[6].ends_with('…'), "{history}");
    assert_eq!(lines[header + 10], "  … 6 more: 6 completed", "{history}");
    // Then the agents' table on stderr, cut to the width too (checked above), and the result.
    assert!(lines[header + 11].is_empty(), "{history}");
    assert!(lines[header + 12].starts_with("AGENT"), "{history}");
    let screen = tmux.screen();
    assert!(screen.trim_end().ends_with(": completed"), "{screen}");
}

#[test]
fn a_large_terminal_shows_every_agent_cut_to_its_width() {
    // NO_COLOR is about colour only: the live view stays.
    let (tmux, _fixture) = run_in_pane(200, 60, &[("NO_COLOR", "1")], &[]);
    let history = tmux.history();
    assert_nothing_acted_on(&tmux, 200, &history);
    let lines: Vec<&str> = history.lines().collect();
    let header = header_at(&history);
    let rows = &lines[header + 1..header + 16];
    assert_noisy_rows(rows, &history);
    assert!(
        rows[5].ends_with("LLLLL…") && rows[5].width() == 200,
        "{history}"
    );
    assert!(
        rows[6].contains("漢漢漢") && rows[6].ends_with('…'),
        "{history}"
    );
    for (i, row) in rows[7..].iter().enumerate() {
        let start = format!("  q{:<4}  completed", i + 1);
        assert!(
            row.starts_with(&start) && row.ends_with("quiet"),
            "{history}"
        );
    }
    assert!(lines[header + 16].is_empty(), "{history}");
    // Nothing before the run's first line was scrolled away: it all fits in 60 rows.
    assert!(history.starts_with("run "), "{history}");
}

/// The line log, in a terminal that cannot take the live view or with `--plain`: every
/// event one line, what the agents wrote escaped, never acted on.
fn assert_line_log(tmux: &Tmux) {
    let history = tmux.history();
    assert!(!history.contains(" of esc — "), "a live view:\n{history}");
    for (slug, shown) in SHOWN {
        let line = history
            .lines()
            .find(|line| line.contains(&format!(" {slug:<16} | ")) && line.contains(shown))
            .unwrap_or_else(|| panic!("no `{slug}` line with `{shown}` in:\n{history}"));
        assert!(!line.contains(['\x1b', '\r', '\x07']), "{line:?}");
    }
    let styled = tmux.styled();
    assert!(!styled.contains('\x1b'), "{styled:?}");
    assert_ne!(tmux.pane_title(), "title");
}

#[test]
fn term_dumb_gets_the_line_log() {
    let (tmux, _fixture) = run_in_pane(200, 60, &[("TERM", "dumb")], &[]);
    assert_line_log(&tmux);
}

#[test]
fn plain_forces_the_line_log_on_a_terminal() {
    let (tmux, _fixture) = run_in_pane(200, 60, &[], &["--plain"]);
    assert_line_log(&tmux);
}

/// A run killed while its second agent ran, after the first completed, then resumed in a
/// terminal: the view starts from the stored states (the first agent completed, the run
/// running), not from an empty run.
#[test]
fn a_resumed_run_shows_what_already_happened() {
    let fixture = Fixture::new(&Backend::Sqlite, "terminal-resume");
    let go = fixture.path("go");
    let flight = format!(
        "---\nruntime: exec\n---\n# Two\n\n## first\n> command: echo first is done\n\n\
         ## second\n> needs: first\n> command: until [ -e {} ]; do sleep 0.05; done; echo released\n",
        go.display()
    );
    fixture.write_flight("two", &flight);
    let (run, session) = start(&fixture, "two", |events| {
        last_is(events, "agent_started", "second")
    });
    assert!(session.killed, "{}", session.stderr);
    let command = fixture.command(&["runs", "resume", &run]);
    let tmux = Tmux::start(100, 20, &shell_line(&command, fixture.repo()));
    let screen = tmux.screen_when(|screen| screen.contains("  second  running"));
    assert!(screen.contains(" of two — running "), "{screen}");
    assert!(
        screen.contains("  first   completed ") && screen.contains("first is done"),
        "{screen}"
    );
    std::fs::write(&go, "").expect("release the agent");
    assert_eq!(tmux.wait(), 0, "{}", tmux.history());
    let history = tmux.history();
    assert!(history.contains(" of two — completed "), "{history}");
    assert!(history.contains("  second  completed ") && history.contains("released"));
    assert_eq!(history.matches(" of two — ").count(), 1, "{history}");
}
