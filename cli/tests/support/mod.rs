//! What the CLI's tests share. Here: the binary, a `murmur serve` on a free port of 127.0.0.1,
//! one HTTP request (the server tests and the CLI against a server). In the submodules: the
//! crash tests' temporary repository and store, followed event by event, killed with SIGKILL,
//! resumed, and checked against the store and the agents' own ledger.

// Each test crate uses its own part of these helpers.
#![allow(dead_code)]

pub mod beacon;
pub mod check;
pub mod db;
pub mod fixture;
pub mod marker;
pub mod serve;
pub mod session;
pub mod tmux;
pub mod watched;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// One `#[test]` per backend for each listed test body `fn NAME(&Backend)`: `sqlite::NAME`
/// and `postgres::NAME` (see [`Backend::postgres`] for when that one is skipped).
#[macro_export]
macro_rules! every_backend {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(&$crate::support::db::Backend::Sqlite); })+
        }
        mod postgres {
            $(#[test] fn $name() {
                let Some(backend) = $crate::support::db::Backend::postgres() else { return };
                super::$name(&backend);
            })+
        }
    };
}

/// A one-agent `exec` flight whose agent waits until the file `go` exists, then answers
/// `released`. A file, not a fifo: an attempt dying when the engine is killed could take a
/// fifo's one wake-up with it, and the next attempt would wait forever.
pub fn waiting_flight(go: &Path) -> String {
    format!(
        "---\nruntime: exec\n---\n# Job\n\n## wait\n> command: until [ -e {} ]; do sleep 0.05; done; echo released\n",
        go.display()
    )
}

/// `murmur ARGS` in `repo`, run to its end, without colour.
pub fn murmur_output(repo: &Path, args: &[&str]) -> Output {
    murmur(repo)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

pub fn murmur(repo: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_murmur"));
    command.current_dir(repo).env_remove("MURMUR_DATABASE_URL");
    command
}

/// Starts `murmur serve` on a free port and returns it with its address.
pub fn serve(repo: &Path) -> (Child, String) {
    serve_on(repo, "127.0.0.1:0")
}

/// Starts `murmur serve` listening on `bind`.
pub fn serve_on(repo: &Path, bind: &str) -> (Child, String) {
    let mut server = murmur(repo)
        .args(["serve", "--bind", bind])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("serve starts");
    let stderr = server.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut said = Vec::new();
    let address = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("the server ended before it listened:\n{}", said.join("\n"));
        };
        if let Some(address) = line.split("listening on http://").nth(1) {
            break address.trim().to_owned();
        }
        said.push(line);
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (server, address)
}

/// One HTTP/1.1 request; returns the status and the body (read until the server closes).
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub fn setup(flight: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur/flights")).expect("mkdir");
    std::fs::create_dir(dir.path().join(".git")).expect("mkdir");
    std::fs::write(dir.path().join(".murmur/flights/job.md"), flight).expect("flight");
    let out = murmur(dir.path())
        .args(["token", "create", "--name", "tests"])
        .output()
        .expect("token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (dir, token)
}

/// Runs `command` with `stdin` written to it and closed, and collects what it printed.
pub fn with_stdin(command: &mut Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("murmur starts");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("murmur ends")
}

/// A finished command's status and output, for assertion messages.
pub fn described(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
