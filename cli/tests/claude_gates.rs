//! Gates and planned fan-outs with the real Claude Code CLI against a scripted model server:
//! a reviewer agent that asks for changes once, and a planning agent that lists the items.

mod claude_project;

use claude_project::{Project, agent, all_text, commit, text};
use murmur_testkit::git::git;
use murmur_testkit::{ModelServer, Turn};

const REVIEWED: &str = "---
runtime: claude
retries: 1
---

# Greeting, reviewed

## implement
> gate: review

Add GREETING.md that says hello.
";

const PLANNED: &str = "---
runtime: claude
---

# Summaries

## summarize
> each: every Markdown file at the top of the repository
> out: respond

Summarize {} in one sentence.
";

#[test]
fn requested_changes_go_back_to_the_author_until_the_reviewer_approves() {
    let project = Project::new(&[("reviewed", REVIEWED)]);
    let server = ModelServer::start(vec![
        commit("Add greeting", "GREETING.md", "Hello"),
        Turn::text("Implemented: GREETING.md says hello."),
        Turn::text("REQUEST CHANGES\nSay hello in French as well."),
        commit("Add French", "GREETING.md", "Hello\\nBonjour"),
        Turn::text("Added the French greeting."),
        Turn::text("APPROVE\nBoth greetings are there."),
    ]);
    let out = project
        .murmur(&server, &["flight", "run", "reviewed", "--json"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let calls = server.scripted_requests();
    assert_eq!(calls.len(), 6, "one call per scripted turn");
    let first_review = all_text(&calls[2]);
    assert!(
        calls[2]["system"].to_string().contains("code reviewer"),
        "the reviewer runs as persona reviewer"
    );
    assert!(
        first_review.contains("GREETING.md") && first_review.contains("+Hello"),
        "the reviewer reads the diff: {first_review}"
    );
    let follow_up = all_text(&calls[3]);
    assert!(
        follow_up.contains("Say hello in French as well.")
            && follow_up.contains("Implemented: GREETING.md says hello."),
        "the requested changes reach the author in its own session: {follow_up}"
    );
    let second_review = all_text(&calls[5]);
    assert!(second_review.contains("+Bonjour"), "{second_review}");

    let run = project.latest_run(&server);
    let show = project.show(&server, &run);
    let implement = agent(&show, "implement");
    assert_eq!(implement["state"], "completed");
    assert_eq!(implement["attempts"], 2);
    assert_eq!(implement["commits"], 2);
    let branch = format!("murmur/reviewed/{run}/implement");
    assert_eq!(
        git(project.repo(), &["show", &format!("{branch}:GREETING.md")]),
        "Hello\nBonjour"
    );
}

#[test]
fn a_planning_agent_lists_the_items_once_and_each_gets_an_agent() {
    let project = Project::new(&[("planned", PLANNED)]);
    let server = ModelServer::start(vec![
        Turn::text("[\"README.md\", \".gitignore\"]"),
        Turn::text("A one-sentence summary."),
        Turn::text("Another one-sentence summary."),
    ]);
    let out = project
        .murmur(&server, &["flight", "run", "planned", "--json"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let calls = server.scripted_requests();
    let planning = all_text(&calls[0]);
    assert!(
        planning.contains("every Markdown file at the top of the repository")
            && planning.contains("JSON array"),
        "{planning}"
    );
    let instances: Vec<String> = calls[1..].iter().map(all_text).collect();
    for item in ["README.md", ".gitignore"] {
        let wanted = format!("Summarize {item} in one sentence.");
        assert!(
            instances.iter().any(|prompt| prompt.contains(&wanted)),
            "{wanted} in {instances:?}"
        );
    }
    let run = project.latest_run(&server);
    let show = project.show(&server, &run);
    for slug in ["summarize-readme-md", "summarize-gitignore"] {
        assert_eq!(agent(&show, slug)["state"], "completed", "{show}");
    }
    assert_eq!(agent(&show, "summarize")["state"], "completed");
}
