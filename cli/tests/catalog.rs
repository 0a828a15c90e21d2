//! `murmur set|get|rm flight` with the real binary: on the local store, and against a real
//! `murmur serve` with `--server`.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use support::{murmur, serve, setup};

const V1: &str = "---\nruntime: exec\n---\n# Greet one\n\n## say\n> command: echo v1\n";
const V2: &str = "---\nruntime: exec\n---\n# Greet two\n\n## say\n> command: echo v2\n";
const INVALID: &str = "# Bad\n\n## a\n> needs: zzz\n\nA.\n";

/// Runs `murmur ARGS` in `repo` with `stdin` as its input and `server`'s token, if any.
fn run(repo: &Path, args: &[&str], stdin: &str, token: Option<&str>) -> Output {
    let mut command = murmur(repo);
    command.args(args).env_remove("MURMUR_TOKEN");
    if let Some(token) = token {
        command.env("MURMUR_TOKEN", token);
    }
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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_local_catalog_keeps_generations_and_validates_first() {
    let (repo, _) = setup(V1);
    let repo = repo.path();
    let saved = run(repo, &["set", "flight", "greet"], V1, None);
    assert_eq!(saved.status.code(), Some(0), "{}", stderr(&saved));
    assert!(
        stdout(&saved).contains("generation 1"),
        "{}",
        stdout(&saved)
    );
    let saved = run(repo, &["set", "flight", "greet"], V2, None);
    assert!(
        stdout(&saved).contains("generation 2"),
        "{}",
        stdout(&saved)
    );
    let invalid = run(repo, &["set", "flight", "greet"], INVALID, None);
    assert_eq!(invalid.status.code(), Some(1));
    assert!(stderr(&invalid).contains("zzz"), "{}", stderr(&invalid));
    let bad_name = run(repo, &["set", "flight", "../x"], V1, None);
    assert_eq!(bad_name.status.code(), Some(2));

    assert_eq!(
        stdout(&run(repo, &["get", "flight", "greet"], "", None)),
        V2
    );
    let old = run(
        repo,
        &["get", "flight", "greet", "--generation", "1"],
        "",
        None,
    );
    assert_eq!(stdout(&old), V1);
    let listed = run(repo, &["get", "flight", "--json"], "", None);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(listed[0]["name"], "greet");
    assert_eq!(listed[0]["generation"], 2);
    assert_eq!(listed[0]["author"], "local");
    let ls = run(repo, &["flight", "ls", "--json"], "", None);
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).expect("json");
    let origins: Vec<(&str, &str)> = ls
        .as_array()
        .expect("array")
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["origin"].as_str().unwrap()))
        .collect();
    assert_eq!(origins, [("job", "repository"), ("greet", "catalog")]);

    let ran = run(repo, &["flight", "run", "greet"], "", None);
    assert_eq!(ran.status.code(), Some(0), "{}", stderr(&ran));
    assert!(
        stdout(&ran).contains("| v2"),
        "a name runs the catalog's latest: {}",
        stdout(&ran)
    );
    assert_eq!(
        run(repo, &["rm", "flight", "greet"], "", None)
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        run(repo, &["rm", "flight", "greet"], "", None)
            .status
            .code(),
        Some(2)
    );
    let gone = run(repo, &["get", "flight", "greet"], "", None);
    assert_eq!(gone.status.code(), Some(2));
    assert!(
        stderr(&gone).contains("no flight `greet`"),
        "{}",
        stderr(&gone)
    );
}

#[test]
fn the_catalog_of_a_server_is_managed_with_dash_dash_server() {
    let (repo, token) = setup(V1);
    let (mut server, address) = serve(repo.path());
    let url = format!("http://{address}");
    let remote = |args: &[&str], stdin: &str, token: Option<&str>| {
        let mut all = args.to_vec();
        all.extend(["--server", url.as_str()]);
        run(repo.path(), &all, stdin, token)
    };
    let saved = remote(&["set", "flight", "greet"], V2, Some(&token));
    assert_eq!(saved.status.code(), Some(0), "{}", stderr(&saved));
    assert!(
        stdout(&saved).contains("generation 1"),
        "{}",
        stdout(&saved)
    );
    let listed = remote(&["get", "flight", "--json"], "", Some(&token));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(listed[0]["name"], "greet");
    assert_eq!(
        listed[0]["author"], "tests",
        "the token's name is the author"
    );
    assert_eq!(listed[1]["origin"], "repository");
    let table = stdout(&remote(&["get", "flight"], "", Some(&token)));
    assert!(
        table.starts_with("NAME") && table.contains("Greet two"),
        "{table}"
    );
    assert_eq!(
        stdout(&remote(&["get", "flight", "greet"], "", Some(&token))),
        V2
    );
    let unauthorized = remote(&["get", "flight"], "", Some("mur_wrong"));
    assert_eq!(unauthorized.status.code(), Some(2));
    assert!(
        stderr(&unauthorized).contains("unauthorized"),
        "{}",
        stderr(&unauthorized)
    );
    let no_token = remote(&["get", "flight"], "", None);
    assert!(
        stderr(&no_token).contains("MURMUR_TOKEN"),
        "{}",
        stderr(&no_token)
    );
    let removed = remote(&["rm", "flight", "greet"], "", Some(&token));
    assert_eq!(removed.status.code(), Some(0), "{}", stderr(&removed));
    let again = remote(&["rm", "flight", "greet"], "", Some(&token));
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("not_found"), "{}", stderr(&again));
    server.kill().expect("stop");
    server.wait().expect("reaped");
}
