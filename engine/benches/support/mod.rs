//! What the engine's benchmarks share: an executor on a fresh SQLite file whose agents work in
//! a scratch folder, and a recorded run of a flight.

use std::path::Path;
use std::sync::Arc;

use murmur_engine::executor::{Executor, StartRequest};
use murmur_engine::{Store, SystemClock};

/// An executor with `slots` machines, its store and agents' folders below `dir`.
pub async fn executor(dir: &Path, slots: usize) -> Executor {
    let store = Store::open(&dir.join("bench.db").display().to_string())
        .await
        .expect("store");
    Executor {
        store,
        clock: Arc::new(SystemClock),
        slots,
        work_root: dir.join("work"),
        repository: dir.to_path_buf(),
        claude: Default::default(),
        codex: Default::default(),
        retry_backoff: std::time::Duration::ZERO,
        github: Default::default(),
        check_command: None,
        leases: murmur_engine::executor::Leases::new(
            murmur_engine::lease::Owner::this_process("bench"),
            murmur_engine::executor::DEFAULT_TTL,
        ),
        placements: Default::default(),
        pools: Default::default(),
        environment: Default::default(),
        identity: None,
        workspace: Default::default(),
    }
}

/// Records a run of the flight `text`; returns its id.
pub async fn create(executor: &Executor, text: &str) -> String {
    let flight = murmur_parser::parse(text, "bench").flight.expect("flight");
    let request = StartRequest {
        flight_name: "bench",
        flight_path: None,
        source: text,
        flight: &flight,
        inputs: &[],
        event: None,
    };
    executor.create(&request).await.expect("create")
}
