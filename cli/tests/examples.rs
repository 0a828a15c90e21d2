//! The flights in `examples/` run as the README says: offline, no API key, in a git repository.
//! Each runs in a fresh repository that looks like a small project.

use std::path::Path;
use std::process::Command;

use murmur_testkit::git::git;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path();
    git(repo, &["init", "-q", "-b", "main"]);
    for (path, text) in [
        ("src/main.rs", "fn main() {}\n"),
        ("src/lib.rs", "pub fn one() -> u8 {\n    1\n}\n"),
        ("docs/guide.md", "# Guide\n"),
        ("README.md", "# Demo\n"),
    ] {
        std::fs::create_dir_all(repo.join(path).parent().expect("parent")).expect("mkdir");
        std::fs::write(repo.join(path), text).expect("write");
    }
    std::fs::create_dir_all(repo.join("examples")).expect("mkdir");
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"))
        .expect("examples/")
    {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name");
        std::fs::copy(&path, repo.join("examples").join(name)).expect("copy");
    }
    std::fs::write(repo.join(".gitignore"), ".murmur/\n").expect("ignore");
    git(repo, &["add", "."]);
    git(repo, &["commit", "-qm", "start"]);
    dir
}

fn run_example(repo: &Path, name: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(["flight", "run", &format!("examples/{name}.md")])
        .current_dir(repo)
        .env("NO_COLOR", "1")
        .env_remove("MURMUR_DATABASE_URL")
        .output()
        .expect("murmur runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(["runs", "ls", "--json"])
        .current_dir(repo)
        .env_remove("MURMUR_DATABASE_URL")
        .output()
        .expect("murmur runs");
    let runs: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    let run = runs[0]["id"].as_str().expect("run id").to_owned();
    let shown = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(["runs", "show", &run, "--json"])
        .current_dir(repo)
        .env_remove("MURMUR_DATABASE_URL")
        .output()
        .expect("murmur runs");
    serde_json::from_slice(&shown.stdout).expect("json")
}

fn response<'v>(show: &'v serde_json::Value, slug: &str) -> &'v str {
    show["agents"]
        .as_array()
        .and_then(|agents| agents.iter().find(|a| a["slug"] == slug))
        .and_then(|agent| agent["response"].as_str())
        .unwrap_or_else(|| panic!("no response from {slug}: {show}"))
}

#[test]
fn the_quick_start_runs_offline() {
    let project = project();
    let show = run_example(project.path(), "quickstart");
    assert!(
        response(&show, "check").contains("SURVEY.md came from edit"),
        "{show}"
    );
}

#[test]
fn the_fan_out_example_counts_every_folder_on_its_own_branch() {
    let project = project();
    let show = run_example(project.path(), "fanout");
    assert_eq!(response(&show, "count-src"), "src: 2 files, 4 lines");
    assert_eq!(response(&show, "count-docs"), "docs: 1 files, 1 lines");
    assert!(
        response(&show, "report").starts_with("3 folders counted"),
        "{show}"
    );
}
