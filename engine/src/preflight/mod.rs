//! Preflight: what a run would refuse, found before one is recorded. The parser checks a
//! flight on its own; these checks need the repository (its personas, its configuration) and
//! what each runtime requires. Findings name the directive they are about; located in the
//! source they are the parser's [`Diagnostic`]s, so that `flight validate` shows both in one
//! list and `flight run` refuses on the same findings. The machine's own state (a clean tree,
//! the agent CLIs, remotes) is [`machine`]'s.

mod agents;
mod locate;
pub mod machine;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use murmur_parser::{Agent, Code, Diagnostic, Flight, Severity, Source};

pub use agents::{Resolved, resolve};

/// What the checks know about where the flight runs.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The repository whose `.murmur/personas/` add to the built-ins; `None` for a flight
    /// outside any repository, which is checked against the built-ins and the defaults.
    pub repository: Option<PathBuf>,
    /// The pools of `.murmur/murmur.yaml` (`local` always exists). `None` where the
    /// configuration is not at hand, so pools go unchecked rather than wrongly refused.
    pub pools: Option<BTreeSet<String>>,
    /// Whether a check command (`checks.command`) is configured for the `ci` gate.
    pub check_command: bool,
}

impl Facts {
    /// What the engine knows by itself when it records a run: the repository and whether a
    /// check command is set, but not the pools, which are the configuration's.
    pub fn of_repository(repository: &Path, check_command: bool) -> Self {
        Self {
            repository: Some(repository.to_path_buf()),
            pools: None,
            check_command,
        }
    }
}

/// Which part of a `key: value` line a finding points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

/// Where a finding is, in terms of the flight rather than bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A top-level frontmatter key: a flight-wide setting, or what the root agent of a
    /// zero-agent flight says.
    Frontmatter { key: &'static str, part: Part },
    /// The first directive `key` of the section whose heading is on `line` and whose value
    /// contains `containing`.
    Directive {
        line: usize,
        key: &'static str,
        containing: &'static str,
        part: Part,
    },
    /// The heading of the section on `line`.
    Heading { line: usize },
}

impl Place {
    /// Where `agent` says `key`: its directive, or the frontmatter for the root agent.
    fn own(agent: &Agent, key: &'static str, part: Part) -> Self {
        if agent.line == 0 {
            Place::Frontmatter { key, part }
        } else {
            Place::Directive {
                line: agent.line,
                key,
                containing: "",
                part,
            }
        }
    }
}

/// One problem a run would meet, with how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    pub help: Option<String>,
    pub place: Place,
}

impl Finding {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The finding as a diagnostic of `source`, the text the flight was parsed from.
    pub fn locate(&self, source: &Source) -> Diagnostic {
        let span = locate::span(source, &self.place);
        let at = source.position(span.start);
        Diagnostic {
            severity: self.severity,
            code: self.code,
            message: self.message.clone(),
            line: at.line,
            column: at.column,
            help: self.help.clone(),
            span,
        }
    }
}

/// The errors among a flight's findings, as one error for callers that show no source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", summary(.0))]
pub struct Refused(pub Vec<Finding>);

fn summary(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| match &f.help {
            Some(help) => format!("{} ({help})", f.message),
            None => f.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `Err` with the errors when there are any; warnings never refuse a run.
pub fn refuse(findings: Vec<Finding>) -> Result<(), Refused> {
    let errors: Vec<Finding> = findings.into_iter().filter(|f| f.is_error()).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Refused(errors))
    }
}

/// Every problem a run of `agents` (the flight's, or its root agent) would meet here.
pub fn findings(flight: &Flight, agents: &[Agent], facts: &Facts) -> Vec<Finding> {
    let mut found = Findings::default();
    let resolved = resolve(flight, agents, facts);
    agents::check_personas(&resolved, facts, &mut found);
    if let Some(pools) = &facts.pools {
        agents::check_pools(flight, &resolved, pools, &mut found);
    }
    for agent in &resolved {
        agents::check_runtime(agent, facts, &mut found);
        agents::check_effects(agent, &mut found);
    }
    found.0
}

/// The findings of a run of `flight` as diagnostics of its `source`, sorted as the parser's.
pub fn check(flight: &Flight, source: &Source, facts: &Facts) -> Vec<Diagnostic> {
    let agents = crate::run::agents_of(flight);
    let mut diagnostics: Vec<Diagnostic> = findings(flight, &agents, facts)
        .iter()
        .map(|finding| finding.locate(source))
        .collect();
    sort(&mut diagnostics);
    diagnostics
}

/// The parser's order: by position, errors before warnings at one place.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.line, d.column, d.severity == Severity::Warning));
}

/// Findings, each once: agents inheriting one frontmatter value share its finding.
#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn push(&mut self, finding: Finding) {
        let seen = self
            .0
            .iter()
            .any(|f| f.code == finding.code && f.place == finding.place);
        if !seen {
            self.0.push(finding);
        }
    }

    fn error(&mut self, code: Code, place: Place, message: String, help: Option<String>) {
        self.push(Finding {
            severity: Severity::Error,
            code,
            message,
            help,
            place,
        });
    }

    fn warning(&mut self, code: Code, place: Place, message: String, help: Option<String>) {
        self.push(Finding {
            severity: Severity::Warning,
            code,
            message,
            help,
            place,
        });
    }
}

#[cfg(test)]
mod tests;
