use murmur_protocol::worker::Numbered;
use murmur_protocol::{ExecSpec, Finished, PullRequestDraft, RuntimeSpec, Stream, WorkspaceSpec};
use tokio::sync::mpsc::{self, UnboundedReceiver};

use super::*;

fn key(slug: &str) -> AttemptKey {
    AttemptKey {
        run_id: "r1".to_owned(),
        slug: slug.to_owned(),
        attempt: 1,
    }
}

fn spec(slug: &str) -> AttemptSpec {
    AttemptSpec {
        key: key(slug),
        prompt: String::new(),
        runtime: RuntimeSpec::Exec(ExecSpec {
            script: Ok("true".to_owned()),
            script_env: Vec::new(),
        }),
        workspace: WorkspaceSpec {
            repository: "/repo".to_owned(),
            base: None,
            start: None,
            worktree: format!("r1/{slug}"),
            plain: format!("r1/{slug}"),
            branch: format!("murmur/r1/{slug}"),
            merge: Vec::new(),
            out: None,
            pull_request: PullRequestDraft {
                id: "p".to_owned(),
                title: "t".to_owned(),
            },
            required: false,
            extra: Vec::new(),
            extra_merge: Vec::new(),
            follow_base: None,
            origin: None,
        },
        env: Vec::new(),
        upstream: Vec::new(),
        timeout_secs: None,
        environment: Default::default(),
        affinity: None,
        tenant: "local".to_owned(),
    }
}

fn line(seq: u64, text: &str) -> Numbered {
    Numbered {
        seq,
        update: AttemptUpdate::Line {
            stream: Stream::Stdout,
            text: text.to_owned(),
        },
    }
}

fn ended(seq: u64) -> Numbered {
    Numbered {
        seq,
        update: AttemptUpdate::Ended {
            outcome: Ok(Finished {
                response: "done".to_owned(),
                delivered: Default::default(),
                local_pull_request: None,
                verdict: None,
            }),
        },
    }
}

fn batch(slug: &str, updates: Vec<Numbered>) -> AttemptUpdates {
    AttemptUpdates {
        key: key(slug),
        updates,
    }
}

/// An attempt of `slug` assigned to machine `m1`, and what its driver receives.
fn assigned(dispatch: &mut Dispatch, slug: &str) -> UnboundedReceiver<AttemptUpdate> {
    let (updates, mut rx) = mpsc::unbounded_channel();
    dispatch.enqueue(
        "fleet",
        Queued {
            spec: spec(slug),
            updates,
            secrets: None,
        },
    );
    let (queued, instead_of) = dispatch
        .take_for("fleet", "m1", Serves::Every, any)
        .expect("queued");
    dispatch.assign("m1", queued, instead_of);
    assert_eq!(
        rx.try_recv().ok(),
        Some(AttemptUpdate::Placed {
            machine: "m1".to_owned(),
            instead_of: None,
        })
    );
    rx
}

/// Every machine an attempt may be meant for is of another pool.
fn any(_: &str) -> Affinity {
    Affinity::Elsewhere
}

fn received(rx: &mut UnboundedReceiver<AttemptUpdate>) -> Vec<String> {
    let mut texts = Vec::new();
    while let Ok(update) = rx.try_recv() {
        texts.push(match update {
            AttemptUpdate::Line { text, .. } => text,
            AttemptUpdate::Ended { .. } => "ended".to_owned(),
            other => format!("{other:?}"),
        });
    }
    texts
}

fn taken(upto: u64, ended: bool, slug: &str) -> Accepted {
    Accepted::Taken {
        ack: Ack {
            key: key(slug),
            upto,
        },
        ended,
    }
}

#[test]
fn a_batch_sent_again_is_passed_on_once_and_acknowledged_again() {
    let mut dispatch = Dispatch::default();
    let mut rx = assigned(&mut dispatch, "a");
    let first = batch("a", vec![line(1, "one"), line(2, "two")]);
    assert_eq!(dispatch.accept("m1", first), taken(2, false, "a"));
    // The answer was lost: the worker sends 1 and 2 again, with 3.
    let again = batch("a", vec![line(1, "one"), line(2, "two"), line(3, "three")]);
    assert_eq!(dispatch.accept("m1", again), taken(3, false, "a"));
    assert_eq!(received(&mut rx), ["one", "two", "three"]);
}

#[test]
fn a_gap_stops_at_the_missing_update_until_it_comes() {
    let mut dispatch = Dispatch::default();
    let mut rx = assigned(&mut dispatch, "a");
    let gap = batch("a", vec![line(1, "one"), line(3, "three")]);
    assert_eq!(dispatch.accept("m1", gap), taken(1, false, "a"));
    let filled = batch("a", vec![line(3, "three"), line(2, "two")]);
    assert_eq!(dispatch.accept("m1", filled), taken(3, false, "a"));
    assert_eq!(received(&mut rx), ["one", "two", "three"]);
}

#[test]
fn the_end_is_passed_once_and_then_the_attempt_is_no_ones() {
    let mut dispatch = Dispatch::default();
    let mut rx = assigned(&mut dispatch, "a");
    let done = batch("a", vec![line(1, "one"), ended(2), line(3, "late")]);
    assert_eq!(dispatch.accept("m1", done), taken(2, true, "a"));
    assert!(!dispatch.holds("m1"));
    assert_eq!(
        dispatch.accept("m1", batch("a", vec![ended(2)])),
        Accepted::Stop
    );
    assert_eq!(received(&mut rx), ["one", "ended"]);
}

#[test]
fn another_machine_or_a_lost_one_passes_nothing_on_and_is_told_to_stop() {
    let mut dispatch = Dispatch::default();
    let mut rx = assigned(&mut dispatch, "a");
    assert_eq!(
        dispatch.accept("m2", batch("a", vec![line(1, "x")])),
        Accepted::Stop
    );
    assert_eq!(dispatch.stops_for("m2", &[key("a")]), [key("a")]);

    assert_eq!(dispatch.lose("m1"), [key("a")]);
    assert_eq!(
        dispatch.accept("m1", batch("a", vec![line(1, "x")])),
        Accepted::Stop
    );
    assert_eq!(dispatch.stops_for("m1", &[key("a")]), [key("a")]);
    assert!(received(&mut rx).is_empty());
    assert!(rx.try_recv().is_err(), "the driver's channel closed: lost");
}

#[test]
fn a_stop_ends_a_waiting_attempt_here_and_is_told_to_a_running_ones_machine() {
    let mut dispatch = Dispatch::default();
    let mut running = assigned(&mut dispatch, "a");
    let (updates, mut waiting) = mpsc::unbounded_channel();
    dispatch.enqueue(
        "fleet",
        Queued {
            spec: spec("b"),
            updates,
            secrets: None,
        },
    );

    dispatch.stop("fleet", &key("b"));
    assert!(matches!(
        waiting.try_recv(),
        Ok(AttemptUpdate::Ended {
            outcome: Err(AttemptFailure {
                kind: FailureKind::Stopped,
                ..
            })
        })
    ));
    assert!(
        dispatch
            .take_for("fleet", "m1", Serves::Every, any)
            .is_none()
    );

    dispatch.stop("fleet", &key("a"));
    dispatch.stop("fleet", &key("a"));
    assert_eq!(
        dispatch.stops_for("m1", &[key("a")]),
        [key("a")],
        "told once"
    );
    assert!(dispatch.stops_for("m1", &[key("a")]).is_empty());
    assert!(received(&mut running).is_empty());
}

#[test]
fn a_machine_is_told_to_stop_what_it_runs_but_was_never_given() {
    let mut dispatch = Dispatch::default();
    let _rx = assigned(&mut dispatch, "a");
    let stops = dispatch.stops_for("m1", &[key("a"), key("ghost")]);
    assert_eq!(stops, [key("ghost")]);
}

/// `spec` waiting for a machine of `fleet`, its driver gone.
fn waiting(dispatch: &mut Dispatch, spec: AttemptSpec) {
    let (updates, _) = mpsc::unbounded_channel();
    dispatch.enqueue(
        "fleet",
        Queued {
            spec,
            updates,
            secrets: None,
        },
    );
}

fn meant_for(dispatch: &mut Dispatch, slug: &str, machine: Option<&str>) {
    let mut spec = spec(slug);
    spec.affinity = machine.map(str::to_owned);
    waiting(dispatch, spec);
}

#[test]
fn an_attempt_waits_for_the_live_machine_holding_its_session() {
    let mut dispatch = Dispatch::default();
    meant_for(&mut dispatch, "a", Some("m1"));
    meant_for(&mut dispatch, "b", None);
    assert_eq!(
        dispatch.affinities("fleet", "m2", Serves::Every),
        [("local".to_owned(), "m1".to_owned())]
    );
    let live = |_: &str| Affinity::Live;
    // m2 passes over `a`, meant for m1, and takes `b`.
    let (taken, instead_of) = dispatch
        .take_for("fleet", "m2", Serves::Every, live)
        .expect("b");
    assert_eq!((taken.spec.key.slug.as_str(), instead_of), ("b", None));
    assert!(
        dispatch
            .take_for("fleet", "m2", Serves::Every, live)
            .is_none(),
        "a waits for m1"
    );
    let (taken, instead_of) = dispatch
        .take_for("fleet", "m1", Serves::Every, live)
        .expect("a");
    assert_eq!((taken.spec.key.slug.as_str(), instead_of), ("a", None));
}

#[test]
fn an_attempt_whose_machine_is_gone_goes_anywhere_and_says_which_it_replaces() {
    let mut dispatch = Dispatch::default();
    meant_for(&mut dispatch, "a", Some("m1"));
    let gone = |id: &str| {
        assert_eq!(id, "m1");
        Affinity::Gone
    };
    let (taken, instead_of) = dispatch
        .take_for("fleet", "m2", Serves::Every, gone)
        .expect("a");
    assert_eq!(taken.spec.key.slug, "a");
    assert_eq!(instead_of.as_deref(), Some("m1"));
    let (updates, mut rx) = mpsc::unbounded_channel();
    let queued = Queued { updates, ..taken };
    dispatch.assign("m2", queued, instead_of);
    assert_eq!(
        rx.try_recv().ok(),
        Some(AttemptUpdate::Placed {
            machine: "m2".to_owned(),
            instead_of: Some("m1".to_owned()),
        })
    );
    // One of another pool's machines (the local pool's) is no reason to wait, nor news.
    meant_for(&mut dispatch, "b", Some("local:host"));
    let (_, instead_of) = dispatch
        .take_for("fleet", "m2", Serves::Every, any)
        .expect("b");
    assert_eq!(instead_of, None);
}

/// An attempt of `tenant`'s run, waiting for a machine of `fleet`.
fn of_tenant(dispatch: &mut Dispatch, slug: &str, tenant: &str) {
    let mut spec = spec(slug);
    spec.tenant = tenant.to_owned();
    waiting(dispatch, spec);
}

#[test]
fn a_tenant_s_machine_runs_that_tenant_s_attempts_only_and_the_server_s_run_any() {
    let mut dispatch = Dispatch::default();
    of_tenant(&mut dispatch, "older", "local");
    of_tenant(&mut dispatch, "theirs", "acme");
    of_tenant(&mut dispatch, "other", "beta");
    let acme = Serves::Tenant("acme");
    let (taken, _) = dispatch
        .take_for("fleet", "m-acme", acme, any)
        .expect("acme's");
    assert_eq!(
        taken.spec.key.slug, "theirs",
        "passes over the older attempt of local"
    );
    assert!(
        dispatch.take_for("fleet", "m-acme", acme, any).is_none(),
        "nothing else is acme's"
    );
    let (taken, _) = dispatch
        .take_for("fleet", "m1", Serves::Every, any)
        .expect("oldest");
    assert_eq!(taken.spec.key.slug, "older");
    let (taken, _) = dispatch
        .take_for("fleet", "m1", Serves::Every, any)
        .expect("beta's");
    assert_eq!(taken.spec.key.slug, "other");
}

#[test]
fn a_tenant_s_machine_hears_of_its_own_tenant_s_affinities_only() {
    let mut dispatch = Dispatch::default();
    meant_for(&mut dispatch, "a", Some("m1"));
    of_tenant(&mut dispatch, "b", "acme");
    assert_eq!(
        dispatch.affinities("fleet", "m-acme", Serves::Tenant("acme")),
        []
    );
    assert_eq!(
        dispatch
            .affinities("fleet", "m2", Serves::Tenant("local"))
            .len(),
        1
    );
}
