//! A worker that cannot reach the server's mirror, as one on another host cannot: it runs in
//! a mount namespace of its own where the server's folder (its mirrors with it) is an empty
//! tmpfs. It clones the origin and pushes the agent's branch there only; the server takes the
//! branch from the origin when the attempt ends, so a downstream agent on the server's own
//! slots merges it.

use std::path::Path;
use std::process::Command;

use super::harness::*;

/// `writer` commits on the worker; `reader`, on this server's slots, reads what it wrote.
const FLIGHT: &str = "---\nruntime: exec\n---\n# Relay\n\n## writer\n> pool: fleet\n> command: echo far-away > far.txt && git add far.txt && git -c user.email=a@a -c user.name=a commit -q -m far && echo wrote\n\n## reader\n> needs: writer\n> pool: local\n> command: echo \"read $(cat far.txt)\"\n";

/// `murmur worker` of the server at `url`, in `dir`, where `hidden` looks empty.
fn far_worker(dir: &Path, hidden: &Path, url: &str, token: &str) -> Command {
    let mut command = Command::new("unshare");
    command
        .current_dir(dir)
        .env_remove("MURMUR_DATABASE_URL")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs murmur-elsewhere \"$1\" && shift && exec \"$@\"")
        .arg("sh")
        .arg(hidden)
        .arg(env!("CARGO_BIN_EXE_murmur"))
        .args(["worker", "--server", url, "--token", token, "--dir"])
        .arg(dir);
    command
}

#[test]
fn a_worker_that_cannot_reach_the_mirror_pushes_to_the_origin_and_the_server_takes_it() {
    let root = tempfile::tempdir().expect("temp dir");
    let origin = Origin::new(root.path(), "far", &[("relay", FLIGHT.to_owned())]);
    let folder = Server::folder();
    std::fs::create_dir_all(folder.path().join(".murmur")).expect(".murmur");
    let config = "pools:\n  fleet: { placement: workers, max_vms: 1 }\n";
    std::fs::write(folder.path().join(".murmur/murmur.yaml"), config).expect("config");
    cli_ok(
        folder.path(),
        &["workspace", "add", "far", "--repo", &origin.url()],
    );
    let token = cli_ok(
        folder.path(),
        &[
            "token", "create", "--worker", "--pool", "fleet", "--name", "far",
        ],
    );
    let server = Server::start(folder);
    // All of the server's folder, its mirrors with it.
    let hidden = server.folder.path().to_owned();
    let worker_dir = root.path().join("worker");
    std::fs::create_dir_all(&worker_dir).expect("worker folder");
    let url = format!("http://{}", server.address);
    let command = far_worker(&worker_dir, &hidden, &url, &token);
    let (mut worker, machine) = crate::support::serve::registered(command);

    let run = server.run("relay", "far");
    let agents = run["agents"].as_array().expect("agents");
    let of = |slug: &str| {
        agents
            .iter()
            .find(|a| a["slug"] == slug)
            .unwrap_or_else(|| panic!("{slug}: {run:#}"))
    };
    assert_eq!(of("writer")["machine"], machine.as_str(), "{run:#}");
    assert_eq!(
        of("reader")["response"].as_str().map(str::trim),
        Some("read far-away"),
        "the local agent merged the branch the worker pushed to the origin: {run:#}"
    );
    let clones: Vec<String> = std::fs::read_dir(worker_dir.join("repositories"))
        .expect("the worker's clones")
        .flatten()
        .map(|e| git(&e.path(), &["remote"]))
        .collect();
    assert_eq!(clones, ["origin"], "the worker never saw the mirror");
    let branch = of("writer")["branch"].as_str().expect("branch").to_owned();
    let pushed = git(
        &origin.bare,
        &["rev-parse", &format!("refs/heads/{branch}")],
    );
    let taken = git(
        &server.mirror("far", 0),
        &["rev-parse", &format!("refs/heads/{branch}")],
    );
    assert_eq!(taken, pushed);
    let _ = worker.child.kill();
}
