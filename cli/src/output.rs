//! Writing to stdout without panicking when the reader goes away (`murmur … | head`).

use std::io::Write;

/// Writes `text` to stdout. A closed pipe ends the process quietly, as it does for other
/// Unix tools; any other write error ends it with status 2.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(error) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {error}");
        std::process::exit(crate::Exit::Usage as i32);
    }
}

pub fn emit_line(text: &str) {
    emit(&format!("{text}\n"));
}
