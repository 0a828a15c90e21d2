//! `POST /v1/agent/spawn`: a child of the calling agent, one agent on a prompt or a whole
//! flight, recorded under the caller and driven at once. Answers as soon as the child is
//! recorded; spawning the same slug again answers with the child made the first time.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use murmur_engine::children::ChildRun;
use serde::Deserialize;
use serde_json::{Value, json};

use super::names::child_error;
use super::{AgentApi, Caller};
use crate::error::ApiError;

/// Longest prompt or flight text a spawn takes.
const MAX_TEXT: usize = 256 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnBody {
    /// The child's slug, under the caller.
    pub slug: String,
    #[serde(default)]
    pub prompt: String,
    pub runtime: Option<String>,
    pub persona: Option<String>,
    pub model: Option<String>,
    pub out: Option<String>,
    pub on_idle: Option<String>,
    /// A whole flight instead of one agent.
    pub flight: Option<FlightBody>,
    /// The flight's inputs as `NAME=VALUE`.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// One item of `murmur spawn --each`: `{}` and `${{ item }}` in the prompt stand for it.
    /// It reaches the child as the input `item`, so in an `exec` command it is a quoted
    /// variable, never shell text.
    pub item: Option<String>,
    /// Secrets the child's agents get for its lifetime only (`murmur spawn -e NAME`).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The branch the child's agents start from, over its parent's base and its
    /// repository's (`murmur spawn --base BRANCH`).
    pub base: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlightBody {
    pub name: String,
    pub source: String,
}

pub(super) async fn spawn(
    State(api): State<AgentApi>,
    caller: Caller,
    Json(body): Json<SpawnBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !murmur_parser::is_slug(&body.slug) {
        return Err(ApiError::invalid(format!(
            "`{}` is not a slug: use lowercase letters, digits and `-` (for example `{}`)",
            body.slug,
            murmur_parser::slugify(&body.slug, 63)
        )));
    }
    let mut inputs = body.inputs.clone();
    if let Some(item) = &body.item {
        check_item(&body, item)?;
        inputs.push(format!("{ITEM_INPUT}={item}"));
    }
    let (name, source) = match &body.flight {
        Some(_) if body.item.is_some() => {
            return Err(ApiError::invalid(
                "--each spawns one agent per item: give a prompt, not --flight",
            ));
        }
        Some(flight) => (flight.name.clone(), flight.source.clone()),
        None if body.prompt.trim().is_empty() => {
            return Err(ApiError::invalid(format!(
                "give the child a prompt: murmur spawn {} WHAT TO DO",
                body.slug
            )));
        }
        None => (body.slug.clone(), one_agent_flight(&body)),
    };
    if source.len() > MAX_TEXT {
        return Err(ApiError::invalid(
            "the prompt or flight is longer than 256 KiB",
        ));
    }
    let parsed = murmur_parser::parse(&source, &name);
    let flight = match parsed.flight {
        Some(flight) if parsed.diagnostics.iter().all(|d| !d.is_error()) => flight,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_flight",
                format!("the child `{}` is not a valid flight", body.slug),
            )
            .with_diagnostics(&parsed.diagnostics));
        }
    };
    let request = ChildRun {
        slug: &body.slug,
        flight_name: &name,
        source: &source,
        flight: &flight,
        inputs: &inputs,
        secrets: &body.secrets,
        base: body.base.as_deref(),
    };
    let spawned = api
        .executor
        .spawn_child(&caller.0, &request, &api.limits)
        .await
        .map_err(child_error)?;
    if spawned.created {
        api.start(&spawned.child.run_id);
    } else {
        // Found again: its driver may have died with an engine that was restarted.
        let run = api.executor.store.run(&spawned.child.run_id).await?;
        super::names::ensure_driven(&api, &run);
    }
    let status = if spawned.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let answer = json!({
        "name": spawned.child.slug,
        "run": spawned.child.run_id,
        "parent": format!("{}/{}", caller.0.run, caller.0.slug),
        "created": spawned.created,
    });
    Ok((status, Json(answer)))
}

/// The input that carries an item of `--each`.
const ITEM_INPUT: &str = "item";
/// What stands for the item in the prompt of `--each`.
const ITEM_MARKS: [&str; 2] = ["{}", "${{ item }}"];

fn check_item(body: &SpawnBody, item: &str) -> Result<(), ApiError> {
    if item.trim().is_empty() || item.len() > 4096 {
        return Err(ApiError::invalid(
            "an item of --each is empty or longer than 4 KiB",
        ));
    }
    if !ITEM_MARKS.iter().any(|mark| body.prompt.contains(mark)) {
        return Err(ApiError::invalid(
            "with --each, put {} (or ${{ item }}) in the prompt where the item goes",
        ));
    }
    Ok(())
}

/// The child's one-agent flight, as top-level `murmur spawn` writes it. An item's marks become
/// a reference to the input that carries it.
fn one_agent_flight(body: &SpawnBody) -> String {
    let mut prompt = body.prompt.clone();
    let mut front = String::new();
    if body.item.is_some() {
        for mark in ITEM_MARKS {
            prompt = prompt.replace(mark, &format!("${{{{ inputs.{ITEM_INPUT} }}}}"));
        }
        front.push_str(&format!("inputs:\n  {ITEM_INPUT}:\n    required: true\n"));
    }
    murmur_parser::one_agent_flight(&murmur_parser::OneAgent {
        slug: &body.slug,
        prompt: &prompt,
        front: &front,
        runtime: body.runtime.as_deref(),
        on_idle: body.on_idle.as_deref(),
        persona: body.persona.as_deref(),
        model: body.model.as_deref(),
        out: body.out.as_deref(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(runtime: Option<&str>, prompt: &str) -> SpawnBody {
        SpawnBody {
            slug: "child-a".into(),
            prompt: prompt.into(),
            runtime: runtime.map(str::to_owned),
            persona: Some("tester".into()),
            model: None,
            out: None,
            on_idle: None,
            flight: None,
            inputs: Vec::new(),
            item: None,
            secrets: Vec::new(),
            base: None,
        }
    }

    #[test]
    fn every_flag_of_spawn_reaches_the_child_flight() {
        let mut all = body(Some("codex"), "Review it.");
        all.model = Some("gpt-5.5".into());
        all.out = Some("pr".into());
        all.on_idle = Some("keep-alive".into());
        let text = one_agent_flight(&all);
        let parsed = murmur_parser::parse(&text, "child-a");
        assert!(parsed.is_valid(), "{:?}\n{text}", parsed.diagnostics);
        let flight = parsed.flight.expect("flight");
        assert_eq!(flight.frontmatter.runtime, murmur_parser::Runtime::Codex);
        assert_eq!(flight.frontmatter.on_idle, murmur_parser::OnIdle::KeepAlive);
        let agent = &flight.agents[0];
        assert_eq!(agent.persona.as_deref(), Some("tester"));
        assert_eq!(agent.model.as_deref(), Some("gpt-5.5"));
        assert_eq!(agent.out.as_deref(), Some("pr"));
    }

    #[test]
    fn an_item_reaches_an_exec_child_as_a_quoted_variable() {
        let mut each = body(Some("exec"), "echo {} && echo ${{ item }}");
        each.item = Some("$(touch pwned)".into());
        let text = one_agent_flight(&each);
        let parsed = murmur_parser::parse(&text, "child-a");
        assert!(parsed.is_valid(), "{:?}\n{text}", parsed.diagnostics);
        let flight = parsed.flight.expect("flight");
        let command = flight.agents[0].command.clone().expect("command");
        assert_eq!(
            command,
            "echo ${{ inputs.item }} && echo ${{ inputs.item }}"
        );
        assert!(flight.frontmatter.inputs.contains_key("item"), "{text}");
        assert!(
            !text.contains("pwned"),
            "the item is not in the flight: {text}"
        );
    }

    #[test]
    fn a_prompt_with_headings_stays_one_agent() {
        let text = one_agent_flight(&body(None, "Fix it.\n## Steps\n1. reproduce"));
        let parsed = murmur_parser::parse(&text, "child-a");
        assert!(parsed.is_valid(), "{:?}", parsed.diagnostics);
        let flight = parsed.flight.expect("flight");
        assert_eq!(flight.agents.len(), 1);
        assert!(flight.agents[0].prompt.contains("## Steps"));
    }

    #[test]
    fn an_exec_child_runs_its_prompt_as_the_command() {
        let text = one_agent_flight(&body(Some("exec"), "echo hi\necho there"));
        let flight = murmur_parser::parse(&text, "child-a")
            .flight
            .expect("flight");
        assert_eq!(
            flight.agents[0].command.as_deref(),
            Some("echo hi echo there")
        );
    }
}
