//! The one effect that starts work: launching an agent's attempt on a machine of the pool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use murmur_parser::{Agent, Flight};
use murmur_runtime::{Line, exec};
use tokio::sync::{mpsc, oneshot};

use super::Error;
use crate::run::{self, Context, UpstreamResult};

/// What a running agent task reports back, tagged with the attempt it belongs to.
pub enum Message {
    Line {
        index: usize,
        attempt: u32,
        line: Line,
    },
    Exited {
        index: usize,
        attempt: u32,
        result: Result<String, String>,
    },
}

/// Everything one attempt needs, gathered by the driver.
pub struct Launch<'a> {
    pub index: usize,
    pub attempt: u32,
    pub agent: &'a Agent,
    pub flight: &'a Flight,
    pub run_id: &'a str,
    pub flight_name: &'a str,
    pub inputs: &'a BTreeMap<String, String>,
    pub upstream: Vec<UpstreamResult>,
    pub work_root: &'a Path,
    pub repository: &'a Path,
}

/// Prepares the agent's folder and starts its runtime in a task; returns the stop handle.
pub fn launch(
    launch: Launch<'_>,
    messages: mpsc::UnboundedSender<Message>,
) -> Result<oneshot::Sender<()>, Error> {
    let Launch {
        index,
        attempt,
        agent,
        run_id,
        ..
    } = launch;
    let context = Context {
        run_id,
        flight_name: launch.flight_name,
        inputs: launch.inputs,
        upstream: &launch.upstream,
    };
    let prompt = run::prompt_for(launch.flight, agent, &context);
    let script = context.render(&run::script_of(agent).unwrap_or_default());
    let run_dir = launch.work_root.join(run_id);
    let workdir = run_dir.join(&agent.slug);
    std::fs::create_dir_all(&workdir).map_err(|e| workdir_error(&workdir, e))?;
    let results_path = write_upstream_results(&run_dir, &agent.slug, &launch.upstream)?;
    let mut env = vec![
        ("MURMUR_RUN_ID".to_owned(), run_id.to_owned()),
        ("MURMUR_FLIGHT".to_owned(), launch.flight_name.to_owned()),
        ("MURMUR_AGENT".to_owned(), agent.slug.clone()),
        (
            "MURMUR_REPO".to_owned(),
            launch.repository.display().to_string(),
        ),
        ("MURMUR_ATTEMPT".to_owned(), attempt.to_string()),
        (
            "MURMUR_UPSTREAM_RESULTS".to_owned(),
            results_path.display().to_string(),
        ),
    ];
    env.extend(
        launch
            .inputs
            .iter()
            .map(|(name, value)| (input_variable(name), value.clone())),
    );
    let request = exec::ExecRequest {
        script,
        prompt,
        workdir,
        env,
    };
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(async move {
        let (lines, mut line_rx) = mpsc::unbounded_channel();
        let forward = messages.clone();
        let forwarding = tokio::spawn(async move {
            while let Some(line) = line_rx.recv().await {
                let _ = forward.send(Message::Line {
                    index,
                    attempt,
                    line,
                });
            }
        });
        let result = exec::run(request, lines, stopped).await;
        let _ = forwarding.await;
        let result = result
            .map(|outcome| outcome.response)
            .map_err(|error| error.to_string());
        let _ = messages.send(Message::Exited {
            index,
            attempt,
            result,
        });
    });
    Ok(stop)
}

/// The JSON file `MURMUR_UPSTREAM_RESULTS` names. Agents without upstreams share one empty
/// list: a file per agent would be thousands of inode creations for a wide flight.
fn write_upstream_results(
    run_dir: &Path,
    slug: &str,
    upstream: &[UpstreamResult],
) -> Result<PathBuf, Error> {
    let (path, contents) = if upstream.is_empty() {
        (run_dir.join("no-upstream.json"), "[]".to_owned())
    } else {
        let json = serde_json::to_string_pretty(upstream).unwrap_or_default();
        (run_dir.join(format!("{slug}.upstream.json")), json)
    };
    if !(upstream.is_empty() && path.is_file()) {
        std::fs::write(&path, contents).map_err(|e| workdir_error(&path, e))?;
    }
    Ok(path)
}

/// `MURMUR_INPUT_<NAME>`, upper-cased, `-` as `_`.
fn input_variable(name: &str) -> String {
    format!("MURMUR_INPUT_{}", name.to_uppercase().replace('-', "_"))
}

fn workdir_error(path: &Path, source: std::io::Error) -> Error {
    Error::Workdir {
        path: path.display().to_string(),
        source,
    }
}
