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
        let text = if without_bom.contains('\r') {
            without_bom.replace("\r\n", "\n")
        } else {
            without_bom.to_owned()
        };
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
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
    fn columns_count_characters_not_bytes() {
        let source = Source::new("é=x\nab");
        assert_eq!(source.position(3), Position { line: 1, column: 3 });
        assert_eq!(source.offset(1, 2), 3);
        assert_eq!(source.offset(2, 1), 6);
        assert_eq!(source.offset(9, 0), source.text().len());
    }
}
