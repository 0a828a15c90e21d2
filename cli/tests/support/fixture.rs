//! A temporary git repository with its flights, an agents' ledger and a store, driven by the
//! real `murmur` binary; and snapshots of what the store and the ledger say between processes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::db::{Backend, PgDatabase};

pub struct Fixture {
    dir: tempfile::TempDir,
    /// Agents append `NAME ATTEMPT` here, so every execution leaves a trace.
    pub ledger: PathBuf,
    db: String,
    _pg: Option<PgDatabase>,
}

impl Fixture {
    /// A fresh repository (`git init`, no commits) and an empty store.
    pub fn new(backend: &Backend, label: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let git = Command::new("git")
            .args(["init", "-q"])
            .current_dir(dir.path())
            .output()
            .expect("git runs");
        assert!(git.status.success(), "git init: {git:?}");
        std::fs::create_dir_all(dir.path().join(".murmur/flights")).expect("mkdir");
        let ledger = dir.path().join("ledger.txt");
        let (db, pg) = match backend {
            Backend::Sqlite => (
                dir.path().join(".murmur/murmur.db").display().to_string(),
                None,
            ),
            Backend::Postgres(admin_url) => {
                let (pg, url) = PgDatabase::create(admin_url, label);
                (url, Some(pg))
            }
        };
        Self {
            dir,
            ledger,
            db,
            _pg: pg,
        }
    }

    /// As [`Fixture::new`], with a first (empty) commit: agents get branches and worktrees.
    pub fn with_history(backend: &Backend, label: &str) -> Self {
        let fixture = Self::new(backend, label);
        murmur_testkit::git::git(
            fixture.repo(),
            &["commit", "-q", "--allow-empty", "-m", "start"],
        );
        fixture
    }

    pub fn repo(&self) -> &Path {
        self.dir.path()
    }

    /// The store's URL or SQLite path, as `--db` takes it.
    pub fn db_url(&self) -> &str {
        &self.db
    }

    /// A path in the repository's folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.repo().join(name)
    }

    /// Writes `.murmur/flights/NAME.md`.
    pub fn write_flight(&self, name: &str, text: &str) {
        let path = self.repo().join(format!(".murmur/flights/{name}.md"));
        std::fs::write(path, text).expect("write the flight");
    }

    /// Writes `.murmur/murmur.yaml`.
    pub fn write_config(&self, yaml: &str) {
        std::fs::write(self.repo().join(".murmur/murmur.yaml"), yaml).expect("write the config");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_murmur"));
        command
            .args(args)
            .args(["--db", &self.db])
            .current_dir(self.repo())
            .env("NO_COLOR", "1");
        command
    }

    pub fn murmur(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the binary runs")
    }

    pub fn show(&self, run: &str) -> Value {
        let out = self.murmur(&["runs", "show", run, "--json"]);
        assert!(out.status.success(), "runs show: {out:?}");
        serde_json::from_slice(&out.stdout).expect("runs show --json is JSON")
    }

    /// `runs logs`: one human-readable line per stored event, in order.
    pub fn logs(&self, run: &str) -> Vec<String> {
        let out = self.murmur(&["runs", "logs", run]);
        assert!(out.status.success(), "runs logs: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Every `NAME ATTEMPT` line of the ledger, by name, in order.
    pub fn ledger(&self) -> BTreeMap<String, Vec<u32>> {
        let mut ledger: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (name, attempt) in self.ledger_lines() {
            ledger.entry(name).or_default().push(attempt);
        }
        ledger
    }

    /// The ledger's lines in the order they were written.
    pub fn ledger_lines(&self) -> Vec<(String, u32)> {
        let text = std::fs::read_to_string(&self.ledger).unwrap_or_default();
        text.lines()
            .map(|line| {
                let (name, attempt) = line
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("malformed ledger line `{line}`"));
                (name.to_owned(), attempt.parse().expect("attempt number"))
            })
            .collect()
    }

    pub fn snapshot(&self, run: &str) -> Snapshot {
        let show = self.show(run);
        let agents = show["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .map(|a| {
                let slug = a["slug"].as_str().expect("slug").to_owned();
                let state = a["state"].as_str().expect("state").to_owned();
                let attempts = a["attempts"].as_u64().expect("attempts") as u32;
                (slug, (state, attempts))
            })
            .collect();
        Snapshot {
            status: show["status"].as_str().expect("status").to_owned(),
            agents,
            ledger: self.ledger(),
            logs: self.logs(run),
        }
    }
}

/// What the database and the ledger say at one moment between processes.
#[derive(Default)]
pub struct Snapshot {
    pub status: String,
    /// Slug → (state, attempts).
    pub agents: BTreeMap<String, (String, u32)>,
    pub ledger: BTreeMap<String, Vec<u32>>,
    pub logs: Vec<String>,
}

impl Snapshot {
    pub fn in_state(&self, state: &str) -> BTreeSet<&str> {
        self.agents
            .iter()
            .filter(|(_, (s, _))| s == state)
            .map(|(slug, _)| slug.as_str())
            .collect()
    }

    /// Agents whose attempt was running: `starting` and `running` ones, except fan-out
    /// templates that have their items (they run only through their instances).
    pub fn in_flight(&self) -> BTreeSet<&str> {
        let expanded = self.with_line("fans out over");
        let mut running = self.in_state("running");
        running.extend(self.in_state("starting"));
        running.retain(|slug| !expanded.contains(slug));
        running
    }

    /// The agents (or `run`) of the log lines that contain `text`, once each.
    pub fn with_line(&self, text: &str) -> BTreeSet<&str> {
        self.logs
            .iter()
            .filter(|line| line.contains(text))
            .filter_map(|line| line.split_whitespace().nth(1))
            .collect()
    }

    /// How many log lines of agent `slug` contain `text`.
    pub fn count(&self, slug: &str, text: &str) -> usize {
        self.logs
            .iter()
            .filter(|line| line.split_whitespace().nth(1) == Some(slug) && line.contains(text))
            .count()
    }

    /// Agent `slug`'s lifecycle in the log: what each of its lines says, but its output.
    pub fn story(&self, slug: &str) -> Vec<&str> {
        self.logs
            .iter()
            .filter(|line| line.split_whitespace().nth(1) == Some(slug))
            .map(|line| what(line))
            .filter(|what| !what.starts_with("| ") && !what.starts_with("! "))
            .collect()
    }
}

/// What a `runs logs` line says, without its time and agent.
pub fn what(line: &str) -> &str {
    let rest = line.split_once("  ").map_or(line, |(_, rest)| rest);
    rest.trim_start()
        .split_once(' ')
        .map_or("", |(_, what)| what.trim_start())
}
