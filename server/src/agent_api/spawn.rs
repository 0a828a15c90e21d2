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
    let (name, source) = match &body.flight {
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
        inputs: &body.inputs,
    };
    let spawned = api
        .executor
        .spawn_child(&caller.0, &request, &api.limits)
        .await
        .map_err(child_error)?;
    if spawned.created {
        (api.drive)(spawned.child.run_id.clone());
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

/// A one-section flight, as top-level `murmur spawn` writes it: the prompt's lines that start
/// with `#` are escaped, so that none of them becomes a heading; an `exec` child runs the
/// prompt as its command.
fn one_agent_flight(body: &SpawnBody) -> String {
    let slug = &body.slug;
    let mut front = String::new();
    for (key, value) in [("runtime", &body.runtime), ("on_idle", &body.on_idle)] {
        if let Some(value) = value {
            front.push_str(&format!("{key}: {}\n", yaml_scalar(value)));
        }
    }
    let mut text = String::new();
    if !front.is_empty() {
        text.push_str(&format!("---\n{front}---\n\n"));
    }
    text.push_str(&format!("# {slug}\n\n## {slug}\n"));
    for (key, value) in [
        ("persona", &body.persona),
        ("model", &body.model),
        ("out", &body.out),
    ] {
        if let Some(value) = value {
            text.push_str(&format!("> {key}: {}\n", value.replace('\n', " ")));
        }
    }
    if body.runtime.as_deref() == Some("exec") {
        text.push_str(&format!("> command: {}\n", body.prompt.replace('\n', " ")));
        return text;
    }
    text.push('\n');
    for line in body.prompt.lines() {
        if line.trim_start().starts_with('#') {
            text.push('\\');
        }
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// A value as a quoted YAML scalar, so that no value becomes YAML structure.
fn yaml_scalar(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_default()
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
        }
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
