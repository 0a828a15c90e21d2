//! The checks of each agent against the repository: its persona, its pool, what its runtime
//! needs (a command, a planning agent, a check command) and directives its runtime ignores.

use std::collections::BTreeSet;

use murmur_parser::{Agent, Code, FanOut, Flight, Gate, Runtime, did_you_mean};

use super::{Facts, Findings, Part, Place};
use crate::persona::{self, BUILTIN_NAMES, Persona};
use crate::run;

/// An agent of a run with what it resolves to here.
#[derive(Debug)]
pub struct Resolved {
    pub agent: Agent,
    pub persona_name: String,
    /// The persona, or why there is none.
    pub persona: Result<Persona, persona::Error>,
    /// Its directive, else its persona's, else the flight's (without a persona: the two).
    pub runtime: Runtime,
}

/// `agents` of `flight`, each with its persona and runtime as a run would resolve them.
pub fn resolve(flight: &Flight, agents: &[Agent], facts: &Facts) -> Vec<Resolved> {
    agents
        .iter()
        .map(|agent| {
            let name = agent
                .persona
                .clone()
                .unwrap_or_else(|| flight.frontmatter.persona.clone());
            let persona = persona_named(&name, facts);
            let runtime = match &persona {
                Ok(persona) => run::runtime_of(flight, agent, persona),
                Err(_) => agent.runtime.unwrap_or(flight.frontmatter.runtime),
            };
            Resolved {
                agent: agent.clone(),
                persona_name: name,
                persona,
                runtime,
            }
        })
        .collect()
}

fn persona_named(name: &str, facts: &Facts) -> Result<Persona, persona::Error> {
    let unknown = || persona::Error::Unknown {
        name: name.to_owned(),
        defined: Vec::new(),
    };
    // A name is a file stem: anything else would read a file outside `.murmur/personas/`.
    let file_stem = !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    match &facts.repository {
        Some(repository) if file_stem => persona::resolve(repository, name),
        _ => persona::builtin(name).ok_or_else(unknown),
    }
}

/// Where an agent's setting comes from: its own directive, else the frontmatter.
fn setting(agent: &Agent, own: bool, key: &'static str) -> Place {
    if own {
        Place::own(agent, key, Part::Value)
    } else {
        Place::Frontmatter {
            key,
            part: Part::Value,
        }
    }
}

pub(super) fn check_personas(resolved: &[Resolved], facts: &Facts, found: &mut Findings) {
    for agent in resolved {
        let Err(error) = &agent.persona else {
            continue;
        };
        let place = setting(&agent.agent, agent.agent.persona.is_some(), "persona");
        match error {
            persona::Error::Unknown { .. } => found.error(
                Code::UnknownPersona,
                place,
                format!("unknown persona `{}`", agent.persona_name),
                Some(persona_help(&agent.persona_name, facts)),
            ),
            // The YAML error's first line says what is wrong; its snippet is of another file.
            _ => found.error(
                Code::InvalidPersona,
                place,
                error
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                Some("fix the persona file, or name another persona".to_owned()),
            ),
        }
    }
}

fn persona_help(name: &str, facts: &Facts) -> String {
    let defined = facts
        .repository
        .as_deref()
        .map(persona::defined)
        .unwrap_or_default();
    let known: Vec<&str> = BUILTIN_NAMES
        .iter()
        .copied()
        .chain(defined.iter().map(String::as_str))
        .collect();
    let close = did_you_mean(name, known.iter().copied()).or_else(|| {
        // `murmur-programmer` is no typo of `programmer`, but surely means it.
        known
            .iter()
            .copied()
            .filter(|known| name.contains(known))
            .max_by_key(|known| known.len())
    });
    let mut help = close
        .map(|close| format!("did you mean `{close}`? "))
        .unwrap_or_default();
    help.push_str(&format!(
        "personas are the built-ins ({}) and the repository's `.murmur/personas/NAME.md` files",
        BUILTIN_NAMES.join(", ")
    ));
    help.push_str(&match (&facts.repository, defined.is_empty()) {
        (None, _) => "; this flight is outside any repository, so only the built-ins exist".into(),
        (Some(_), true) => " (this repository defines none)".into(),
        (Some(_), false) => format!(" (this repository defines {})", defined.join(", ")),
    });
    help
}

pub(super) fn check_pools(
    flight: &Flight,
    resolved: &[Resolved],
    pools: &BTreeSet<String>,
    found: &mut Findings,
) {
    let mut known: BTreeSet<&str> = pools.iter().map(String::as_str).collect();
    known.insert(murmur_parser::DEFAULT_POOL);
    let front = flight.frontmatter.pool();
    if !known.contains(front) {
        let place = Place::Frontmatter {
            key: "pool",
            part: Part::Value,
        };
        unknown_pool(found, &known, front, place);
    }
    for agent in resolved {
        let Some(pool) = &agent.agent.pool else {
            continue;
        };
        if !known.contains(pool.as_str()) {
            let place = Place::own(&agent.agent, "pool", Part::Value);
            unknown_pool(found, &known, pool, place);
        }
    }
}

fn unknown_pool(found: &mut Findings, known: &BTreeSet<&str>, name: &str, place: Place) {
    let close = did_you_mean(name, known.iter().copied())
        .map(|close| format!("did you mean `{close}`? "))
        .unwrap_or_default();
    let names: Vec<&str> = known.iter().copied().collect();
    found.error(
        Code::UnknownPool,
        place,
        format!("unknown pool `{name}`"),
        Some(format!(
            "{close}the pools are {}: `local` always exists, the others come from `pools:` in .murmur/murmur.yaml",
            names.join(", ")
        )),
    );
}

/// What the agent's runtime needs: a command for `exec`, a coding agent to plan a described
/// fan-out, a check command for the `ci` gate.
pub(super) fn check_runtime(resolved: &Resolved, facts: &Facts, found: &mut Findings) {
    let agent = &resolved.agent;
    let exec = resolved.runtime == Runtime::Exec;
    if exec && matches!(agent.fan_out(), Some(FanOut::Describe(_))) {
        found.error(
            Code::PlanningNeedsCodingAgent,
            Place::own(agent, "each", Part::Value),
            format!("agent `{}` fans out over a description, which a planning agent turns into a list, but it runs `exec`", agent.slug),
            Some("give an inline list (`each: [a, b]`), a reference (`each: ${{ needs.plan.response }}`), or a claude/codex runtime".to_owned()),
        );
    }
    if !facts.check_command && agent.gate.contains(&Gate::Ci) {
        check_command_missing(agent, facts, found);
    }
    if exec && run::script_of(agent).is_none() {
        let place = match agent.line {
            0 => Place::Frontmatter {
                key: "runtime",
                part: Part::Key,
            },
            line => Place::Heading { line },
        };
        found.error(
            Code::MissingCommand,
            place,
            format!("{} runs `exec` but has no command", who(agent)),
            Some(
                "give it a fenced ```sh block or a `command` directive, or a claude/codex runtime"
                    .to_owned(),
            ),
        );
    }
}

fn check_command_missing(agent: &Agent, facts: &Facts, found: &mut Findings) {
    let place = Place::Directive {
        line: agent.line,
        key: "gate",
        containing: "ci",
        part: Part::Value,
    };
    let message = format!(
        "agent `{}` has a `ci` gate, but the workspace has no check command: set `checks.command` in .murmur/murmur.yaml (for example `cargo test`)",
        agent.slug
    );
    match facts.repository {
        Some(_) => found.error(Code::MissingCheckCommand, place, message, None),
        // Which repository it will run in, and so its check command, is not known yet.
        None => found.warning(
            Code::MissingCheckCommand,
            place,
            message,
            Some("this flight is outside any repository: the one it runs in must set `checks.command`".to_owned()),
        ),
    }
}

/// Directives the agent's runtime ignores, each said once where it is written.
pub(super) fn check_effects(resolved: &Resolved, found: &mut Findings) {
    let agent = &resolved.agent;
    let slug = who(agent);
    let mut ignored: Vec<(&'static str, String, &str)> = Vec::new();
    if resolved.runtime != Runtime::Exec {
        if agent.command.is_some() {
            let runtime = runtime_name(resolved.runtime);
            ignored.push(("command", format!("`command` has no effect on {slug}: it runs `{runtime}`, which works on the prompt; only `exec` agents run a command"),
                "add `runtime: exec` to run the command, or remove it"));
        }
    } else {
        if agent.model.is_some() {
            ignored.push((
                "model",
                format!(
                    "`model` has no effect on {slug}: it runs `exec`, a shell command, not a model"
                ),
                "remove it, or give the agent a claude/codex runtime",
            ));
        }
        // A `review` gate's reviewer is a coding agent, and it takes the agent's idle timeout.
        if agent.idle_timeout.is_some() && !agent.gate.contains(&Gate::Review) {
            ignored.push(("idle_timeout", format!("`idle_timeout` has no effect on {slug}: it runs `exec`, and only coding agents are stopped after silence"),
                "bound the command with `timeout` instead"));
        }
        // A persona that itself says `runtime: exec` is what makes the agent `exec`; the
        // root agent's persona is always set (`programmer` by default), so it is not judged.
        let chose_exec = agent.runtime.is_none()
            && matches!(&resolved.persona, Ok(p) if p.runtime == Some(Runtime::Exec));
        if agent.line > 0 && agent.persona.is_some() && resolved.persona.is_ok() && !chose_exec {
            ignored.push(("persona", format!("`persona` has no effect on {slug}: it runs `exec`, and a persona's prompt, model and tools are for coding agents"),
                "remove it, or give the agent a claude/codex runtime"));
        }
    }
    for (key, message, help) in ignored {
        let place = Place::own(agent, key, Part::Key);
        found.warning(Code::NoEffect, place, message, Some(help.to_owned()));
    }
}

/// How messages name an agent; the root agent of a zero-agent flight is the flight itself.
fn who(agent: &Agent) -> String {
    if agent.line == 0 {
        "this flight (it has no agent sections)".to_owned()
    } else {
        format!("agent `{}`", agent.slug)
    }
}

fn runtime_name(runtime: Runtime) -> &'static str {
    Runtime::ALL
        .iter()
        .find(|(_, r)| *r == runtime)
        .map_or("claude", |(name, _)| name)
}
