//! `murmur tenant create|ls` and `murmur token create --tenant|ls|revoke` with the real binary
//! on SQLite and PostgreSQL: tenants by name, each tenant's tokens listed apart (names, never
//! tokens), and a revoked token refused by a running server.

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use murmur_engine::store::tokens::TOKEN_CACHE_TTL;
use serde_json::Value;
use support::db::Backend;
use support::fixture::Fixture;

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(fixture: &Fixture, args: &[&str]) -> String {
    let out = fixture.murmur(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn refused(fixture: &Fixture, args: &[&str]) -> String {
    let out = fixture.murmur(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn names(listing: &str) -> Vec<String> {
    let rows: Value = serde_json::from_str(listing).expect("JSON");
    rows.as_array()
        .expect("a list")
        .iter()
        .map(|row| row["name"].as_str().expect("name").to_owned())
        .collect()
}

fn tenants_are_made_by_name_and_listed(backend: &Backend) {
    let fixture = Fixture::new(backend, "tenants");
    assert_eq!(names(&ok(&fixture, &["tenant", "ls", "--json"])), ["local"]);
    ok(&fixture, &["tenant", "create", "acme"]);
    ok(&fixture, &["tenant", "create", "beta-2"]);
    let again = refused(&fixture, &["tenant", "create", "acme"]);
    assert!(again.contains("exists already"), "{again}");
    for bad in ["Acme", "a/b", "", "_x", "a b"] {
        let said = refused(&fixture, &["tenant", "create", bad]);
        assert!(said.contains("no tenant name"), "{bad}: {said}");
    }
    assert_eq!(
        names(&ok(&fixture, &["tenant", "ls", "--json"])),
        ["acme", "beta-2", "local"]
    );
}

fn each_tenant_lists_its_own_tokens_only(backend: &Backend) {
    let fixture = Fixture::new(backend, "tenant_tokens");
    ok(&fixture, &["tenant", "create", "acme"]);
    let acme = ok(
        &fixture,
        &["token", "create", "--name", "ci", "--tenant", "acme"],
    );
    assert!(acme.starts_with("mur_"), "{acme}");
    ok(&fixture, &["token", "create", "--name", "deploy"]);
    let worker = [
        "token", "create", "--name", "fleet", "--worker", "--pool", "fleet", "--tenant", "acme",
    ];
    assert!(ok(&fixture, &worker).starts_with("murw_"));
    let listed = ok(&fixture, &["token", "ls", "--tenant", "acme", "--json"]);
    assert_eq!(names(&listed), ["ci", "fleet"]);
    assert!(!listed.contains(&acme), "a token is never listed: {listed}");
    let rows: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(rows[1]["kind"], "worker");
    assert_eq!(rows[1]["pool"], "fleet");
    assert_eq!(names(&ok(&fixture, &["token", "ls", "--json"])), ["deploy"]);
    let unknown = refused(
        &fixture,
        &["token", "create", "--name", "x", "--tenant", "nope"],
    );
    assert!(unknown.contains("no tenant `nope`"), "{unknown}");
    let elsewhere = refused(&fixture, &["token", "revoke", "ci"]);
    assert!(
        elsewhere.contains("has no token `ci`"),
        "another tenant's token is not found: {elsewhere}"
    );
    ok(&fixture, &["token", "revoke", "ci", "--tenant", "acme"]);
    assert_eq!(
        names(&ok(
            &fixture,
            &["token", "ls", "--tenant", "acme", "--json"]
        )),
        ["fleet"]
    );
}

/// GET /v1/runs with `token`: its status.
fn status_with(address: &str, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    support::http(address, "GET", "/v1/runs", &[("Authorization", &auth)], "").0
}

#[test]
fn a_revoked_token_is_refused_by_a_running_server() {
    let fixture = Fixture::new(&Backend::Sqlite, "revoke");
    let unused = ok(&fixture, &["token", "create", "--name", "unused"]);
    let used = ok(&fixture, &["token", "create", "--name", "used"]);
    let (mut server, address) = support::serve(fixture.repo());
    assert_eq!(status_with(&address, &used), 200);
    ok(&fixture, &["token", "revoke", "unused"]);
    ok(&fixture, &["token", "revoke", "used"]);
    // Never looked up before: refused on its first request.
    assert_eq!(status_with(&address, &unused), 401);
    // Looked up just before: the server believes it at most TOKEN_CACHE_TTL longer.
    let deadline = Instant::now() + TOKEN_CACHE_TTL + Duration::from_secs(5);
    while status_with(&address, &used) != 401 {
        assert!(Instant::now() < deadline, "the revoked token still works");
    }
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn a_tenants_token_works_in_its_tenant_only_on_a_running_server() {
    let fixture = Fixture::with_history(&Backend::Sqlite, "tenant_serve");
    fixture.write_flight(
        "hello",
        "---\nruntime: exec\n---\n# Hello\n\n## greet\n> command: echo hi\n",
    );
    ok(&fixture, &["tenant", "create", "acme"]);
    let local = ok(&fixture, &["token", "create", "--name", "ci"]);
    let acme = ok(
        &fixture,
        &["token", "create", "--name", "ci", "--tenant", "acme"],
    );
    let (mut server, address) = support::serve(fixture.repo());
    let url = format!("http://{address}");
    let remote = |token: &str, args: &[&str]| -> Output {
        let mut command = support::murmur(fixture.repo());
        command
            .args(args)
            .args(["--server", &url])
            .env("MURMUR_TOKEN", token)
            .env("NO_COLOR", "1");
        command.output().expect("murmur runs")
    };
    let started = remote(&local, &["flight", "run", "hello", "--detach"]);
    assert!(started.status.success(), "{}", text(&started));
    let run_id = String::from_utf8_lossy(&started.stdout).trim().to_owned();
    let shown = remote(&local, &["runs", "show", &run_id, "--json"]);
    assert!(shown.status.success(), "{}", text(&shown));

    let theirs = remote(&acme, &["runs", "show", &run_id, "--json"]);
    assert!(!theirs.status.success(), "{}", text(&theirs));
    assert!(text(&theirs).contains("no run"), "{}", text(&theirs));
    let listed = remote(&acme, &["runs", "ls", "--json"]);
    assert!(listed.status.success(), "{}", text(&listed));
    assert!(!text(&listed).contains(&run_id), "{}", text(&listed));
    let acme_start = remote(&acme, &["flight", "run", "hello", "--detach"]);
    assert!(
        !acme_start.status.success(),
        "the repository's flights are the server's tenant's: {}",
        text(&acme_start)
    );
    let auth = format!("Bearer {acme}");
    let (status, body) = support::http(
        &address,
        "GET",
        "/v1/flights",
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!((status, body.contains("hello")), (200, false), "{body}");
    let _ = server.kill();
    let _ = server.wait();
}

every_backend!(
    tenants_are_made_by_name_and_listed,
    each_tenant_lists_its_own_tokens_only
);
