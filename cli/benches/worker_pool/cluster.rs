//! The bench's cluster: a repository with the flight, a server and two workers.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use murmur_engine::Store;

const CONFIG: &str = "pools:\n  local: { max_vms: 2 }\n  fleet: { placement: workers, max_vms: 2 }\nserver:\n  rate_limit: { per_second: 0 }\n";

pub struct Cluster {
    dir: tempfile::TempDir,
    address: String,
    token: String,
    children: Vec<Child>,
}

pub struct Ended {
    pub status: String,
    pub seconds: f64,
}

pub struct Figures {
    pub by_machine: BTreeMap<String, usize>,
    /// Milliseconds, sorted.
    pub claims: Vec<f64>,
    /// Per pool (`local`, `fleet`): agents finished, and seconds from the pool's first start to
    /// its last finish.
    pub by_pool: BTreeMap<&'static str, (usize, f64)>,
}

/// When a pool's agents ran: how many finished, the first start and the last finish.
type Span = (
    usize,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
);

impl Cluster {
    pub fn start(agents: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join(".murmur/flights")).expect("mkdir");
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join(".murmur/murmur.yaml"), CONFIG).expect("config");
        std::fs::write(repo.join(".murmur/flights/wide.md"), flight(agents)).expect("flight");
        std::fs::write(
            repo.join(".gitignore"),
            ".murmur/murmur.db*\n.murmur/work/\n",
        )
        .expect("ignore");
        git(&repo, &["add", "."]);
        git(
            &repo,
            &[
                "-c",
                "user.name=b",
                "-c",
                "user.email=b@b",
                "commit",
                "-qm",
                "start",
            ],
        );
        let token = output(&repo, &["token", "create", "--name", "bench"]);
        let worker_token = output(
            &repo,
            &[
                "token", "create", "--worker", "--pool", "fleet", "--name", "w",
            ],
        );
        let (server, address) = serve(&repo);
        let mut children = vec![server];
        for name in ["one", "two"] {
            let mut worker = murmur(&repo)
                .args([
                    "worker",
                    "--server",
                    &format!("http://{address}"),
                    "--token",
                    &worker_token,
                ])
                .arg("--dir")
                .arg(dir.path().join(name))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("worker starts");
            wait_for_line(&mut worker, "registered machine");
            children.push(worker);
        }
        Self {
            dir,
            address,
            token,
            children,
        }
    }

    fn repo(&self) -> std::path::PathBuf {
        self.dir.path().join("repo")
    }

    pub fn start_run(&self) -> String {
        let answer: serde_json::Value =
            ureq::post(&format!("http://{}/v1/flights/wide/runs", self.address))
                .header("Authorization", &format!("Bearer {}", self.token))
                .send_json(serde_json::json!({}))
                .expect("the run starts")
                .body_mut()
                .read_json()
                .expect("json");
        answer["run_id"].as_str().expect("run id").to_owned()
    }

    pub fn wait_for_end(&self, run: &str, limit: Duration) -> Option<Ended> {
        let deadline = Instant::now() + limit;
        runtime().block_on(async {
            let store = self.store().await;
            loop {
                let row = store.run(run).await.expect("run");
                if let Some(finished) = &row.finished_at {
                    let seconds = (stamp(finished) - stamp(&row.created_at)).num_milliseconds()
                        as f64
                        / 1000.0;
                    return Some(Ended {
                        status: row.status,
                        seconds,
                    });
                }
                if Instant::now() > deadline {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    pub fn figures(&self, run: &str) -> Figures {
        runtime().block_on(async {
            let store = self.store().await;
            let mut started = BTreeMap::new();
            let mut by_machine = BTreeMap::new();
            let mut claims = Vec::new();
            let mut pool_of = BTreeMap::new();
            let mut spans: BTreeMap<&'static str, Span> = BTreeMap::new();
            for event in store.events(run, 0).await.expect("events") {
                let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
                let slug = data["slug"].as_str().unwrap_or_default().to_owned();
                match event.kind.as_str() {
                    "agent_started" => {
                        started.insert(slug, stamp(&event.at));
                    }
                    "agent_placed" => {
                        let machine = data["machine"].as_str().unwrap_or_default().to_owned();
                        let local = machine.starts_with("local:");
                        pool_of.insert(slug.clone(), if local { "local" } else { "fleet" });
                        *by_machine.entry(machine).or_insert(0) += 1;
                        if let (false, Some(at)) = (local, started.get(&slug)) {
                            claims.push(
                                (stamp(&event.at) - *at).num_microseconds().unwrap_or(0) as f64
                                    / 1000.0,
                            );
                        }
                    }
                    "agent_succeeded" => {
                        let (Some(pool), Some(began)) = (pool_of.get(&slug), started.get(&slug))
                        else {
                            continue;
                        };
                        let at = stamp(&event.at);
                        let span = spans.entry(pool).or_insert((0, *began, at));
                        *span = (span.0 + 1, span.1.min(*began), span.2.max(at));
                    }
                    _ => {}
                }
            }
            claims.sort_by(f64::total_cmp);
            let by_pool = spans
                .into_iter()
                .map(|(pool, (n, first, last))| {
                    (pool, (n, (last - first).num_milliseconds() as f64 / 1000.0))
                })
                .collect();
            Figures {
                by_machine,
                claims,
                by_pool,
            }
        })
    }

    async fn store(&self) -> Store {
        let url = self.repo().join(".murmur/murmur.db").display().to_string();
        Store::open(&url).await.expect("store")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every other agent on the workers; each prints one line.
fn flight(agents: usize) -> String {
    let mut text = String::from("---\nruntime: exec\n---\n# Wide\n\n");
    for n in 0..agents {
        let pool = if n % 2 == 0 { "fleet" } else { "local" };
        text.push_str(&format!("## a{n}\n> pool: {pool}\n> command: echo {n}\n\n"));
    }
    text
}

fn murmur(repo: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_murmur"));
    command.current_dir(repo).env("NO_COLOR", "1");
    command
}

fn output(repo: &Path, args: &[&str]) -> String {
    let out = murmur(repo).args(args).output().expect("murmur runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn serve(repo: &Path) -> (Child, String) {
    let mut child = murmur(repo)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let line = wait_for_line(&mut child, "listening on http://");
    let address = line
        .split("listening on http://")
        .nth(1)
        .expect("address")
        .trim()
        .to_owned();
    (child, address)
}

/// Reads the child's stderr up to a line with `needle`, then drains the rest in the background.
fn wait_for_line(child: &mut Child, needle: &str) -> String {
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let found = loop {
        let line = lines
            .next()
            .expect("the process says it is ready")
            .expect("line");
        if line.contains(needle) {
            break line;
        }
    };
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    found
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?}");
}

fn stamp(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("a timestamp")
        .with_timezone(&chrono::Utc)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
