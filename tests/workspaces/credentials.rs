//! A workspace's git credential against real HTTP git endpoints: one that refuses it (git is
//! handed the token in its environment, an `Authorization` header the endpoint sees, never on
//! any process's command line while it talks to the host, and the refusal names the workspace
//! and the secret, never the value), and `git http-backend` behind that token, which a
//! `murmur worker` clones from and pushes the agent's branch to.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;

use base64::Engine;

use super::git_http::{GitHost, on_a_command_line};
use super::harness::*;
use crate::support::marker::files_holding;
use crate::support::with_stdin;

const TOKEN: &str = "ghp-workspace-token-4f1c9a";

/// What the endpoint saw of one request: its `Authorization` header, and whether any
/// process's command line held the token (or its header form) while git waited for it.
struct Seen {
    authorization: Option<String>,
    on_a_command_line: bool,
}

/// An HTTP endpoint that answers every request 401, reporting what it saw.
fn refusing_host() -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            let mut authorization = None;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    authorization = Some(value.trim().to_owned());
                }
                line.clear();
            }
            let on_a_command_line = token_on_a_command_line();
            let mut stream = reader.into_inner();
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            let seen = Seen {
                authorization,
                on_a_command_line,
            };
            if send.send(seen).is_err() {
                return;
            }
        }
    });
    (format!("http://{address}/acme/app.git"), receive)
}

fn token_on_a_command_line() -> bool {
    on_a_command_line(TOKEN)
}

pub fn murmur_with_key(dir: &Path, keys: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    let mut command = crate::support::murmur(dir);
    command
        .args(args)
        .env("MURMUR_KEY_FILE", keys)
        .env_remove("MURMUR_KEK");
    let out = with_stdin(&mut command, stdin);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn a_refused_credential_is_named_and_never_shown() {
    let folder = Server::folder();
    let key_folder = tempfile::tempdir().expect("keys");
    let keys = key_folder.path().join("keys");
    let (ok, said) = murmur_with_key(folder.path(), &keys, &["secret", "set", "GIT_TOKEN"], TOKEN);
    assert!(ok, "{said}");
    let (url, seen) = refusing_host();
    let args = [
        "workspace",
        "add",
        "private",
        "--repo",
        url.as_str(),
        "--credential",
        "GIT_TOKEN",
    ];
    let (ok, said) = murmur_with_key(folder.path(), &keys, &args, "");
    assert!(!ok, "refused: {said}");
    assert!(
        said.contains("`private`") && said.contains("GIT_TOKEN"),
        "names the workspace and the secret: {said}"
    );
    assert!(!said.contains(TOKEN), "never the value: {said}");
    let first = seen.recv().expect("git asked the host");
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"));
    assert_eq!(
        first.authorization.as_deref(),
        Some(format!("Basic {expected}").as_str()),
        "the token reached the host as a header"
    );
    assert!(
        !first.on_a_command_line,
        "no command line held the token while git talked to the host"
    );
    // Nothing was recorded, and the URL stored anywhere never held the token.
    let listed = cli_ok(folder.path(), &["workspace", "ls", "--json"]);
    assert_eq!(listed.trim(), "[]");
    let database = std::fs::read(folder.path().join(".murmur/murmur.db")).expect("the store");
    let header_form = expected.into_bytes();
    assert!(
        !database.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes())
            && !database
                .windows(header_form.len())
                .any(|w| w == header_form.as_slice()),
        "the store holds no plaintext token"
    );
}

#[test]
fn a_worker_clones_and_pushes_an_http_origin_with_the_workspace_credential() {
    let root = tempfile::tempdir().expect("temp dir");
    let app = Origin::new(root.path(), "app", &[("hello", hello(None))]);
    git(&app.bare, &["config", "http.receivepack", "true"]);
    let host = GitHost::serve(root.path(), TOKEN);
    let url = host.url("app");
    let folder = Server::folder();
    std::fs::create_dir_all(folder.path().join(".murmur")).expect(".murmur");
    let config = "pools:\n  fleet: { placement: workers, max_vms: 1 }\n";
    std::fs::write(folder.path().join(".murmur/murmur.yaml"), config).expect("config");
    let key_folder = tempfile::tempdir().expect("keys");
    let keys = key_folder.path().join("keys");
    let (ok, said) = murmur_with_key(folder.path(), &keys, &["secret", "set", "GIT_TOKEN"], TOKEN);
    assert!(ok, "{said}");
    let args = [
        "workspace",
        "add",
        "private",
        "--repo",
        &url,
        "--credential",
        "GIT_TOKEN",
        "--pool",
        "fleet",
    ];
    let (ok, said) = murmur_with_key(folder.path(), &keys, &args, "");
    assert!(
        ok,
        "the server's mirror cloned the origin with the token: {said}"
    );
    let worker_token = cli_ok(
        folder.path(),
        &[
            "token", "create", "--worker", "--pool", "fleet", "--name", "fleet",
        ],
    );
    let server = Server::start_in_env(folder, &[("MURMUR_KEY_FILE", &keys)]);
    let worker_dir = root.path().join("worker");
    std::fs::create_dir_all(&worker_dir).expect("worker folder");
    let mut command = crate::support::murmur(&worker_dir);
    let server_url = format!("http://{}", server.address);
    command.args(["worker", "--server", &server_url, "--token", &worker_token]);
    command.arg("--dir").arg(&worker_dir);
    let (mut worker, machine) = crate::support::serve::registered(command);

    let run = server.run("hello", "private");
    assert_eq!(response(&run), "in repo-app", "{run:#}");
    assert_eq!(run["agents"][0]["machine"], machine.as_str(), "{run:#}");
    let branch = run["agents"][0]["branch"]
        .as_str()
        .expect("branch")
        .to_owned();
    // The worker cloned the origin over HTTP (its remote is the URL as given, no token in
    // it) and pushed the agent's branch there.
    let remotes: Vec<String> = std::fs::read_dir(worker_dir.join("repositories"))
        .expect("the worker's clones")
        .flatten()
        .map(|e| git(&e.path(), &["remote", "get-url", "origin"]))
        .collect();
    assert_eq!(remotes, std::slice::from_ref(&url));
    git(
        &app.bare,
        &["rev-parse", "--verify", &format!("refs/heads/{branch}")],
    );
    let requests = host.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path.ends_with("/git-receive-pack")),
        "the branch was pushed over HTTP: {requests:#?}"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.authorized && !r.token_on_a_command_line),
        "every request carried the token, and no command line held it meanwhile: {requests:#?}"
    );
    for dir in [server.folder.path(), worker_dir.as_path()] {
        assert_eq!(files_holding(dir, TOKEN), Vec::<std::path::PathBuf>::new());
    }
    let _ = worker.child.kill();
}
