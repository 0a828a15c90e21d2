//! The bench's fixture: a repository with its flights and configuration, a store of its own
//! (a SQLite file in the fixture, or a fresh PostgreSQL database dropped with it), API tokens,
//! and `murmur serve` started on it as users start it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use murmur_engine::{Clock, Store, SystemClock};

use super::db::PgDatabase;
use super::fire::Fired;

/// A one-agent `exec` flight: the smallest run there is.
const ONE: &str = "---\nruntime: exec\n---\n# One\n\n## one\n> command: true\n";
/// One run at a time; the first one holds its place long after the bench is over.
const QUEUED: &str =
    "---\nruntime: exec\nmax_concurrent: 1\n---\n# Queued\n\n## wait\n> command: sleep 600\n";

pub enum Backend {
    Sqlite,
    /// A URL of a role that may `CREATE DATABASE`.
    Postgres(String),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        }
    }
}

pub struct Fixture {
    dir: tempfile::TempDir,
    pub db_url: String,
    backend: &'static str,
    pub tokens: Vec<String>,
    /// Dropped after the directory's server is gone.
    _database: Option<PgDatabase>,
}

pub struct Server {
    child: Child,
    pub address: String,
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

impl Fixture {
    /// A repository with the bench's flights, `slots` local machines and a generous rate
    /// limit (the server is measured, not the limiter), and one token per connection.
    pub fn new(backend: &Backend, slots: usize, connections: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path();
        std::fs::create_dir_all(repo.join(".murmur/flights")).expect("mkdir");
        std::fs::create_dir(repo.join(".git")).expect("mkdir");
        std::fs::write(repo.join(".murmur/flights/one.md"), ONE).expect("flight");
        std::fs::write(repo.join(".murmur/flights/queued.md"), QUEUED).expect("flight");
        let config = format!(
            "pools:\n  local:\n    max_vms: {slots}\nserver:\n  rate_limit:\n    per_second: 10000\n    burst: 10000\n"
        );
        std::fs::write(repo.join(".murmur/murmur.yaml"), config).expect("config");
        let (database, db_url) = match backend {
            Backend::Sqlite => (None, repo.join(".murmur/murmur.db").display().to_string()),
            Backend::Postgres(admin) => {
                let (database, url) = PgDatabase::create(admin, "bench");
                (Some(database), url)
            }
        };
        let mut fixture = Self {
            dir,
            db_url,
            backend: backend.name(),
            tokens: Vec::new(),
            _database: database,
        };
        fixture.tokens = runtime().block_on(fixture.create_tokens(connections));
        fixture
    }

    pub fn describe(&self) -> String {
        match self.backend {
            "SQLite" => format!("SQLite {}", self.db_url),
            other => other.to_owned(),
        }
    }

    pub fn write_flight(&self, name: &str, text: &str) {
        let path = self.dir.path().join(format!(".murmur/flights/{name}.md"));
        std::fs::write(path, text).expect("flight");
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.db_url).await.expect("store")
    }

    async fn create_tokens(&self, count: usize) -> Vec<String> {
        let store = self.store().await;
        let mut tokens = Vec::with_capacity(count);
        for n in 0..count {
            let token = format!("mur_bench_{n}_{}", uuid::Uuid::new_v4().simple());
            store
                .add_token(&format!("bench-{n}"), &token, &SystemClock.stamp())
                .await
                .expect("token");
            tokens.push(token);
        }
        tokens
    }

    /// `murmur serve` on a free port, as a user starts it in the repository.
    pub fn serve(&self) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_murmur"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .current_dir(self.dir.path())
            .env("MURMUR_DATABASE_URL", &self.db_url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("murmur serve starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let address = loop {
            let line = lines
                .next()
                .expect("the server says where it listens")
                .expect("line");
            if let Some(address) = line.split("listening on http://").nth(1) {
                break address.trim().to_owned();
            }
        };
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("ERROR") {
                    eprintln!("serve: {line}");
                }
            }
        });
        Server { child, address }
    }

    /// Waits until `run` is running (it holds the flight's place), at most `limit`.
    pub fn wait_until_running(&self, run: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        runtime().block_on(async {
            let store = self.store().await;
            while store.run(run).await.expect("run").status != "running" {
                assert!(Instant::now() < deadline, "run {run} never started");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }

    /// Every accepted id is stored exactly once, and the store holds no run nobody was told
    /// of (`known` are runs started outside the load).
    pub fn verify(&self, phase: &str, fired: &Fired, known: &[String]) -> bool {
        let stored = runtime().block_on(async {
            let store = self.store().await;
            store.runs(u64::MAX >> 1).await.expect("runs")
        });
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for run in &stored {
            *counts.entry(run.id.as_str()).or_default() += 1;
        }
        let accepted = fired.accepted_ids();
        let missing = accepted
            .iter()
            .filter(|id| !counts.contains_key(*id))
            .count();
        let doubled = counts.values().filter(|&&c| c > 1).count();
        let mut distinct = accepted.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let repeated = accepted.len() - distinct.len();
        let unanswered = counts
            .keys()
            .filter(|id| distinct.binary_search(id).is_err() && !known.iter().any(|k| k == *id))
            .count();
        println!(
            "{phase} verified against the store: {} accepted ids, {} runs stored; missing {missing}, \
             stored twice {doubled}, one id given twice {repeated}, stored but never answered {unanswered}",
            accepted.len(),
            stored.len()
        );
        missing == 0 && doubled == 0 && repeated == 0 && unanswered == 0
    }
}

impl Server {
    pub fn url(&self, flight: &str) -> String {
        format!("http://{}/v1/flights/{flight}/runs", self.address)
    }

    /// Starts one run of `flight`; its id.
    pub fn start_one(&self, token: &str, flight: &str) -> String {
        let mut response = ureq::post(&self.url(flight))
            .header("Authorization", &format!("Bearer {token}"))
            .send_json(serde_json::json!({}))
            .expect("start a run");
        let body: serde_json::Value = response.body_mut().read_json().expect("json");
        body["run_id"].as_str().expect("run id").to_owned()
    }

    /// Stops the server as Ctrl-C does; killed when it takes longer than a minute.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("(the server did not stop within a minute of Ctrl-C; killed)");
    }
}

impl Drop for Server {
    /// A bench that fails half-way leaves no server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
