//! The run model alone: pure, no IO. Scheduling order, the pool cap, the failure policy and
//! the typed refusals.

use murmur_engine::model::RunPolicy;
use murmur_engine::{AgentState, Event, RunModel, RunStatus, TransitionError};
use murmur_parser::Dag;

/// The injected time for decisions; no agent here waits out a retry delay.
const NOW: &str = "2026-01-01T00:00:00.000Z";

fn model(text: &str) -> RunModel {
    let parsed = murmur_parser::parse(text, "t");
    assert!(parsed.is_valid(), "{:?}", parsed.diagnostics);
    let flight = parsed.flight.expect("flight");
    let dag = Dag::build(&flight.agents).expect("dag");
    RunModel::new(&flight.agents, &dag, RunPolicy::of(&flight.frontmatter))
}

fn apply_all(model: &mut RunModel, events: &[Event]) {
    for event in events {
        model.apply(event).expect("legal");
    }
}

fn started(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::AgentStarted { slug, .. } => Some(slug.as_str()),
            _ => None,
        })
        .collect()
}

/// `short` is alone; `long` heads a chain of three. With one slot, the chain goes first.
const PRIORITY: &str = "# P\n\n## short\n\nS.\n\n## long\n\nL.\n\n## middle\n> needs: long\n\nM.\n\n## end\n> needs: middle\n\nE.\n";

#[test]
fn the_longest_remaining_path_starts_first() {
    let mut run = model(PRIORITY);
    let opening = run.decide(1, NOW);
    assert_eq!(opening, [Event::RunStarted]);
    apply_all(&mut run, &opening);
    let first = run.decide(1, NOW);
    assert_eq!(started(&first), ["long"], "{first:?}");
    assert!(
        first.contains(&Event::AgentQueued {
            slug: "short".into()
        }),
        "short waits in the queue"
    );
    apply_all(&mut run, &first);
    assert_eq!(
        run.decide(0, NOW),
        Vec::<Event>::new(),
        "no free slot, nothing to do"
    );
}

#[test]
fn the_pool_cap_is_respected_and_freed_slots_are_reused() {
    let text = "# W\n\n## a\n\nA.\n\n## b\n\nB.\n\n## c\n\nC.\n";
    let mut run = model(text);
    apply_all(&mut run, &[Event::RunStarted]);
    let first = run.decide(2, NOW);
    assert_eq!(started(&first).len(), 2);
    apply_all(&mut run, &first);
    assert_eq!(run.running(), 2);
    let done = started(&first)[0].to_owned();
    apply_all(
        &mut run,
        &[Event::AgentSucceeded {
            slug: done,
            attempt: 1,
            response: "ok".into(),
            delivered: Default::default(),
        }],
    );
    let next = run.decide(2 - run.running(), NOW);
    assert_eq!(started(&next).len(), 1);
}

#[test]
fn a_failure_skips_the_rest_and_fails_the_run_once_nothing_runs() {
    let text = "# F\n\n## a\n\nA.\n\n## b\n\nB.\n\n## after-a\n> needs: a\n\nX.\n\n## c\n\nC.\n";
    let mut run = model(text);
    apply_all(&mut run, &[Event::RunStarted]);
    let first = run.decide(2, NOW);
    apply_all(&mut run, &first);
    let running = started(&first);
    assert_eq!(running.len(), 2);
    let (failed, other) = (running[0].to_owned(), running[1].to_owned());
    apply_all(
        &mut run,
        &[Event::AgentFailed {
            slug: failed.clone(),
            attempt: 1,
            error: "boom".into(),
        }],
    );
    let wind_down = run.decide(5, NOW);
    assert!(
        started(&wind_down).is_empty(),
        "nothing new starts after a failure"
    );
    assert!(
        !wind_down
            .iter()
            .any(|e| matches!(e, Event::RunFailed { .. })),
        "{other} still runs"
    );
    apply_all(&mut run, &wind_down);
    apply_all(
        &mut run,
        &[Event::AgentSucceeded {
            slug: other,
            attempt: 1,
            response: "done".into(),
            delivered: Default::default(),
        }],
    );
    let end = run.decide(5, NOW);
    assert_eq!(
        end,
        [Event::RunFailed {
            reason: format!("agent `{failed}` failed")
        }]
    );
    apply_all(&mut run, &end);
    assert_eq!(run.status(), RunStatus::Failed);
    let states: Vec<AgentState> = run.agents().iter().map(|a| a.state).collect();
    assert_eq!(
        states.iter().filter(|s| **s == AgentState::Skipped).count(),
        2
    );
}

#[test]
fn illegal_and_stale_events_are_typed_errors() {
    let mut run = model(PRIORITY);
    apply_all(&mut run, &[Event::RunStarted]);
    let illegal = run.apply(&Event::AgentSucceeded {
        slug: "short".into(),
        attempt: 0,
        response: String::new(),
        delivered: Default::default(),
    });
    assert!(
        matches!(
            illegal,
            Err(TransitionError::Illegal {
                state: AgentState::Pending,
                ..
            })
        ),
        "{illegal:?}"
    );
    apply_all(
        &mut run,
        &[
            Event::AgentQueued {
                slug: "short".into(),
            },
            Event::AgentStarted {
                slug: "short".into(),
                attempt: 1,
            },
        ],
    );
    let stale = run.apply(&Event::AgentFailed {
        slug: "short".into(),
        attempt: 7,
        error: String::new(),
    });
    assert!(
        matches!(
            stale,
            Err(TransitionError::StaleAttempt {
                current: 1,
                got: 7,
                ..
            })
        ),
        "{stale:?}"
    );
    let unknown = run.apply(&Event::AgentQueued {
        slug: "ghost".into(),
    });
    assert_eq!(unknown, Err(TransitionError::UnknownAgent("ghost".into())));
    let run_twice = run.apply(&Event::RunStarted);
    assert!(matches!(
        run_twice,
        Err(TransitionError::IllegalRun {
            status: RunStatus::Running,
            ..
        })
    ));
}

#[test]
fn cancel_and_interruption_cover_every_unfinished_agent() {
    let mut run = model(PRIORITY);
    apply_all(&mut run, &[Event::RunStarted]);
    let first = run.decide(1, NOW);
    apply_all(&mut run, &first);
    assert_eq!(
        run.interrupted(),
        [Event::AgentInterrupted {
            slug: "long".into(),
            attempt: 1
        }]
    );
    let cancel = run.cancel();
    assert_eq!(cancel.len(), 5, "four agents and the run: {cancel:?}");
    apply_all(&mut run, &cancel);
    assert_eq!(run.status(), RunStatus::Canceled);
    assert!(
        run.cancel().is_empty(),
        "a finished run cannot be canceled again"
    );
}

#[test]
fn a_retry_waits_for_its_delay_on_the_injected_clock() {
    let mut run = model("# R\n\n## only\n\nWork.\n");
    apply_all(&mut run, &[Event::RunStarted]);
    let first = run.decide(1, NOW);
    apply_all(&mut run, &first);
    let later = "2026-01-01T00:00:30.000Z";
    apply_all(
        &mut run,
        &[Event::AgentRetrying {
            slug: "only".into(),
            attempt: 1,
            error: "boom".into(),
            not_before: later.into(),
        }],
    );
    assert_eq!(run.next_timer_at(), Some(later));
    assert!(run.decide(1, NOW).is_empty(), "not before its time");
    assert!(run.decide(1, "2026-01-01T00:00:29.999Z").is_empty());
    assert_eq!(
        run.decide(1, later),
        [Event::AgentStarted {
            slug: "only".into(),
            attempt: 2
        }]
    );
}

/// A 500-item fan-out on 4 machines: never more than 4 running, every instance runs once,
/// and the template completes after the last one.
#[test]
fn a_500_item_fan_out_never_starts_more_than_the_pool_allows() {
    let items: Vec<String> = (0..500).map(|i| format!("m{i}")).collect();
    let text = format!(
        "# F\n\n## each-one\n> each: [{}]\n\nDo {{}}.\n",
        items.join(", ")
    );
    let mut run = model(&text);
    let mut starts = 0;
    while !run.status().is_terminal() {
        let mut decided = run.decide(4 - run.running(), NOW);
        if decided.is_empty() {
            decided = run
                .agents()
                .iter()
                .filter(|agent| agent.state.holds_machine() && agent.slug != "each-one")
                .map(|agent| Event::AgentSucceeded {
                    slug: agent.slug.clone(),
                    attempt: agent.attempt,
                    response: String::new(),
                    delivered: Default::default(),
                })
                .collect();
        }
        starts += started(&decided).len();
        apply_all(&mut run, &decided);
        assert!(run.running() <= 4, "{} running", run.running());
    }
    assert_eq!(run.status(), RunStatus::Completed);
    assert_eq!(
        starts, 500,
        "every instance once; the inline list needs no planning turn"
    );
    assert_eq!(run.agents().len(), 501);
}

/// Machines are counted per pool: a pool without free machines holds back only its own
/// agents, and fan-out instances count in their template's pool.
#[test]
fn each_pool_gives_out_only_its_own_machines() {
    let text = "# P\n\n## a\n\nA.\n\n## b\n\nB.\n\n## each-c\n> each: [x, y, z]\n\nC {}.\n";
    let mut run = model(text).with_pools(vec![0, 0, 1]);
    apply_all(&mut run, &[Event::RunStarted]);
    let expand = run.decide_in(vec![0, 2], NOW);
    apply_all(&mut run, &expand);
    assert_eq!(run.pool_count(), 2);
    let first = run.decide_in(vec![0, 2], NOW);
    let mut slugs = started(&first);
    slugs.sort_unstable();
    assert_eq!(
        slugs,
        ["each-c-x", "each-c-y"],
        "only pool 1 has machines: {first:?}"
    );
    apply_all(&mut run, &first);
    assert_eq!(run.machines_in_use_by_pool(), [0, 2]);
    assert_eq!((run.startable_in(0, NOW), run.startable_in(1, NOW)), (2, 1));
    let next = run.decide_in(vec![1, 0], NOW);
    assert_eq!(started(&next).len(), 1, "one of a and b: {next:?}");
    assert!(started(&next).iter().all(|slug| ["a", "b"].contains(slug)));
    apply_all(&mut run, &next);
    assert_eq!(run.machines_in_use_by_pool(), [1, 2]);
    assert_eq!(run.machines_in_use(), 3);
}

/// A `ci` gate that keeps failing: one follow-up round per `retries`, then the agent fails.
#[test]
fn gate_feedback_rounds_are_bounded_by_retries() {
    let mut run = model("---\nretries: 1\n---\n# G\n\n## build\n> gate: ci\n\nB.\n");
    for _ in 0..2 {
        let decided = run.decide(1, NOW);
        apply_all(&mut run, &decided);
    }
    for round in 1..=2 {
        apply_all(
            &mut run,
            &[Event::AgentAwaitingGates {
                slug: "build".into(),
                attempt: round,
                response: "done".into(),
                delivered: Default::default(),
            }],
        );
        let opened = run.decide(1, NOW);
        assert!(
            matches!(opened[..], [Event::GateOpened { .. }]),
            "{opened:?}"
        );
        apply_all(&mut run, &opened);
        apply_all(
            &mut run,
            &[Event::GateFailed {
                slug: "build".into(),
                attempt: round,
                gate: murmur_engine::event::GateKind::Ci,
                feedback: "tests fail".into(),
            }],
        );
        let next = run.decide(1, NOW);
        if round == 1 {
            assert!(
                matches!(&next[0], Event::AgentFollowUp { text, .. } if text == "tests fail"),
                "{next:?}"
            );
            apply_all(&mut run, &next);
            let again = run.decide(1, NOW);
            assert_eq!(started(&again), ["build"], "a new attempt in its session");
            apply_all(&mut run, &again);
        } else {
            assert!(matches!(next[..], [Event::AgentFailed { .. }]), "{next:?}");
        }
    }
}

/// After a restart a check the engine ran is interrupted, and opens again only when a machine
/// of the pool is free for it, as the first time.
#[test]
fn an_interrupted_check_opens_again_within_the_pool() {
    let mut run = model("# G\n\n## build\n> gate: ci\n\nB.\n");
    for _ in 0..2 {
        let decided = run.decide(1, NOW);
        apply_all(&mut run, &decided);
    }
    apply_all(
        &mut run,
        &[Event::AgentAwaitingGates {
            slug: "build".into(),
            attempt: 1,
            response: "done".into(),
            delivered: Default::default(),
        }],
    );
    let opened = run.decide(1, NOW);
    apply_all(&mut run, &opened);
    assert_eq!(run.machines_in_use(), 1, "the check holds a machine");
    let interrupted = run.interrupted();
    assert_eq!(
        interrupted,
        [Event::GateInterrupted {
            slug: "build".into(),
            attempt: 1,
            gate: murmur_engine::event::GateKind::Ci,
        }]
    );
    apply_all(&mut run, &interrupted);
    assert_eq!(run.machines_in_use(), 0);
    assert_eq!(run.decide(0, NOW), Vec::<Event>::new(), "no machine free");
    let again = run.decide(1, NOW);
    assert!(matches!(again[..], [Event::GateOpened { .. }]), "{again:?}");
}
