//! Fan-out, gates and queued runs survive a `kill -9` of the engine: the real binary is
//! killed at chosen checkpoints, resumed with `murmur runs resume`, and the store and the
//! agents' ledger must show that what was decided was decided once (an item list, a gate's
//! verdict, a run's turn), nothing that succeeded ran again, and nothing recorded was lost.
//!
//! The tests wait on committed events and process exits; a ci check reports that it runs
//! over a local TCP connection. Agents and checks poll for files the test creates.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::beacon::Beacon;
use support::check::{KillPoint, check_session, survive};
use support::db::Backend;
use support::fixture::{Fixture, Snapshot, what};
use support::session::{Session, after, event_slug, kind, last_is, launch, never, resume, start};

every_backend!(
    a_fan_out_resolves_its_items_once_across_kills,
    a_kill_before_the_items_are_recorded_resolves_them_once,
    gates_survive_kills_during_the_check_and_the_wait_for_approval,
    queued_runs_keep_their_order_across_kills,
);

const ITEMS: [&str; 6] = [
    "auth",
    "billing",
    "search",
    "Payments API",
    "users",
    "admin",
];

/// A plan answering with a JSON list, one instance per item (each commits its own file),
/// and a fan-in; every agent appends `AGENT ATTEMPT` to the ledger.
fn fan_flight(ledger: &str) -> String {
    let list = ITEMS.map(|item| format!("\"{item}\"")).join(", ");
    let record = format!("echo \"$MURMUR_AGENT $MURMUR_ATTEMPT\" >> '{ledger}'");
    format!(
        "---\nruntime: exec\n---\n\n# Fan\n\n## plan\n\n```sh\n{record}\necho '[{list}]'\n```\n\n\
         ## part\n> needs: plan\n> each: ${{{{ needs.plan.response }}}}\n\nWork on {{}}.\n\n\
         ```sh\necho \"begin $MURMUR_AGENT\"\n{record}\necho '${{{{ item }}}}' > \"$MURMUR_AGENT.txt\"\n\
         git add -A && git -c user.name=a -c user.email=a@a commit -qm \"$MURMUR_AGENT\"\n\
         echo \"end $MURMUR_AGENT\"\n```\n\n\
         ## join\n> needs: part\n\n```sh\n{record}\nls part-*.txt\n```\n"
    )
}

fn fan_fixture(backend: &Backend, label: &str) -> Fixture {
    let fixture = Fixture::with_history(backend, label);
    fixture.write_flight("fan", &fan_flight(&fixture.ledger.display().to_string()));
    fixture.write_config("pools:\n  local:\n    max_vms: 3\n");
    fixture
}

fn is_instance(event: &Value) -> bool {
    event_slug(event).is_some_and(|slug| slug.starts_with("part-"))
}

/// The end state of the fan-out run, however often it was killed.
fn check_fan_out(fixture: &Fixture, run: &str, state: &Snapshot, label: &str) {
    assert_eq!(state.status, "completed", "{label}");
    let expanded: Vec<(&str, &str)> = state
        .logs
        .iter()
        .map(|line| {
            (
                line.split_whitespace().nth(1).unwrap_or_default(),
                what(line),
            )
        })
        .filter(|(_, what)| what.starts_with("fans out over"))
        .collect();
    let items = format!("fans out over 6 item(s): {}", ITEMS.join(", "));
    assert_eq!(
        expanded,
        [("part", items.as_str())],
        "{label}: the item list was resolved once"
    );
    let instances: Vec<&String> = state
        .agents
        .keys()
        .filter(|s| s.starts_with("part-"))
        .collect();
    assert_eq!(instances.len(), ITEMS.len(), "{label}: {instances:?}");
    for (slug, (agent_state, attempts)) in &state.agents {
        assert_eq!(agent_state, "completed", "{label}: {slug}");
        if slug == "part" {
            continue;
        }
        // Each execution had its own attempt, and the last one is the one that completed:
        // nothing ran again after it succeeded.
        let ran = state
            .ledger
            .get(slug)
            .unwrap_or_else(|| panic!("{label}: {slug} never ran"));
        assert!(
            ran.windows(2).all(|w| w[0] < w[1]),
            "{label}: {slug} ran {ran:?}"
        );
        assert_eq!(ran.last(), Some(attempts), "{label}: {slug} ran {ran:?}");
    }
    assert_eq!(state.ledger["plan"], [1], "{label}: the plan ran once");
    let last = state
        .logs
        .last()
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>());
    assert_eq!(last.as_deref(), Some(&["run", "completed"][..]), "{label}");
    check_fan_in(fixture, run, &instances, label);
}

/// Each instance committed once, and the fan-in started with every instance's commit merged.
fn check_fan_in(fixture: &Fixture, run: &str, instances: &[&String], label: &str) {
    let agents = fixture.show(run)["agents"].clone();
    for agent in agents.as_array().expect("agents") {
        let slug = agent["slug"].as_str().expect("slug");
        if slug.starts_with("part-") {
            assert_eq!(agent["commits"], 1, "{label}: {slug}");
        }
        if slug == "join" {
            let listed: BTreeSet<&str> = agent["response"]
                .as_str()
                .expect("join's answer")
                .lines()
                .collect();
            let expected: BTreeSet<String> =
                instances.iter().map(|slug| format!("{slug}.txt")).collect();
            assert!(
                listed.iter().eq(expected.iter()),
                "{label}: join saw {listed:?}"
            );
        }
    }
}

/// Killed right after the item list was committed, right after the next engine's first
/// commit, while instances run, after two instances finished, and when the fan-in started.
fn a_fan_out_resolves_its_items_once_across_kills(backend: &Backend) {
    let fixture = fan_fixture(backend, "fan");
    let kills: [KillPoint; 5] = [
        ("after agent_expanded", |e| {
            last_is(e, "agent_expanded", "part")
        }),
        ("early in the recovery", |e| e.len() == 1),
        ("while an instance runs", |e| {
            e.last()
                .is_some_and(|e| kind(e) == "agent_output" && is_instance(e))
        }),
        ("after two instances succeeded", |e| {
            e.iter()
                .filter(|e| kind(e) == "agent_succeeded" && is_instance(e))
                .count()
                == 2
        }),
        ("when the fan-in started", |e| {
            last_is(e, "agent_started", "join")
        }),
    ];
    let (run, state) = survive(&fixture, "fan", &kills);
    check_fan_out(&fixture, &run, &state, "fan-out");
}

/// Killed when the template started: its list may or may not be committed yet (the engine
/// resolves it at once); either way it is resolved once.
fn a_kill_before_the_items_are_recorded_resolves_them_once(backend: &Backend) {
    let fixture = fan_fixture(backend, "fan0");
    let kills: [KillPoint; 1] = [("when the template started", |e| {
        last_is(e, "agent_started", "part")
    })];
    let (run, state) = survive(&fixture, "fan", &kills);
    check_fan_out(&fixture, &run, &state, "fan-out killed early");
}

/// `build` passes `ci` once it has committed `fixed.txt`, which it does when it works on a
/// follow-up; then it waits for approval. `ship` runs on its result.
fn gated_flight(ledger: &str) -> String {
    let record = format!("echo \"$MURMUR_AGENT $MURMUR_ATTEMPT\" >> '{ledger}'");
    format!(
        "---\nruntime: exec\n---\n\n# Gated\n\n## build\n> gate: ci, approve\n> retries: 1\n\n\
         Build it; on a follow-up, fix what the check found.\n\n```sh\n{record}\n\
         case \"$MURMUR_FOLLOW_UP\" in *'fixed.txt is missing'*) echo 'told: fixed.txt is missing' ;; esac\n\
         if [ -n \"$MURMUR_FOLLOW_UP\" ]; then\n  echo ok > fixed.txt && git add fixed.txt && \
         git -c user.name=a -c user.email=a@a commit -qm fix\nfi\necho \"built on attempt $MURMUR_ATTEMPT\"\n```\n\n\
         ## ship\n> needs: build\n\n```sh\n{record}\ntest -f fixed.txt && echo shipped\n```\n"
    )
}

/// The `ci` check: records whether it saw the fix, reports that it runs, waits for
/// `release`, and passes only with `fixed.txt`.
fn check_script(checks: &str, release: &str, beacon: &Beacon) -> String {
    format!(
        "if [ -f fixed.txt ]; then echo fixed >> '{checks}'; else echo broken >> '{checks}'; fi\n\
         {}\nwhile [ ! -f '{release}' ]; do sleep 0.05; done\n\
         test -f fixed.txt || {{ echo 'fixed.txt is missing'; exit 3; }}\n",
        beacon.signal()
    )
}

/// A repository whose `ci` check is [`check_script`], with the gated flight.
fn gates_fixture(backend: &Backend, beacon: &Beacon) -> Fixture {
    let fixture = Fixture::with_history(backend, "gates");
    let script = check_script(
        &fixture.path("checks.txt").display().to_string(),
        &fixture.path("release").display().to_string(),
        beacon,
    );
    let check = fixture.path("check.sh");
    std::fs::write(&check, script).expect("write the check");
    let command = format!("sh '{}'", check.display());
    fixture.write_config(&format!("checks:\n  command: \"{command}\"\n"));
    let ledger = fixture.ledger.display().to_string();
    fixture.write_flight("gated", &gated_flight(&ledger));
    fixture
}

/// Killed while the first `ci` check runs, then while waiting for approval; approved while
/// no engine runs.
fn gates_survive_kills_during_the_check_and_the_wait_for_approval(backend: &Backend) {
    let beacon = Beacon::bind();
    let fixture = gates_fixture(backend, &beacon);
    let release = fixture.path("release");
    let checked = || std::fs::read_to_string(fixture.path("checks.txt")).unwrap_or_default();

    // Killed while the first check runs.
    let (run, session) = start(&fixture, "gated", |e| {
        let opened = last_is(e, "gate_opened", "build");
        if opened {
            beacon.wait("the first check");
        }
        opened
    });
    assert!(session.killed, "{}", session.stderr);
    let state = check_session(&fixture, &run, "gates", &Snapshot::default(), &session);
    assert_eq!(state.agents["build"], ("checks-pending".to_owned(), 1));
    assert_eq!(checked(), "broken\n");

    // Resumed: the unanswered check runs again (and is released), fails, the follow-up
    // fixes it, the next check passes; killed while waiting for approval.
    let mut released = false;
    let session = resume(&fixture, &run, |e| {
        if !released {
            beacon.wait("the check run again");
            std::fs::write(&release, "").expect("release the check");
            released = true;
        }
        e.last()
            .is_some_and(|e| kind(e) == "gate_opened" && e["event"]["gate"] == "approve")
    });
    assert!(session.killed, "{}", session.stderr);
    let state = check_session(&fixture, &run, "gates, resume 1", &state, &session);
    assert_eq!(state.agents["build"], ("checks-pending".to_owned(), 2));
    assert_eq!(checked(), "broken\nbroken\nfixed\n");

    // Approved while no engine runs: recorded, and taken in by the next engine.
    let approved = fixture.murmur(&["runs", "approve", &run, "build", "--comment", "ship it"]);
    assert!(approved.status.success(), "{approved:?}");
    let state = fixture.snapshot(&run);
    // Nobody drives the run between engines: it says so.
    assert_eq!(state.status, "interrupted");
    assert!(
        state
            .logs
            .last()
            .is_some_and(|l| l.ends_with("`approve` gate passed: ship it")),
        "{:?}",
        state.logs.last()
    );
    let session = resume(&fixture, &run, never);
    assert!(session.status.success(), "{}", session.stderr);
    let done = check_session(&fixture, &run, "gates, resume 2", &state, &session);
    assert!(last_is(&session.events[..1], "agent_succeeded", "build"));
    assert_eq!(done.status, "completed");
    assert_eq!(done.agents["build"], ("completed".to_owned(), 2));
    assert_eq!(done.agents["ship"], ("completed".to_owned(), 1));
    assert_eq!(done.ledger["build"], [1, 2], "the follow-up turn ran once");
    assert_eq!(done.ledger["ship"], [1]);
    assert_eq!(done.count("build", "| told: fixed.txt is missing"), 1);
    assert_eq!(done.count("ship", "| shipped"), 1);
    assert_eq!(
        checked(),
        "broken\nbroken\nfixed\n",
        "no check ran after approval"
    );
    check_gate_story(&done);
}

/// `build`'s lifecycle: one check per turn (the one cut short by the kill is recorded as
/// interrupted and opened again), one follow-up, the approval, then completion.
fn check_gate_story(done: &Snapshot) {
    let story = done.story("build");
    let expected = [
        "queued",
        "started (attempt 1)",
        "on machine local:",
        "running",
        "turn done, checking gates",
        "checking the `ci` gate",
        "the `ci` check stopped with its engine",
        "checking the `ci` gate",
        "`ci` gate did not pass: The `ci` gate failed",
        "works on a follow-up: The `ci` gate failed",
        "started (attempt 2)",
        "on machine local:",
        "running",
        "turn done, checking gates",
        "checking the `ci` gate",
        "`ci` gate passed",
        "waiting for approval",
        "`approve` gate passed: ship it",
        "completed",
    ];
    assert!(
        story.len() == expected.len() && story.iter().zip(expected).all(|(s, e)| s.starts_with(e)),
        "build's gates, in order, each once:\n{}",
        story.join("\n")
    );
}

/// One agent that waits for `release`; at most one run of the flight at a time.
fn queue_flight(ledger: &str, release: &str) -> String {
    format!(
        "---\nruntime: exec\nmax_concurrent: 1\n---\n\n# Queue\n\nOne run at a time.\n\n## work\n\n\
         ```sh\necho \"$MURMUR_RUN_ID $MURMUR_ATTEMPT\" >> '{ledger}'\necho waiting\n\
         while [ ! -f '{release}' ]; do sleep 0.05; done\necho released\n```\n"
    )
}

fn waits(events: &[Value]) -> bool {
    events
        .last()
        .is_some_and(|e| kind(e) == "agent_output" && e["event"]["line"] == "waiting")
}

/// The `at` of the session's first event, which must be `run_started`.
fn started_at(session: &Session) -> &str {
    let first = session.events.first().expect("events");
    assert_eq!(kind(first), "run_started", "{}", session.stderr);
    first["at"].as_str().expect("at")
}

/// Run A works; B and C queue behind it. B's engine is killed while B is queued, then A's
/// while A works. B's and A's engines are resumed; A is released, and B, then C, run only
/// after the run before them ended.
fn queued_runs_keep_their_order_across_kills(backend: &Backend) {
    let fixture = Fixture::new(backend, "queue");
    let release = fixture.path("release");
    let flight = queue_flight(
        &fixture.ledger.display().to_string(),
        &release.display().to_string(),
    );
    fixture.write_flight("queue", &flight);
    std::thread::scope(|scope| {
        let a = launch(&fixture, "queue");
        let a_run = a.run.clone();
        let mut behind = None;
        let a_session = a.follow(|e| {
            if !waits(e) {
                return false;
            }
            let b = launch(&fixture, "queue");
            let b_run = b.run.clone();
            let b_session = b.follow(after(0));
            let c = launch(&fixture, "queue");
            let c_run = c.run.clone();
            assert_eq!(fixture.show(&c_run)["status"], "queued");
            behind = Some((b_run, b_session, c_run, scope.spawn(|| c.follow(never))));
            true
        });
        let (b_run, b_session, c_run, c_thread) = behind.expect("B and C were started");
        assert!(a_session.killed && b_session.killed);
        let a_state = check_session(&fixture, &a_run, "A", &Snapshot::default(), &a_session);
        assert_eq!(a_state.agents["work"], ("running".to_owned(), 1));
        let b_state = check_session(&fixture, &b_run, "B", &Snapshot::default(), &b_session);
        assert_eq!((b_state.status.as_str(), b_state.logs.len()), ("queued", 0));
        assert_eq!(fixture.show(&c_run)["status"], "queued");

        let b_thread = {
            let (fixture, b_run) = (&fixture, b_run.clone());
            scope.spawn(move || resume(fixture, &b_run, never))
        };
        let a_session = resume(&fixture, &a_run, |e| {
            if waits(e) {
                std::fs::write(&release, "").expect("release");
            }
            false
        });
        assert!(a_session.status.success(), "{}", a_session.stderr);
        let b_session = b_thread.join().expect("B's engine");
        let c_session = c_thread.join().expect("C's engine");
        for (run, label, before, session) in [
            (&a_run, "A resumed", a_state, &a_session),
            (&b_run, "B resumed", b_state, &b_session),
            (&c_run, "C", Snapshot::default(), &c_session),
        ] {
            assert!(session.status.success(), "{label}: {}", session.stderr);
            let done = check_session(&fixture, run, label, &before, session);
            assert_eq!(done.status, "completed", "{label}");
        }
        check_order(&fixture, [&a_run, &b_run, &c_run], &b_session, &c_session);
    });
}

/// A, B and C were created in that order; B started after A ended, C after B; the ledger
/// shows A twice (interrupted once), then B, then C.
fn check_order(fixture: &Fixture, runs: [&String; 3], b: &Session, c: &Session) {
    let shown = runs.map(|run| fixture.show(run));
    let at = |run: &Value, field: &str| run[field].as_str().expect(field).to_owned();
    assert!(at(&shown[0], "created_at") < at(&shown[1], "created_at"));
    assert!(at(&shown[1], "created_at") < at(&shown[2], "created_at"));
    assert!(
        at(&shown[0], "finished_at").as_str() <= started_at(b),
        "B started after A ended"
    );
    assert!(
        at(&shown[1], "finished_at").as_str() <= started_at(c),
        "C started after B ended"
    );
    let order: Vec<(String, u32)> = [(runs[0], 1), (runs[0], 2), (runs[1], 1), (runs[2], 1)]
        .map(|(run, attempt)| (run.clone(), attempt))
        .into();
    assert_eq!(
        fixture.ledger_lines(),
        order,
        "A (interrupted once), then B, then C"
    );
}
