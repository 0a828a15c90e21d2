//! A workspace's defaults reach its runs: its check command is what the `ci` gate runs, and
//! its secrets are in its agents' environment. (Its default pool: the worker test, where a
//! flight naming no pool runs on the workspace's `workers` pool.)

use super::credentials::murmur_with_key;
use super::harness::*;

fn checked() -> String {
    "---\nruntime: exec\n---\n# Checked\n\n## build\n> gate: ci\n> command: test -n \"$DEPLOY_KEY\" && echo \"built with a key of ${#DEPLOY_KEY} characters\"\n".to_owned()
}

#[test]
fn a_run_takes_its_workspaces_check_command_and_secrets() {
    let root = tempfile::tempdir().expect("temp dir");
    let a = Origin::new(root.path(), "a", &[("checked", checked())]);
    let proof = root.path().join("proof");
    let keys = root.path().join("keys");
    let folder = Server::folder();
    let (ok, said) = murmur_with_key(
        folder.path(),
        &keys,
        &["secret", "set", "DEPLOY_KEY"],
        "k3y",
    );
    assert!(ok, "{said}");
    let check = format!(
        "echo \"$MURMUR_GATE of $MURMUR_AGENT\" > {}",
        proof.display()
    );
    let url = a.url();
    let args = [
        "workspace",
        "add",
        "checked",
        "--repo",
        &url,
        "--check",
        &check,
        "--secret",
        "DEPLOY_KEY",
    ];
    let (ok, said) = murmur_with_key(folder.path(), &keys, &args, "");
    assert!(ok, "{said}");
    let server = Server::start_in_env(folder, &[("MURMUR_KEY_FILE", &keys)]);
    let run = server.run("checked", "checked");
    assert_eq!(
        response(&run),
        "built with a key of 3 characters",
        "{run:#}"
    );
    let proved = std::fs::read_to_string(&proof).expect("the workspace's check ran");
    assert_eq!(proved.trim(), "ci of build");
}
