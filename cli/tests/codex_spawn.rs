//! `murmur mcp` in a real Codex session: the engine configures it into every `codex` agent's
//! session (`-c mcp_servers.murmur.*`, the identity passed through `env_vars`), the model (the
//! scripted Responses API server) calls the `spawn` tool and then `wait`, and the child (an
//! `exec` agent) answers in the tool output the model receives.

use std::process::{Command, Output};

use murmur_testkit::codex_cli::{MODEL, codex_bin, codex_env, provider_config};
use murmur_testkit::git::git;
use murmur_testkit::{ModelServer, Turn};
use serde_json::{Value, json};

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A repository with one `codex` flight, its config pointing Codex at `server`.
fn project(server: &ModelServer) -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("temp dir");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(repo.path().join(".murmur/flights")).expect("mkdir");
    let flight = format!(
        "---\nruntime: codex\nmodel: {MODEL}\n---\n\n# Delegate\n\n## lead\n\nAsk a helper for the magic number.\n"
    );
    std::fs::write(repo.path().join(".murmur/flights/delegate.md"), flight).expect("flight");
    std::fs::write(
        repo.path().join(".gitignore"),
        ".murmur/work/\n.murmur/murmur.db*\n.murmur/murmur.yaml\n",
    )
    .expect("ignore");
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "start"]);
    let config: Vec<String> = provider_config(&server.openai_url())
        .iter()
        .map(|c| format!("      - '{}'", c.replace('\'', "''")))
        .collect();
    let yaml = format!(
        "pools:\n  local:\n    max_vms: 2\nruntimes:\n  codex:\n    config:\n{}\n",
        config.join("\n")
    );
    std::fs::write(repo.path().join(".murmur/murmur.yaml"), yaml).expect("config");
    repo
}

fn murmur(repo: &std::path::Path, home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(args)
        .current_dir(repo)
        .env("MURMUR_CODEX_BIN", codex_bin())
        .env_remove("MURMUR_AGENT_TOKEN")
        .env_remove("MURMUR_API_URL")
        .envs(codex_env(home))
        .output()
        .expect("runs")
}

/// Every function call output the request carries back to the model.
fn tool_outputs(request: &Value) -> String {
    let items = request["input"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|item| item["type"] == "function_call_output")
        .map(|item| item["output"].to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_codex_agent_spawns_a_child_through_mcp_and_reads_its_answer() {
    let server = ModelServer::start(vec![
        Turn::tool_use(
            "mcp__murmur__spawn",
            json!({"slug": "helper", "runtime": "exec", "prompt": "echo magic-4242"}),
        ),
        Turn::tool_use("mcp__murmur__wait", json!({"name": "helper"})),
        Turn::text("The helper says magic-4242."),
    ]);
    let repo = project(&server);
    let home = tempfile::tempdir().expect("temp home");
    let out = murmur(repo.path(), home.path(), &["flight", "run", "delegate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let calls = server.scripted_requests();
    assert_eq!(calls.len(), 3, "one call per scripted turn");
    // Codex 0.169 defers MCP tools behind its tool search: the request names the server's
    // namespace, and a call of `mcp__murmur__TOOL` reaches the server.
    let offered = calls[0].to_string();
    assert!(
        offered.contains("mcp__murmur"),
        "the session offers the murmur tools: {offered}"
    );
    let spawned = tool_outputs(&calls[1]);
    assert!(spawned.contains("\\\"created\\\": true"), "{spawned}");
    let waited = tool_outputs(&calls[2]);
    assert!(
        waited.contains("magic-4242") && waited.contains("completed"),
        "the wait's tool output carries the child's answer: {waited}"
    );
    let ls = murmur(repo.path(), home.path(), &["ls", "--all", "--json"]);
    let agents: Value = serde_json::from_slice(&ls.stdout).expect("JSON");
    let helper = agents
        .as_array()
        .and_then(|all| all.iter().find(|agent| agent["slug"] == "helper"))
        .unwrap_or_else(|| panic!("the child is recorded: {agents}"));
    assert_eq!(helper["response"], "magic-4242");
    assert!(
        helper["parent"]
            .as_str()
            .is_some_and(|p| p.ends_with("/lead")),
        "{helper}"
    );
    let lead = agents
        .as_array()
        .and_then(|all| all.iter().find(|agent| agent["slug"] == "lead"))
        .expect("the lead");
    assert_eq!(lead["response"], "The helper says magic-4242.", "{lead}");
}
