//! Which repository a worker clones, with real repositories: an origin it reaches, one it
//! does not (the mirror then), and an HTTP origin that refuses the credential, which git gets
//! as a header from its environment and never on a command line.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;

use murmur_protocol::{PullRequestDraft, RepositoryOrigin};
use murmur_vault::SecretValue;

use super::*;

const TOKEN: &str = "ghp-worker-token-77aa";
/// `x-access-token:TOKEN`, base64: the header git must present.
const HEADER: &str = "Basic eC1hY2Nlc3MtdG9rZW46Z2hwLXdvcmtlci10b2tlbi03N2Fh";

fn git_ok(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository at `dir` on `main` with one commit.
fn repository(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    git_ok(dir, &["init", "-q", "-b", "main"]);
    git_ok(dir, &["commit", "-q", "--allow-empty", "-m", "one"]);
}

fn spec(mirror: &Path, origin: &str, credential: Option<&str>) -> WorkspaceSpec {
    WorkspaceSpec {
        repository: mirror.display().to_string(),
        base: None,
        start: None,
        worktree: "run/a".into(),
        plain: "run/a".into(),
        branch: "murmur/f/run/a".into(),
        merge: Vec::new(),
        out: None,
        pull_request: PullRequestDraft {
            id: "x".into(),
            title: "x".into(),
        },
        required: true,
        extra: Vec::new(),
        extra_merge: Vec::new(),
        follow_base: None,
        origin: Some(RepositoryOrigin {
            url: origin.to_owned(),
            credential: credential.map(str::to_owned),
        }),
    }
}

fn with_token() -> SecretSet {
    let mut secrets = SecretSet::new();
    secrets
        .insert("GIT_TOKEN", SecretValue::new(TOKEN.as_bytes().to_vec()))
        .expect("secret");
    secrets
}

#[tokio::test]
async fn a_worker_clones_the_origin_it_reaches_and_else_the_mirror() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = dir.path().join("origin");
    let mirror = dir.path().join("mirror");
    repository(&origin);
    git_ok(dir.path(), &["clone", "-q", "origin", "mirror"]);
    let work = dir.path().join("work");
    let url = origin.display().to_string();
    let clone = prepare_for(&spec(&mirror, &url, None), &SecretSet::new(), &work, &[])
        .await
        .expect("clone");
    assert_eq!(git_ok(&clone, &["remote", "get-url", "origin"]), url);
    assert_eq!(
        git_ok(&clone, &["remote", "get-url", MIRROR]),
        mirror.display().to_string(),
        "the mirror it reaches too"
    );
    // The agent's branch goes back to both.
    git_ok(&clone, &["branch", "murmur/f/run/a"]);
    crate::clone::push_back(&clone, "murmur/f/run/a")
        .await
        .expect("push");
    for repository in [&origin, &mirror] {
        git_ok(
            repository,
            &["rev-parse", "--verify", "refs/heads/murmur/f/run/a"],
        );
    }

    let nowhere = dir.path().join("nowhere").display().to_string();
    let clone = prepare_for(
        &spec(&mirror, &nowhere, None),
        &SecretSet::new(),
        &work,
        &[],
    )
    .await
    .expect("the mirror's clone");
    assert_eq!(
        git_ok(&clone, &["remote", "get-url", "origin"]),
        mirror.display().to_string()
    );
}

/// What an HTTP endpoint that answers 401 saw: the `Authorization` header, and whether any
/// process's command line held the token while git waited for the answer.
fn refusing_host() -> (String, mpsc::Receiver<(Option<String>, bool)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            let (mut line, mut authorization) = (String::new(), None);
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && !line.trim().is_empty() {
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    authorization = Some(value.trim().to_owned());
                }
                line.clear();
            }
            let on_a_command_line = std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .any(|p| {
                    let text = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
                    let text = String::from_utf8_lossy(&text);
                    text.contains(TOKEN) || text.contains(&HEADER[6..])
                });
            let _ = reader.into_inner().write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            if send.send((authorization, on_a_command_line)).is_err() {
                return;
            }
        }
    });
    (format!("http://{address}/acme/app.git"), receive)
}

#[tokio::test]
async fn a_refused_origin_names_the_secret_and_git_gets_the_token_from_its_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, seen) = refusing_host();
    let spec = spec(&dir.path().join("mirror"), &url, Some("GIT_TOKEN"));
    let error = prepare_for(&spec, &with_token(), dir.path(), &[])
        .await
        .expect_err("refused");
    assert!(
        error.contains("`GIT_TOKEN`") && error.contains(&url),
        "{error}"
    );
    assert!(!error.contains(TOKEN), "{error}");
    let (authorization, on_a_command_line) = seen.recv().expect("git asked");
    assert_eq!(authorization.as_deref(), Some(HEADER));
    assert!(!on_a_command_line, "no command line held the token");

    let error = prepare_for(&spec, &SecretSet::new(), dir.path(), &[])
        .await
        .expect_err("no secret");
    assert!(error.contains("`GIT_TOKEN`"), "{error}");
}
