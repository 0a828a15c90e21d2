//! A workspace's git credential, against a real HTTP git endpoint that refuses it: git is
//! handed the token in its environment (an `Authorization` header the endpoint sees), never
//! on any process's command line while it talks to the host, and the refusal names the
//! workspace and the secret, never the value.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;

use base64::Engine;

use super::harness::*;
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

/// Whether any process's command line holds the token or the header that carries it.
fn token_on_a_command_line() -> bool {
    let header =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"));
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return false;
    };
    processes.flatten().any(|process| {
        let text = std::fs::read(process.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        text.contains(TOKEN) || text.contains(&header)
    })
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
