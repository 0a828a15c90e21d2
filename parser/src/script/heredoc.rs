//! Heredocs: the operator (`<<WORD`, `<<-WORD`, quoted words), the body that starts at the next
//! newline, and the terminator line that ends it.

use super::{Body, Context, Pending, Scanner};

impl Scanner<'_> {
    /// `<<` (not bash's `<<<`): reads the delimiter word; the body comes after the newline.
    pub(super) fn heredoc_operator(&mut self) {
        if self.byte(self.i + 2) == Some(b'<') {
            return self.copy(3);
        }
        self.copy(2);
        let strip_tabs = self.byte(self.i) == Some(b'-');
        if strip_tabs {
            self.copy(1);
        }
        while matches!(self.byte(self.i), Some(b' ' | b'\t')) {
            self.copy(1);
        }
        let word_start = self.out.len();
        let mut delimiter = Vec::new();
        let mut quoted = false;
        while let Some(byte) = self.byte(self.i) {
            if super::BREAKS.contains(&byte) || self.hole_at(self.i).is_some() {
                break;
            }
            match byte {
                b'\'' | b'"' => {
                    quoted = true;
                    let rest = &self.src[self.i + 1..];
                    let close = rest.iter().position(|&b| b == byte).unwrap_or(rest.len());
                    delimiter.extend_from_slice(&rest[..close]);
                    self.copy(close + 2);
                }
                b'\\' => {
                    quoted = true;
                    delimiter.extend(self.byte(self.i + 1));
                    self.copy(2);
                }
                _ => {
                    delimiter.push(byte);
                    self.copy(1);
                }
            }
        }
        if delimiter.is_empty() && !quoted {
            return;
        }
        self.pending.push(Pending {
            delimiter,
            strip_tabs,
            quoted,
            word: word_start..self.out.len(),
            depth: self.stack.len(),
        });
    }

    /// At the start of a line: the first heredoc read on the line before begins its body.
    pub(super) fn start_pending_body(&mut self) {
        if self
            .pending
            .first()
            .is_none_or(|pending| pending.depth != self.stack.len())
        {
            return;
        }
        let pending = self.pending.remove(0);
        let (end, resume) = self.terminator(&pending);
        let start = self.i;
        let rewrite = pending.quoted
            && self
                .holes
                .iter()
                .any(|hole| (start..end).contains(&hole.span.start));
        let mut renamed = None;
        if rewrite {
            let plain = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
            let delimiter = if !pending.delimiter.is_empty() && pending.delimiter.iter().all(plain)
            {
                pending.delimiter.clone()
            } else {
                let fresh = self.fresh_delimiter(start, end);
                renamed = Some(fresh.clone());
                fresh
            };
            self.replace_word(&pending, &delimiter);
        }
        self.bodies.push(Body {
            quoted: pending.quoted,
            rewrite,
            end,
            resume,
            renamed,
        });
        self.stack.push(Context::Heredoc(self.bodies.len() - 1));
    }

    /// Where the body ends (the terminator line's start) and the text after that line begins;
    /// the end of the script when no line ends it.
    fn terminator(&self, pending: &Pending) -> (usize, usize) {
        let mut line_start = self.i;
        while line_start < self.src.len() {
            let rest = &self.src[line_start..];
            let line_end = line_start + rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let mut line = &self.src[line_start..line_end];
            if pending.strip_tabs {
                while let [b'\t', tail @ ..] = line {
                    line = tail;
                }
            }
            if line == pending.delimiter.as_slice() {
                return (line_start, (line_end + 1).min(self.src.len()));
            }
            line_start = line_end + 1;
        }
        (self.src.len(), self.src.len())
    }

    /// A delimiter no line of the body equals, for a rewritten heredoc whose own is no plain word.
    fn fresh_delimiter(&self, start: usize, end: usize) -> Vec<u8> {
        let body = &self.src[start..end];
        (0u32..)
            .map(|n| format!("MURMUR_HEREDOC_{n}").into_bytes())
            .find(|candidate| {
                !body
                    .split(|&b| b == b'\n')
                    .any(|line| line.trim_ascii_start() == candidate.as_slice())
            })
            .unwrap_or_default()
    }

    /// The rewritten heredoc's operator names its delimiter unquoted.
    fn replace_word(&mut self, pending: &Pending, delimiter: &[u8]) {
        let word = pending.word.clone();
        let grown = delimiter.len() as isize - word.len() as isize;
        self.out.splice(word.clone(), delimiter.iter().copied());
        for later in &mut self.pending {
            if later.word.start >= word.end {
                later.word = (later.word.start.saturating_add_signed(grown))
                    ..(later.word.end.saturating_add_signed(grown));
            }
        }
    }

    /// At the innermost heredoc's terminator line: the body (and whatever it left open) ends,
    /// the line is copied, and the next heredoc of the same line starts its body.
    pub(super) fn heredoc_ends_here(&mut self) -> bool {
        let Some(position) = self
            .stack
            .iter()
            .rposition(|context| matches!(context, Context::Heredoc(_)))
        else {
            return false;
        };
        let Context::Heredoc(index) = self.stack[position] else {
            return false;
        };
        let body = &self.bodies[index];
        if body.end > self.i {
            return false;
        }
        // Past the end only when an inner heredoc's terminator was this one's too.
        let at_terminator = body.end == self.i;
        let (resume, renamed) = (body.resume, body.renamed.clone());
        self.stack.truncate(position);
        match renamed {
            _ if !at_terminator => {}
            Some(delimiter) => {
                self.out.extend_from_slice(&delimiter);
                if self.src[..resume].ends_with(b"\n") {
                    self.out.push(b'\n');
                }
                self.i = resume;
            }
            None => self.copy(resume - self.i),
        }
        self.word_start = true;
        self.start_pending_body();
        true
    }
}
