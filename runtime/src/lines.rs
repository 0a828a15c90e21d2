//! Output lines as agent CLIs produce them, shared by the runtimes that read one.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

use crate::{Line, Stream, Update};

pub(crate) fn send_line(updates: &mpsc::UnboundedSender<Update>, stream: Stream, text: String) {
    let _ = updates.send(Update::Line(Line { stream, text }));
}

/// At most `width` characters, with an ellipsis when cut.
pub(crate) fn clip(text: &str, width: usize) -> String {
    match text.char_indices().nth(width) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Forwards every stderr line as it comes and returns them all, for error messages.
pub(crate) async fn read_stderr(
    stderr: impl AsyncRead + Unpin,
    updates: mpsc::UnboundedSender<Update>,
) -> String {
    let mut lines = BufReader::new(stderr).lines();
    let mut all = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        all.push_str(&line);
        all.push('\n');
        send_line(&updates, Stream::Stderr, line);
    }
    all
}
