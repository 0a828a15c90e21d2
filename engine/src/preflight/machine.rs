//! The machine's part of preflight: what a run needs of this host and its checkout (a clean
//! tree, the agent CLIs, an `origin` for `out: push`), checked before a run is recorded so
//! that an unusable machine is refused instead of recorded as a failed run.

use std::collections::HashSet;
use std::path::Path;

use murmur_parser::{Flight, Gate, Runtime};
use murmur_runtime::find_program;
use murmur_runtime::workspace::{self, Repository};

use super::{Facts, Resolved, resolve};
use crate::persona;

/// What this host offers the run.
pub struct Host<'a> {
    /// The checkout agents branch from (or the plain folder `exec` agents work in).
    pub repository: &'a Path,
    pub claude: &'a Path,
    pub codex: &'a Path,
    /// Whether a GitHub token is at hand, for `out: pr` on a GitHub remote.
    pub github_token: bool,
}

/// One reason the run cannot start here: what, where, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the Claude Code CLI `{binary}` was not found (agent `{slug}` runs on claude): install it (`npm install -g @anthropic-ai/claude-code`), or name it in `runtimes.claude.binary` of .murmur/murmur.yaml or in MURMUR_CLAUDE_BIN"
    )]
    NoClaude { slug: String, binary: String },
    #[error(
        "the Codex CLI `{binary}` was not found (agent `{slug}` runs on codex): install it (`npm install -g @openai/codex`), or name it in `runtimes.codex.binary` of .murmur/murmur.yaml or in MURMUR_CODEX_BIN"
    )]
    NoCodex { slug: String, binary: String },
    #[error("{repository}: {reason}")]
    Dirty { repository: String, reason: String },
    #[error(
        "agent `{slug}` runs on {runtime}, which works in a git worktree, but {reason}: run it inside a git repository with a commit on its branch"
    )]
    NoRepository {
        slug: String,
        runtime: &'static str,
        reason: String,
    },
    #[error("cannot use the repository at {repository}: {reason}")]
    Unusable { repository: String, reason: String },
    #[error(
        "agent `{slug}` has `out: push`, but the repository at {repository} has no remote named `origin`: add one (`git remote add origin URL`) or use `out: pr` for a local pull request"
    )]
    NoOrigin { slug: String, repository: String },
    #[error(
        "agent `{slug}` has `out: pr` on the GitHub repository {owner}/{repo}, which needs a token: set GITHUB_TOKEN (or MURMUR_GITHUB_TOKEN)"
    )]
    NoToken {
        slug: String,
        owner: String,
        repo: String,
    },
}

/// Everything about this host that would fail the run once started, in the order a
/// person fixes them: the CLIs, then the checkout.
pub async fn check(flight: &Flight, facts: &Facts, host: &Host<'_>) -> Vec<Refusal> {
    let resolved = resolve(flight, &crate::run::agents_of(flight), facts);
    let mut refusals = missing_clis(flight, &resolved, facts, host);
    refusals.extend(checkout(flight, &resolved, host).await);
    refusals
}

/// Each coding runtime the run uses, once, with the first agent that uses it.
fn missing_clis(
    flight: &Flight,
    resolved: &[Resolved],
    facts: &Facts,
    host: &Host<'_>,
) -> Vec<Refusal> {
    let reviewer = reviewer_runtime_of_persona(facts);
    let mut seen = HashSet::new();
    let mut refusals = Vec::new();
    for agent in resolved {
        let mut runtimes = vec![agent.runtime];
        if agent.agent.gate.contains(&Gate::Review) {
            runtimes.push(reviewer_runtime(flight, agent, reviewer));
        }
        for runtime in runtimes {
            let binary = match runtime {
                Runtime::Exec => continue,
                Runtime::Claude => host.claude,
                Runtime::Codex => host.codex,
            };
            if !seen.insert(runtime) || find_program(binary).is_some() {
                continue;
            }
            let (slug, binary) = (agent.agent.slug.clone(), binary.display().to_string());
            refusals.push(match runtime {
                Runtime::Codex => Refusal::NoCodex { slug, binary },
                _ => Refusal::NoClaude { slug, binary },
            });
        }
    }
    refusals
}

fn reviewer_runtime_of_persona(facts: &Facts) -> Option<Runtime> {
    let repository = facts.repository.as_deref()?;
    persona::resolve(repository, "reviewer").ok()?.runtime
}

/// The `review` gate's reviewer runs on the `reviewer` persona's runtime, else the agent's
/// or the flight's coding runtime, else Claude Code (as the executor starts it).
fn reviewer_runtime(flight: &Flight, agent: &Resolved, persona: Option<Runtime>) -> Runtime {
    [
        persona,
        agent.agent.runtime,
        Some(flight.frontmatter.runtime),
    ]
    .into_iter()
    .flatten()
    .find(|runtime| *runtime != Runtime::Exec)
    .unwrap_or(Runtime::Claude)
}

/// The checkout every attempt branches from: a repository for coding agents, clean (a new
/// worktree refuses uncommitted changes), and the remotes `out` delivers to.
async fn checkout(flight: &Flight, resolved: &[Resolved], host: &Host<'_>) -> Vec<Refusal> {
    let shown = host.repository.display().to_string();
    let repository = match Repository::open(host.repository, None).await {
        Ok(repository) => repository,
        Err(workspace::Error::NotARepository(_) | workspace::Error::NoBase(_))
            if resolved.iter().all(|a| a.runtime == Runtime::Exec) =>
        {
            // `exec` agents then work in plain folders: nothing to branch from, nothing to push.
            return Vec::new();
        }
        Err(error @ (workspace::Error::NotARepository(_) | workspace::Error::NoBase(_))) => {
            let coding = resolved.iter().find(|a| a.runtime != Runtime::Exec);
            return coding
                .map(|agent| Refusal::NoRepository {
                    slug: agent.agent.slug.clone(),
                    runtime: if agent.runtime == Runtime::Codex {
                        "codex"
                    } else {
                        "claude"
                    },
                    reason: error.to_string(),
                })
                .into_iter()
                .collect();
        }
        Err(error) => {
            return vec![Refusal::Unusable {
                repository: shown,
                reason: error.to_string(),
            }];
        }
    };
    let mut refusals = Vec::new();
    if let Err(error) = repository.ensure_clean().await {
        refusals.push(Refusal::Dirty {
            repository: shown.clone(),
            reason: error.to_string(),
        });
    }
    refusals.extend(remotes(flight, resolved, &repository, host).await);
    refusals
}

/// `out: push` needs `origin`; `out: pr` on a GitHub `origin` needs a token.
async fn remotes(
    flight: &Flight,
    resolved: &[Resolved],
    repository: &Repository,
    host: &Host<'_>,
) -> Vec<Refusal> {
    let out_of = |agent: &Resolved| {
        agent
            .agent
            .out
            .clone()
            .or_else(|| flight.frontmatter.out.clone())
    };
    let origin = match repository.remote_url("origin").await {
        Ok(origin) => origin,
        Err(error) => {
            return vec![Refusal::Unusable {
                repository: repository.root.display().to_string(),
                reason: error.to_string(),
            }];
        }
    };
    let github = origin
        .as_deref()
        .and_then(murmur_runtime::github::repository_of);
    let mut refusals = Vec::new();
    for agent in resolved {
        let slug = agent.agent.slug.clone();
        match (out_of(agent).as_deref(), &origin, &github) {
            (Some("push"), None, _) => refusals.push(Refusal::NoOrigin {
                slug,
                repository: repository.root.display().to_string(),
            }),
            (Some("pr"), Some(_), Some((owner, repo))) if !host.github_token => {
                refusals.push(Refusal::NoToken {
                    slug,
                    owner: owner.clone(),
                    repo: repo.clone(),
                });
            }
            _ => {}
        }
    }
    refusals.dedup_by(|a, b| matches!((a, b), (Refusal::NoToken { .. }, Refusal::NoToken { .. })));
    refusals
}
