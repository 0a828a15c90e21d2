//! A real terminal for the CLI: a private tmux server (its own socket, no user config, no
//! status line) running one command in a pane of a given size, and what the pane shows
//! afterwards, screen and scrollback, captured with `tmux capture-pane`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::session::DEADLINE;

pub struct Tmux {
    dir: tempfile::TempDir,
    socket: PathBuf,
}

/// `text` quoted for `sh`.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `command` (program, arguments, environment) as one `sh` command line, run in `cwd`.
pub fn shell_line(command: &Command, cwd: &Path) -> String {
    let mut line = format!("cd {} && env", quote(&cwd.display().to_string()));
    for (name, value) in command.get_envs() {
        if let Some(value) = value {
            let pair = format!("{}={}", name.to_string_lossy(), value.to_string_lossy());
            line.push_str(&format!(" {}", quote(&pair)));
        }
    }
    line.push_str(&format!(
        " {}",
        quote(&command.get_program().to_string_lossy())
    ));
    for arg in command.get_args() {
        line.push_str(&format!(" {}", quote(&arg.to_string_lossy())));
    }
    line
}

impl Tmux {
    /// Starts `line` (an `sh` command line) in a `columns`×`rows` pane. When it ends, its
    /// exit status is kept for [`Tmux::wait`] and the pane stays open, showing what it printed.
    pub fn start(columns: u16, rows: u16, line: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("socket");
        let config = dir.path().join("tmux.conf");
        std::fs::write(&config, "set -g status off\nset -g history-limit 5000\n")
            .expect("tmux config");
        let tmux = Self { dir, socket };
        let signal = format!("tmux -S {} wait-for -S done", quote(&tmux.socket_text()));
        let status = quote(&tmux.status_path().display().to_string());
        // `cat` holds the pane open on its terminal without printing anything.
        let script = format!("{line}; echo $? > {status}; {signal}; exec cat");
        let out = tmux.run(&[
            "-f",
            &config.display().to_string(),
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &columns.to_string(),
            "-y",
            &rows.to_string(),
            &script,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        tmux
    }

    fn socket_text(&self) -> String {
        self.socket.display().to_string()
    }

    fn status_path(&self) -> PathBuf {
        self.dir.path().join("status")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// Waits until the command has ended and returns its exit status.
    pub fn wait(&self) -> i32 {
        let (done, ended) = mpsc::channel();
        let mut waiter = Command::new("tmux");
        waiter
            .arg("-S")
            .arg(&self.socket)
            .args(["wait-for", "done"]);
        std::thread::spawn(move || {
            let _ = done.send(waiter.output());
        });
        let out = ended
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("the command did not end within {DEADLINE:?}"))
            .expect("tmux wait-for");
        assert!(out.status.success(), "tmux wait-for: {out:?}");
        let status = std::fs::read_to_string(self.status_path()).expect("exit status");
        status.trim().parse().expect("a number")
    }

    fn capture(&self, extra: &[&str]) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "t"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert!(out.status.success(), "tmux capture-pane: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The visible screen, wrapped lines joined (so a line that wrapped shows as too long).
    pub fn screen(&self) -> String {
        self.capture(&["-J"])
    }

    /// Scrollback and screen, wrapped lines joined.
    pub fn history(&self) -> String {
        self.capture(&["-J", "-S", "-"])
    }

    /// Scrollback and screen with the cells' colours and attributes as escape sequences.
    pub fn styled(&self) -> String {
        self.capture(&["-e", "-S", "-"])
    }

    pub fn pane_title(&self) -> String {
        let out = self.run(&["display-message", "-p", "-t", "t", "#{pane_title}"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The screen once `ready` holds for it; panics with the last screen at the deadline.
    pub fn screen_when(&self, ready: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the screen never got there:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}
