//! A real `murmur serve` and real `murmur worker`s for the end-to-end tests: the server started
//! and its address read from what it logs, the API and worker tokens, workers in folders of
//! their own once registered, and the run API the tests drive them through. Each test says how
//! it runs `murmur` ([`Murmur`]: a fixture's store, a project's Claude settings) and what its
//! server's environment adds; everything else is the same in every test.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;

use serde_json::Value;

use super::fixture::Fixture;
use super::http;
use super::session::DEADLINE;
use super::watched::Watched;

/// How a test runs `murmur ARGS`: in its repository, with its store and environment.
pub trait Murmur {
    fn command(&self, args: &[&str]) -> Command;

    /// `murmur` for a worker, which has no store of its own.
    fn worker(&self) -> Command {
        self.command(&[])
    }
}

impl Murmur for Fixture {
    fn command(&self, args: &[&str]) -> Command {
        Fixture::command(self, args)
    }

    fn worker(&self) -> Command {
        super::murmur(self.repo())
    }
}

/// Starts `command` (a `murmur serve`); answers it once it listens, and its address.
pub fn listening(command: Command) -> (Watched, String) {
    let mut server = Watched::spawn(command);
    let line = server.wait_for("listening on http://");
    let address = line
        .split("listening on http://")
        .nth(1)
        .expect("address")
        .trim()
        .to_owned();
    (server, address)
}

/// The token a successful `murmur token create` printed.
pub fn created_token(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The arguments of `murmur token create` for a worker token of `pool`.
pub fn worker_token_args(pool: &str) -> [&str; 7] {
    [
        "token", "create", "--worker", "--pool", pool, "--name", "workers",
    ]
}

/// `command` (a `murmur` in the right folder) made `murmur worker` of the server at `url`.
pub fn worker_args(mut command: Command, url: &str, token: &str, dir: &Path) -> Command {
    command.args(["worker", "--server", url, "--token", token]);
    command.arg("--dir").arg(dir);
    command
}

/// Starts `command` (a `murmur worker`); answers it once registered, and its machine's id.
pub fn registered(command: Command) -> (Watched, String) {
    let mut worker = Watched::spawn(command);
    let line = worker.wait_for("registered machine");
    let id = line
        .split("registered machine ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the machine's id")
        .to_owned();
    (worker, id)
}

/// The run API of a server, as a client holding an API token calls it.
pub struct Api {
    pub address: String,
    pub token: String,
}

impl Api {
    /// Starts flight `flight` with no inputs (202 Accepted); answers the run's id.
    pub fn start_run(&self, flight: &str) -> String {
        let auth = format!("Bearer {}", self.token);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        let path = format!("/v1/flights/{flight}/runs");
        let (status, body) = http(&self.address, "POST", &path, &headers, "{}");
        assert_eq!(status, 202, "start: {body}");
        let run: Value = serde_json::from_str(&body).expect("json");
        run["run_id"].as_str().expect("the run's id").to_owned()
    }

    /// `GET path` answered 200; answers the body.
    pub fn get(&self, path: &str, accept: &str) -> String {
        let auth = format!("Bearer {}", self.token);
        let headers = [("Authorization", auth.as_str()), ("Accept", accept)];
        let (status, body) = http(&self.address, "GET", path, &headers, "");
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// Waits for the run to end (its event stream closes then) and returns its events.
    pub fn events_until_ended(&self, run: &str) -> String {
        self.get(&format!("/v1/runs/{run}/events"), "text/event-stream")
    }

    /// The run's events as they are committed, from its SSE stream.
    pub fn events(&self, run: &str) -> Events {
        let mut stream = TcpStream::connect(&self.address).expect("connect");
        let request = format!(
            "GET /v1/runs/{run}/events HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
            self.address, self.token
        );
        stream.write_all(request.as_bytes()).expect("send");
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let entry: Value = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
                if send.send(entry["event"].clone()).is_err() {
                    return;
                }
            }
        });
        Events {
            receive,
            seen: Vec::new(),
        }
    }
}

/// A run's events, read as they come.
pub struct Events {
    receive: mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
}

impl Events {
    /// Events up to (and including) the first that `wanted` accepts; panics after the deadline.
    pub fn until(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let event = self
                .receive
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no matching event; seen: {:#?}", self.seen));
            self.seen.push(event.clone());
            if wanted(&event) {
                return event;
            }
        }
    }
}

/// A server whose lease of a silent machine is short, so a lost worker is found out within a
/// test's patience.
pub fn short_lease() -> ServeWith {
    Box::new(|command| {
        command.env("MURMUR_MACHINE_LEASE_TTL", "2");
    })
}

/// What a test adds to its server's command (environment, keys) each time it starts one.
pub type ServeWith = Box<dyn Fn(&mut Command)>;

/// A `murmur serve` with a `workers` pool, an API token, a worker token of the pool, and a
/// folder for the workers' folders and the test's own files. Shows what the server said when
/// a test fails.
pub struct Cluster<M: Murmur> {
    pub murmur: M,
    pub server: Watched,
    pub api: Api,
    pub worker_token: String,
    dirs: tempfile::TempDir,
    serve_with: ServeWith,
}

impl<M: Murmur> Cluster<M> {
    /// Creates the tokens (the worker token of `pool`) and starts the server.
    pub fn start(murmur: M, pool: &str, serve_with: ServeWith) -> Self {
        let token = |args: &[&str]| created_token(&murmur.command(args).output().expect("token"));
        let api_token = token(&["token", "create", "--name", "tests"]);
        let worker_token = token(&worker_token_args(pool));
        let (server, address) = serve(&murmur, &serve_with, "127.0.0.1:0");
        Self {
            murmur,
            server,
            api: Api {
                address,
                token: api_token,
            },
            worker_token,
            dirs: tempfile::tempdir().expect("temp dir"),
            serve_with,
        }
    }

    /// Kills the server (with SIGKILL) and waits for it to end.
    pub fn kill_server(&mut self) {
        self.server.signal("-KILL");
        let _ = self.server.child.wait();
    }

    /// Starts the server again on the same address and store.
    pub fn serve_again(&mut self) {
        let (server, address) = serve(&self.murmur, &self.serve_with, &self.api.address);
        assert_eq!(address, self.api.address);
        self.server = server;
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.api.address)
    }

    /// A path in the test's folder (a worker's folder is named after the worker).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dirs.path().join(name)
    }

    /// Worker `name`'s folder, as its processes see it.
    pub fn worker_dir(&self, name: &str) -> PathBuf {
        self.path(name).canonicalize().expect("the worker's folder")
    }

    /// `murmur worker` in folder `name` with `token`, not started.
    pub fn worker_command(&self, name: &str, token: &str) -> Command {
        let dir = self.path(name);
        worker_args(self.murmur.worker(), &self.url(), token, &dir)
    }

    /// A worker of the pool in folder `name`, once registered, and its machine's id.
    pub fn worker(&self, name: &str) -> (Watched, String) {
        registered(self.worker_command(name, &self.worker_token))
    }
}

fn serve<M: Murmur>(murmur: &M, serve_with: &ServeWith, bind: &str) -> (Watched, String) {
    let mut command = murmur.command(&["serve", "--bind", bind]);
    serve_with(&mut command);
    listening(command)
}

impl<M: Murmur> Drop for Cluster<M> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.server.child.kill();
            eprintln!("the server said:\n{}", self.server.said());
        }
    }
}
