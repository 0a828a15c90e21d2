//! Single statements outside a run's checkpoints (a lease, a token, a workspace) are written
//! by the store's writer with whatever checkpoints are queued at the moment, each in a
//! savepoint of its own: one that fails (a key taken) fails alone, on every backend.

mod backends;

use backends::TestDb;
use murmur_engine::store::{Commit, NewRun};
use murmur_engine::{Event, RunStatus};

every_backend!(a_failing_statement_fails_alone_in_its_group);

async fn a_failing_statement_fails_alone_in_its_group(db: &TestDb) {
    let store = backends::open(db).await;
    let at = "2026-01-01T00:00:00.000Z";
    store
        .add_token("taken", "secret-taken", at)
        .await
        .expect("the first token");
    let runs: Vec<String> = (0..20).map(|i| format!("run-{i:02}")).collect();
    for id in &runs {
        store
            .create_run(&NewRun {
                id,
                flight: "demo",
                flight_path: None,
                source: "# Demo\n\n## a\n\nA.\n",
                digest: "d1",
                inputs: &serde_json::json!({}),
                created_at: at,
                agents: &["a".to_owned()],
                event: None,
            })
            .await
            .expect("create run");
    }
    let mut tasks = Vec::new();
    for (i, id) in runs.iter().enumerate() {
        let (writes, id) = (store.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let commit = Commit {
                run_id: &id,
                expected_version: 0,
                at: "2026-01-01T00:00:01.000Z",
                events: &[Event::RunStarted],
                agents: &[],
                status: RunStatus::Running,
                finished_at: None,
                fence: None,
                machines: None,
            };
            writes.commit(&commit).await.map(drop)
        }));
        let tokens = store.clone();
        // Every fifth token repeats one already stored: its primary key refuses it.
        let token = if i % 5 == 0 {
            "secret-taken".to_owned()
        } else {
            format!("secret-{i}")
        };
        tasks.push(tokio::spawn(async move {
            tokens.add_token(&format!("t{i}"), &token, at).await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    let failed: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].is_err())
        .collect();
    // Tasks alternate checkpoint, token: the repeated tokens are tasks 1, 11, 21, 31.
    assert_eq!(failed, vec![1, 11, 21, 31], "{results:?}");
    for id in &runs {
        assert_eq!(store.run(id).await.expect("run").version, 1, "{id}");
    }
    for i in (0..20).filter(|i| i % 5 != 0) {
        let name = store
            .token_name(&format!("secret-{i}"))
            .await
            .expect("token");
        assert_eq!(name.as_deref(), Some(format!("t{i}").as_str()));
    }
}
