//! `murmur_runtime::claude::turn` driving the real Claude Code CLI (`node_modules/.bin/claude`)
//! against the scripted Messages API server of `murmur-testkit`: the same driver as Codex's
//! (`codex_cli.rs`), so a busy model is waited out the same way.
//!
//! No sleeps: each test waits on the turn's own result. The idle watchdog is only a safety net.

use std::path::{Path, PathBuf};
use std::time::Duration;

use murmur_runtime::claude::{self, ClaudeOutcome, ClaudeRequest, Error, Overload};
use murmur_runtime::{Line, Stream, Update};
use murmur_testkit::claude_cli::{QUIET_ENV, claude_bin};
use murmur_testkit::{ModelServer, Turn};
use tokio::sync::{mpsc, oneshot};

/// Far above the seconds a turn takes; only reached when something is broken.
const SAFETY_NET: Duration = Duration::from_secs(120);

/// A short first wait, so that parking costs the test milliseconds.
const QUICK: Overload = Overload {
    backoff: Duration::from_millis(10),
    tries: 5,
};

fn request(server: &ModelServer, home: &Path) -> ClaudeRequest {
    let home_text = home.display().to_string();
    let mut env = vec![
        ("HOME".to_owned(), home_text.clone()),
        // The CLI keeps a messaging socket under $TMPDIR; it goes with the temp dir.
        ("TMPDIR".to_owned(), home_text),
        ("ANTHROPIC_BASE_URL".to_owned(), server.url()),
        ("ANTHROPIC_API_KEY".to_owned(), "test-key".to_owned()),
        // The CLI's own retries are off, so the driver sees every busy answer itself.
        ("CLAUDE_CODE_MAX_RETRIES".to_owned(), "0".to_owned()),
    ];
    env.extend(
        QUIET_ENV
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    ClaudeRequest {
        binary: claude_bin(),
        prompt: "say hello".to_owned(),
        workdir: PathBuf::from(home),
        model: None,
        system_prompt: None,
        allowed_tools: vec![],
        resume: None,
        env,
        idle_timeout: SAFETY_NET,
    }
}

async fn turn(
    request: ClaudeRequest,
    overload: Overload,
) -> (Result<ClaudeOutcome, Error>, Vec<Update>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_stop_tx, mut stop) = oneshot::channel();
    let result = claude::turn(request, overload, tx, &mut stop).await;
    let mut updates = Vec::new();
    while let Ok(update) = rx.try_recv() {
        updates.push(update);
    }
    (result, updates)
}

fn parked_lines(updates: &[Update]) -> Vec<&str> {
    updates
        .iter()
        .filter_map(|u| match u {
            Update::Line(Line {
                stream: Stream::Stderr,
                text,
            }) if text.contains("parked, trying again") => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_overloaded_model_is_waited_out_and_the_turn_completes() {
    let server = ModelServer::start(vec![
        Turn::overloaded(),
        Turn::rate_limited(),
        Turn::text("Hello."),
    ]);
    let home = tempfile::tempdir().unwrap();
    let (result, updates) = turn(request(&server, home.path()), QUICK).await;

    let outcome = result.expect("the turn succeeds once the model has capacity");
    assert_eq!(outcome.response, "Hello.");
    assert!(outcome.cost_usd > 0.0, "{outcome:?}");
    assert!(
        updates.contains(&Update::Session(outcome.session_id.clone())),
        "the session of the answering run was reported"
    );
    let parked = parked_lines(&updates);
    assert_eq!(parked.len(), 2, "{updates:?}");
    assert!(parked[0].ends_with("(1 of 5)"), "{}", parked[0]);
    assert!(parked[1].ends_with("(2 of 5)"), "{}", parked[1]);
    assert_eq!(server.scripted_requests().len(), 3);
}

#[tokio::test]
async fn a_model_that_stays_overloaded_ends_the_turn_after_its_tries() {
    let server = ModelServer::start(vec![
        Turn::overloaded(),
        Turn::overloaded(),
        Turn::text("never reached"),
    ]);
    let home = tempfile::tempdir().unwrap();
    let overload = Overload { tries: 2, ..QUICK };
    let (result, updates) = turn(request(&server, home.path()), overload).await;

    let error = result.unwrap_err();
    assert!(matches!(&error, Error::StayedOverloaded(_)), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(parked_lines(&updates).len(), 1, "{updates:?}");
    assert_eq!(server.remaining_turns(), 1, "two runs, one model call each");
}
