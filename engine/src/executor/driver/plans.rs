//! How an attempt runs: its git workspace (branch, upstream branches to merge, what `out`
//! delivers) and its runtime (persona, model, the session to continue).

use murmur_attempt::CodingRuntime;
use murmur_parser::{Agent, Runtime};
use murmur_protocol::{CodingSpec, Delivered, PullRequestDraft, WorkspaceSpec};

use std::sync::Arc;

use super::Driver;
use crate::executor::Error;
use crate::executor::Placement;
use crate::persona::Persona;
use crate::run::{self, UpstreamResult};

/// A runtime, and what a coding agent needs to run on it.
pub(super) struct CodingPlan {
    pub runtime: Runtime,
    pub persona: Persona,
    pub model: Option<String>,
    pub resume: Option<String>,
    pub idle_timeout: std::time::Duration,
}

impl Driver<'_> {
    /// Every agent upstream of `index`, not just its direct `needs`: references may reach
    /// further up, and the prompt's results block picks the direct ones.
    pub(super) fn upstream_results(&self, index: usize) -> Vec<UpstreamResult> {
        let agents = self.model.agents();
        self.model
            .ancestors(index)
            .into_iter()
            .map(|up| &agents[up])
            .filter(|up| up.state.is_done())
            .map(|up| UpstreamResult {
                slug: up.slug.clone(),
                response: up.response.clone().unwrap_or_default(),
                branch: up.delivered.branch.clone(),
                commits: up.delivered.commits,
                prs: up.delivered.prs.clone(),
            })
            .collect()
    }

    /// How attempt `attempt` of agent `index` runs: its runtime, persona and the session to
    /// continue (coding agents), and its git workspace.
    pub(super) fn plans(
        &self,
        index: usize,
        attempt: u32,
    ) -> Result<(WorkspaceSpec, Option<(CodingRuntime, CodingSpec)>), Error> {
        let agent = &self.agents[index];
        let persona = run::persona_of(&self.flight, agent, &self.executor.repository)?;
        let runtime = run::runtime_of(&self.flight, agent, &persona);
        let coding = runtime != Runtime::Exec;
        let own = &self.model.agents()[index];
        let continued = agent
            .continues
            .as_deref()
            .and_then(|up| self.model.index_of(up));
        let extra = self.executor.extra_repositories();
        let (branch, merge, resume) = match continued {
            Some(up) => {
                let upstream = &self.model.agents()[up];
                let branch = upstream
                    .delivered
                    .branch
                    .clone()
                    .unwrap_or_else(|| self.branch_name(&self.agents[up]));
                let resume = own
                    .session_id
                    .clone()
                    .filter(|_| attempt > 1)
                    .or_else(|| upstream.session_id.clone());
                (branch, Vec::new(), resume)
            }
            None => {
                let resume = own.session_id.clone().filter(|_| attempt > 1);
                (
                    self.branch_name(agent),
                    self.upstream_branches(index),
                    resume,
                )
            }
        };
        let front = &self.flight.frontmatter;
        let workspace = WorkspaceSpec {
            repository: self.executor.repository.display().to_string(),
            base: self.executor.workspace.base.clone(),
            start: run::start_commit(self.event.as_ref()),
            worktree: self.worktree_name(index),
            plain: format!("{}/{}", self.row.id, agent.slug),
            branch,
            merge,
            // A template's own turn only plans its items; its instances deliver.
            out: match own.kind {
                crate::model::AgentKind::Template { .. } => None,
                _ => agent.out.clone().or_else(|| front.out.clone()),
            },
            pull_request: PullRequestDraft {
                id: format!(
                    "{}-{}",
                    self.row.id.get(..12).unwrap_or(&self.row.id),
                    agent.slug
                ),
                title: format!("{}: {}", self.flight.title, agent.slug),
            },
            required: coding,
            extra_merge: match (continued, extra.is_empty()) {
                (None, false) => self.every_upstream_branch(index),
                _ => Vec::new(),
            },
            extra,
            follow_base: self.executor.workspace.follow_base,
            origin: self.executor.workspace.origin().cloned(),
        };
        let plan = CodingPlan {
            runtime,
            persona,
            model: agent.model.clone().or_else(|| front.model.clone()),
            resume,
            idle_timeout: agent.idle_timeout.unwrap_or(front.idle_timeout).as_std(),
        };
        Ok((workspace, self.runtime_plan(plan)))
    }

    /// A coding runtime's turn, with the persona and model resolved; `None` for `exec`.
    pub(super) fn runtime_plan(&self, plan: CodingPlan) -> Option<(CodingRuntime, CodingSpec)> {
        let CodingPlan {
            runtime,
            persona,
            model,
            resume,
            idle_timeout,
        } = plan;
        let runtime = match runtime {
            Runtime::Exec => return None,
            Runtime::Claude => CodingRuntime::Claude,
            Runtime::Codex => CodingRuntime::Codex,
        };
        let spec = CodingSpec {
            model: model.or(persona.model),
            system_prompt: Some(persona.system_prompt).filter(|p| !p.is_empty()),
            allowed_tools: persona.allowed_tools,
            resume,
            idle_timeout_secs: idle_timeout.as_secs(),
        };
        Some((runtime, spec))
    }

    /// Where attempts of `pool` run: its registered placement, else this host's slots (made
    /// once per drive: it holds the machine's key).
    pub(super) fn placement_for(&mut self, pool: &str) -> Arc<dyn Placement> {
        if let Some(registered) = self.executor.placements.get(pool) {
            return registered;
        }
        let executor = self.executor;
        self.local
            .get_or_insert_with(|| executor.local_placement())
            .clone()
    }

    /// The pool the agent's attempts run on: its `pool` directive, else the flight's.
    pub(super) fn pool_of(&self, index: usize) -> String {
        crate::machine::agent_pool(&self.flight, &self.agents[index]).to_owned()
    }

    /// `murmur/<flight>/<run>/<slug>`, or the agent's `branch` directive.
    pub(super) fn branch_name(&self, agent: &Agent) -> String {
        match &agent.branch {
            Some(branch) => {
                let context = run::Context {
                    event: self.event.as_ref(),
                    run_id: &self.row.id,
                    flight_name: &self.row.flight,
                    inputs: &self.inputs,
                    upstream: &[],
                    item: None,
                };
                context.render(branch)
            }
            None => format!("murmur/{}/{}/{}", self.row.flight, self.row.id, agent.slug),
        }
    }

    /// The branches of this agent's `needs` that produced commits, in `needs` order.
    fn upstream_branches(&self, index: usize) -> Vec<String> {
        self.upstream_deliveries(index)
            .filter(|delivered| delivered.commits > 0)
            .filter_map(|delivered| delivered.branch.clone())
            .collect()
    }

    /// Every upstream branch, in `needs` order: for the other repositories of a
    /// multi-repository workspace, where an upstream may have committed though it did not in
    /// the first (whose commits alone are counted).
    fn every_upstream_branch(&self, index: usize) -> Vec<String> {
        self.upstream_deliveries(index)
            .filter_map(|delivered| delivered.branch.clone())
            .collect()
    }

    fn upstream_deliveries(&self, index: usize) -> impl Iterator<Item = &Delivered> {
        self.agents[index]
            .needs
            .iter()
            .filter_map(|slug| self.model.index_of(slug))
            .flat_map(|up| self.with_instances(up))
            .map(|up| &self.model.agents()[up].delivered)
    }

    /// Where an agent works: its own worktree, or for `continues` (also a chain of them) the
    /// worktree of the agent the conversation began with.
    pub(super) fn worktree_of(&self, index: usize) -> std::path::PathBuf {
        self.executor.work_root.join(self.worktree_name(index))
    }

    /// The worktree's folder below a machine's work root: `RUN/SLUG`.
    fn worktree_name(&self, index: usize) -> String {
        let mut root = index;
        while let Some(up) = self.agents[root]
            .continues
            .as_deref()
            .and_then(|slug| self.model.index_of(slug))
        {
            root = up;
        }
        let slug = &self.model.agents()[root].slug;
        format!("{}/{slug}", self.row.id)
    }

    /// An agent, or for a fan-out template its instances: whose branches downstream merges.
    fn with_instances(&self, index: usize) -> Vec<usize> {
        match self.model.instances(index) {
            [] => vec![index],
            instances => instances.to_vec(),
        }
    }
}
