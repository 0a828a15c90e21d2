//! A git repository with flights whose agents are the real Claude Code CLI, talking to a
//! scripted model server; shared by the tests that drive `murmur` that way.
#![allow(dead_code)] // Each test file uses its own part of it.

use std::path::Path;
use std::process::{Command, Output};

use murmur_testkit::ModelServer;
use murmur_testkit::Turn;
use murmur_testkit::claude_cli::{QUIET_ENV, claude_bin};
use murmur_testkit::git::git;
use serde_json::Value;

pub struct Project {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
    /// The store every `murmur` of the project uses instead of its SQLite file.
    database_url: Option<String>,
}

impl Project {
    /// A git repository with these flights committed, and a home of its own for the CLI.
    pub fn new(flights: &[(&str, &str)]) -> Self {
        Self::with_files(flights, &[])
    }

    /// The same, with more files committed (a `.murmur/murmur.yaml`, say).
    pub fn with_files(flights: &[(&str, &str)], files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = tempfile::tempdir().expect("temp home");
        let repo = dir.path();
        git(repo, &["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(repo.join(".murmur/flights")).expect("mkdir");
        for (name, flight) in flights {
            let path = repo.join(format!(".murmur/flights/{name}.md"));
            std::fs::write(path, flight).expect("flight");
        }
        std::fs::write(
            repo.join(".gitignore"),
            ".murmur/work/\n.murmur/murmur.db*\n",
        )
        .expect("ignore");
        std::fs::write(repo.join("README.md"), "# Demo\n").expect("readme");
        for (path, contents) in files {
            let path = repo.join(path);
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder).expect("mkdir");
            }
            std::fs::write(path, contents).expect("file");
        }
        git(repo, &["add", "."]);
        git(repo, &["commit", "-qm", "start"]);
        Self {
            dir,
            home,
            database_url: None,
        }
    }

    /// Every `murmur` of the project from now on uses the store at `url` (a PostgreSQL
    /// database the caller keeps) instead of `.murmur/murmur.db`.
    pub fn use_database(&mut self, url: String) {
        self.database_url = Some(url);
    }

    pub fn repo(&self) -> &Path {
        self.dir.path()
    }

    /// `murmur ARGS` with the CLI pointed at `server`, isolated like testkit isolates it.
    pub fn murmur(&self, server: &ModelServer, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_murmur"));
        command
            .args(args)
            .current_dir(self.repo())
            .env("MURMUR_CLAUDE_BIN", claude_bin())
            .env("HOME", self.home.path())
            .env("TMPDIR", self.home.path())
            .env("ANTHROPIC_BASE_URL", server.url())
            .env("ANTHROPIC_API_KEY", "test-key")
            .env("NO_COLOR", "1")
            .envs(QUIET_ENV.iter().copied());
        if let Some(url) = &self.database_url {
            command.env("MURMUR_DATABASE_URL", url);
        }
        command
    }

    /// Whether a session transcript the CLI saved under its home contains `needle`.
    pub fn transcripts_contain(&self, needle: &str) -> bool {
        let projects = self.home.path().join(".claude/projects");
        let Ok(folders) = std::fs::read_dir(projects) else {
            return false;
        };
        folders
            .flatten()
            .filter_map(|folder| std::fs::read_dir(folder.path()).ok())
            .flatten()
            .flatten()
            .filter_map(|file| std::fs::read_to_string(file.path()).ok())
            .any(|text| text.contains(needle))
    }

    /// Forgets every session the CLI saved: what a CLI killed before it saved one leaves.
    pub fn forget_transcripts(&self) {
        let _ = std::fs::remove_dir_all(self.home.path().join(".claude/projects"));
    }

    /// `murmur runs show RUN --json`.
    pub fn show(&self, server: &ModelServer, run: &str) -> Value {
        self.json(server, &["runs", "show", run, "--json"])
    }

    /// The id of the newest run.
    pub fn latest_run(&self, server: &ModelServer) -> String {
        let runs = self.json(server, &["runs", "ls", "--json"]);
        runs[0]["id"].as_str().expect("a run id").to_owned()
    }

    pub fn json(&self, server: &ModelServer, args: &[&str]) -> Value {
        let out = self.murmur(server, args).output().expect("murmur runs");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn commit(message: &str, file: &str, content: &str) -> Turn {
    Turn::bash(format!(
        "printf '{content}\\n' > {file} && git add {file} && git -c user.name=a -c user.email=a@a commit -qm '{message}'"
    ))
}

pub fn agent<'v>(show: &'v Value, slug: &str) -> &'v Value {
    show["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["slug"] == slug))
        .unwrap_or_else(|| panic!("no {slug}: {show}"))
}

pub fn all_text(request: &Value) -> String {
    request["messages"].to_string()
}
