//! What the workspace tests share: bare origins, a `murmur serve` in an empty folder, and
//! the CLI run in a folder.

use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::support::serve::Events;
use crate::support::serve::{Api, listening};
use crate::support::watched::Watched;
use crate::support::{http, murmur, murmur_output};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const WEBHOOK_SECRET: &str = "workspaces-webhook-secret";

pub fn hello(pool: Option<&str>) -> String {
    let pool = pool.map_or(String::new(), |p| format!("pool: {p}\n"));
    format!(
        "---\nruntime: exec\n{pool}---\n# Hello\n\n## hello\n> command: echo \"in $(cat marker.txt)\"\n"
    )
}

/// Waits for the file `go` (in the test's folder) before it answers.
pub fn hold(go: &Path) -> String {
    format!(
        "---\nruntime: exec\n---\n# Hold\n\n## hold\n> command: until [ -e {} ]; do sleep 0.05; done; echo held\n",
        go.display()
    )
}

/// Commits in the second repository of its workspace and says what it sees in both.
pub fn pair(pool: Option<&str>) -> String {
    let pool = pool.map_or(String::new(), |p| format!("pool: {p}\n"));
    format!(
        "---\nruntime: exec\n{pool}---\n# Pair\n\n## pair\n> command: cd .murmur/repos/back && echo work > agent.txt && git add agent.txt && git -c user.email=a@a -c user.name=a commit -q -m agent && cd ../../.. && echo \"front $(cat marker.txt) back $(cat .murmur/repos/back/marker.txt) on $(git -C .murmur/repos/back rev-parse --abbrev-ref HEAD)\"\n"
    )
}

/// `lay` commits in the second repository only; `read`, downstream, says what it finds there.
pub fn stack(pool: Option<&str>) -> String {
    let pool = pool.map_or(String::new(), |p| format!("pool: {p}\n"));
    format!(
        "---\nruntime: exec\n{pool}---\n# Stack\n\n## lay\n> command: cd .murmur/repos/back && echo laid > up.txt && git add up.txt && git -c user.email=a@a -c user.name=a commit -q -m lay && echo done\n\n## read\n> needs: lay\n> command: echo \"found $(cat .murmur/repos/back/up.txt)\"\n"
    )
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare origin `NAME.git` seeded with `marker.txt` and flights, and the clone pushes go from.
pub struct Origin {
    pub bare: PathBuf,
    pub seed: PathBuf,
}

impl Origin {
    pub fn new(root: &Path, name: &str, flights: &[(&str, String)]) -> Self {
        let seed = root.join(format!("seed-{name}"));
        std::fs::create_dir_all(seed.join(".murmur/flights")).expect("seed");
        git(&seed, &["init", "--quiet", "-b", "main"]);
        git(&seed, &["config", "user.email", "t@t"]);
        git(&seed, &["config", "user.name", "t"]);
        std::fs::write(seed.join("marker.txt"), format!("repo-{name}\n")).expect("marker");
        for (flight, text) in flights {
            let path = seed.join(format!(".murmur/flights/{flight}.md"));
            std::fs::write(path, text).expect("flight");
        }
        git(&seed, &["add", "."]);
        git(&seed, &["commit", "--quiet", "-m", "seed"]);
        let bare = root.join(format!("{name}.git"));
        let target = bare.display().to_string();
        git(
            root,
            &[
                "clone",
                "--quiet",
                "--bare",
                &seed.display().to_string(),
                &target,
            ],
        );
        git(&seed, &["remote", "add", "origin", &target]);
        Self { bare, seed }
    }

    pub fn url(&self) -> String {
        self.bare.display().to_string()
    }

    /// Pushes a new `marker.txt`; answers the new commit.
    pub fn push(&self, marker: &str) -> String {
        std::fs::write(self.seed.join("marker.txt"), format!("{marker}\n")).expect("marker");
        git(&self.seed, &["commit", "--quiet", "-am", marker]);
        git(&self.seed, &["push", "--quiet", "origin", "main"]);
        self.head()
    }

    pub fn head(&self) -> String {
        git(&self.seed, &["rev-parse", "HEAD"])
    }

    /// Pushes branch `name` off `main` with `marker.txt` saying `marker`; answers its commit.
    pub fn branch(&self, name: &str, marker: &str) -> String {
        git(&self.seed, &["checkout", "--quiet", "-b", name]);
        std::fs::write(self.seed.join("marker.txt"), format!("{marker}\n")).expect("marker");
        git(&self.seed, &["commit", "--quiet", "-am", marker]);
        git(&self.seed, &["push", "--quiet", "origin", name]);
        let commit = self.head();
        git(&self.seed, &["checkout", "--quiet", "main"]);
        commit
    }
}

/// A `murmur serve` in a folder with no repository.
pub struct Server {
    pub folder: tempfile::TempDir,
    pub process: Watched,
    pub address: String,
    pub token: String,
}

impl Server {
    pub fn folder() -> tempfile::TempDir {
        tempfile::tempdir().expect("the server's folder")
    }

    pub fn start(folder: tempfile::TempDir) -> Self {
        Self::start_in_env(folder, &[])
    }

    /// [`Server::start`] with `env` in the server's environment.
    pub fn start_in_env(folder: tempfile::TempDir, env: &[(&str, &Path)]) -> Self {
        let token = cli_ok(folder.path(), &["token", "create", "--name", "tests"]);
        let mut command = murmur(folder.path());
        command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("MURMUR_GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET);
        for (name, value) in env {
            command.env(name, value);
        }
        let (process, address) = listening(command);
        Self {
            folder,
            process,
            address,
            token,
        }
    }

    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let auth = format!("Bearer {}", self.token);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        let (status, body) = http(&self.address, method, path, &headers, body);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    pub fn start_run(&self, flight: &str, workspace: Option<&str>) -> (u16, Value) {
        let body = match workspace {
            Some(w) => json!({ "workspace": w }).to_string(),
            None => "{}".to_owned(),
        };
        self.request("POST", &format!("/v1/flights/{flight}/runs"), &body)
    }

    /// Starts `flight` with `body` as the request; answers the status and the answer.
    pub fn start_with(&self, flight: &str, body: Value) -> (u16, Value) {
        self.request(
            "POST",
            &format!("/v1/flights/{flight}/runs"),
            &body.to_string(),
        )
    }

    /// The run's events as they are committed, from its SSE stream.
    pub fn events(&self, run: &str) -> Events {
        self.api().events(run)
    }

    fn api(&self) -> Api {
        Api {
            address: self.address.clone(),
            token: self.token.clone(),
        }
    }

    /// Runs `flight` in `workspace` to its end; answers the run as `GET /v1/runs/{id}` has it.
    pub fn run(&self, flight: &str, workspace: &str) -> Value {
        let (status, started) = self.start_run(flight, Some(workspace));
        assert_eq!(status, 202, "{started}");
        let id = started["run_id"].as_str().expect("run id").to_owned();
        self.wait(&id)
    }

    pub fn wait(&self, id: &str) -> Value {
        let events = self.api().events_until_ended(id);
        let (status, run) = self.request("GET", &format!("/v1/runs/{id}"), "");
        assert_eq!(status, 200, "{run}");
        assert_eq!(run["status"], "completed", "{run:#}\n{events}");
        run
    }

    pub fn head(&self, workspace: &str) -> String {
        let (status, shown) = self.request("GET", &format!("/v1/workspaces/{workspace}"), "");
        assert_eq!(status, 200, "{shown}");
        shown["heads"][0].as_str().unwrap_or_default().to_owned()
    }

    /// A signed GitHub `push` delivery for the repository at `url`.
    pub fn push_delivery(&self, url: &str, after: &str, id: &str) -> (u16, Value) {
        let payload = json!({
            "ref": "refs/heads/main", "after": after, "before": "0".repeat(40),
            "repository": { "full_name": "local/origin", "clone_url": url },
        })
        .to_string();
        let signature = format!(
            "sha256={}",
            hmac_sha256(WEBHOOK_SECRET.as_bytes(), payload.as_bytes())
        );
        let headers = [
            ("X-Hub-Signature-256", signature.as_str()),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", id),
            ("Content-Type", "application/json"),
        ];
        let (status, body) = http(
            &self.address,
            "POST",
            "/v1/webhooks/github",
            &headers,
            &payload,
        );
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// The server's mirror of repository `index` of `workspace`.
    pub fn mirror(&self, workspace: &str, index: usize) -> PathBuf {
        let dir = self
            .folder
            .path()
            .join(".murmur/mirrors/local")
            .join(workspace);
        std::fs::read_dir(&dir)
            .expect("the workspace's mirrors")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{index}-")))
            })
            .expect("the mirror")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.child.kill();
        if std::thread::panicking() {
            eprintln!("the server said:\n{}", self.process.said());
        }
    }
}

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn cli(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = murmur_output(dir, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

pub fn cli_ok(dir: &Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = cli(dir, args);
    assert!(ok, "murmur {args:?}: {stderr}");
    stdout
}

pub fn cli_fails(dir: &Path, args: &[&str], needle: &str) {
    let (ok, _, stderr) = cli(dir, args);
    assert!(!ok, "murmur {args:?} should fail");
    assert!(stderr.contains(needle), "murmur {args:?}: {stderr}");
}

pub fn response(run: &Value) -> String {
    run["agents"][0]["response"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// What agent `slug` of the run answered, trimmed.
pub fn response_of(run: &Value, slug: &str) -> String {
    let agent = run["agents"]
        .as_array()
        .and_then(|agents| agents.iter().find(|a| a["slug"] == slug))
        .unwrap_or_else(|| panic!("no agent {slug}: {run:#}"));
    agent["response"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_owned()
}
