//! Agent branches a machine pushed to the origin only: a worker on another host cannot reach
//! the server's mirror, so the server takes the branch (and the mark of where it started)
//! from the origin once the attempt ends, for what it does with the branch next (a local
//! agent's merge of it, a delivery, a resurrection on this host).

use std::path::Path;

use super::{Credential, Error, UPDATES, remote_error, run, update_error};

/// Brings `branch` and its start mark (`refs/murmur/start/BRANCH`) from the mirror's origin
/// into the mirror at `dir`, moved forward only; false when the origin has no such branch
/// (the machine pushed it to the mirror alone, or never pushed it).
pub async fn take_pushed_branch(
    dir: &Path,
    branch: &str,
    credential: Option<&Credential>,
) -> Result<bool, Error> {
    let _one = UPDATES.lock().await;
    let origin = run(dir, &["remote", "get-url", "origin"], None)
        .await
        .map_err(|reason| update_error(dir, reason))?;
    let head = format!("refs/heads/{branch}");
    let start = format!("refs/murmur/start/{branch}");
    let listed = run(dir, &["ls-remote", "origin", &head, &start], credential)
        .await
        .map_err(|reason| remote_error(&origin, reason, credential))?;
    let has = |name: &str| {
        listed
            .lines()
            .any(|line| line.ends_with(&format!("\t{name}")))
    };
    if !has(&head) {
        return Ok(false);
    }
    let mut refspecs = vec![format!("{head}:{head}")];
    if has(&start) {
        // The start mark is the machine's to say: it moves when the branch is made again.
        refspecs.push(format!("+{start}:{start}"));
    }
    let mut args = vec!["fetch", "--quiet", "origin"];
    args.extend(refspecs.iter().map(String::as_str));
    run(dir, &args, credential)
        .await
        .map_err(|reason| remote_error(&origin, reason, credential))?;
    Ok(true)
}
