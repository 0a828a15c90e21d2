//! An agent of a workspace's run that spawns a child: the child works in the same workspace
//! (its repository, its base), not in the server's folder, which has no repository.

use super::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_murmur");

fn family() -> String {
    format!(
        "---\nruntime: exec\n---\n# Family\n\n## lead\n> command: {BIN} spawn helper --runtime exec 'echo \"child in $(cat marker.txt)\"' >/dev/null && echo \"got $({BIN} wait helper)\"\n"
    )
}

#[test]
fn a_child_of_a_workspace_run_works_in_that_workspace() {
    let root = tempfile::tempdir().expect("temp dir");
    let a = Origin::new(root.path(), "a", &[("family", family())]);
    a.branch("release", "repo-a-release");
    let folder = Server::folder();
    cli_ok(
        folder.path(),
        &["workspace", "add", "w", "--repo", &a.url()],
    );
    let server = Server::start(folder);
    assert_eq!(response(&server.run("family", "w")), "got child in repo-a");
    // On the parent's base too.
    let (status, started) = server.start_with(
        "family",
        serde_json::json!({ "workspace": "w", "base": "release" }),
    );
    assert_eq!(status, 202, "{started}");
    let run = server.wait(started["run_id"].as_str().expect("id"));
    assert_eq!(response(&run), "got child in repo-a-release");
}
