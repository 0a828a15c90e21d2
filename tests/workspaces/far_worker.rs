//! A worker that cannot reach the server's mirrors, as one on another host cannot: it runs in
//! a mount namespace of its own where the server's folder (its mirrors with it) is an empty
//! tmpfs. It clones the origins and pushes the agent's branch there only; the server takes the
//! branch from each origin when the attempt ends, so a downstream agent on the server's own
//! slots merges it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::harness::*;
use crate::support::watched::Watched;

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

/// A server whose workspace `name` is of `origins` (its pool `fleet` has one worker's room),
/// and a far worker of it in `root/worker`.
struct Far {
    server: Server,
    _worker: Watched,
    machine: String,
    worker_dir: PathBuf,
}

impl Far {
    fn start(root: &Path, name: &str, origins: &[&Origin]) -> Self {
        let folder = Server::folder();
        std::fs::create_dir_all(folder.path().join(".murmur")).expect(".murmur");
        let config = "pools:\n  fleet: { placement: workers, max_vms: 1 }\n";
        std::fs::write(folder.path().join(".murmur/murmur.yaml"), config).expect("config");
        let urls: Vec<String> = origins.iter().map(|o| o.url()).collect();
        let mut add = vec!["workspace", "add", name];
        for url in &urls {
            add.extend(["--repo", url.as_str()]);
        }
        cli_ok(folder.path(), &add);
        let token = cli_ok(
            folder.path(),
            &[
                "token", "create", "--worker", "--pool", "fleet", "--name", "far",
            ],
        );
        let server = Server::start(folder);
        // All of the server's folder, its mirrors with it.
        let hidden = server.folder.path().to_owned();
        let worker_dir = root.join("worker");
        std::fs::create_dir_all(&worker_dir).expect("worker folder");
        let url = format!("http://{}", server.address);
        let command = far_worker(&worker_dir, &hidden, &url, &token);
        let (worker, machine) = crate::support::serve::registered(command);
        Self {
            server,
            _worker: worker,
            machine,
            worker_dir,
        }
    }

    /// The remotes of each of the worker's clones.
    fn clones_remotes(&self) -> Vec<String> {
        std::fs::read_dir(self.worker_dir.join("repositories"))
            .expect("the worker's clones")
            .flatten()
            .map(|e| git(&e.path(), &["remote"]))
            .collect()
    }

    /// The commit `branch` is at in the origin and in the server's mirror `index`, which
    /// must be the same.
    fn taken(&self, origin: &Origin, workspace: &str, index: usize, branch: &str) -> String {
        let head = format!("refs/heads/{branch}");
        let pushed = git(&origin.bare, &["rev-parse", &head]);
        let taken = git(&self.server.mirror(workspace, index), &["rev-parse", &head]);
        assert_eq!(
            taken, pushed,
            "mirror {index} took {branch} from its origin"
        );
        taken
    }
}

#[test]
fn a_worker_that_cannot_reach_the_mirror_pushes_to_the_origin_and_the_server_takes_it() {
    let root = tempfile::tempdir().expect("temp dir");
    let origin = Origin::new(root.path(), "far", &[("relay", FLIGHT.to_owned())]);
    let far = Far::start(root.path(), "far", &[&origin]);

    let run = far.server.run("relay", "far");
    let agents = run["agents"].as_array().expect("agents");
    let of = |slug: &str| {
        agents
            .iter()
            .find(|a| a["slug"] == slug)
            .unwrap_or_else(|| panic!("{slug}: {run:#}"))
    };
    assert_eq!(of("writer")["machine"], far.machine.as_str(), "{run:#}");
    assert_eq!(
        of("reader")["response"].as_str().map(str::trim),
        Some("read far-away"),
        "the local agent merged the branch the worker pushed to the origin: {run:#}"
    );
    assert_eq!(
        far.clones_remotes(),
        ["origin"],
        "the worker never saw the mirror"
    );
    let branch = of("writer")["branch"].as_str().expect("branch");
    far.taken(&origin, "far", 0, branch);
}

/// Every repository of a multi-repository workspace comes from its own origin on a far
/// worker, and the agent's branch of each goes back there and into the server's mirror.
#[test]
fn a_far_worker_clones_every_repository_of_a_workspace_from_its_origin() {
    let root = tempfile::tempdir().expect("temp dir");
    let flights = [
        ("pair", pair(Some("fleet"))),
        ("stack", stack(Some("fleet"))),
    ];
    let front = Origin::new(root.path(), "front", &flights);
    let back = Origin::new(root.path(), "back", &[]);
    let far = Far::start(root.path(), "duo", &[&front, &back]);

    let run = far.server.run("pair", "duo");
    let agent = &run["agents"][0];
    assert_eq!(agent["machine"], far.machine.as_str(), "{run:#}");
    let branch = agent["branch"].as_str().expect("branch");
    assert_eq!(
        response(&run),
        format!("front repo-front back repo-back on {branch}"),
        "{run:#}"
    );
    assert_eq!(
        far.clones_remotes(),
        ["origin", "origin"],
        "both clones are of the origins; the worker never saw a mirror"
    );
    let taken = far.taken(&back, "duo", 1, branch);
    let committed = git(
        &far.server.mirror("duo", 1),
        &["show", &format!("{taken}:agent.txt")],
    );
    assert_eq!(committed, "work");
    far.taken(&front, "duo", 0, branch);
    // Downstream on the worker: the upstream's commit in the second repository came with it.
    let run = far.server.run("stack", "duo");
    assert_eq!(response_of(&run, "read"), "found laid", "{run:#}");
}
