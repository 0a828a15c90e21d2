//! Idle, sleep and wake in the run model alone: pure, with the time injected.

use murmur_engine::model::{Rest, RunPolicy, TurnDone};
use murmur_engine::{AgentState, Event, RunModel, RunStatus};
use murmur_parser::Dag;

const NOW: &str = "2026-01-01T00:00:00.000Z";
const LATER: &str = "2026-01-01T00:00:10.000Z";

/// `writer` rests on its machine; `other` needs nothing from it.
const TWO: &str = "# T\n\n## writer\n\nW.\n\n## other\n\nO.\n";

fn model(rest: Rest) -> RunModel {
    let flight = murmur_parser::parse(TWO, "t").flight.expect("flight");
    let dag = Dag::build(&flight.agents).expect("dag");
    RunModel::new(&flight.agents, &dag, RunPolicy::of(&flight.frontmatter))
        .with_rests(vec![rest, Rest::Release])
}

fn apply(run: &mut RunModel, events: &[Event]) {
    for event in events {
        run.apply(event)
            .unwrap_or_else(|e| panic!("{event:?}: {e}"));
    }
}

fn state(run: &RunModel, slug: &str) -> AgentState {
    run.agents()[run.index_of(slug).expect("agent")].state
}

/// Both agents started on two machines; `writer`'s turn is done at NOW.
fn writer_done(rest: Rest) -> RunModel {
    let mut run = model(rest);
    let opening = run.decide(2, NOW);
    apply(&mut run, &opening);
    let start = run.decide(2, NOW);
    apply(&mut run, &start);
    let done = TurnDone {
        slug: "writer".into(),
        attempt: 1,
        response: "a haiku".into(),
        delivered: Default::default(),
    };
    let event = run.turn_done(0, done, NOW);
    apply(&mut run, &[event]);
    run
}

#[test]
fn a_turn_done_rests_idle_on_its_machine_until_sleep_after() {
    let mut run = writer_done(Rest::SleepAfter(5));
    assert_eq!(state(&run, "writer"), AgentState::Idle);
    assert_eq!(run.machines_in_use(), 2, "idle keeps its machine");
    assert_eq!(run.next_timer_at(), Some("2026-01-01T00:00:05.000Z"));
    assert_eq!(run.decide(0, NOW), Vec::<Event>::new(), "not yet");
    let due = run.decide(0, LATER);
    assert_eq!(
        due,
        [Event::AgentSlept {
            slug: "writer".into()
        }]
    );
    apply(&mut run, &due);
    assert_eq!(state(&run, "writer"), AgentState::Sleeping);
    assert_eq!(
        run.machines_in_use(),
        1,
        "a sleeping agent's machine is free"
    );
}

#[test]
fn release_completes_at_once_and_keep_alive_never_sleeps_by_itself() {
    let run = writer_done(Rest::Release);
    assert_eq!(state(&run, "writer"), AgentState::Completed);
    assert_eq!(run.machines_in_use(), 1);
    let mut run = writer_done(Rest::KeepAlive);
    assert_eq!(state(&run, "writer"), AgentState::Idle);
    assert_eq!(run.next_timer_at(), None);
    assert_eq!(
        run.decide(0, "2030-01-01T00:00:00.000Z"),
        Vec::<Event>::new()
    );
    apply(
        &mut run,
        &[Event::SleepRequested {
            slug: "writer".into(),
        }],
    );
    assert_eq!(
        run.decide(0, NOW),
        [Event::AgentSlept {
            slug: "writer".into()
        }]
    );
}

#[test]
fn a_follow_up_wakes_a_sleeping_agent_for_a_new_attempt() {
    let mut run = writer_done(Rest::SleepAfter(1));
    let due = run.decide(0, LATER);
    apply(&mut run, &due);
    apply(
        &mut run,
        &[Event::FollowUpQueued {
            slug: "writer".into(),
            text: "more".into(),
        }],
    );
    let take = run.decide(0, LATER);
    assert!(
        matches!(take.as_slice(), [Event::AgentFollowUp { slug, .. }] if slug == "writer"),
        "{take:?}"
    );
    apply(&mut run, &take);
    assert_eq!(state(&run, "writer"), AgentState::Queued);
    let start = run.decide(1, LATER);
    assert_eq!(
        start,
        [Event::AgentStarted {
            slug: "writer".into(),
            attempt: 2
        }]
    );
}

#[test]
fn waking_needs_a_free_machine_and_then_rests_again() {
    let mut run = writer_done(Rest::SleepAfter(1));
    let due = run.decide(0, LATER);
    apply(&mut run, &due);
    apply(
        &mut run,
        &[Event::WakeRequested {
            slug: "writer".into(),
        }],
    );
    assert_eq!(run.decide(0, LATER), Vec::<Event>::new(), "no machine free");
    let woke = run.decide(1, LATER);
    assert_eq!(
        woke,
        [Event::AgentWoke {
            slug: "writer".into(),
            sleep_at: Some("2026-01-01T00:00:11.000Z".into())
        }]
    );
    apply(&mut run, &woke);
    assert_eq!(state(&run, "writer"), AgentState::Idle);
}

#[test]
fn downstream_agents_use_an_idle_agents_work_and_the_run_ends_by_releasing_it() {
    let flight = murmur_parser::parse("# C\n\n## up\n\nU.\n\n## down\n> needs: up\n\nD.\n", "t")
        .flight
        .expect("flight");
    let dag = Dag::build(&flight.agents).expect("dag");
    let mut run = RunModel::new(&flight.agents, &dag, RunPolicy::of(&flight.frontmatter))
        .with_rests(vec![Rest::KeepAlive, Rest::Release]);
    for _ in 0..2 {
        let next = run.decide(2, NOW);
        apply(&mut run, &next);
    }
    let done = TurnDone {
        slug: "up".into(),
        attempt: 1,
        response: "u".into(),
        delivered: Default::default(),
    };
    let idle = run.turn_done(0, done, NOW);
    apply(&mut run, &[idle]);
    let next = run.decide(1, NOW);
    assert!(
        next.contains(&Event::AgentStarted {
            slug: "down".into(),
            attempt: 1
        }),
        "{next:?}"
    );
    apply(&mut run, &next);
    apply(
        &mut run,
        &[Event::AgentSucceeded {
            slug: "down".into(),
            attempt: 1,
            response: "d".into(),
            delivered: Default::default(),
        }],
    );
    let release = run.decide(2, NOW);
    assert_eq!(release, [Event::AgentReleased { slug: "up".into() }]);
    apply(&mut run, &release);
    assert_eq!(run.decide(2, NOW), [Event::RunCompleted]);
    apply(&mut run, &[Event::RunCompleted]);
    assert_eq!(run.status(), RunStatus::Completed);
}

#[test]
fn a_restart_puts_idle_agents_to_sleep_and_a_failure_releases_them() {
    let run = writer_done(Rest::KeepAlive);
    let after_restart = run.interrupted();
    assert!(
        after_restart.contains(&Event::AgentSlept {
            slug: "writer".into()
        }),
        "{after_restart:?}"
    );
    assert!(after_restart.contains(&Event::AgentInterrupted {
        slug: "other".into(),
        attempt: 1
    }));
    let mut run = run;
    apply(
        &mut run,
        &[Event::AgentFailed {
            slug: "other".into(),
            attempt: 1,
            error: "boom".into(),
        }],
    );
    let wind_down = run.decide(2, NOW);
    assert_eq!(
        wind_down,
        [Event::AgentReleased {
            slug: "writer".into()
        }]
    );
    apply(&mut run, &wind_down);
    assert!(matches!(
        run.decide(2, NOW).as_slice(),
        [Event::RunFailed { .. }]
    ));
}
