//! A process whose stderr lines a test waits for (a `murmur serve`, a `murmur worker`), and keeps,
//! so a failure or a search can show everything it said.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use super::session::DEADLINE;

pub struct Watched {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Watched {
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("the process starts");
        let stderr = child.stderr.take().expect("stderr");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line containing `needle`; panics with everything seen after the deadline.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {DEADLINE:?}: {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits up to `at_most` for it to log an act (kept; the lines of `GET` requests, such as
    /// the test's own looks, change nothing and do not count): a test watching state outside
    /// the process (a cloud API's instances) looks again once the process has done something.
    pub fn heard_within(&mut self, at_most: std::time::Duration) {
        let deadline = std::time::Instant::now() + at_most;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                return;
            };
            let read_only = line.contains("method=GET");
            self.seen.push(line);
            if !read_only {
                return;
            }
        }
    }

    /// Sends `signal` (`-KILL`, `-STOP`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal}");
    }

    /// Everything it wrote to stderr so far.
    pub fn said(&mut self) -> String {
        self.seen.extend(self.lines.try_iter());
        self.seen.join("\n")
    }

    /// Everything it wrote to stderr, once it is stopped.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.said()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
