//! The executor end to end, in-process, on every backend: real `sh` agents, real store.

mod backends;
mod support;

use backends::TestDb;
use murmur_engine::{Event, RunStatus};
use murmur_testkit::git::git;
use support::{crashed_after, drive, executor, start};
use tokio::sync::mpsc;

every_backend!(
    a_flight_runs_to_completion,
    a_failure_skips_what_depends_on_it,
    an_interrupted_attempt_runs_again,
    agents_in_a_repository_work_on_their_own_branches,
    retry_reruns_only_what_did_not_succeed,
    an_attempt_past_its_timeout_is_stopped,
    retries_run_a_failed_attempt_again,
    the_prepare_hook_runs_first_and_push_reaches_the_remote,
    out_pr_on_a_github_remote_opens_a_pull_request_through_the_api,
    max_concurrent_queues_runs_in_order,
);

const DIAMOND: &str = "---\nruntime: exec\n---\n# Diamond\n\n## plan\n\n```sh\necho planned\n```\n\n## left\n> needs: plan\n\n```sh\necho \"left after ${{ needs.plan.response }}\"\n```\n\n## right\n> needs: plan\n\n```sh\necho right\n```\n\n## join\n> needs: left, right\n\n```sh\ncat\n```\n";

async fn a_flight_runs_to_completion(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let id = start(&executor, DIAMOND).await;
    let (status, events) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Completed);
    let agents = executor.store.agents(&id).await.expect("agents");
    let states: Vec<(&str, &str)> = agents
        .iter()
        .map(|a| (a.slug.as_str(), a.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("plan", "completed"),
            ("left", "completed"),
            ("right", "completed"),
            ("join", "completed")
        ]
    );
    assert_eq!(agents[1].response.as_deref(), Some("left after planned"));
    let join_saw: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::AgentOutput { slug, line, .. } if slug == "join" => Some(line.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        join_saw.contains(&"### left") && join_saw.contains(&"left after planned"),
        "join's prompt: {join_saw:?}"
    );
    assert_eq!(events.last(), Some(&Event::RunCompleted));
    let stored = executor.store.events(&id, 0).await.expect("events");
    assert_eq!(
        stored.len(),
        events.len(),
        "everything observed was committed"
    );
}

async fn a_failure_skips_what_depends_on_it(db: &TestDb) {
    let text = "---\nruntime: exec\n---\n# F\n\n## bad\n> command: echo nope >&2; exit 4\n\n## after\n> needs: bad\n> command: echo never\n\n## slow\n> command: echo slow\n";
    let work = tempfile::tempdir().expect("temp dir");
    let mut executor = executor(db, work.path()).await;
    executor.slots = 1;
    let id = start(&executor, text).await;
    let (status, _) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Failed);
    let agents = executor.store.agents(&id).await.expect("agents");
    let states: Vec<(&str, &str)> = agents
        .iter()
        .map(|a| (a.slug.as_str(), a.state.as_str()))
        .collect();
    assert_eq!(states[0], ("bad", "failed"));
    assert_eq!(states[1], ("after", "skipped"));
    assert_eq!(
        agents[0].error.as_deref(),
        Some("the command exited with status 4: nope")
    );
    assert_eq!(agents[1].error.as_deref(), Some("upstream `bad` failed"));
}

async fn an_interrupted_attempt_runs_again(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let id = start(&executor, DIAMOND).await;
    // What a killed engine leaves behind: `plan` started (attempt 1) and never finished.
    let started = [
        Event::RunStarted,
        Event::AgentQueued {
            slug: "plan".into(),
        },
        Event::AgentStarted {
            slug: "plan".into(),
            attempt: 1,
        },
    ];
    crashed_after(&executor, &id, &started).await;
    let (status, events) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Completed);
    assert_eq!(
        events[0],
        Event::AgentInterrupted {
            slug: "plan".into(),
            attempt: 1
        }
    );
    assert!(events.contains(&Event::AgentStarted {
        slug: "plan".into(),
        attempt: 2
    }));
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(agents[0].attempts, 2);
    assert_eq!(agents[1].attempts, 1);
}

/// In a git repository every agent works in its own worktree; a `needs` agent starts with
/// its upstreams' commits merged in, and commits are recorded per agent.
async fn agents_in_a_repository_work_on_their_own_branches(db: &TestDb) {
    let repo = tempfile::tempdir().expect("temp dir");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(repo.path().join("README.md"), "demo\n").expect("write");
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "start"]);
    let mut executor = executor(db, &repo.path().join(".murmur/work")).await;
    executor.repository = repo.path().to_path_buf();
    let text = "---\nruntime: exec\n---\n# Branches\n\n## write\n\n```sh\necho hello > hello.txt && git add hello.txt && git -c user.name=a -c user.email=a@a commit -qm hello\n```\n\n## read\n> needs: write\n> out: diff\n\n```sh\ncat hello.txt && git branch --show-current\n```\n";
    let id = start(&executor, text).await;
    let (status, _) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Completed);
    let agents = executor.store.agents(&id).await.expect("agents");
    let branch = |slug: &str| format!("murmur/t/{id}/{slug}");
    assert_eq!(agents[0].branch.as_deref(), Some(branch("write").as_str()));
    assert_eq!(agents[0].commits, 1);
    assert_eq!(
        agents[1].commits, 0,
        "merged upstream work is not read's own"
    );
    assert_eq!(
        agents[1].response.as_deref(),
        Some(format!("hello\n{}", branch("read")).as_str())
    );
    assert_eq!(
        git(repo.path(), &["log", "--format=%s", &branch("write")]),
        "hello\nstart"
    );
    assert_eq!(
        git(repo.path(), &["branch", "--show-current"]),
        "main",
        "the checkout is untouched"
    );
}

/// `runs retry`: the failed agent and what it blocked run again; succeeded agents and their
/// side effects happen exactly once.
async fn retry_reruns_only_what_did_not_succeed(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let ledger = work.path().join("ledger");
    let marker = work.path().join("second-time");
    let executor = executor(db, work.path()).await;
    let text = format!(
        "---\nruntime: exec\n---\n# Retry\n\n## solid\n> command: echo solid >> {ledger}\n\n## flaky\n> command: echo flaky >> {ledger}; test -e {marker} || {{ touch {marker}; exit 1; }}\n\n## after\n> needs: flaky\n> command: echo after >> {ledger}\n",
        ledger = ledger.display(),
        marker = marker.display()
    );
    let id = start(&executor, &text).await;
    assert_eq!(drive(&executor, &id).await.0, RunStatus::Failed);
    executor.retry(&id).await.expect("retry");
    assert!(
        matches!(
            executor.retry(&id).await,
            Err(murmur_engine::executor::Error::NothingToRetry(_))
        ),
        "a running run is not retried twice"
    );
    let (status, events) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Completed);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::AgentStarted { slug, .. } if slug == "solid")),
        "solid is reused"
    );
    let mut lines: Vec<String> = std::fs::read_to_string(&ledger)
        .expect("ledger")
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        ["after", "flaky", "flaky", "solid"],
        "side effects: solid once, flaky twice"
    );
    let agents = executor.store.agents(&id).await.expect("agents");
    let attempts: Vec<i64> = agents.iter().map(|a| a.attempts).collect();
    assert_eq!(attempts, [1, 2, 1]);
}

/// `timeout`: the attempt's process is stopped when time is up and the agent fails with why.
async fn an_attempt_past_its_timeout_is_stopped(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let pid_file = work.path().join("pid");
    let executor = executor(db, work.path()).await;
    let text = format!(
        "---\nruntime: exec\ntimeout: 1s\n---\n# Slow\n\n## slow\n> command: echo $$ > {} && exec sleep 30\n",
        pid_file.display()
    );
    let id = start(&executor, &text).await;
    assert_eq!(drive(&executor, &id).await.0, RunStatus::Failed);
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(
        agents[0].error.as_deref(),
        Some("timed out after 1s (the agent's `timeout`)")
    );
    let pid = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .to_owned();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the agent's process {pid} is gone"
    );
}

/// `retries`: a failing attempt runs again (after a backoff, zero here) until it succeeds or
/// the budget is spent.
async fn retries_run_a_failed_attempt_again(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let counter = work.path().join("tries");
    let executor = executor(db, work.path()).await;
    let text = format!(
        "---\nruntime: exec\nretries: 3\n---\n# Flaky\n\n## flaky\n> command: echo x >> {c}; test $(wc -l < {c}) -ge 3\n\n## hopeless\n> needs: flaky\n> retries: 1\n> command: exit 9\n",
        c = counter.display()
    );
    let id = start(&executor, &text).await;
    let (status, events) = drive(&executor, &id).await;
    assert_eq!(
        status,
        RunStatus::Failed,
        "hopeless gives up after its one retry"
    );
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(
        (agents[0].state.as_str(), agents[0].attempts),
        ("completed", 3),
        "flaky succeeds on its third attempt"
    );
    assert_eq!(
        (agents[1].state.as_str(), agents[1].attempts),
        ("failed", 2)
    );
    let retrying = events
        .iter()
        .filter(|e| matches!(e, Event::AgentRetrying { .. }))
        .count();
    assert_eq!(retrying, 3, "two retries of flaky, one of hopeless");
}

/// The repository's prepare hook runs in each fresh worktree before the agent (a failing hook
/// fails the start), and `out: push` pushes the agent's branch to `origin`.
async fn the_prepare_hook_runs_first_and_push_reaches_the_remote(db: &TestDb) {
    let remote = tempfile::tempdir().expect("temp dir");
    git(remote.path(), &["init", "-q", "--bare", "-b", "main"]);
    let repo = tempfile::tempdir().expect("temp dir");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(repo.path().join(".murmur/hooks")).expect("mkdir");
    let hook = "if [ \"$MURMUR_AGENT\" = broken ]; then echo cannot >&2; exit 3; fi\necho ready > prepared.txt\n";
    std::fs::write(repo.path().join(".murmur/hooks/prepare-workspace.sh"), hook).expect("hook");
    std::fs::write(repo.path().join(".gitignore"), "prepared.txt\n").expect("ignore");
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "start"]);
    git(
        repo.path(),
        &[
            "remote",
            "add",
            "origin",
            remote.path().to_str().expect("utf-8"),
        ],
    );
    let mut executor = executor(db, &repo.path().join(".murmur/work")).await;
    executor.repository = repo.path().to_path_buf();
    let text = "---\nruntime: exec\n---\n# Hook and push\n\n## ship\n> out: push\n\n```sh\ncat prepared.txt && echo shipped > SHIPPED && git add SHIPPED && git -c user.name=a -c user.email=a@a commit -qm ship\n```\n\n## broken\n> needs: ship\n> command: echo never\n";
    let id = start(&executor, text).await;
    assert_eq!(
        drive(&executor, &id).await.0,
        RunStatus::Failed,
        "broken's hook fails its start"
    );
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(
        agents[0].response.as_deref(),
        Some("ready"),
        "the hook ran before the agent"
    );
    let error = agents[1].error.as_deref().unwrap_or("");
    assert!(
        error.contains("prepare-workspace.sh failed") && error.contains("cannot"),
        "{error}"
    );
    let branch = format!("murmur/t/{id}/ship");
    assert_eq!(
        git(remote.path(), &["log", "--format=%s", &branch]),
        "ship\nstart",
        "the branch reached origin"
    );
}

/// A stand-in for GitHub's REST API: answers `POST /repos/{owner}/{repo}/pulls` like GitHub
/// does and keeps what it was sent.
async fn github_double() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
) {
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>;
    async fn pulls(
        State(seen): State<Seen>,
        Path((owner, repo)): Path<(String, String)>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<serde_json::Value>,
    ) -> (StatusCode, axum::Json<serde_json::Value>) {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        seen.lock().expect("lock").push((auth, body));
        let url = format!("https://github.com/{owner}/{repo}/pull/7");
        (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({"number": 7, "html_url": url})),
        )
    }
    let seen: Seen = Default::default();
    let app = axum::Router::new()
        .route("/repos/{owner}/{repo}/pulls", axum::routing::post(pulls))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

async fn out_pr_on_a_github_remote_opens_a_pull_request_through_the_api(db: &TestDb) {
    let (api, seen) = github_double().await;
    let remote = tempfile::tempdir().expect("temp dir");
    git(remote.path(), &["init", "-q", "--bare", "-b", "main"]);
    let repo = tempfile::tempdir().expect("temp dir");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(repo.path().join("README.md"), "demo\n").expect("write");
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "start"]);
    // The remote is GitHub by its URL; git is told to push there into the local bare repository.
    git(
        repo.path(),
        &["remote", "add", "origin", "https://github.com/acme/api.git"],
    );
    let rewrite = format!("url.{}.insteadOf", remote.path().display());
    git(
        repo.path(),
        &["config", &rewrite, "https://github.com/acme/api.git"],
    );
    let mut executor = executor(db, &repo.path().join(".murmur/work")).await;
    executor.repository = repo.path().to_path_buf();
    executor.github = murmur_engine::executor::GitHubSettings {
        api_url: api,
        token: Some("gh-token".to_owned()),
    };
    let text = "---\nruntime: exec\n---\n# Fix\n\n## fix\n> out: pr\n\n```sh\necho fixed > FIX && git add FIX && git -c user.name=a -c user.email=a@a commit -qm fix && echo Fixed it.\n```\n";
    let id = start(&executor, text).await;
    assert_eq!(drive(&executor, &id).await.0, RunStatus::Completed);
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(agents[0].prs, "[\"https://github.com/acme/api/pull/7\"]");
    let branch = format!("murmur/t/{id}/fix");
    let requests = seen.lock().expect("lock").clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].0, "Bearer gh-token");
    assert_eq!(requests[0].1["head"], branch.as_str());
    assert_eq!(requests[0].1["base"], "main");
    assert_eq!(requests[0].1["title"], "Fix: fix");
    assert_eq!(requests[0].1["body"], "Fixed it.");
    assert_eq!(
        git(remote.path(), &["log", "--format=%s", &branch]),
        "fix\nstart",
        "pushed before the pull request"
    );
    assert!(
        executor
            .store
            .pull_requests()
            .await
            .expect("prs")
            .is_empty(),
        "no local record for a GitHub remote"
    );
}

/// `max_concurrent: 1`: three runs of one flight run one after the other, oldest first.
async fn max_concurrent_queues_runs_in_order(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let text = "---\nruntime: exec\nmax_concurrent: 1\n---\n# One at a time\n\n## work\n> command: echo $MURMUR_RUN_ID\n";
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(start(&executor, text).await);
    }
    let drives: Vec<_> = ids
        .iter()
        .rev()
        .map(|id| {
            let executor = executor.clone();
            let id = id.clone();
            tokio::spawn(async move { executor.drive(&id, mpsc::unbounded_channel().0).await })
        })
        .collect();
    for drive in drives {
        assert_eq!(
            drive.await.expect("task").expect("drive"),
            RunStatus::Completed
        );
    }
    let mut spans = Vec::new();
    let mut logs = Vec::new();
    for id in &ids {
        let events = executor.store.events(id, 0).await.expect("events");
        logs.push(
            events
                .iter()
                .map(|e| format!("{} {}", e.at, e.kind))
                .collect::<Vec<_>>(),
        );
        let started = events
            .iter()
            .find(|e| e.kind == "run_started")
            .expect("started")
            .at
            .clone();
        let finished = executor
            .store
            .run(id)
            .await
            .expect("run")
            .finished_at
            .expect("finished");
        spans.push((started, finished));
    }
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "a run starts only after the one before it finished: {spans:?}\n{logs:#?}"
        );
    }
}
