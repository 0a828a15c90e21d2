//! `murmur flight …` end to end: the real binary on real files.

use std::path::Path;
use std::process::{Command, Output};

fn murmur(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

fn repo_with(flights: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join(".murmur/flights")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("src/deep")).expect("mkdir");
    for (name, text) in flights {
        std::fs::write(dir.path().join(format!(".murmur/flights/{name}.md")), text).expect("write");
    }
    dir
}

const GOOD: &str =
    "# Good\n\n## design\n> out: respond\n\nDesign.\n\n## build\n> needs: design\n\nBuild.\n";
const BAD: &str = "# Bad\n\n## design\n\nDesign.\n\n## build\n> needs: desing\n\nBuild.\n";

#[test]
fn validate_exit_codes_follow_the_contract() {
    let repo = repo_with(&[("good", GOOD), ("bad", BAD)]);
    assert_eq!(
        murmur(repo.path(), &["flight", "validate", "good"])
            .status
            .code(),
        Some(0)
    );
    let bad = murmur(repo.path(), &["flight", "validate", "bad"]);
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(text.contains("error[unknown-agent]"), "{text}");
    assert!(text.contains("did you mean `design`?"), "{text}");
    assert!(text.contains("8 | > needs: desing"), "{text}");
    let missing = murmur(repo.path(), &["flight", "validate", "nope.md"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read nope.md"));
}

#[test]
fn validate_json_is_one_object_or_an_array() {
    let repo = repo_with(&[("good", GOOD), ("bad", BAD)]);
    let one = murmur(repo.path(), &["flight", "validate", "--json", "good"]);
    let value: serde_json::Value = serde_json::from_slice(&one.stdout).expect("json");
    assert_eq!(value["valid"], true);
    assert_eq!(value["flight"]["agents"][1]["needs"][0], "design");
    assert_eq!(value["flight"]["frontmatter"]["max_concurrent"], 0);
    let both = murmur(
        repo.path(),
        &["flight", "validate", "--json", "good", "bad"],
    );
    assert_eq!(both.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&both.stdout).expect("json");
    assert_eq!(value[1]["diagnostics"][0]["code"], "unknown-agent");
    assert_eq!(value[1]["diagnostics"][0]["line"], 8);
}

#[test]
fn names_resolve_from_any_folder_inside_the_repository() {
    let repo = repo_with(&[("good", GOOD)]);
    let deep = repo.path().join("src/deep");
    let graph = murmur(&deep, &["flight", "graph", "good", "--format", "mermaid"]);
    assert_eq!(graph.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&graph.stdout).contains("a_design --> a_build"));
    let typo = murmur(&deep, &["flight", "graph", "goood"]);
    assert_eq!(typo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("did you mean `good`?"));
}

#[test]
fn graph_formats() {
    let repo = repo_with(&[("good", GOOD)]);
    let dot = murmur(repo.path(), &["flight", "graph", "good", "--format", "dot"]);
    assert!(String::from_utf8_lossy(&dot.stdout).contains("\"design\" -> \"build\";"));
    let text = murmur(repo.path(), &["flight", "graph", "good"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("build  <- design"));
    let invalid = repo_with(&[("bad", BAD)]);
    assert_eq!(
        murmur(invalid.path(), &["flight", "graph", "bad"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn ls_lists_flights_with_title_agents_and_triggers() {
    let scheduled =
        "---\non:\n  schedule: { cron: \"0 2 * * *\" }\n---\n\n# Nightly\n\nCheck things.\n";
    let repo = repo_with(&[("good", GOOD), ("nightly", scheduled), ("bad", BAD)]);
    let out = murmur(&repo.path().join("src"), &["flight", "ls", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(rows[0]["name"], "bad");
    assert_eq!(rows[0]["valid"], false);
    assert_eq!(rows[1]["agents"], 2);
    assert_eq!(rows[0]["agents"], 2);
    assert_eq!(rows[2]["triggers"][0], "schedule");
    let table = murmur(repo.path(), &["flight", "ls"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("nightly"), "{table}");
}

#[test]
fn completions_are_generated() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = murmur(dir.path(), &["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("murmur"));
}
