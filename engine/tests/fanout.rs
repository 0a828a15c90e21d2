//! Fan-out (`each`) end to end on every backend: item lists from the flight, from an upstream
//! answer, and from the log of a resumed run; the pool cap; failure and `runs retry`.

mod backends;
mod support;

use backends::TestDb;
use murmur_engine::{Event, RunStatus};
use support::{crashed_after, drive, executor, in_repository, start};

every_backend!(
    instances_come_from_inline_lists_and_upstream_answers,
    a_wide_fan_out_never_exceeds_the_pool,
    a_resumed_run_never_resolves_its_items_again,
    a_failed_instance_fails_the_fan_out_and_retry_reruns_only_it,
);

const FAN: &str = "---\nruntime: exec\n---\n# Fan\n\n## plan\n\n```sh\necho 'Modules: [\"auth\", \"Billing API\"]'\n```\n\n## docs\n> needs: plan\n> each: ${{ needs.plan.response }}\n\n```sh\necho \"doc for {}\" > \"doc-{}.txt\" && git add -A && git -c user.name=a -c user.email=a@a commit -qm \"doc {}\" && echo \"wrote ${{ item }}\"\n```\n\n## lint\n> each: [x, y]\n\n```sh\necho \"linted {}\"\n```\n\n## join\n> needs: docs, lint\n\n```sh\nls doc-*.txt\ncat\n```\n";

fn output_of<'e>(events: &'e [Event], who: &str) -> Vec<&'e str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::AgentOutput { slug, line, .. } if slug == who => Some(line.as_str()),
            _ => None,
        })
        .collect()
}

async fn instances_come_from_inline_lists_and_upstream_answers(db: &TestDb) {
    let (_repo, executor) = in_repository(db).await;
    let id = start(&executor, FAN).await;
    let (status, events) = drive(&executor, &id).await;
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(status, RunStatus::Completed, "{agents:#?}");
    let expanded: Vec<(&str, &[String])> = events
        .iter()
        .filter_map(|e| match e {
            Event::AgentExpanded { slug, items } => Some((slug.as_str(), items.as_slice())),
            _ => None,
        })
        .collect();
    assert_eq!(
        expanded.len(),
        2,
        "each list is resolved once: {expanded:?}"
    );
    assert!(expanded.contains(&("docs", &["auth".to_owned(), "Billing API".to_owned()][..])));
    let mut states: Vec<(&str, &str)> = agents
        .iter()
        .map(|a| (a.slug.as_str(), a.state.as_str()))
        .collect();
    states.sort();
    assert_eq!(
        states,
        [
            ("docs", "completed"),
            ("docs-auth", "completed"),
            ("docs-billing-api", "completed"),
            ("join", "completed"),
            ("lint", "completed"),
            ("lint-x", "completed"),
            ("lint-y", "completed"),
            ("plan", "completed"),
        ]
    );
    let instance = agents
        .iter()
        .find(|a| a.slug == "docs-billing-api")
        .expect("instance");
    assert_eq!(instance.response.as_deref(), Some("wrote Billing API"));
    assert_eq!(
        instance.commits, 1,
        "each instance has its own branch and commits"
    );
    let join = output_of(&events, "join");
    assert!(
        join.contains(&"doc-Billing API.txt") && join.contains(&"doc-auth.txt"),
        "join starts with every instance's branch merged: {join:?}"
    );
    assert!(
        join.contains(&"### docs-auth") && join.contains(&"linted y"),
        "join's prompt carries the instances' answers: {join:?}"
    );
}

/// 60 instances with 3 machines: never more than 3 attempts at once.
async fn a_wide_fan_out_never_exceeds_the_pool(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let mut executor = executor(db, work.path()).await;
    executor.slots = 3;
    let items: Vec<String> = (0..60).map(|i| format!("i{i}")).collect();
    let text = format!(
        "---\nruntime: exec\n---\n# Wide\n\n## each-one\n> each: [{}]\n> command: echo {{}}\n",
        items.join(", ")
    );
    let id = start(&executor, &text).await;
    let (status, events) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Completed);
    let (mut running, mut most) = (0_i32, 0);
    for event in &events {
        match event {
            Event::AgentStarted { .. } => running += 1,
            Event::AgentSucceeded { slug, .. } if slug != "each-one" => running -= 1,
            _ => {}
        }
        most = most.max(running);
    }
    assert_eq!(most, 3, "the pool's 3 machines were used, and never more");
    assert_eq!(executor.store.agents(&id).await.expect("agents").len(), 61);
}

/// The list recorded in the log is the list: a resumed run does not work it out again,
/// even when the upstream answer would now give another one.
async fn a_resumed_run_never_resolves_its_items_again(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let executor = executor(db, work.path()).await;
    let text = "---\nruntime: exec\n---\n# R\n\n## plan\n> command: echo '[\"a\", \"b\"]'\n\n## docs\n> needs: plan\n> each: ${{ needs.plan.response }}\n> command: echo {}\n";
    let id = start(&executor, text).await;
    let before_crash = [
        Event::RunStarted,
        Event::AgentQueued {
            slug: "plan".into(),
        },
        Event::AgentStarted {
            slug: "plan".into(),
            attempt: 1,
        },
        Event::AgentSucceeded {
            slug: "plan".into(),
            attempt: 1,
            response: "[\"a\", \"b\"]".into(),
            delivered: Default::default(),
        },
        Event::AgentQueued {
            slug: "docs".into(),
        },
        Event::AgentStarted {
            slug: "docs".into(),
            attempt: 1,
        },
        Event::AgentExpanded {
            slug: "docs".into(),
            items: vec!["recorded".into()],
        },
        Event::AgentQueued {
            slug: "docs-recorded".into(),
        },
        Event::AgentStarted {
            slug: "docs-recorded".into(),
            attempt: 1,
        },
    ];
    crashed_after(&executor, &id, &before_crash).await;
    let (status, events) = drive(&executor, &id).await;
    assert_eq!(status, RunStatus::Completed);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::AgentExpanded { .. })),
        "no new list: {events:?}"
    );
    assert!(events.contains(&Event::AgentInterrupted {
        slug: "docs-recorded".into(),
        attempt: 1
    }));
    let agents = executor.store.agents(&id).await.expect("agents");
    let slugs: Vec<&str> = agents.iter().map(|a| a.slug.as_str()).collect();
    assert_eq!(slugs, ["plan", "docs", "docs-recorded"]);
    assert_eq!(agents[2].response.as_deref(), Some("recorded"));
}

async fn a_failed_instance_fails_the_fan_out_and_retry_reruns_only_it(db: &TestDb) {
    let work = tempfile::tempdir().expect("temp dir");
    let ledger = work.path().join("ledger");
    let flag = work.path().join("fixed");
    let mut executor = executor(db, work.path()).await;
    executor.slots = 1;
    let text = format!(
        "---\nruntime: exec\n---\n# F\n\n## step\n> each: [good, bad]\n> command: echo {{}} >> {l}; test {{}} = good || test -f {f}\n\n## after\n> needs: step\n> command: echo after >> {l}\n",
        l = ledger.display(),
        f = flag.display()
    );
    let id = start(&executor, &text).await;
    assert_eq!(drive(&executor, &id).await.0, RunStatus::Failed);
    let state = |agents: &[murmur_engine::store::AgentRow], slug: &str| {
        let agent = agents.iter().find(|a| a.slug == slug).expect("agent");
        (agent.state.clone(), agent.error.clone())
    };
    let agents = executor.store.agents(&id).await.expect("agents");
    assert_eq!(
        state(&agents, "step"),
        ("failed".into(), Some("instance `step-bad` failed".into()))
    );
    assert_eq!(state(&agents, "after").0, "skipped");
    std::fs::write(&flag, "").expect("fix");
    executor.retry(&id).await.expect("retry");
    assert_eq!(drive(&executor, &id).await.0, RunStatus::Completed);
    let ledger = std::fs::read_to_string(&ledger).expect("ledger");
    assert_eq!(
        ledger.lines().collect::<Vec<_>>(),
        ["good", "bad", "bad", "after"],
        "the good instance ran once"
    );
}
