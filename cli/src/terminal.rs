//! Text that agents (or anyone who can feed them) wrote, shown on a terminal: every control
//! character and escape sequence made visible, lines cut to the terminal's width by display
//! width, and whether this terminal can take the live view at all.
//!
//! One rule for every place that prints such text: a control character is *shown*, escaped,
//! never passed through and never silently dropped (so `\033[2J` prints as `\x1b[2J`). The
//! only exceptions: a tab becomes one space, the `\r` of a CRLF line break is dropped, and so
//! are line breaks at the very end.

use std::borrow::Cow;
use std::fmt::Write;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use unicode_width::UnicodeWidthChar;

/// One line of untrusted text, safe to print: C0 controls and DEL as `\xNN` (`\n`, `\r` as
/// such), C1 controls and the Unicode controls that reorder or break lines as `\u{NNNN}`.
/// The escape character's sequence (`[2J`, `]0;title`) is printable already and stays as text.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    // Line breaks at the end say nothing on one line (an error's last `\n`, a CRLF ending).
    let text = text.trim_end_matches(['\r', '\n']);
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\t' => out.push(' '),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// As [`sanitize`] for text shown as a block (a response, a pull request's body): its line
/// breaks stay line breaks, every line is sanitised.
pub fn sanitize_block(text: &str) -> String {
    text.split('\n')
        .map(sanitize)
        .collect::<Vec<_>>()
        .join("\n")
}

fn needs_escape(c: char) -> bool {
    c.is_control() // C0, DEL and C1 (U+0080..=U+009F)
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Columns `c` takes on a terminal. Controls count 0 (they never reach here unescaped); a
/// variation selector counts 1, since it can turn the character before it into a wide emoji:
/// over-counting only cuts a line a little early, under-counting would wrap it.
fn char_width(c: char) -> usize {
    match c {
        '\u{fe0f}' => 1,
        c => c.width().unwrap_or(0),
    }
}

/// Columns `text` takes on a terminal (wide characters count 2).
pub fn width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// `text` cut to at most `columns` columns, ending in `…` when something was cut.
pub fn clip(text: &str, columns: usize) -> Cow<'_, str> {
    let mut used = 0;
    // Where the text stands once `columns - 1` columns are used: the cut when it overflows.
    let mut cut = None;
    for (at, c) in text.char_indices() {
        let next = used + char_width(c);
        if next > columns.saturating_sub(1) && cut.is_none() {
            cut = Some(at);
        }
        if next > columns {
            let mut clipped = text[..cut.unwrap_or(at)].to_owned();
            if columns > 0 {
                clipped.push('…');
            }
            return Cow::Owned(clipped);
        }
        used = next;
    }
    Cow::Borrowed(text)
}

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub columns: usize,
    pub rows: usize,
}

/// Used when the size cannot be read (not a terminal, no `COLUMNS`/`LINES`).
const FALLBACK: Size = Size {
    columns: 80,
    rows: 24,
};

/// Stdout's size now (read on every frame, so a resize takes effect at the next one), else
/// `COLUMNS` and `LINES`, else 80×24.
pub fn size() -> Size {
    size_of(std::io::stdout())
}

/// As [`size`], for stderr (the summary printed after a run goes there).
pub fn stderr_size() -> Size {
    size_of(std::io::stderr())
}

fn size_of(stream: impl std::os::fd::AsFd) -> Size {
    if let Some((columns, rows)) = terminal_size::terminal_size_of(stream) {
        let size = Size {
            columns: usize::from(columns.0),
            rows: usize::from(rows.0),
        };
        if size.columns > 0 && size.rows > 0 {
            return size;
        }
    }
    let variable = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|value| value.trim().parse::<usize>().ok())
            .filter(|&value| value > 0)
    };
    Size {
        columns: variable("COLUMNS").unwrap_or(FALLBACK.columns),
        rows: variable("LINES").unwrap_or(FALLBACK.rows),
    }
}

static PLAIN: AtomicBool = AtomicBool::new(false);

/// `--plain`: the line log even on a terminal that could take the live view.
pub fn force_line_log(plain: bool) {
    PLAIN.store(plain, Ordering::SeqCst);
}

/// Whether to draw the live view: not for JSON, not with `--plain`, only when stdout is a
/// terminal that understands cursor movement. `NO_COLOR` is about colour and changes nothing
/// here.
pub fn live_view_wanted(json: bool) -> bool {
    let term = std::env::var("TERM").ok();
    !json
        && !PLAIN.load(Ordering::SeqCst)
        && std::io::stdout().is_terminal()
        && moves_cursor(term.as_deref())
}

/// `TERM=dumb` (or no `TERM` at all) is a terminal that cannot move its cursor.
fn moves_cursor(term: Option<&str>) -> bool {
    term.is_some_and(|term| !term.trim().is_empty() && term != "dumb")
}

/// Every line of `text` cut to `columns` (a table printed to a terminal must not wrap either).
pub fn fit_lines(text: &str, columns: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        out.push_str(&clip(body, columns));
        out.push_str(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_become_visible_text() {
        assert_eq!(sanitize("\x1b[2J\x1b[Hhello"), "\\x1b[2J\\x1b[Hhello");
        assert_eq!(sanitize("\x1b]0;title\x07"), "\\x1b]0;title\\x07");
        assert_eq!(sanitize("\x1bP1$r\x1b\\"), "\\x1bP1$r\\x1b\\");
        assert_eq!(sanitize("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(sanitize("lone \x1b"), "lone \\x1b");
        assert_eq!(
            sanitize("csi \u{9b}2J osc \u{9d}"),
            "csi \\u{9b}2J osc \\u{9d}"
        );
    }

    #[test]
    fn other_controls_are_escaped_tabs_become_spaces() {
        assert_eq!(sanitize("50%\r100%"), "50%\\r100%");
        assert_eq!(sanitize("ab\x08\x08cd\x07"), "ab\\x08\\x08cd\\x07");
        assert_eq!(sanitize("a\tb"), "a b");
        assert_eq!(sanitize("nul\0del\x7f"), "nul\\x00del\\x7f");
        assert_eq!(sanitize("two\nlines"), "two\\nlines");
        assert_eq!(sanitize("crlf\r\nnext\r"), "crlf\\nnext");
        assert_eq!(sanitize("error\n\n"), "error");
        assert_eq!(sanitize("rtl \u{202e}txt.exe"), "rtl \\u{202e}txt.exe");
    }

    #[test]
    fn a_block_keeps_its_lines() {
        assert_eq!(
            sanitize_block("one\r\n\x1b[2Jtwo\n\tthree"),
            "one\n\\x1b[2Jtwo\n three"
        );
    }

    #[test]
    fn clean_text_is_borrowed_unchanged() {
        for text in ["plain", "漢字 and emoji 🎉", "back\\slash", ""] {
            assert!(matches!(sanitize(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn clipping_counts_display_columns() {
        assert_eq!(clip("hello", 5), "hello");
        assert_eq!(clip("hello!", 5), "hell…");
        assert_eq!(width("漢字"), 4);
        assert_eq!(clip("漢字漢字", 5), "漢字…");
        assert_eq!(clip("漢字漢字", 6), "漢字…");
        assert_eq!(clip("漢字漢", 6), "漢字漢");
        assert_eq!(clip("abc", 0), "");
        assert_eq!(clip("abc", 1), "…");
        let long = "x".repeat(500);
        assert_eq!(width(&clip(&long, 50)), 50);
        for columns in 0..12 {
            for text in [
                "漢a字b漢c",
                "e\u{301}e\u{301}e\u{301}",
                "❤\u{fe0f}❤\u{fe0f}x",
            ] {
                assert!(width(&clip(text, columns)) <= columns, "{text} {columns}");
            }
        }
    }

    #[test]
    fn fit_lines_cuts_each_line_and_keeps_the_ends() {
        assert_eq!(fit_lines("abcdef\nab\n", 4), "abc…\nab\n");
        assert_eq!(fit_lines("abcdef", 4), "abc…");
    }

    #[test]
    fn dumb_or_missing_terms_get_no_cursor_movement() {
        assert!(!moves_cursor(None));
        assert!(!moves_cursor(Some("")));
        assert!(!moves_cursor(Some("dumb")));
        assert!(moves_cursor(Some("xterm-256color")));
        assert!(moves_cursor(Some("tmux-256color")));
    }
}
