//! GitHub deliveries with real payload shapes against a server on a real git repository:
//! hostile issue titles stay data, `repos` takes clone URLs, a push runs on its `after`
//! commit, deletions start nothing, and `tags:` / `branches:` each filter their own refs.
//! Schedules fire in every tenant, each tick once per tenant however many servers look.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use murmur_engine::SystemClock;
use murmur_testkit::git::git;
use serde_json::{Value, json};

use super::tests::{authed, call, live_events};
use super::{AppState, router};

const SECRET: &str = "trigger-secret";

const TRIAGE: &str = "---\nruntime: exec\non:\n  issue_opened: { repos: [\"https://github.com/Acme/API.git\"] }\n---\n# Triage\n\n## label\n> command: printf 'title: %s\\n' \"${{ event.issue.title }}\"; printf 'single: %s\\n' '${{ event.issue.title }}'\n";

const SSH_TRIAGE: &str = "---\nruntime: exec\non:\n  issue_opened: { repos: [\"git@github.com:acme/api.git\", \"ssh://git@github.com/acme/web.git\"] }\n---\n# Ssh triage\n\n## label\n> command: echo ssh\n";

const ON_MAIN: &str = "---\nruntime: exec\non:\n  push: { branches: [main] }\n---\n# On main\n\n## look\n> command: echo \"version: $(cat version.txt) at $(git rev-parse HEAD)\"\n";

const RELEASE: &str = "---\nruntime: exec\non:\n  push: { tags: [\"v*\"] }\n---\n# Release\n\n## look\n> command: echo \"release of ${{ event.ref }}: $(cat version.txt)\"\n";

struct Fixture {
    repo: tempfile::TempDir,
    app: Router,
    /// The first commit (`version.txt` is `old`) and HEAD (`new`).
    old: String,
    head: String,
}

fn commit(dir: &Path, version: &str) -> String {
    std::fs::write(dir.join("version.txt"), version).expect("write");
    git(dir, &["add", "version.txt"]);
    git(dir, &["commit", "-q", "-m", version]);
    git(dir, &["rev-parse", "HEAD"])
}

async fn fixture() -> Fixture {
    let repo = tempfile::tempdir().expect("temp dir");
    let dir = repo.path();
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join(".gitignore"), ".murmur/\n").expect("ignore");
    git(dir, &["add", ".gitignore"]);
    let old = commit(dir, "old");
    let head = commit(dir, "new");
    let flights = dir.join(".murmur/flights");
    std::fs::create_dir_all(&flights).expect("mkdir");
    for (name, text) in [
        ("triage", TRIAGE),
        ("ssh-triage", SSH_TRIAGE),
        ("on-main", ON_MAIN),
        ("release", RELEASE),
    ] {
        std::fs::write(flights.join(format!("{name}.md")), text).expect("flight");
    }
    let executor = super::tests::test_executor(dir, Arc::new(SystemClock)).await;
    let state = AppState::new(executor, dir.to_path_buf(), Some(SECRET.to_owned()));
    Fixture {
        repo,
        app: router(state),
        old,
        head,
    }
}

fn delivery(event: &str, payload: &Value, id: &str) -> Request<Body> {
    use hmac::Mac;
    let body = payload.to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    Request::post("/v1/webhooks/github")
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", id)
        .header("X-Hub-Signature-256", signature)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("request")
}

/// GitHub's `repository` object, trimmed to the fields a delivery always has.
fn repository(full_name: &str) -> Value {
    let (owner, name) = full_name.split_once('/').expect("owner/name");
    json!({
        "id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": name,
        "full_name": full_name, "private": false,
        "owner": {"login": owner, "id": 1, "type": "Organization"},
        "html_url": format!("https://github.com/{full_name}"),
        "clone_url": format!("https://github.com/{full_name}.git"),
        "ssh_url": format!("git@github.com:{full_name}.git"),
        "default_branch": "main",
    })
}

/// An `issues` delivery with `action: opened`, as GitHub sends it.
fn issue_opened(full_name: &str, title: &str) -> Value {
    json!({
        "action": "opened",
        "issue": {
            "url": format!("https://api.github.com/repos/{full_name}/issues/1347"),
            "html_url": format!("https://github.com/{full_name}/issues/1347"),
            "id": 1, "node_id": "MDU6SXNzdWUx", "number": 1347, "title": title,
            "user": {"login": "mallory", "id": 666, "type": "User"},
            "labels": [], "state": "open", "locked": false, "assignees": [], "comments": 0,
            "created_at": "2026-01-10T12:00:00Z", "updated_at": "2026-01-10T12:00:00Z",
            "author_association": "NONE", "body": "It crashes.",
        },
        "repository": repository(full_name),
        "sender": {"login": "mallory", "id": 666, "type": "User"},
    })
}

/// A `push` delivery: `git_ref` moved from `before` to `after`.
fn push(git_ref: &str, before: &str, after: &str) -> Value {
    let deleted = after.bytes().all(|b| b == b'0');
    json!({
        "ref": git_ref, "before": before, "after": after,
        "created": before.bytes().all(|b| b == b'0'), "deleted": deleted, "forced": false,
        "base_ref": null,
        "compare": format!("https://github.com/acme/api/compare/{before}...{after}"),
        "commits": [],
        "head_commit": if deleted { Value::Null } else { json!({"id": after, "message": "a commit"}) },
        "repository": repository("acme/api"),
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
        "sender": {"login": "octocat", "id": 583231, "type": "User"},
    })
}

fn started(answer: &Value) -> Vec<String> {
    let mut flights: Vec<String> = answer["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|run| run["flight"].as_str().map(str::to_owned))
        .collect();
    flights.sort();
    flights
}

fn run_id(answer: &Value, flight: &str) -> String {
    answer["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|run| run["flight"] == flight)
        .and_then(|run| run["run_id"].as_str())
        .unwrap_or_else(|| panic!("no run of {flight}: {answer}"))
        .to_owned()
}

#[tokio::test]
async fn a_hostile_issue_title_is_printed_verbatim() {
    let f = fixture().await;
    let marker = f.repo.path().join("pwned");
    let title = format!(
        "x $(id -un) `hostname` '; touch {m}; ' $(touch {m})",
        m = marker.display()
    );
    let payload = issue_opened("acme/api", &title);
    let (status, answer) = call(&f.app, delivery("issues", &payload, "i-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        started(&answer),
        ["ssh-triage", "triage"],
        "URL entries match"
    );
    let (_, sse) = live_events(&f.app, &run_id(&answer, "triage"), None).await;
    let printed = |prefix: &str| {
        let line = serde_json::to_string(&format!("{prefix}: {title}")).expect("json");
        sse.contains(&line)
    };
    assert!(printed("title") && printed("single"), "verbatim: {sse}");
    assert!(!marker.exists(), "the title ran");

    let web = issue_opened("Acme/Web", "hello");
    let (_, answer) = call(&f.app, delivery("issues", &web, "i-2")).await;
    assert_eq!(started(&answer), ["ssh-triage"], "ssh:// URL, any case");
    let other = issue_opened("acme/api-docs", "hello");
    let (status, answer) = call(&f.app, delivery("issues", &other, "i-3")).await;
    assert_eq!(
        (status, started(&answer)),
        (StatusCode::OK, Vec::<String>::new())
    );
}

#[tokio::test]
async fn a_push_runs_on_its_after_commit_not_the_checkout() {
    let f = fixture().await;
    let zeros = "0".repeat(40);
    let payload = push("refs/heads/main", &zeros, &f.old);
    let (status, answer) = call(&f.app, delivery("push", &payload, "p-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        started(&answer),
        ["on-main"],
        "a branch push is no tag push"
    );
    let (_, sse) = live_events(&f.app, &run_id(&answer, "on-main"), None).await;
    let expected = format!("version: old at {}", f.old);
    assert!(sse.contains(&expected), "worked on `after`: {sse}");
    assert_eq!(git(f.repo.path(), &["rev-parse", "HEAD"]), f.head);

    let unknown = "1234567890abcdef1234567890abcdef12345678";
    let payload = push("refs/heads/main", &f.old, unknown);
    let (_, answer) = call(&f.app, delivery("push", &payload, "p-2")).await;
    let id = run_id(&answer, "on-main");
    let (_, sse) = live_events(&f.app, &id, None).await;
    let (_, run) = call(
        &f.app,
        authed("GET", &format!("/v1/runs/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        sse.contains(&format!("commit {unknown} is not in the repository")),
        "a clear failure: {sse}"
    );
}

#[tokio::test]
async fn tags_filter_tag_pushes_and_deletions_start_nothing() {
    let f = fixture().await;
    let zeros = "0".repeat(40);
    let tag = push("refs/tags/v1.0.0", &zeros, &f.head);
    let (status, answer) = call(&f.app, delivery("push", &tag, "t-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        started(&answer),
        ["release"],
        "a tag push is no branch push"
    );
    let (_, sse) = live_events(&f.app, &run_id(&answer, "release"), None).await;
    assert!(sse.contains("release of refs/tags/v1.0.0: new"), "{sse}");

    let other_tag = push("refs/tags/nightly", &zeros, &f.head);
    let (_, answer) = call(&f.app, delivery("push", &other_tag, "t-2")).await;
    assert_eq!(started(&answer), Vec::<String>::new(), "`v*` only");
    let branch_named_like_a_tag = push("refs/heads/v2", &zeros, &f.head);
    let (_, answer) = call(&f.app, delivery("push", &branch_named_like_a_tag, "t-3")).await;
    assert_eq!(started(&answer), Vec::<String>::new());

    for (id, git_ref) in [("t-4", "refs/tags/v1.0.0"), ("t-5", "refs/heads/main")] {
        let deletion = push(git_ref, &f.head, &zeros);
        let (status, answer) = call(&f.app, delivery("push", &deletion, id)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(started(&answer), Vec::<String>::new(), "{git_ref} deleted");
    }
    let (_, runs) = call(
        &f.app,
        authed("GET", "/v1/runs").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
}

/// A nightly flight whose one agent says which tenant's catalog it came from.
fn nightly(word: &str) -> String {
    format!(
        "---\nruntime: exec\non:\n  schedule: {{ cron: \"0 2 * * *\", timezone: Europe/Berlin }}\n---\n# Nightly\n\n## report\n> command: echo {word}-nightly\n"
    )
}

async fn save_nightly(store: &murmur_engine::Store, word: &str, at: &str) {
    let text = nightly(word);
    store
        .save_flight(&murmur_engine::store::NewGeneration {
            name: "nightly",
            markdown: &text,
            digest: &murmur_engine::run::digest(&text),
            author: "tests",
            created_at: at,
        })
        .await
        .expect("save the flight");
}

#[tokio::test]
async fn every_tenants_schedule_fires_once_per_tick_in_its_own_tenant() {
    use chrono::{DateTime, Utc};
    use murmur_engine::Clock;
    use murmur_engine::clock::ManualClock;
    let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(at("2026-03-02T00:30:00Z")));
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur/flights")).expect("mkdir");
    let executor = super::tests::test_executor(dir.path(), clock.clone()).await;
    let local = executor.store.clone();
    assert!(
        local
            .create_tenant("acme", &clock.stamp())
            .await
            .expect("tenant")
    );
    let acme = local
        .for_tenant("acme")
        .await
        .expect("lookup")
        .expect("acme");
    // The same flight name in both catalogs, each with its own text.
    save_nightly(&local, "local", &clock.stamp()).await;
    save_nightly(&acme, "acme", &clock.stamp()).await;
    // Two servers on one store file, each with its own connection pool.
    let path = dir.path().join(".murmur/murmur.db").display().to_string();
    let other = murmur_engine::executor::Executor {
        store: murmur_engine::Store::open(&path)
            .await
            .expect("a second store"),
        ..executor.clone()
    };
    let (one, two) = (
        AppState::new(executor, dir.path().to_path_buf(), None),
        AppState::new(other, dir.path().to_path_buf(), None),
    );
    let started = clock.now();
    assert!(
        super::cron::fire_due(&one, started).await.is_empty(),
        "01:00 UTC has not come"
    );

    clock.advance(chrono::Duration::minutes(31));
    let (here, there) = tokio::join!(
        super::cron::fire_due(&one, started),
        super::cron::fire_due(&two, started)
    );
    let runs: Vec<String> = here.into_iter().chain(there).collect();
    assert_eq!(runs.len(), 2, "one run per tenant for the tick: {runs:?}");
    for (store, word) in [(&local, "local"), (&acme, "acme")] {
        let mut own = Vec::new();
        for id in &runs {
            if let Ok(row) = store.run(id).await {
                own.push(row);
            }
        }
        assert_eq!(own.len(), 1, "{word} sees exactly its own run: {runs:?}");
        let row = &own[0];
        assert_eq!(
            (row.flight.as_str(), row.tenant.as_str()),
            ("nightly", word)
        );
        assert!(
            row.source.contains(&format!("echo {word}-nightly")),
            "{}",
            row.source
        );
    }
    for state in [&one, &two] {
        assert!(
            super::cron::fire_due(state, started).await.is_empty(),
            "each tenant's tick is taken once"
        );
    }
}
