//! A flight of `codex` agents end to end: the `murmur` binary runs the real Codex CLI against
//! a scripted Responses API server on 127.0.0.1, in real worktrees with real commits.

use murmur_testkit::git::git;
use std::process::{Command, Output};

use murmur_testkit::codex_cli::{codex_bin, codex_env, provider_config};
use murmur_testkit::{ModelServer, Turn};
use serde_json::Value;

const FLIGHT: &str = "---\nruntime: codex\nmodel: gpt-5.5\n---\n\n# Greeting\n\n## implement\n> out: pr\n\nAdd a greeting file.\n\n## polish\n> continues: implement\n\nMake it friendlier.\n";

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn implement_then_polish_in_the_same_codex_thread() {
    let repo = tempfile::tempdir().expect("temp dir");
    let home = tempfile::tempdir().expect("temp home");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(repo.path().join(".murmur/flights")).expect("mkdir");
    std::fs::write(repo.path().join(".murmur/flights/greeting.md"), FLIGHT).expect("flight");
    std::fs::write(
        repo.path().join(".gitignore"),
        ".murmur/work/\n.murmur/murmur.db*\n.murmur/murmur.yaml\n",
    )
    .expect("ignore");
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "start"]);
    let server = ModelServer::start(vec![
        Turn::exec_command(
            "printf 'Hello\\n' > GREETING.md && git add GREETING.md && git -c user.name=a -c user.email=a@a commit -qm 'Add greeting'",
        ),
        Turn::text("Added GREETING.md."),
        Turn::exec_command(
            "printf 'Hello, friend\\n' > GREETING.md && git -c user.name=a -c user.email=a@a commit -qam 'Friendlier'",
        ),
        Turn::text("Made it friendlier."),
    ]);
    let config: Vec<String> = provider_config(&server.openai_url())
        .iter()
        .map(|c| format!("      - '{}'", c.replace('\'', "''")))
        .collect();
    let yaml = format!("runtimes:\n  codex:\n    config:\n{}\n", config.join("\n"));
    std::fs::write(repo.path().join(".murmur/murmur.yaml"), yaml).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(["flight", "run", "greeting", "--json"])
        .current_dir(repo.path())
        .env("MURMUR_CODEX_BIN", codex_bin())
        .envs(codex_env(home.path()))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ls = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(["runs", "ls", "--json"])
        .current_dir(repo.path())
        .output()
        .expect("ls");
    let runs: Value = serde_json::from_slice(&ls.stdout).expect("json");
    let run = runs[0]["id"].as_str().expect("id").to_owned();
    let show = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(["runs", "show", &run, "--json"])
        .current_dir(repo.path())
        .output()
        .expect("show");
    let show: Value = serde_json::from_slice(&show.stdout).expect("json");
    let (implement, polish) = (&show["agents"][0], &show["agents"][1]);
    assert_eq!(implement["response"], "Added GREETING.md.");
    assert_eq!(polish["response"], "Made it friendlier.");
    assert_eq!(
        polish["session_id"], implement["session_id"],
        "polish continues implement's thread"
    );
    assert_eq!(polish["commits"], 2);
    let branch = format!("murmur/greeting/{run}/implement");
    assert_eq!(
        git(repo.path(), &["show", &format!("{branch}:GREETING.md")]),
        "Hello, friend"
    );
    let resumed = server.scripted_requests()[2].to_string();
    assert!(
        resumed.contains("Add a greeting file") && resumed.contains("Make it friendlier"),
        "polish sees the thread: {resumed}"
    );
}
