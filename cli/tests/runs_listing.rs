//! `murmur runs ls --flight --status --limit --cursor` with the real binary on a real SQLite
//! store: filters combine, a cursor walks the next page, bad values are clear errors.

mod support;

use std::process::Output;

use support::murmur_output as murmur;

const OK: &str = "---\nruntime: exec\n---\n# Ok\n\n## hi\n> command: echo hi\n";
const FAILS: &str = "---\nruntime: exec\n---\n# Fails\n\n## bad\n> command: exit 3\n";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ids(output: &Output) -> Vec<(String, String, String)> {
    assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
    let runs: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    runs.as_array()
        .expect("an array")
        .iter()
        .map(|run| {
            let field = |name: &str| run[name].as_str().unwrap_or_default().to_owned();
            (field("id"), field("flight"), field("status"))
        })
        .collect()
}

/// The cursor `runs ls` suggests on stderr, if any.
fn cursor(output: &Output) -> Option<String> {
    let text = stderr(output);
    let after = text.split("--cursor ").nth(1)?;
    after.split_whitespace().next().map(str::to_owned)
}

#[test]
fn runs_ls_filters_by_flight_and_status_and_pages_with_a_cursor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path();
    std::fs::create_dir_all(repo.join(".murmur/flights")).expect("mkdir");
    std::fs::create_dir(repo.join(".git")).expect("mkdir");
    std::fs::write(repo.join(".murmur/flights/ok.md"), OK).expect("write");
    std::fs::write(repo.join(".murmur/flights/fails.md"), FAILS).expect("write");
    for (flight, code) in [("ok", 0), ("fails", 1), ("ok", 0)] {
        let run = murmur(repo, &["flight", "run", flight]);
        assert_eq!(run.status.code(), Some(code), "{}", stderr(&run));
    }
    let all = ids(&murmur(repo, &["runs", "ls", "--json"]));
    assert_eq!(all.len(), 3);
    let ok = ids(&murmur(repo, &["runs", "ls", "--json", "--flight", "ok"]));
    assert_eq!(ok.len(), 2);
    assert!(ok.iter().all(|run| run.1 == "ok" && run.2 == "completed"));
    let failed = ids(&murmur(
        repo,
        &["runs", "ls", "--json", "--status", "failed"],
    ));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].1, "fails");
    let none = murmur(
        repo,
        &[
            "runs",
            "ls",
            "--json",
            "--flight",
            "fails",
            "--status",
            "completed",
        ],
    );
    assert!(ids(&none).is_empty());
    assert_eq!(cursor(&none), None);

    let page = &["runs", "ls", "--json", "--flight", "ok", "--limit", "1"];
    let first = murmur(repo, page);
    let next = cursor(&first).expect("a next page");
    let mut second_args = page.to_vec();
    second_args.extend(["--cursor", &next]);
    let second = murmur(repo, &second_args);
    assert_eq!(cursor(&second), None, "the last page");
    let walked: Vec<_> = ids(&first).into_iter().chain(ids(&second)).collect();
    assert_eq!(walked, ok, "two pages of one are the listing of two");

    let foreign = murmur(
        repo,
        &["runs", "ls", "--flight", "fails", "--cursor", &next],
    );
    assert_eq!(foreign.status.code(), Some(2));
    assert!(
        stderr(&foreign).contains("other filters"),
        "{}",
        stderr(&foreign)
    );
    let bogus = murmur(repo, &["runs", "ls", "--status", "sleeping"]);
    assert_eq!(bogus.status.code(), Some(2));
    assert!(stderr(&bogus).contains("interrupted"), "{}", stderr(&bogus));
    let too_many = murmur(repo, &["runs", "ls", "--limit", "1001"]);
    assert_eq!(too_many.status.code(), Some(2));
    assert!(
        stderr(&too_many).contains("1 to 1000"),
        "{}",
        stderr(&too_many)
    );

    let (mut server, address) = support::serve(repo);
    let token = murmur(repo, &["token", "create", "--name", "lister"]);
    let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
    let url = format!("http://{address}");
    let remote = |args: &[&str]| {
        support::murmur(repo)
            .args(args)
            .args(["--server", &url])
            .env("MURMUR_TOKEN", &token)
            .output()
            .expect("murmur runs")
    };
    let first = remote(page);
    let next = cursor(&first).expect("a next page from the server");
    let second = remote(&[page.as_slice(), &["--cursor", &next]].concat());
    assert_eq!(cursor(&second), None);
    let walked: Vec<_> = ids(&first).into_iter().chain(ids(&second)).collect();
    assert_eq!(walked, ok, "the server pages the same way");
    let failed = ids(&remote(&["runs", "ls", "--json", "--status", "failed"]));
    assert_eq!(failed.len(), 1);
    let foreign = remote(&["runs", "ls", "--flight", "fails", "--cursor", &next]);
    assert_eq!(foreign.status.code(), Some(2));
    assert!(
        stderr(&foreign).contains("other filters"),
        "{}",
        stderr(&foreign)
    );
    server.kill().expect("stop the server");
    server.wait().expect("the server stops");
}

#[test]
fn serve_refuses_a_rate_limit_without_burst() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur")).expect("mkdir");
    std::fs::create_dir(dir.path().join(".git")).expect("mkdir");
    let config = "server:\n  rate_limit: { per_second: 5, burst: 0 }\n";
    std::fs::write(dir.path().join(".murmur/murmur.yaml"), config).expect("write");
    let mut serve = support::murmur(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve starts");
    // Read until the server exits (its stderr closes) or says it listens: never wait forever.
    let mut said = String::new();
    for line in BufReader::new(serve.stderr.take().expect("stderr")).lines() {
        let line = line.expect("line");
        if line.contains("listening on") {
            serve.kill().expect("stop the server");
            panic!("serve started with burst 0: {said}{line}");
        }
        said.push_str(&line);
        said.push('\n');
    }
    assert_ne!(serve.wait().expect("exit").code(), Some(0));
    assert!(said.contains("burst must be at least 1"), "{said}");
}
