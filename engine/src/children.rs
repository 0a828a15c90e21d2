//! Agents that spawn agents: a child is a run of its own (one agent, or a whole flight),
//! recorded under the agent that spawned it (`store::children`), at most once per parent and
//! slug. What a child may do is bounded by its subtree: an agent reaches only its
//! descendants, and killing an agent takes its descendants down with it.

use murmur_parser::Flight;

use crate::executor::{Error as ExecutorError, Executor, StartRequest};
use crate::identity::Grant;
use crate::run;
use crate::state::RunStatus;
use crate::store::children::{Child, Parent, Spawned};
use crate::store::workspaces::RunPlace;
use crate::store::{self, NewRun};

/// The limits `murmur.yaml` sets on spawning (`agents: {max_depth, max_children}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How deep children may nest: 1 lets a run's agents spawn, but not their children.
    pub max_depth: u32,
    /// How many children one agent may spawn.
    pub max_children: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 3,
            max_children: 16,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`{slug}` would be {depth} levels below a run's agents; this repository allows {max} (agents.max_depth in .murmur/murmur.yaml)"
    )]
    TooDeep { slug: String, depth: u32, max: u32 },
    #[error(
        "agent `{parent}` already spawned {max} children, the most it may (agents.max_children in .murmur/murmur.yaml)"
    )]
    TooManyChildren { parent: String, max: u32 },
    #[error("`{0}` is not in this agent's subtree: an agent reaches only the agents it spawned")]
    OutsideSubtree(String),
    #[error("a spawn of `{0}` by this agent is still being recorded elsewhere; try again")]
    Pending(String),
    #[error(
        "`{0}` is not a secret this agent has: an agent gives its children only secrets it was given (the workspace's `secrets:` in .murmur/murmur.yaml, or its own `murmur spawn -e`)"
    )]
    SecretNotHeld(String),
    #[error("{0}; `murmur spawn -e NAME` names a secret set with `murmur secret set NAME`")]
    BadSecret(String),
    #[error("there is no secret `{0}` in this tenant: set it first with `murmur secret set {0}`")]
    UnknownSecret(String),
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// A child to create: its flight, already parsed and checked by the caller.
pub struct ChildRun<'a> {
    /// The child's slug under its parent.
    pub slug: &'a str,
    pub flight_name: &'a str,
    pub source: &'a str,
    pub flight: &'a Flight,
    pub inputs: &'a [String],
    /// Secrets given to the child's agents for its lifetime only (`murmur spawn -e`).
    pub secrets: &'a [String],
    /// The branch the child's agents start from (`murmur spawn --base`), over its parent's
    /// base and its repository's.
    pub base: Option<&'a str>,
}

/// What a spawn came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnedChild {
    pub child: Child,
    /// False when the parent had spawned this child before (a retried call).
    pub created: bool,
}

impl Executor {
    /// Creates `request` as a child of the attempt `parent`, or finds the one it made before.
    pub async fn spawn_child(
        &self,
        parent: &Grant,
        request: &ChildRun<'_>,
        limits: &Limits,
    ) -> Result<SpawnedChild, Error> {
        let at = Parent {
            run: &parent.run,
            slug: &parent.slug,
        };
        if let Some(child) = self.store.child(&at, request.slug).await? {
            return Ok(SpawnedChild {
                child,
                created: false,
            });
        }
        // A child works where its parent does: in the parent's workspace, on the spawn's
        // base, else on its parent's.
        let mut place = self.store.run_place(&parent.run).await?;
        if let Some(base) = request.base {
            place.base = Some(base.to_owned());
        }
        let executor = self.for_place(&place).await.map_err(ExecutorError::from)?;
        let held = executor.secrets_held(&parent.run).await?;
        if let Some(name) = request.secrets.iter().find(|name| !held.contains(name)) {
            return Err(Error::SecretNotHeld(name.clone()));
        }
        let depth = self.depth_of(&parent.run).await? + 1;
        if depth > limits.max_depth {
            return Err(Error::TooDeep {
                slug: request.slug.to_owned(),
                depth,
                max: limits.max_depth,
            });
        }
        if self.store.children(&at).await?.len() >= limits.max_children as usize {
            return Err(Error::TooManyChildren {
                parent: parent.slug.clone(),
                max: limits.max_children,
            });
        }
        let inputs =
            run::resolve_inputs(request.flight, request.inputs).map_err(ExecutorError::from)?;
        let agents = run::agents_of(request.flight);
        let has_check = executor.check_command.is_some();
        run::check_runnable(request.flight, &agents, &executor.repository, has_check)
            .map_err(ExecutorError::from)?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let slugs: Vec<String> = agents.iter().map(|a| a.slug.clone()).collect();
        let inputs = serde_json::to_value(&inputs).unwrap_or_default();
        let new = NewRun {
            id: &id,
            flight: request.flight_name,
            flight_path: None,
            source: request.source,
            digest: &run::digest(request.source),
            inputs: &inputs,
            created_at: &self.clock.stamp(),
            agents: &slugs,
            event: None,
        };
        self.record_place(&id, &place).await?;
        let depth = i64::from(depth);
        match self
            .store
            .create_child(&at, request.slug, depth, &new, request.secrets)
            .await?
        {
            Spawned::Created => Ok(SpawnedChild {
                child: Child {
                    parent_run: parent.run.clone(),
                    parent_slug: parent.slug.clone(),
                    slug: request.slug.to_owned(),
                    run_id: id,
                    depth,
                },
                created: true,
            }),
            Spawned::Existing(child) => Ok(SpawnedChild {
                child,
                created: false,
            }),
            Spawned::Pending => Err(Error::Pending(request.slug.to_owned())),
        }
    }

    /// Records where run `id` works, before the run itself; nothing for the implicit
    /// workspace on its checked-out branch.
    async fn record_place(&self, id: &str, place: &RunPlace) -> Result<(), store::Error> {
        match (&place.workspace, &place.base) {
            (Some(workspace), base) => {
                self.store
                    .set_run_workspace(id, workspace, base.as_deref())
                    .await
            }
            (None, Some(base)) => self.store.set_run_base(id, base).await,
            (None, None) => Ok(()),
        }
    }

    /// The secrets the agents of `run` get: the workspace's and the run's own.
    pub async fn secrets_held(&self, run: &str) -> Result<Vec<String>, Error> {
        let mut held = self.environment.secrets.clone();
        for name in self.store.run_secrets(run).await? {
            if !held.contains(&name) {
                held.push(name);
            }
        }
        Ok(held)
    }

    /// Records a run (nobody's child) whose agents get `secrets` for its lifetime besides
    /// the workspace's (top-level `murmur spawn -e NAME`), and start from `base`, a branch
    /// of this repository, when it names one (`murmur spawn --base`). Every name must be a
    /// secret of the tenant. Returns the run's id.
    pub async fn create_granted(
        &self,
        request: &StartRequest<'_>,
        secrets: &[String],
        base: Option<&str>,
    ) -> Result<String, Error> {
        self.check_secrets(secrets).await?;
        let place = RunPlace {
            workspace: None,
            base: base.map(str::to_owned),
        };
        self.for_place(&place).await.map_err(ExecutorError::from)?;
        let inputs =
            run::resolve_inputs(request.flight, request.inputs).map_err(ExecutorError::from)?;
        let agents = run::agents_of(request.flight);
        let has_check = self.check_command.is_some();
        run::check_runnable(request.flight, &agents, &self.repository, has_check)
            .map_err(ExecutorError::from)?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let slugs: Vec<String> = agents.iter().map(|a| a.slug.clone()).collect();
        let inputs = serde_json::to_value(&inputs).unwrap_or_default();
        let new = NewRun {
            id: &id,
            flight: request.flight_name,
            flight_path: request.flight_path,
            source: request.source,
            digest: &run::digest(request.source),
            inputs: &inputs,
            created_at: &self.clock.stamp(),
            agents: &slugs,
            event: request.event,
        };
        self.record_place(&id, &place).await?;
        self.store.create_granted_run(&new, secrets).await?;
        Ok(id)
    }

    /// Refuses a name that is not a secret of the tenant (its value is not read).
    async fn check_secrets(&self, secrets: &[String]) -> Result<(), Error> {
        for name in secrets {
            murmur_vault::check_name(name).map_err(|e| Error::BadSecret(e.to_string()))?;
        }
        let known: Vec<String> = self
            .store
            .secrets()
            .await?
            .into_iter()
            .map(|s| s.name)
            .collect();
        match secrets.iter().find(|name| !known.contains(name)) {
            Some(name) => Err(Error::UnknownSecret(name.clone())),
            None => Ok(()),
        }
    }

    /// How many spawns deep `run` is: 0 for a run nobody spawned.
    pub async fn depth_of(&self, run: &str) -> Result<u32, Error> {
        let depth = self.store.spawned_as(run).await?.map_or(0, |c| c.depth);
        Ok(u32::try_from(depth).unwrap_or(u32::MAX))
    }

    /// Whether `run` descends from the agent `ancestor` (`RUN`, `SLUG`).
    pub async fn descends_from(&self, run: &str, ancestor: (&str, &str)) -> Result<bool, Error> {
        let mut current = run.to_owned();
        // Each step goes one spawn up; a chain is never longer than the depth recorded.
        for _ in 0..=self.depth_of(run).await? {
            let Some(spawn) = self.store.spawned_as(&current).await? else {
                return Ok(false);
            };
            if (spawn.parent_run.as_str(), spawn.parent_slug.as_str()) == ancestor {
                return Ok(true);
            }
            current = spawn.parent_run;
        }
        Ok(false)
    }

    /// Cancels every run the agent `slug` of `run` spawned, and theirs, deepest first.
    /// Returns how many runs were canceled.
    pub async fn kill_children(&self, run: &str, slug: &str) -> Result<usize, Error> {
        let parent = Parent { run, slug };
        let mut canceled = 0;
        for child in self.store.children(&parent).await? {
            canceled += Box::pin(self.cancel_tree(&child.run_id)).await?;
        }
        Ok(canceled)
    }

    /// Cancels `run` and everything its agents spawned.
    pub async fn cancel_tree(&self, run: &str) -> Result<usize, Error> {
        let mut canceled = 0;
        for child in self.store.children_of_run(run).await? {
            canceled += Box::pin(self.cancel_tree(&child.run_id)).await?;
        }
        let status = RunStatus::parse(&self.store.run(run).await?.status);
        if status.is_some_and(RunStatus::is_terminal) {
            return Ok(canceled);
        }
        self.cancel(run).await?;
        Ok(canceled + 1)
    }
}
