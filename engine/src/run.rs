//! Preparing a run: which agents it has, its inputs, and each agent's prompt and script.

use std::collections::BTreeMap;
use std::path::Path;

use murmur_parser::reference::{Reference, UpstreamField, render};
use murmur_parser::script::{self, Bound};
use murmur_parser::{Agent, Flight, Runtime};
use sha2::{Digest, Sha256};

use crate::persona::Persona;

mod trigger;
pub use trigger::start_commit;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    #[error("unknown input `{name}`{}", known_list(.known))]
    UnknownInput { name: String, known: Vec<String> },
    #[error("missing required input `{0}`: pass --input {0}=VALUE")]
    MissingInput(String),
    #[error("`{0}` is not an input assignment: write NAME=VALUE")]
    Malformed(String),
    /// What `flight validate` reports against this repository, found before a run is recorded.
    #[error(transparent)]
    Refused(#[from] crate::preflight::Refused),
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "; this flight declares no inputs".to_owned()
    } else {
        format!("; this flight's inputs are: {}", known.join(", "))
    }
}

pub fn digest(source: &str) -> String {
    let hash = Sha256::digest(source.as_bytes());
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The agents a run executes: the sections, or the one root agent of a zero-agent flight.
pub fn agents_of(flight: &Flight) -> Vec<Agent> {
    if !flight.is_zero_agent() {
        return flight.agents.clone();
    }
    let front = &flight.frontmatter;
    let mut root = Agent::new(murmur_parser::graph::ROOT, 0);
    root.persona = Some(front.persona.clone());
    root.model = front.model.clone();
    root.out = front.out.clone();
    root.prompt = flight.notes.clone();
    vec![root]
}

/// The persona an agent runs as: its own, else the flight's.
pub fn persona_of(
    flight: &Flight,
    agent: &Agent,
    repository: &Path,
) -> Result<Persona, crate::persona::Error> {
    let name = agent
        .persona
        .as_deref()
        .unwrap_or(&flight.frontmatter.persona);
    crate::persona::resolve(repository, name)
}

/// The agent's runtime: its directive, else its persona's, else the flight's.
pub fn runtime_of(flight: &Flight, agent: &Agent, persona: &Persona) -> Runtime {
    agent
        .runtime
        .or(persona.runtime)
        .unwrap_or(flight.frontmatter.runtime)
}

/// Refuses, before anything is recorded, a run that preflight finds errors in: the checks
/// `flight validate` reports against the repository (personas, what runtimes and gates
/// need). Pools are the configuration's, checked by the caller that has it.
pub fn check_runnable(
    flight: &Flight,
    agents: &[Agent],
    repository: &Path,
    has_check_command: bool,
) -> Result<(), PrepareError> {
    let facts = crate::preflight::Facts::of_repository(repository, has_check_command);
    crate::preflight::refuse(crate::preflight::findings(flight, agents, &facts))?;
    Ok(())
}

/// One instance of a fan-out template: its own slug, and its `branch` with the item filled in.
/// Its prompt and script keep `{}` and `${{ item }}` as references, resolved when it starts
/// ([`Context::item`]): in a script the item must reach the shell as a variable, never as text.
pub fn instance_of(template: &Agent, slug: &str, item: &str) -> Agent {
    let mut instance = template.clone();
    instance.slug = slug.to_owned();
    instance.each = None;
    instance.branch = template
        .branch
        .as_deref()
        .map(|text| render(text, Some(item), |_| None));
    instance
}

/// `--input k=v` pairs checked against the flight's declared inputs, defaults filled in.
pub fn resolve_inputs(
    flight: &Flight,
    given: &[String],
) -> Result<BTreeMap<String, String>, PrepareError> {
    let declared = &flight.frontmatter.inputs;
    let mut values = BTreeMap::new();
    for pair in given {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| PrepareError::Malformed(pair.clone()))?;
        if !declared.contains_key(name) {
            return Err(PrepareError::UnknownInput {
                name: name.to_owned(),
                known: declared.keys().cloned().collect(),
            });
        }
        values.insert(name.to_owned(), value.to_owned());
    }
    for (name, spec) in declared {
        if values.contains_key(name) {
            continue;
        }
        match (&spec.default, spec.required) {
            (Some(default), _) => {
                values.insert(name.clone(), default.clone());
            }
            (None, true) => return Err(PrepareError::MissingInput(name.clone())),
            (None, false) => {}
        }
    }
    Ok(values)
}

/// What a finished upstream agent hands downstream.
pub use murmur_protocol::UpstreamResult;

/// Everything a reference can resolve to when an agent starts.
pub struct Context<'a> {
    pub run_id: &'a str,
    pub flight_name: &'a str,
    pub inputs: &'a BTreeMap<String, String>,
    pub upstream: &'a [UpstreamResult],
    /// The trigger's payload; `${{ event.PATH }}` reads from it.
    pub event: Option<&'a serde_json::Value>,
    /// A fan-out instance's item: `${{ item }}` and `{}`.
    pub item: Option<&'a str>,
}

impl Context<'_> {
    fn resolve(&self, reference: &Reference<'_>) -> Option<String> {
        match reference {
            Reference::Input(name) => Some(self.inputs.get(*name).cloned().unwrap_or_default()),
            Reference::Upstream { slug, field } => {
                let result = self.upstream.iter().find(|r| r.slug == *slug)?;
                Some(match field {
                    UpstreamField::Response => result.response.clone(),
                    UpstreamField::Branch => result.branch.clone().unwrap_or_default(),
                    UpstreamField::Prs => result.prs.join(" "),
                    UpstreamField::Commits => result.commits.to_string(),
                })
            }
            Reference::RunId => Some(self.run_id.to_owned()),
            Reference::FlightName => Some(self.flight_name.to_owned()),
            Reference::Event(path) => Some(event_field(self.event, path)),
            Reference::Item => self.item.map(str::to_owned),
        }
    }

    /// Values as plain text: for branch names and `each` lists, never for a shell.
    pub fn render(&self, text: &str) -> String {
        render(text, self.item, |reference| self.resolve(reference))
    }

    /// Values as text for a prompt, where text from the trigger payload (anyone who can open
    /// an issue writes it) comes fenced and labelled as untrusted.
    pub fn render_prompt(&self, text: &str) -> String {
        render(text, self.item, |reference| match reference {
            Reference::Event(path) => {
                let value = event_value(self.event, path);
                let text = event_field(self.event, path);
                match value {
                    Some(serde_json::Value::Number(_) | serde_json::Value::Bool(_)) | None => {
                        Some(text)
                    }
                    Some(_) => Some(trigger::fenced(&event_name(path), &text)),
                }
            }
            other => self.resolve(other),
        })
    }

    /// An `exec` agent's script with every reference bound to a `MURMUR_REF_<n>` variable
    /// (values reach the shell only as variables); `None` when the agent has no script.
    pub fn script(&self, agent: &Agent) -> Option<Result<Bound, script::Error>> {
        let text = script_of(agent)?;
        Some(script::bind(&text, self.item.is_some(), |reference| {
            self.resolve(reference)
        }))
    }
}

fn event_name(path: &[&str]) -> String {
    std::iter::once("event")
        .chain(path.iter().copied())
        .collect::<Vec<_>>()
        .join(".")
}

fn event_value<'v>(
    event: Option<&'v serde_json::Value>,
    path: &[&str],
) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(event?, |value, key| match value {
        serde_json::Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        other => other.get(key),
    })
}

/// A field of the trigger payload: text as it is, anything else as JSON, nothing when absent.
fn event_field(event: Option<&serde_json::Value>, path: &[&str]) -> String {
    match event_value(event, path) {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The full prompt: notes, the agent's own text, and the results of the agents it needs.
pub fn prompt_for(flight: &Flight, agent: &Agent, context: &Context<'_>) -> String {
    let mut prompt = String::new();
    if !flight.notes.is_empty() && !flight.is_zero_agent() {
        prompt.push_str(&context.render_prompt(&flight.notes));
        prompt.push_str("\n\n");
    }
    prompt.push_str(&context.render_prompt(&agent.prompt));
    let direct: Vec<&UpstreamResult> = context
        .upstream
        .iter()
        .filter(|r| agent.needs.contains(&r.slug))
        .collect();
    if !direct.is_empty() {
        prompt.push_str("\n\n## Results from upstream agents\n");
        for result in direct {
            prompt.push_str(&format!("\n### {}\n", result.slug));
            if let Some(branch) = &result.branch {
                prompt.push_str(&format!("Branch: {branch} ({} commits)\n", result.commits));
            }
            for pr in &result.prs {
                prompt.push_str(&format!("Pull request: {pr}\n"));
            }
            prompt.push_str(&format!("\n{}\n", result.response));
        }
    }
    prompt
}

/// The shell script of an `exec` agent: its `command`, else its first ```sh/bash block.
pub fn script_of(agent: &Agent) -> Option<String> {
    if let Some(command) = &agent.command {
        return Some(command.clone());
    }
    let mut lines = agent.prompt.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let fence = if trimmed.starts_with("```") {
            "```"
        } else if trimmed.starts_with("~~~") {
            "~~~"
        } else {
            continue;
        };
        let lang = trimmed
            .trim_start_matches(fence.chars().next().unwrap_or('`'))
            .trim();
        if !matches!(lang, "sh" | "bash" | "shell" | "console") {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.trim_start().starts_with(fence))
            .collect();
        return Some(body.join("\n"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flight(text: &str) -> Flight {
        let parsed = murmur_parser::parse(text, "t");
        assert!(parsed.is_valid(), "{:?}", parsed.diagnostics);
        parsed.flight.unwrap()
    }

    #[test]
    fn inputs_are_checked_and_defaulted() {
        let f = flight(
            "---\ninputs:\n  target: { required: true }\n  depth: { default: shallow }\n---\n# T\n\nx\n",
        );
        assert_eq!(
            resolve_inputs(&f, &[]),
            Err(PrepareError::MissingInput("target".into()))
        );
        let ok = resolve_inputs(&f, &["target=auth".into()]).unwrap();
        assert_eq!(ok["depth"], "shallow");
        let unknown = resolve_inputs(&f, &["targte=x".into()]).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unknown input `targte`; this flight's inputs are: depth, target"
        );
        assert_eq!(
            resolve_inputs(&f, &["x".into()]),
            Err(PrepareError::Malformed("x".into()))
        );
    }

    #[test]
    fn scripts_come_from_command_or_the_first_shell_block() {
        let f = flight(
            "# T\n\n## a\n> runtime: exec\n\nText.\n\n```python\nno\n```\n\n```sh\necho one\necho two\n```\n\n## b\n> command: make check\n",
        );
        assert_eq!(
            script_of(&f.agents[0]).as_deref(),
            Some("echo one\necho two")
        );
        assert_eq!(script_of(&f.agents[1]).as_deref(), Some("make check"));
    }

    #[test]
    fn prompts_carry_notes_references_and_upstream_results() {
        let f = flight(
            "---\ninputs:\n  goal: { default: speed }\n---\n# T\n\nNotes on ${{ inputs.goal }}.\n\n## plan\n\nPlan.\n\n## build\n> needs: plan\n\nBuild ${{ needs.plan.response }} in ${{ run.id }}.\n",
        );
        let inputs = BTreeMap::from([("goal".to_owned(), "speed".to_owned())]);
        let upstream = [UpstreamResult {
            slug: "plan".into(),
            response: "the plan".into(),
            ..UpstreamResult::default()
        }];
        let event = serde_json::json!({"issue": {"number": 7, "labels": [{"name": "bug"}]}});
        let context = Context {
            run_id: "r1",
            flight_name: "t",
            inputs: &inputs,
            upstream: &upstream,
            event: Some(&event),
            item: None,
        };
        assert_eq!(
            context.render(
                "#${{ event.issue.number }} ${{ event.issue.labels.0.name }} [${{ event.nope }}]"
            ),
            "#7 bug []"
        );
        let prompt = prompt_for(&f, &f.agents[1], &context);
        assert!(
            prompt.starts_with("Notes on speed.\n\nBuild the plan in r1."),
            "{prompt}"
        );
        assert!(
            prompt.contains("## Results from upstream agents\n\n### plan\n\nthe plan\n"),
            "{prompt}"
        );
    }
}
