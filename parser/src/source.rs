//! The flight's text, normalised once (BOM dropped, CRLF folded) so that every later stage
//! works on plain `\n`-separated UTF-8 and positions agree with what editors show.

use std::ops::Range;

/// Normalised source text with a line index for turning byte offsets into line/column.
#[derive(Debug, Clone)]
pub struct Source {
    text: String,
    line_starts: Vec<usize>,
}

/// A 1-based line and a 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Source {
    pub fn new(raw: &str) -> Self {
        let without_bom = raw.strip_prefix('\u{feff}').unwrap_or(raw);
        // Both scans cover the whole document: `memchr` searches with SIMD, several times
        // faster than `str`'s char search.
        let text = if memchr::memchr(b'\r', without_bom.as_bytes()).is_some() {
            without_bom.replace("\r\n", "\n")
        } else {
            without_bom.to_owned()
        };
        let line_starts = std::iter::once(0)
            .chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|at| at + 1))
            .collect();
        Self { text, line_starts }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let line_index = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let line_start = self.line_starts[line_index];
        let column = self.text[line_start..floor_char_boundary(&self.text, offset)]
            .chars()
            .count();
        Position {
            line: line_index + 1,
            column: column + 1,
        }
    }

    /// For finding the lines of many offsets in increasing order.
    pub(crate) fn line_cursor(&self) -> LineCursor<'_> {
        LineCursor {
            line_starts: &self.line_starts,
            index: 0,
        }
    }

    /// Byte offset of a 1-based line and a 0-based character column, clamped to the text.
    pub fn offset(&self, line: usize, char_column: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let line_text = &self.text[start..self.line_end(start)];
        let within = line_text
            .char_indices()
            .nth(char_column)
            .map_or(line_text.len(), |(at, _)| at);
        start + within
    }

    /// The byte range of the line that contains `offset`, without its newline.
    pub fn line_range(&self, offset: usize) -> Range<usize> {
        let offset = offset.min(self.text.len());
        let index = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[index];
        start..self.line_end(start)
    }

    fn line_end(&self, line_start: usize) -> usize {
        self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |at| line_start + at)
    }
}

/// Finds lines by walking forward through the line index from the previous answer. A flight
/// asks for the line of every agent heading, in order: a binary search each would jump around
/// an index of hundreds of kilobytes.
pub(crate) struct LineCursor<'s> {
    line_starts: &'s [usize],
    /// 0-based line of the previous answer.
    index: usize,
}

impl LineCursor<'_> {
    /// The 1-based line of `offset`, as [`Source::position`] gives it.
    pub fn line_of(&mut self, offset: usize) -> usize {
        if offset < self.line_starts[self.index] {
            // Out of order: start over.
            self.index = 0;
        }
        while self
            .line_starts
            .get(self.index + 1)
            .is_some_and(|&next| next <= offset)
        {
            self.index += 1;
        }
        self.index + 1
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_bom_and_folds_crlf() {
        let source = Source::new("\u{feff}# T\r\n\r\nx\r\n");
        assert_eq!(source.text(), "# T\n\nx\n");
        assert_eq!(source.position(5), Position { line: 3, column: 1 });
    }

    #[test]
    fn line_cursor_agrees_with_position() {
        let source = Source::new("a\n\nbc\nd\n");
        let mut lines = source.line_cursor();
        for offset in [0, 1, 2, 3, 5, 6, 7, 8, 99, 4, 0, 7] {
            assert_eq!(
                lines.line_of(offset),
                source.position(offset).line,
                "{offset}"
            );
        }
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let source = Source::new("é=x\nab");
        assert_eq!(source.position(3), Position { line: 1, column: 3 });
        assert_eq!(source.offset(1, 2), 3);
        assert_eq!(source.offset(2, 1), 6);
        assert_eq!(source.offset(9, 0), source.text().len());
    }
}
