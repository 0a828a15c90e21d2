//! `murmur mcp`: an MCP server over stdio (the `rmcp` crate) with Murmur's agent operations as
//! tools, `spawn`, `status`, `wait`, `ls`, `kill`, `queue_add`, acting for the agent whose
//! identity is in the environment (`MURMUR_AGENT_TOKEN`). Claude Code sessions of a run get it
//! configured by the engine; each answer is the agent API's JSON as text.

use std::sync::Arc;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{ErrorData, ServiceExt, schemars, tool, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Exit;
use crate::agent_cli::SpawnArgs;
use crate::agent_client::{AgentClient, CallError, Waited};
use crate::cli::DbArgs;

pub fn serve() -> anyhow::Result<Exit> {
    let client = match AgentClient::required() {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(Exit::Usage);
        }
    };
    let server = Murmur {
        client: Arc::new(client),
    };
    crate::context::block_on(async move {
        let running = server.serve(rmcp::transport::stdio()).await?;
        running.waiting().await?;
        Ok(Exit::Success)
    })
}

#[derive(Clone)]
struct Murmur {
    client: Arc<AgentClient>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct SpawnParams {
    /// The child's slug (lowercase letters, digits and `-`), under the calling agent.
    slug: String,
    /// What the child should do; for runtime `exec`, the command to run.
    #[serde(default)]
    prompt: Option<String>,
    /// claude (default), codex or exec.
    runtime: Option<String>,
    persona: Option<String>,
    model: Option<String>,
    /// What the child delivers (`out:`).
    out: Option<String>,
    /// What the child does once its turn is done (`on_idle:`).
    on_idle: Option<String>,
    /// A flight of this repository to run as the child, instead of one agent.
    flight: Option<String>,
    /// The flight's inputs as NAME=VALUE.
    #[serde(default)]
    inputs: Vec<String>,
    /// One child per item, named SLUG-ITEM, with `{}` in the prompt standing for the item;
    /// the answer is then an array, one spawn answer per child.
    each: Option<Vec<String>>,
    /// Secrets (names) the child gets for its lifetime only; only secrets this agent has.
    #[serde(default)]
    secrets: Vec<String>,
    /// The branch the child's agents start from, instead of this agent's base.
    base: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct NameParams {
    /// A child's slug, SLUG/AGENT in a child flight, or RUN/SLUG in this agent's subtree.
    name: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct WaitParams {
    /// A child's slug, SLUG/AGENT in a child flight, or RUN/SLUG in this agent's subtree.
    name: String,
    /// The phase to wait for (pending, queued, running, idle, completed, ...); default: until
    /// the agent is finished.
    phase: Option<String>,
    /// Give up after this long (`90s`, `10m`).
    timeout: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct QueueParams {
    /// A child's slug, SLUG/AGENT in a child flight, or RUN/SLUG in this agent's subtree.
    name: String,
    /// The follow-up message.
    text: String,
}

#[tool_router(server_handler)]
impl Murmur {
    #[tool(
        description = "Start a child agent (or, with `flight`, a whole flight; with `each`, one child per item) under this agent. Returns as soon as the child is recorded, with its name; spawning the same slug again returns the same child."
    )]
    async fn spawn(
        &self,
        Parameters(params): Parameters<SpawnParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let args = SpawnArgs {
            slug: Some(params.slug),
            prompt: params.prompt.into_iter().collect(),
            flight: params.flight,
            runtime: params.runtime,
            persona: params.persona,
            model: params.model,
            out: params.out,
            on_idle: params.on_idle,
            inputs: params.inputs,
            each: params.each.is_some(),
            secrets: params.secrets,
            base: params.base,
            detach: true,
            json: true,
            db: DbArgs { db: None },
        };
        let bodies = match &params.each {
            Some(items) => super::agent_calls::each_bodies(&args, items),
            None => super::agent_calls::spawn_body(&args).map(|body| vec![body]),
        };
        let bodies = match bodies {
            Ok(bodies) => bodies,
            Err(error) => {
                return Ok(CallToolResult::error(vec![ContentBlock::text(
                    error.to_string(),
                )]));
            }
        };
        let each = params.each.is_some();
        self.call(move |client| {
            let mut answers = Vec::new();
            for body in &bodies {
                answers.push(client.spawn(body)?);
            }
            Ok(if each {
                Value::Array(answers)
            } else {
                answers.remove(0)
            })
        })
        .await
    }

    #[tool(
        description = "An agent of this agent's subtree: its phase, attempts, response and error."
    )]
    async fn status(
        &self,
        Parameters(params): Parameters<NameParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.call(move |client| client.status(&params.name)).await
    }

    #[tool(
        description = "Wait until an agent of this agent's subtree reaches a phase (default: until it is finished); answers with its status and response, and `waited`: reached, ended or timed-out."
    )]
    async fn wait(
        &self,
        Parameters(params): Parameters<WaitParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let limits = super::agents::wait_limits(params.phase.as_deref(), params.timeout.as_deref());
        let (phase, limit) = match limits {
            Ok(limits) => limits,
            Err(error) => {
                return Ok(CallToolResult::error(vec![ContentBlock::text(
                    error.to_string(),
                )]));
            }
        };
        self.call(move |client| {
            let (mut answer, waited) = client.wait(&params.name, phase, limit)?;
            answer["waited"] = json!(match waited {
                Waited::Reached => "reached",
                Waited::Ended => "ended",
                Waited::TimedOut => "timed-out",
            });
            Ok(answer)
        })
        .await
    }

    #[tool(description = "The children this agent spawned, with their phases and responses.")]
    async fn ls(&self) -> Result<CallToolResult, ErrorData> {
        self.call(|client| client.children()).await
    }

    #[tool(description = "Stop an agent of this agent's subtree, and everything it spawned.")]
    async fn kill(
        &self,
        Parameters(params): Parameters<NameParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.call(move |client| client.kill(&params.name)).await
    }

    #[tool(
        description = "Send a follow-up message to an agent of this agent's subtree: it works on it in its own session once its current turn is over."
    )]
    async fn queue_add(
        &self,
        Parameters(params): Parameters<QueueParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.call(move |client| client.queue_add(&params.name, &params.text))
            .await
    }
}

impl Murmur {
    /// Runs one blocking call of the agent API off the async threads; a refusal is the
    /// tool's error result (the model reads it), anything else an MCP error.
    async fn call(
        &self,
        call: impl FnOnce(&AgentClient) -> Result<Value, CallError> + Send + 'static,
    ) -> Result<CallToolResult, ErrorData> {
        let client = self.client.clone();
        let answer = tokio::task::spawn_blocking(move || call(&client))
            .await
            .map_err(|error| ErrorData::internal_error(error.to_string(), None))?;
        match answer {
            Ok(answer) => {
                let text = serde_json::to_string_pretty(&answer).unwrap_or_default();
                Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
            }
            Err(error @ CallError::Refused { .. }) => {
                Ok(CallToolResult::error(vec![ContentBlock::text(
                    error.to_string(),
                )]))
            }
            Err(error) => Err(ErrorData::internal_error(error.to_string(), None)),
        }
    }
}
