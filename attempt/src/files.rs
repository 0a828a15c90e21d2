//! The files and variables an attempt's process finds on its machine.

use std::path::{Path, PathBuf};

use murmur_protocol::{AttemptSpec, UpstreamResult};

use crate::{Settings, environ};

/// The JSON file `MURMUR_UPSTREAM_RESULTS` names. Agents without upstreams share one empty
/// list: a file per agent would be thousands of inode creations for a wide flight.
pub fn write_upstream_results(
    run_dir: &Path,
    slug: &str,
    upstream: &[UpstreamResult],
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(run_dir).map_err(|e| workdir_error(run_dir, &e))?;
    let (path, contents) = if upstream.is_empty() {
        (run_dir.join("no-upstream.json"), "[]".to_owned())
    } else {
        let json = serde_json::to_string_pretty(upstream).unwrap_or_default();
        (run_dir.join(format!("{slug}.upstream.json")), json)
    };
    if !(upstream.is_empty() && path.is_file()) {
        std::fs::write(&path, contents).map_err(|e| workdir_error(&path, &e))?;
    }
    Ok(path)
}

/// What the machine's environment keeps for the agent (`environ`), the spec's variables, and
/// what only this machine knows: where the repository and the upstream results are.
pub fn environment(
    spec: &AttemptSpec,
    repository: &Path,
    results: &Path,
    settings: &Settings,
) -> Vec<(String, String)> {
    let mut env = environ::of_attempt(spec, settings);
    env.extend(spec.env.iter().cloned());
    env.push(("MURMUR_REPO".to_owned(), repository.display().to_string()));
    env.push((
        "MURMUR_UPSTREAM_RESULTS".to_owned(),
        results.display().to_string(),
    ));
    env
}

pub fn workdir_error(path: &Path, source: &std::io::Error) -> String {
    format!(
        "cannot prepare the working folder {}: {source}",
        path.display()
    )
}
