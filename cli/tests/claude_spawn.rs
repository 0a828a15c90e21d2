//! `murmur mcp` in a real Claude Code session: the engine configures it into every `claude`
//! agent's session, the model (the scripted server) calls `mcp__murmur__spawn` and then
//! `mcp__murmur__wait`, and the child (an `exec` agent) answers in the tool result the model
//! receives. Also `tools/list` of `murmur mcp` spoken to directly over stdio.

mod claude_project;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use claude_project::{Project, all_text, text};
use murmur_testkit::{ModelServer, Turn};
use serde_json::{Value, json};

const FLIGHT: &str = "---
runtime: claude
---

# Delegate

## lead

Ask a helper for the magic number.
";

const TOOLS: [&str; 6] = ["spawn", "status", "wait", "ls", "kill", "queue_add"];

#[test]
fn a_claude_agent_spawns_a_child_through_mcp_and_reads_its_answer() {
    let project = Project::new(&[("delegate", FLIGHT)]);
    let server = ModelServer::start(vec![
        Turn::tool_use(
            "mcp__murmur__spawn",
            json!({"slug": "helper", "runtime": "exec", "prompt": "echo magic-4242"}),
        ),
        Turn::tool_use("mcp__murmur__wait", json!({"name": "helper"})),
        Turn::text("The helper says magic-4242."),
    ]);
    let out = project
        .murmur(&server, &["flight", "run", "delegate"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let calls = server.scripted_requests();
    assert_eq!(calls.len(), 3, "one call per scripted turn");
    // Claude Code may defer MCP tools behind its tool search, naming them in the request
    // rather than in `tools`: either way the session knows them.
    let offered = calls[0].to_string();
    for tool in TOOLS {
        assert!(
            offered.contains(&format!("mcp__murmur__{tool}")),
            "the session offers {tool}: {offered}"
        );
    }
    let spawned = all_text(&calls[1]);
    assert!(spawned.contains("\\\"created\\\": true"), "{spawned}");
    let waited = all_text(&calls[2]);
    assert!(
        waited.contains("magic-4242") && waited.contains("completed"),
        "the wait's tool result carries the child's answer: {waited}"
    );
    let agents = project.json(&server, &["ls", "--all", "--json"]);
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
}

#[test]
fn tools_list_answers_with_the_six_tools_and_their_schemas() {
    let mut mcp = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .arg("mcp")
        .env("MURMUR_AGENT_TOKEN", "mrma1.00.00")
        .env("MURMUR_API_URL", "http://127.0.0.1:9")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("murmur mcp starts");
    let mut stdin = mcp.stdin.take().expect("stdin");
    let mut lines = BufReader::new(mcp.stdout.take().expect("stdout")).lines();
    let mut send = |message: Value| {
        writeln!(stdin, "{message}").expect("send");
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}}),
    );
    let initialized: Value =
        serde_json::from_str(&lines.next().expect("an answer").expect("line")).expect("JSON");
    assert!(
        initialized["result"]["capabilities"]["tools"].is_object(),
        "{initialized}"
    );
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    let listed: Value =
        serde_json::from_str(&lines.next().expect("an answer").expect("line")).expect("JSON");
    let tools = listed["result"]["tools"].as_array().expect("tools");
    let mut names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort_unstable();
    let mut expected = TOOLS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    let schema = |name: &str| {
        let tool = tools.iter().find(|t| t["name"] == name).expect("tool");
        tool["inputSchema"].clone()
    };
    assert_eq!(schema("spawn")["type"], "object");
    assert_eq!(schema("spawn")["required"], json!(["slug"]));
    assert!(schema("wait")["properties"]["phase"].is_object());
    assert_eq!(schema("queue_add")["required"], json!(["name", "text"]));
    drop(stdin);
    let status = mcp.wait().expect("ends");
    assert!(status.success(), "murmur mcp ends when its input does");
}

#[test]
fn a_child_gets_the_persona_and_model_its_parent_spawned_it_with() {
    let bin = env!("CARGO_BIN_EXE_murmur");
    let parent = format!(
        "---\nruntime: exec\n---\n# Parent\n\n## lead\n> command: {bin} spawn kid --runtime claude --persona tester --model claude-sonnet-4-5 'Say hi.' >/dev/null && echo \"got $({bin} wait kid)\"\n"
    );
    let project = Project::new(&[("parent", &parent)]);
    let server = ModelServer::start(vec![Turn::text("kid-answer")]);
    let out = project
        .murmur(&server, &["flight", "run", "parent"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let calls = server.scripted_requests();
    assert_eq!(calls.len(), 1, "the child's one model call");
    assert_eq!(calls[0]["model"], "claude-sonnet-4-5", "{}", calls[0]);
    let system = calls[0]["system"].to_string();
    let tester = murmur_engine::persona::builtin("tester")
        .map(|persona| persona.system_prompt.chars().take(40).collect::<String>())
        .expect("the built-in tester persona");
    assert!(system.contains(&tester), "the tester persona: {system}");
    let agents = project.json(&server, &["ls", "--all", "--json"]);
    let lead = agents
        .as_array()
        .and_then(|all| all.iter().find(|agent| agent["slug"] == "lead"))
        .expect("the lead");
    assert_eq!(lead["response"], "got kid-answer", "{lead}");
}
