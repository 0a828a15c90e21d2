//! The imperative shell around [`RunModel`]: it commits each decision to the store, and only
//! then starts agents. Effects are keyed by (run, agent, attempt), so a resumed run starts a
//! new attempt for work that was in flight and never repeats a finished agent.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use murmur_parser::{Agent, Dag, Flight};
use murmur_runtime::{Line, exec};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::event::{Event, Stream};
use crate::model::{RunModel, TransitionError};
use crate::run::{self, Context, PrepareError, UpstreamResult};
use crate::state::{AgentState, RunStatus};
use crate::store::{self, AgentUpdate, Commit, NewRun, RunRow, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error("the run's event log does not replay: {0}")]
    Replay(#[from] TransitionError),
    #[error("the flight stored with run {0} no longer parses; it cannot be resumed")]
    StoredFlight(String),
    #[error("cannot prepare the working folder {path}: {source}")]
    Workdir {
        path: String,
        source: std::io::Error,
    },
}

/// A committed event, as observers (the live view, `runs logs`) see it.
#[derive(Debug, Clone)]
pub struct Committed {
    pub seq: i64,
    pub at: String,
    pub event: Event,
}

pub struct StartRequest<'a> {
    pub flight_name: &'a str,
    pub flight_path: Option<&'a str>,
    pub source: &'a str,
    pub flight: &'a Flight,
    pub inputs: &'a [String],
}

#[derive(Clone)]
pub struct Executor {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// Machines of the local pool.
    pub slots: usize,
    /// Agents' working folders are created below this.
    pub work_root: PathBuf,
    /// The repository the flight belongs to, given to agents as `MURMUR_REPO`.
    pub repository: PathBuf,
}

/// What a running agent task reports back.
enum Message {
    Line {
        index: usize,
        attempt: u32,
        line: Line,
    },
    Exited {
        index: usize,
        attempt: u32,
        result: Result<String, String>,
    },
}

impl Executor {
    /// Records a new run, after checking its inputs and that every agent can run here.
    pub async fn create(&self, request: &StartRequest<'_>) -> Result<String, Error> {
        let inputs = run::resolve_inputs(request.flight, request.inputs)?;
        let agents = run::agents_of(request.flight);
        run::check_runnable(request.flight, &agents)?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let slugs: Vec<String> = agents.iter().map(|a| a.slug.clone()).collect();
        let inputs = serde_json::to_value(&inputs).unwrap_or_default();
        self.store
            .create_run(&NewRun {
                id: &id,
                flight: request.flight_name,
                flight_path: request.flight_path,
                source: request.source,
                digest: &run::digest(request.source),
                inputs: &inputs,
                created_at: &self.clock.stamp(),
                agents: &slugs,
            })
            .await?;
        Ok(id)
    }

    /// Runs (or resumes) a run until it ends. Every committed event is sent to `observer`.
    pub async fn drive(
        &self,
        run_id: &str,
        observer: mpsc::UnboundedSender<Committed>,
    ) -> Result<RunStatus, Error> {
        let mut driver = Driver::load(self, run_id, observer).await?;
        driver.run().await
    }

    /// Cancels a run that no process is driving, or tells the driving process to stop
    /// (it sees the new version on its next check and stops its agents).
    pub async fn cancel(&self, run_id: &str) -> Result<RunStatus, Error> {
        let (observer, _) = mpsc::unbounded_channel();
        let mut driver = Driver::load(self, run_id, observer).await?;
        let events = driver.model.cancel();
        driver.commit(events).await?;
        Ok(driver.model.status())
    }
}

struct Driver<'e> {
    executor: &'e Executor,
    row: RunRow,
    flight: Flight,
    agents: Vec<Agent>,
    model: RunModel,
    version: i64,
    inputs: BTreeMap<String, String>,
    times: Vec<(Option<String>, Option<String>)>,
    stops: HashMap<usize, oneshot::Sender<()>>,
    observer: mpsc::UnboundedSender<Committed>,
    messages: (
        mpsc::UnboundedSender<Message>,
        mpsc::UnboundedReceiver<Message>,
    ),
}

impl<'e> Driver<'e> {
    async fn load(
        executor: &'e Executor,
        run_id: &str,
        observer: mpsc::UnboundedSender<Committed>,
    ) -> Result<Self, Error> {
        let store = &executor.store;
        let row = store.run(run_id).await?;
        let parsed = murmur_parser::parse(&row.source, &row.flight);
        let flight = parsed
            .flight
            .filter(|_| parsed.diagnostics.iter().all(|d| !d.is_error()));
        let flight = flight.ok_or_else(|| Error::StoredFlight(row.id.clone()))?;
        let agents = run::agents_of(&flight);
        let dag = Dag::build(&agents).map_err(|_| Error::StoredFlight(row.id.clone()))?;
        let mut model = RunModel::new(&agents, &dag);
        for stored in store.events(&row.id, 0).await? {
            let event: Event = serde_json::from_str(&stored.data).map_err(|e| {
                store::Error::Corrupt(format!("event {} of run {}: {e}", stored.seq, row.id))
            })?;
            model.apply(&event)?;
        }
        let times = store
            .agents(&row.id)
            .await?
            .into_iter()
            .map(|a| (a.started_at, a.finished_at))
            .collect();
        let inputs = serde_json::from_str(&row.inputs).unwrap_or_default();
        Ok(Self {
            executor,
            version: row.version,
            row,
            flight,
            agents,
            model,
            inputs,
            times,
            stops: HashMap::new(),
            observer,
            messages: mpsc::unbounded_channel(),
        })
    }

    async fn run(&mut self) -> Result<RunStatus, Error> {
        // This process now drives the run: anything still running under its id was left
        // behind by an engine that died, and must not race the attempts that replace it.
        // Before the interruptions are committed, so that a crash in between is covered too.
        murmur_runtime::kill_marked("MURMUR_RUN_ID", &self.row.id);
        let interrupted = self.model.interrupted();
        self.commit(interrupted).await?;
        let mut watch = tokio::time::interval(Duration::from_millis(500));
        loop {
            let free = self.executor.slots.saturating_sub(self.model.running());
            let decided = self.model.decide(free);
            if !decided.is_empty() {
                let started = self.commit(decided).await?;
                for (index, attempt) in started {
                    self.start_agent(index, attempt)?;
                }
                continue;
            }
            if self.model.status().is_terminal() {
                return Ok(self.model.status());
            }
            tokio::select! {
                message = self.messages.1.recv() => {
                    let Some(message) = message else { continue };
                    let mut batch = vec![message];
                    while let Ok(more) = self.messages.1.try_recv() {
                        batch.push(more);
                    }
                    let events = batch.into_iter().filter_map(|m| self.event_for(m)).collect();
                    self.commit(events).await?;
                }
                _ = watch.tick() => {
                    if self.changed_elsewhere().await? {
                        self.stop_all();
                        let status = self.executor.store.run(&self.row.id).await?.status;
                        return RunStatus::parse(&status)
                            .ok_or_else(|| store::Error::Corrupt(format!("run status `{status}`")).into());
                    }
                }
            }
        }
    }

    /// Another process committed to this run (a cancel): stop driving it.
    async fn changed_elsewhere(&self) -> Result<bool, Error> {
        Ok(self.executor.store.run(&self.row.id).await?.version != self.version)
    }

    fn stop_all(&mut self) {
        for (_, stop) in self.stops.drain() {
            let _ = stop.send(());
        }
    }

    fn event_for(&mut self, message: Message) -> Option<Event> {
        let (index, attempt) = match &message {
            Message::Line { index, attempt, .. } | Message::Exited { index, attempt, .. } => {
                (*index, *attempt)
            }
        };
        let agent = &self.model.agents()[index];
        if agent.attempt != attempt || agent.state != AgentState::Running {
            return None;
        }
        let slug = agent.slug.clone();
        Some(match message {
            Message::Line { line, .. } => Event::AgentOutput {
                slug,
                attempt,
                stream: match line.stream {
                    murmur_runtime::Stream::Stdout => Stream::Stdout,
                    murmur_runtime::Stream::Stderr => Stream::Stderr,
                },
                line: line.text,
            },
            Message::Exited { result, .. } => {
                self.stops.remove(&index);
                match result {
                    Ok(response) => Event::AgentSucceeded {
                        slug,
                        attempt,
                        response,
                    },
                    Err(error) => Event::AgentFailed {
                        slug,
                        attempt,
                        error,
                    },
                }
            }
        })
    }

    /// Applies the events, then checkpoints them with the state they lead to. Returns the
    /// (agent, attempt) pairs that were started, for the caller to act on after the commit.
    async fn commit(&mut self, events: Vec<Event>) -> Result<Vec<(usize, u32)>, Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let at = self.executor.clock.stamp();
        let mut touched = Vec::new();
        let mut started = Vec::new();
        for event in &events {
            self.model.apply(event)?;
            if let Some(index) = event.slug().and_then(|slug| self.model.index_of(slug)) {
                self.stamp_times(index, event, &at);
                if !touched.contains(&index) {
                    touched.push(index);
                }
                if let Event::AgentStarted { attempt, .. } = event {
                    started.push((index, *attempt));
                }
            }
        }
        if self.model.status() == RunStatus::Canceled {
            self.stop_all();
        }
        let updates: Vec<AgentUpdate> = touched.iter().map(|&i| self.update_of(i)).collect();
        let finished_at = self.model.status().is_terminal().then(|| at.clone());
        let first_seq = self.version + 1;
        self.version = self
            .executor
            .store
            .commit(&Commit {
                run_id: &self.row.id,
                expected_version: self.version,
                at: &at,
                events: &events,
                agents: &updates,
                status: self.model.status(),
                finished_at: finished_at.as_deref(),
            })
            .await?;
        for (offset, event) in events.into_iter().enumerate() {
            let _ = self.observer.send(Committed {
                seq: first_seq + offset as i64,
                at: at.clone(),
                event,
            });
        }
        Ok(started)
    }

    fn stamp_times(&mut self, index: usize, event: &Event, at: &str) {
        let times = &mut self.times[index];
        if matches!(event, Event::AgentStarted { .. }) {
            *times = (Some(at.to_owned()), None);
        } else if self.model.agents()[index].state.is_terminal() {
            times.1 = Some(at.to_owned());
        }
    }

    fn update_of(&self, index: usize) -> AgentUpdate {
        let agent = &self.model.agents()[index];
        AgentUpdate {
            slug: agent.slug.clone(),
            state: agent.state,
            attempts: agent.attempt,
            response: agent.response.clone(),
            error: agent.error.clone(),
            started_at: self.times[index].0.clone(),
            finished_at: self.times[index].1.clone(),
        }
    }

    /// The effect of `AgentStarted`, performed only after it was committed.
    fn start_agent(&mut self, index: usize, attempt: u32) -> Result<(), Error> {
        let agent = &self.agents[index];
        let upstream = self.upstream_results();
        let context = Context {
            run_id: &self.row.id,
            flight_name: &self.row.flight,
            inputs: &self.inputs,
            upstream: &upstream,
        };
        let prompt = run::prompt_for(&self.flight, agent, &context);
        let script = context.render(&run::script_of(agent).unwrap_or_default());
        let workdir = self.executor.work_root.join(&self.row.id).join(&agent.slug);
        let prepare = |path: &PathBuf, source| Error::Workdir {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&workdir).map_err(|e| prepare(&workdir, e))?;
        let results_path = self
            .executor
            .work_root
            .join(&self.row.id)
            .join(format!("{}.upstream.json", agent.slug));
        let results_json = serde_json::to_string_pretty(&upstream).unwrap_or_default();
        std::fs::write(&results_path, results_json).map_err(|e| prepare(&results_path, e))?;
        let mut env = vec![
            ("MURMUR_RUN_ID".to_owned(), self.row.id.clone()),
            ("MURMUR_FLIGHT".to_owned(), self.row.flight.clone()),
            ("MURMUR_AGENT".to_owned(), agent.slug.clone()),
            (
                "MURMUR_REPO".to_owned(),
                self.executor.repository.display().to_string(),
            ),
            ("MURMUR_ATTEMPT".to_owned(), attempt.to_string()),
            (
                "MURMUR_UPSTREAM_RESULTS".to_owned(),
                results_path.display().to_string(),
            ),
        ];
        env.extend(self.inputs.iter().map(|(k, v)| {
            (
                format!("MURMUR_INPUT_{}", k.to_uppercase().replace('-', "_")),
                v.clone(),
            )
        }));
        let request = exec::ExecRequest {
            script,
            prompt,
            workdir,
            env,
        };
        let (stop, stopped) = oneshot::channel();
        self.stops.insert(index, stop);
        let messages = self.messages.0.clone();
        tokio::spawn(async move {
            let (lines, mut line_rx) = mpsc::unbounded_channel();
            let forward = messages.clone();
            let forwarding = tokio::spawn(async move {
                while let Some(line) = line_rx.recv().await {
                    let _ = forward.send(Message::Line {
                        index,
                        attempt,
                        line,
                    });
                }
            });
            let result = exec::run(request, lines, stopped).await;
            let _ = forwarding.await;
            let result = result
                .map(|outcome| outcome.response)
                .map_err(|error| error.to_string());
            let _ = messages.send(Message::Exited {
                index,
                attempt,
                result,
            });
        });
        Ok(())
    }

    /// Every finished agent, not just direct `needs`: references may reach further up, and
    /// the prompt's results block picks the direct ones.
    fn upstream_results(&self) -> Vec<UpstreamResult> {
        self.model
            .agents()
            .iter()
            .filter(|up| up.state == AgentState::Completed)
            .map(|up| UpstreamResult {
                slug: up.slug.clone(),
                response: up.response.clone().unwrap_or_default(),
                ..UpstreamResult::default()
            })
            .collect()
    }
}

/// How many agents a run of this flight has (a zero-agent flight has its one root agent).
pub fn agent_count(flight: &Flight) -> usize {
    run::agents_of(flight).len()
}
