//! The `exec` runtime: a shell script in the agent's working directory, the prompt on stdin,
//! the run context in the environment. Exit status 0 is success; the last non-empty paragraph
//! of stdout is the agent's response.

use std::path::PathBuf;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::process::{self, Start, kill_group};
use crate::{Line, Stream, Update};

#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// Run by `sh -c`.
    pub script: String,
    pub prompt: String,
    pub workdir: PathBuf,
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub response: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start `sh` in {dir}: {source}")]
    Spawn { dir: String, source: std::io::Error },
    #[error("the command exited with status {code}{}", last_line(.stderr_tail))]
    Exit { code: i32, stderr_tail: String },
    #[error("the command was killed by signal {0}")]
    Signal(i32),
    #[error("the command was stopped")]
    Stopped,
    #[error("lost contact with the command: {0}")]
    Io(#[from] std::io::Error),
}

fn last_line(tail: &str) -> String {
    match tail.lines().rev().find(|line| !line.trim().is_empty()) {
        Some(line) => format!(": {}", line.trim()),
        None => String::new(),
    }
}

/// Runs the request to the end, streaming each output line into `lines`. Sending on `stop`
/// (or dropping it) kills the whole process tree.
pub async fn run(
    request: ExecRequest,
    lines: mpsc::UnboundedSender<Update>,
    stop: oneshot::Receiver<()>,
) -> Result<Outcome, Error> {
    let start = Start {
        program: "sh",
        args: &["-c".as_ref(), request.script.as_ref()],
        workdir: &request.workdir,
        env: &request.env,
        stdin: true,
    };
    let mut child = process::start(&start).map_err(|source| Error::Spawn {
        dir: request.workdir.display().to_string(),
        source,
    })?;
    let pid = child.id();
    if let Some(mut stdin) = child.stdin.take() {
        let prompt = request.prompt.clone();
        tokio::spawn(async move {
            // A script that ignores stdin closes the pipe early; that is not an error.
            let _ = stdin.write_all(prompt.as_bytes()).await;
        });
    }
    let stdout = child
        .stdout
        .take()
        .map(|out| tokio::spawn(pump(out, Stream::Stdout, lines.clone())));
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(pump(err, Stream::Stderr, lines)));
    let status = tokio::select! {
        status = child.wait() => status?,
        _ = stop => {
            if let Some(pid) = pid { kill_group(pid); }
            let _ = child.wait().await;
            return Err(Error::Stopped);
        }
    };
    let stdout = join(stdout).await;
    let stderr = join(stderr).await;
    if status.success() {
        return Ok(Outcome {
            response: last_paragraph(&stdout),
        });
    }
    match status.code() {
        Some(code) => Err(Error::Exit {
            code,
            stderr_tail: stderr,
        }),
        None => Err(Error::Signal(
            std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0),
        )),
    }
}

async fn join(task: Option<tokio::task::JoinHandle<String>>) -> String {
    match task {
        Some(task) => task.await.unwrap_or_default(),
        None => String::new(),
    }
}

/// Forwards lines as they arrive and returns everything read.
async fn pump(
    reader: impl AsyncRead + Unpin,
    stream: Stream,
    lines: mpsc::UnboundedSender<Update>,
) -> String {
    let mut reader = BufReader::new(reader);
    let mut all = String::new();
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buffer);
                let text = text.trim_end_matches(['\n', '\r']).to_owned();
                all.push_str(&text);
                all.push('\n');
                let _ = lines.send(Update::Line(Line { stream, text }));
            }
        }
    }
    all
}

/// The last block of non-empty lines.
pub fn last_paragraph(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let Some(end) = lines.iter().rposition(|line| !line.trim().is_empty()) else {
        return String::new();
    };
    let start = lines[..end]
        .iter()
        .rposition(|line| line.trim().is_empty())
        .map_or(0, |i| i + 1);
    lines[start..=end].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(script: &str, dir: &std::path::Path) -> ExecRequest {
        ExecRequest {
            script: script.to_owned(),
            prompt: "the prompt".to_owned(),
            workdir: dir.to_path_buf(),
            env: vec![("MURMUR_AGENT".to_owned(), "build".to_owned())],
        }
    }

    #[test]
    fn last_paragraph_picks_the_final_block() {
        assert_eq!(last_paragraph("a\n\nb\nc\n\n\n"), "b\nc");
        assert_eq!(last_paragraph("only"), "only");
        assert_eq!(last_paragraph("\n\n"), "");
    }

    #[tokio::test]
    async fn streams_lines_and_returns_the_response() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (_stop, stop_rx) = oneshot::channel();
        let script =
            "read p; echo \"got $p for $MURMUR_AGENT\"; echo warn >&2; echo; echo done; pwd";
        let outcome = run(request(script, dir.path()), tx, stop_rx).await.unwrap();
        let pwd = dir.path().canonicalize().unwrap();
        assert_eq!(outcome.response, format!("done\n{}", pwd.display()));
        let mut seen = Vec::new();
        while let Ok(Update::Line(line)) = rx.try_recv() {
            seen.push((line.stream, line.text));
        }
        assert!(seen.contains(&(Stream::Stdout, "got the prompt for build".to_owned())));
        assert!(seen.contains(&(Stream::Stderr, "warn".to_owned())));
    }

    #[tokio::test]
    async fn a_failing_command_reports_status_and_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = mpsc::unbounded_channel();
        let (_stop, stop_rx) = oneshot::channel();
        let error = run(request("echo broken >&2; exit 3", dir.path()), tx, stop_rx)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the command exited with status 3: broken"
        );
    }

    #[tokio::test]
    async fn stopping_kills_the_process_tree() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = oneshot::channel();
        let script = "sleep 300 & echo $!; wait";
        let task = tokio::spawn(run(request(script, dir.path()), tx, stop_rx));
        let Some(Update::Line(line)) = rx.recv().await else {
            panic!("a line")
        };
        let grandchild: i32 = line.text.parse().unwrap();
        let exited = murmur_testkit::process::ExitWatch::new(grandchild);
        stop.send(()).unwrap();
        assert!(matches!(task.await.unwrap(), Err(Error::Stopped)));
        assert!(exited.wait(), "grandchild {grandchild} outlived the stop");
    }
}
