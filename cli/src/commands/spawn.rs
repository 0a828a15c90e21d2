//! `murmur spawn SLUG PROMPT...`: one agent on a prompt, run like a flight of one section
//! (recorded, checkpointed, resumable, listed by `murmur ls`); `murmur spawn --flight NAME`
//! starts a flight.

use murmur_engine::children;
use murmur_engine::executor::{self, StartRequest};

use crate::Exit;
use crate::agent_cli::SpawnArgs;
use crate::cli::RunArgs;
use crate::commands::flight::{self, Chosen};
use crate::commands::{follow, runs};
use crate::context::{block_on, database_url, executor, repository_for};
use crate::output::emit_line;

pub fn spawn(args: &SpawnArgs) -> anyhow::Result<Exit> {
    if args.each {
        eprintln!(
            "error: murmur spawn --each makes children of an agent, and runs outside one; here, fan out with `> each:` in a flight"
        );
        return Ok(Exit::Usage);
    }
    if let Some(flight) = &args.flight {
        if args.base.is_some() {
            eprintln!(
                "error: --base starts one agent from a branch; for a flight, use `murmur flight run NAME --server URL --base BRANCH`"
            );
            return Ok(Exit::Usage);
        }
        if !args.secrets.is_empty() {
            eprintln!(
                "error: -e gives one agent a secret; for a whole flight, name the secrets in `secrets:` of .murmur/murmur.yaml"
            );
            return Ok(Exit::Usage);
        }
        return runs::start(&RunArgs {
            flight: flight.clone(),
            inputs: args.inputs.clone(),
            detach: args.detach,
            json: args.json,
            db: args.db.clone(),
            server: None,
            workspace: None,
            base: None,
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
    if !args.secrets.is_empty() || args.base.is_some() {
        return start_granted(&chosen, args);
    }
    runs::start_chosen(&chosen, &[], args.detach, args.json, &args.db)
}

/// As `runs::start_chosen`, with the run's agents given `-e` secrets for its lifetime and
/// started from `--base`.
fn start_granted(chosen: &Chosen, args: &SpawnArgs) -> anyhow::Result<Exit> {
    if let Err(exit) = flight::preflight(chosen)? {
        return Ok(exit);
    }
    let repo = &chosen.repo;
    block_on(async {
        let executor = executor(&args.db, repo).await?;
        let request = StartRequest {
            flight_name: &chosen.name,
            flight_path: None,
            source: &chosen.source,
            flight: &chosen.flight,
            inputs: &[],
            event: None,
        };
        let base = args.base.as_deref();
        let id = match executor.create_granted(&request, &args.secrets, base).await {
            Ok(id) => id,
            Err(
                error @ (children::Error::UnknownSecret(_)
                | children::Error::BadSecret(_)
                | children::Error::Executor(
                    executor::Error::Prepare(_) | executor::Error::Workspace(_),
                )),
            ) => {
                eprintln!("error: {error}");
                return Ok(Exit::Usage);
            }
            Err(error) => return Err(error.into()),
        };
        if args.detach {
            runs::detach(&id, &database_url(&args.db, repo)?, repo)?;
            emit_line(&id);
            return Ok(Exit::Success);
        }
        eprintln!("run {id} of {} (1 agent)", chosen.name);
        follow::drive(&executor, &id, args.json).await
    })
}

/// The one-agent flight of a top-level spawn.
fn flight_text(slug: &str, prompt: &str, args: &SpawnArgs) -> String {
    murmur_parser::one_agent_flight(&murmur_parser::OneAgent {
        slug,
        prompt,
        runtime: args.runtime.as_deref(),
        on_idle: args.on_idle.as_deref(),
        persona: args.persona.as_deref(),
        model: args.model.as_deref(),
        out: args.out.as_deref(),
        ..Default::default()
    })
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
            each: false,
            secrets: Vec::new(),
            base: None,
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
