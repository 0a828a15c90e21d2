//! Murmur's agent commands run inside an agent (its attempt's `MURMUR_AGENT_TOKEN` is set):
//! they act for that agent through its agent API. `spawn` makes a child of the caller and
//! returns once it is recorded; `ls` lists the caller's children; `status`, `wait`, `kill`
//! and `queue add` take names under the caller (`SLUG` of a child, `SLUG/AGENT` in a child
//! flight, or `RUN/SLUG` of its subtree).

use serde_json::{Value, json};

use crate::Exit;
use crate::agent_cli::{AgentCommand, AgentName, QueueCommand, SpawnArgs};
use crate::agent_client::{AgentClient, CallError, Waited};
use crate::output::emit_line;

pub fn run(client: &AgentClient, command: AgentCommand) -> anyhow::Result<Exit> {
    let answer = match command {
        AgentCommand::Ls { json, .. } => list(client, json),
        AgentCommand::Status { agent, json, .. } => status(client, &agent, json),
        AgentCommand::Wait {
            agent,
            phase,
            timeout,
            ..
        } => return wait(client, &agent, phase.as_deref(), timeout.as_deref()),
        AgentCommand::Kill { agent, .. } => client.kill(&name_of(&agent)).map(|answer| {
            eprintln!(
                "{}: killed ({} runs canceled)",
                answer["name"], answer["killed"]
            );
            Exit::Success
        }),
        AgentCommand::Spawn(args) => return spawn(client, &args),
        AgentCommand::Queue {
            command: QueueCommand::Add { agent, text, .. },
        } => client.queue_add(&name_of(&agent), &text).map(|_| {
            eprintln!("follow-up queued for {}", name_of(&agent));
            Exit::Success
        }),
        AgentCommand::Sleep { .. } | AgentCommand::Wake { .. } => {
            eprintln!("error: inside an agent, murmur sleep and murmur wake are not available");
            return Ok(Exit::Usage);
        }
    };
    answer.or_else(refused)
}

/// A refusal is the caller's to fix: said plainly, exit 1. Anything else is an error.
fn refused(error: CallError) -> anyhow::Result<Exit> {
    match error {
        CallError::Refused { message, .. } => {
            eprintln!("error: {message}");
            Ok(Exit::Failure)
        }
        error => Err(error.into()),
    }
}

fn name_of(agent: &AgentName) -> String {
    match &agent.run {
        Some(run) => format!("{run}/{}", agent.slug),
        None => agent.slug.clone(),
    }
}

/// The spawn request `murmur spawn` and the MCP tool `spawn` send.
pub fn spawn_body(args: &SpawnArgs) -> anyhow::Result<Value> {
    let flight = match &args.flight {
        Some(name) => {
            let path = crate::locate::resolve_flight(name)?;
            let source = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let name = crate::locate::flight_name(&path).unwrap_or_else(|| name.clone());
            Some(json!({ "name": name, "source": source }))
        }
        None => None,
    };
    let slug = match (&args.slug, &flight) {
        (Some(slug), _) => slug.clone(),
        (None, Some(flight)) => murmur_parser::slugify(flight["name"].as_str().unwrap_or(""), 63),
        (None, None) => anyhow::bail!("give the child a slug: murmur spawn SLUG PROMPT..."),
    };
    Ok(json!({
        "slug": slug,
        "prompt": args.prompt.join(" "),
        "runtime": args.runtime, "persona": args.persona, "model": args.model,
        "out": args.out, "on_idle": args.on_idle,
        "flight": flight,
        "inputs": args.inputs,
        "secrets": args.secrets,
        "base": args.base,
    }))
}

/// The spawn requests of `--each`: one child per item, `SLUG-ITEM` as a fan-out instance is
/// named, so that spawning the same items again finds the same children. Two items that
/// would share a name are refused before anything is spawned.
pub fn each_bodies(args: &SpawnArgs, items: &[String]) -> anyhow::Result<Vec<Value>> {
    let body = spawn_body(args)?;
    let slug = body["slug"].as_str().unwrap_or_default().to_owned();
    let mut named: Vec<(String, &String)> = Vec::new();
    for item in items {
        let name = murmur_parser::instance_slug(&slug, item);
        match named.iter().find(|(other, _)| *other == name) {
            Some((_, first)) if *first == item => {}
            Some((_, first)) => anyhow::bail!(
                "the items {first:?} and {item:?} would both be the child `{name}`: make them differ in letters or digits"
            ),
            None => named.push((name, item)),
        }
    }
    anyhow::ensure!(!named.is_empty(), "--each read no items on stdin");
    Ok(named
        .into_iter()
        .map(|(name, item)| {
            let mut body = body.clone();
            body["slug"] = json!(name);
            body["item"] = json!(item);
            body
        })
        .collect())
}

/// `--each`: the items are stdin, a JSON array of strings or one item a line.
fn spawn_each(client: &AgentClient, args: &SpawnArgs) -> anyhow::Result<Exit> {
    let mut input = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)
        .map_err(|e| anyhow::anyhow!("cannot read the items of --each from stdin: {e}"))?;
    let bodies = match each_bodies(args, &murmur_parser::items_from_text(&input)) {
        Ok(bodies) => bodies,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(Exit::Usage);
        }
    };
    for body in bodies {
        match client.spawn(&body) {
            Ok(answer) if args.json => emit_line(&serde_json::to_string(&answer)?),
            Ok(answer) => emit_line(answer["name"].as_str().unwrap_or_default()),
            Err(error) => return refused(error),
        }
    }
    Ok(Exit::Success)
}

fn spawn(client: &AgentClient, args: &SpawnArgs) -> anyhow::Result<Exit> {
    if args.each {
        return spawn_each(client, args);
    }
    let body = spawn_body(args)?;
    match client.spawn(&body) {
        Ok(answer) if args.json => {
            emit_line(&serde_json::to_string_pretty(&answer)?);
            Ok(Exit::Success)
        }
        Ok(answer) => {
            emit_line(answer["name"].as_str().unwrap_or_default());
            Ok(Exit::Success)
        }
        Err(error) => refused(error),
    }
}

fn list(client: &AgentClient, json: bool) -> Result<Exit, CallError> {
    let children = client.children()?;
    if json {
        emit_line(&serde_json::to_string_pretty(&children).unwrap_or_default());
        return Ok(Exit::Success);
    }
    let children = children.as_array().cloned().unwrap_or_default();
    if children.is_empty() {
        eprintln!("this agent has spawned no children (murmur spawn SLUG PROMPT... makes one)");
        return Ok(Exit::Success);
    }
    emit_line(&format!(
        "{:<24} {:<15} {:<34} {:>8}",
        "CHILD", "PHASE", "RUN", "ATTEMPTS"
    ));
    for child in children {
        emit_line(&format!(
            "{:<24} {:<15} {:<34} {:>8}",
            text(&child["name"]),
            text(&child["state"]),
            text(&child["run"]),
            text(&child["attempts"]),
        ));
    }
    Ok(Exit::Success)
}

fn status(client: &AgentClient, agent: &AgentName, json: bool) -> Result<Exit, CallError> {
    let answer = client.status(&name_of(agent))?;
    if json {
        emit_line(&serde_json::to_string_pretty(&answer).unwrap_or_default());
        return Ok(Exit::Success);
    }
    for key in ["name", "run", "state", "attempts", "parent", "error"] {
        emit_line(&format!(
            "{key:<9}{}",
            crate::terminal::sanitize(&text(&answer[key]))
        ));
    }
    if let Some(response) = answer["response"].as_str() {
        emit_line(&format!("\n{}", crate::terminal::sanitize_block(response)));
    }
    Ok(Exit::Success)
}

/// Prints the state on stderr and the response on stdout, so that `$(murmur wait CHILD)` is
/// the child's answer.
fn wait(
    client: &AgentClient,
    agent: &AgentName,
    phase: Option<&str>,
    timeout: Option<&str>,
) -> anyhow::Result<Exit> {
    let (phase, limit) = super::agents::wait_limits(phase, timeout)?;
    let name = name_of(agent);
    let (answer, waited) = match client.wait(&name, phase, limit) {
        Ok(waited) => waited,
        Err(error) => return refused(error),
    };
    eprintln!("{name}: {}", text(&answer["state"]));
    if let Some(response) = answer["response"].as_str() {
        emit_line(response);
    }
    Ok(match waited {
        Waited::Reached => Exit::Success,
        Waited::Ended => Exit::Failure,
        Waited::TimedOut => Exit::Usage,
    })
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
