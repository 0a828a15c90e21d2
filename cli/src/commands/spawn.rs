//! `murmur spawn SLUG PROMPT...`: one agent on a prompt, run like a flight of one section
//! (recorded, checkpointed, resumable, listed by `murmur ls`); `murmur spawn --flight NAME`
//! starts a flight.

use crate::Exit;
use crate::agent_cli::SpawnArgs;
use crate::cli::RunArgs;
use crate::commands::flight::Chosen;
use crate::commands::runs;
use crate::context::repository_for;

pub fn spawn(args: &SpawnArgs) -> anyhow::Result<Exit> {
    if let Some(flight) = &args.flight {
        return runs::start(&RunArgs {
            flight: flight.clone(),
            inputs: Vec::new(),
            detach: args.detach,
            json: args.json,
            db: args.db.clone(),
            server: None,
            workspace: None,
        });
    }
    let slug = args.slug.clone().unwrap_or_default();
    if !murmur_parser::is_slug(&slug) {
        eprintln!(
            "error: `{slug}` is not a slug: use lowercase letters, digits and `-` (for example `{}`)",
            murmur_parser::slugify(&slug, 63)
        );
        return Ok(Exit::Usage);
    }
    let prompt = args.prompt.join(" ");
    if prompt.trim().is_empty() {
        eprintln!("error: give the agent a prompt: murmur spawn {slug} WHAT TO DO");
        return Ok(Exit::Usage);
    }
    let source = flight_text(&slug, &prompt, args);
    let parsed = murmur_parser::parse(&source, &slug);
    let flight = match parsed
        .flight
        .filter(|_| parsed.diagnostics.iter().all(|d| !d.is_error()))
    {
        Some(flight) => flight,
        None => {
            for diagnostic in &parsed.diagnostics {
                eprintln!("error: {}", diagnostic.message);
            }
            return Ok(Exit::Usage);
        }
    };
    let chosen = Chosen {
        name: slug,
        source,
        flight,
        path: None,
        repo: repository_for(None),
    };
    runs::start_chosen(&chosen, &[], args.detach, args.json, &args.db)
}

/// A one-section flight. The prompt's lines that start with `#` are escaped, so that none of
/// them becomes a heading of the flight.
fn flight_text(slug: &str, prompt: &str, args: &SpawnArgs) -> String {
    let mut text = String::new();
    if let Some(runtime) = &args.runtime {
        text.push_str(&format!("---\nruntime: {runtime}\n---\n\n"));
    }
    text.push_str(&format!("# {slug}\n\n## {slug}\n"));
    for (key, value) in [("persona", &args.persona), ("model", &args.model)] {
        if let Some(value) = value {
            text.push_str(&format!("> {key}: {value}\n"));
        }
    }
    if args.runtime.as_deref() == Some("exec") {
        text.push_str(&format!("> command: {}\n", prompt.replace('\n', " ")));
        return text;
    }
    text.push('\n');
    for line in prompt.lines() {
        if line.trim_start().starts_with('#') {
            text.push('\\');
        }
        text.push_str(line);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(runtime: Option<&str>) -> SpawnArgs {
        SpawnArgs {
            slug: Some("fixer".into()),
            prompt: Vec::new(),
            flight: None,
            runtime: runtime.map(str::to_owned),
            persona: Some("tester".into()),
            model: None,
            out: None,
            on_idle: None,
            inputs: Vec::new(),
            detach: false,
            json: false,
            db: crate::cli::DbArgs { db: None },
        }
    }

    #[test]
    fn a_prompt_with_headings_stays_one_agent() {
        let text = flight_text("fixer", "Fix the bug.\n## Steps\n1. reproduce", &args(None));
        let parsed = murmur_parser::parse(&text, "fixer");
        assert!(parsed.is_valid(), "{:?}", parsed.diagnostics);
        let flight = parsed.flight.expect("flight");
        assert_eq!(flight.agents.len(), 1);
        assert_eq!(flight.agents[0].persona.as_deref(), Some("tester"));
        assert!(
            flight.agents[0].prompt.contains("## Steps"),
            "{}",
            flight.agents[0].prompt
        );
    }

    #[test]
    fn an_exec_agent_runs_the_prompt_as_its_command() {
        let text = flight_text("fixer", "make test", &args(Some("exec")));
        let flight = murmur_parser::parse(&text, "fixer").flight.expect("flight");
        assert_eq!(flight.agents[0].command.as_deref(), Some("make test"));
    }
}
