//! The effects the driver performs once their events are committed: starting an attempt
//! (an agent's turn, a follow-up, or a fan-out template resolving its items) and checking a gate.

use murmur_parser::{Agent, FanOut, OnIdle, Runtime};
use murmur_protocol::{AttemptKey, AttemptSpec, CheckSpec, EnvironmentSpec, Reviewer, RuntimeSpec};
use murmur_runtime::workspace::Repository;

use super::Driver;
use super::plans::CodingPlan;
use crate::event::GateKind;
use crate::executor::Error;
use crate::executor::gates::{self, CheckWork, GateCheck, MergeCheck, PlacedCheck};
use crate::executor::launch::{self, Launch, Message, Recorder};
use crate::model::AgentKind;
use crate::run::{self, Context};

impl Driver<'_> {
    /// The effect of a committed `AgentStarted`.
    pub(super) fn start(&mut self, index: usize, attempt: u32) -> Result<(), Error> {
        let planning = match self.agents[index].fan_out() {
            Some(FanOut::FromValue(_)) => return self.resolve_items(index, attempt),
            Some(FanOut::Describe(description)) => Some(planner(&self.agents[index], &description)),
            _ => None,
        };
        let (workspace, coding) = self.plans(index, attempt)?;
        let pool = self.pool_of(index);
        let placement = self.placement_for(&pool);
        let request = Launch {
            index,
            attempt,
            agent: planning.as_ref().unwrap_or(&self.agents[index]),
            flight: &self.flight,
            run_id: &self.row.id,
            flight_name: &self.row.flight,
            inputs: &self.inputs,
            event: self.event.as_ref(),
            item: match &self.model.agents()[index].kind {
                AgentKind::Instance { item, .. } => Some(item),
                _ => None,
            },
            upstream: self.upstream_results(index),
            follow_up: self.model.agents()[index].follow_up.clone(),
            workspace,
            coding,
            identity: self.executor.identity.as_ref(),
            tenant: self.executor.store.tenant(),
            affinity: self.affinity_of(index),
            claims: self.executor.placements.claims.of(&pool),
        };
        let recorder = Recorder {
            store: self.executor.store.clone(),
            clock: self.executor.clock.clone(),
        };
        let environment = &self.environment;
        let stop = launch::launch(
            request,
            placement,
            environment,
            recorder,
            self.sender.clone(),
        )?;
        self.stops.insert(index, stop);
        Ok(())
    }

    /// `each: ${{ needs.plan.response }}`: the list is the rendered value, read as a JSON
    /// array or one item a line; reported like an attempt's answer.
    fn resolve_items(&mut self, index: usize, attempt: u32) -> Result<(), Error> {
        let each = self.agents[index].each.clone().unwrap_or_default();
        let upstream = self.upstream_results(index);
        let response = self.context(&upstream).render(&each);
        let _ = self.sender.send(Message::Exited {
            index,
            attempt,
            result: Ok(murmur_protocol::Finished {
                response,
                delivered: Default::default(),
                local_pull_request: None,
                verdict: None,
            }),
        });
        Ok(())
    }

    pub(super) fn context<'a>(&'a self, upstream: &'a [run::UpstreamResult]) -> Context<'a> {
        Context {
            event: self.event.as_ref(),
            run_id: &self.row.id,
            flight_name: &self.row.flight,
            inputs: &self.inputs,
            upstream,
            item: None,
        }
    }

    /// The effect of a committed `GateOpened` the engine checks itself.
    pub(super) fn start_check(&mut self, index: usize, attempt: u32, gate: GateKind) {
        let work = match gate {
            GateKind::Merge => CheckWork::Merge(Box::new(self.merge_check(index, attempt))),
            _ => match self.check_on_machine(index, attempt, gate) {
                Ok(placed) => CheckWork::Placed(Box::new(placed)),
                Err(reason) => CheckWork::Broken(reason),
            },
        };
        let check = GateCheck {
            index,
            attempt,
            gate,
            work,
        };
        let stop = gates::check(check, self.sender.clone());
        self.stops.insert(index, stop);
    }

    /// A `ci` or `review` check as the agent's pool runs it: an attempt on the agent's branch
    /// and worktree whose runtime is the check, sent where the agent's workspace is.
    fn check_on_machine(
        &mut self,
        index: usize,
        attempt: u32,
        gate: GateKind,
    ) -> Result<PlacedCheck, String> {
        let own = &self.model.agents()[index];
        let slug = own.slug.clone();
        let branch = own.delivered.branch.clone().ok_or_else(|| {
            format!("the `{gate}` gate needs the agent's git branch, and agent `{slug}` has none (is the flight in a git repository?)")
        })?;
        let check = match gate {
            GateKind::Review => {
                let reviewer = match self.reviewer_plan(&self.agents[index]) {
                    Some((murmur_attempt::CodingRuntime::Claude, spec)) => Reviewer::Claude(spec),
                    Some((murmur_attempt::CodingRuntime::Codex, spec)) => Reviewer::Codex(spec),
                    None => return Err("the `review` gate needs a coding-agent runtime (claude or codex) for its reviewer; set `runtime` on the `reviewer` persona or the flight".to_owned()),
                };
                CheckSpec::Review {
                    agent: slug.clone(),
                    reviewer,
                }
            }
            _ => CheckSpec::Ci {
                command: self.executor.check_command.clone().ok_or_else(|| {
                    "the `ci` gate needs the workspace's check command: set `checks.command` in .murmur/murmur.yaml (for example `cargo test`)".to_owned()
                })?,
            },
        };
        let (mut workspace, _) = self.plans(index, attempt).map_err(|e| e.to_string())?;
        // The agent's own branch as it left it: nothing merged in, no base taken in (that
        // is the agent's next turn's), nothing delivered.
        workspace.branch = branch;
        workspace.merge.clear();
        workspace.follow_base = None;
        workspace.start = None;
        workspace.out = None;
        workspace.required = true;
        let spec = AttemptSpec {
            key: AttemptKey {
                run_id: self.row.id.clone(),
                slug: format!("{slug}:{gate}:{}", self.version),
                attempt,
            },
            prompt: String::new(),
            runtime: RuntimeSpec::Check(check),
            workspace,
            env: vec![
                ("MURMUR_RUN_ID".to_owned(), self.row.id.clone()),
                ("MURMUR_AGENT".to_owned(), slug),
                ("MURMUR_GATE".to_owned(), gate.to_string()),
            ],
            upstream: Vec::new(),
            timeout_secs: None,
            environment: EnvironmentSpec {
                pass: self.environment.pass.clone(),
                variables: self.environment.variables.clone(),
                sealed_secrets: None,
            },
            affinity: self.affinity_of(index),
            tenant: self.executor.store.tenant().to_owned(),
        };
        let pool = self.pool_of(index);
        Ok(PlacedCheck {
            spec,
            placement: self.placement_for(&pool),
            environment: self.environment.clone(),
            store: self.executor.store.clone(),
        })
    }

    /// A `merge`: the engine merges the agent's pull requests (or branch) itself.
    fn merge_check(&self, index: usize, attempt: u32) -> MergeCheck {
        let own = &self.model.agents()[index];
        let run_dir = self.executor.work_root.join(&self.row.id);
        MergeCheck {
            slug: own.slug.clone(),
            repository: self.executor.repository.clone(),
            worktree: self.worktree_of(index),
            branch: own.delivered.branch.clone(),
            prs: own.delivered.prs.clone(),
            scratch: run_dir.join(format!(".merge-{}-{attempt}", own.slug)),
            store: self.executor.store.clone(),
            clock: self.executor.clock.clone(),
            settings: self.executor.machine_settings(),
        }
    }

    /// The `review` gate's reviewer: persona `reviewer`, on its runtime, else the agent's or the
    /// flight's coding runtime, else Claude Code.
    fn reviewer_plan(
        &self,
        agent: &Agent,
    ) -> Option<(murmur_attempt::CodingRuntime, murmur_protocol::CodingSpec)> {
        let persona = crate::persona::resolve(&self.executor.repository, "reviewer").ok()?;
        let runtime = [
            persona.runtime,
            agent.runtime,
            Some(self.flight.frontmatter.runtime),
        ]
        .into_iter()
        .flatten()
        .find(|runtime| *runtime != Runtime::Exec)
        .unwrap_or(Runtime::Claude);
        let front = &self.flight.frontmatter;
        self.runtime_plan(CodingPlan {
            runtime,
            persona,
            model: None,
            resume: None,
            idle_timeout: agent.idle_timeout.unwrap_or(front.idle_timeout).as_std(),
        })
    }

    /// Fan-out instances the model created (while replaying, or just now) get their agent
    /// definitions: the template's, with the item filled in.
    pub(super) fn sync_instances(&mut self) {
        for index in self.agents.len()..self.model.agents().len() {
            let own = &self.model.agents()[index];
            let AgentKind::Instance { template, item } = &own.kind else {
                continue;
            };
            let instance = run::instance_of(&self.agents[*template], &own.slug, item);
            self.agents.push(instance);
            self.times.push((None, None));
        }
    }
}

/// The planning turn of `each: <description>`: asked for the list as JSON, once.
fn planner(template: &Agent, description: &str) -> Agent {
    let mut planner = template.clone();
    planner.each = None;
    planner.out = Some("respond".to_owned());
    planner.prompt = format!(
        "Plan a fan-out: list the items for this task, one agent will work on each item.\n\nThe items: {description}\n\nThe task each agent will do:\n\n{}\n\nAnswer with a JSON array of strings (the items) and nothing else.",
        template.prompt.trim()
    );
    planner
}

impl Driver<'_> {
    /// `on_idle`: what happens to a finished agent's worktree. `terminate` removes it (the
    /// branch stays; a follow-up attaches it again), `terminate-when-prs-resolved` does so once
    /// its pull requests are merged; `sleep` and `keep-alive` keep it on disk. A worktree that
    /// a `continues` agent still needs is always kept.
    pub(super) async fn release_when_idle(&self, index: usize) {
        let policy = self.flight.frontmatter.on_idle;
        if matches!(policy, OnIdle::Sleep | OnIdle::KeepAlive) || self.still_continued(index) {
            return;
        }
        let prs = &self.model.agents()[index].delivered.prs;
        if policy == OnIdle::TerminateWhenPrsResolved
            && !all_merged(&self.executor.store, prs).await
        {
            return;
        }
        if let Ok(repository) = Repository::open(&self.executor.repository, None).await {
            // Best effort: a worktree left behind costs disk space, never correctness.
            let _ = repository.release(&self.worktree_of(index)).await;
        }
    }

    /// Whether an unfinished agent continues this one's conversation (and needs its worktree).
    fn still_continued(&self, index: usize) -> bool {
        let slug = &self.model.agents()[index].slug;
        self.agents.iter().enumerate().any(|(i, agent)| {
            agent.continues.as_deref() == Some(slug.as_str())
                && !self.model.agents()[i].state.is_terminal()
        })
    }
}

/// Pull requests count as resolved when every one is a local record marked merged.
async fn all_merged(store: &crate::store::Store, prs: &[String]) -> bool {
    if prs.is_empty() {
        return false;
    }
    for pr in prs {
        let Some(id) = pr.strip_prefix("local:") else {
            return false;
        };
        match store.pull_request(id).await {
            Ok(Some(record)) if record.state == "merged" => {}
            _ => return false,
        }
    }
    true
}
