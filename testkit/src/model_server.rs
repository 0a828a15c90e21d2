//! A scripted model server on 127.0.0.1 for driving the real Claude Code CLI (Anthropic
//! Messages API, `POST /v1/messages`) and the real Codex CLI (OpenAI Responses API,
//! `POST /v1/responses`). Both APIs answer from the same script.
//!
//! The server runs on its own thread with its own Tokio runtime, so it works the same from
//! synchronous tests and from `#[tokio::test]`s, and dropping it tears down every connection,
//! including the ones a [`Turn::Hang`] keeps open forever.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::anthropic::{self, Content};
use crate::responses::{self, Output};
use crate::turn::Turn;

/// How the server classified a request it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// An agent-loop model call, answered with the script's turn at this index.
    Scripted(usize),
    /// A model call after the script ran out; answered with a non-retryable 400.
    Exhausted,
    /// A model call without tools (a side task of the CLI); answered with [`HELPER_REPLY`].
    Helper,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// The CLI's reachability probe, `HEAD /api/hello`.
    Probe,
    /// Anything else; answered 404 so a test notices the CLI wants something new.
    Unknown,
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path with the query string, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Header names lowercased.
    pub headers: BTreeMap<String, String>,
    /// The JSON body, `Null` when empty, a `String` when not JSON.
    pub body: Value,
    pub kind: RequestKind,
}

/// The text of every answer to a [`RequestKind::Helper`] call.
pub const HELPER_REPLY: &str = "ok";

struct Shared {
    state: Mutex<ServerState>,
    /// Signalled after every recorded request, for [`ModelServer::wait_for_scripted`].
    recorded: Condvar,
}

struct ServerState {
    script: VecDeque<Turn>,
    served: usize,
    log: Vec<Recorded>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ServerState> {
        // A panicking handler poisons nothing worth protecting: the log stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running scripted model server. Dropping it stops the server.
pub struct ModelServer {
    url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ModelServer {
    /// Starts a server on 127.0.0.1 with a free port; agent-loop calls are answered by `script`
    /// in order.
    pub fn start(script: Vec<Turn>) -> ModelServer {
        // Bound here, not on the server thread, so the port is known and accepting on return.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let shared = Arc::new(Shared {
            state: Mutex::new(ServerState {
                script: script.into(),
                served: 0,
                log: Vec::new(),
            }),
            recorded: Condvar::new(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = Router::new()
            .fallback(handle)
            // Request bodies carry the whole conversation and outgrow axum's 2 MB default.
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let thread = std::thread::Builder::new()
            .name("model-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("model server runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    tokio::select! {
                        result = async { axum::serve(listener, app).await } => {
                            result.expect("model server");
                        }
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here drops every connection task, hung ones included.
            })
            .expect("spawn model server thread");
        ModelServer {
            url,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Base URL for `ANTHROPIC_BASE_URL`, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Base URL for an OpenAI-style provider (Codex's `model_providers.<id>.base_url`), which
    /// includes the version: `http://127.0.0.1:41234/v1`.
    pub fn openai_url(&self) -> String {
        format!("{}/v1", self.url)
    }

    /// Every model call's body (`POST /v1/messages` or `/v1/responses`: scripted, helper and
    /// exhausted), in order.
    pub fn requests(&self) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|r| {
                matches!(
                    r.kind,
                    RequestKind::Scripted(_) | RequestKind::Helper | RequestKind::Exhausted
                )
            })
            .map(|r| r.body)
            .collect()
    }

    /// The bodies of the requests that were answered from the script, in script order.
    pub fn scripted_requests(&self) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|r| matches!(r.kind, RequestKind::Scripted(_)))
            .map(|r| r.body)
            .collect()
    }

    /// Every request received, with method, path, headers and classification.
    pub fn log(&self) -> Vec<Recorded> {
        self.shared.lock().log.clone()
    }

    /// How many script turns have not been served yet.
    pub fn remaining_turns(&self) -> usize {
        self.shared.lock().script.len()
    }

    /// Blocks until `n` scripted requests have arrived (true) or `timeout` passed (false).
    /// A request counts as soon as it is read, before it is answered, so this also observes a
    /// [`Turn::Hang`] being reached.
    pub fn wait_for_scripted(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.served < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .shared
                .recorded
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The one handler: every request is recorded first, then answered by what it is.
async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = parse_body(&body);
    let path = uri.path();
    let (kind, turn, seq) = {
        let mut state = shared.lock();
        let seq = state.log.len();
        let (kind, turn) = classify(&mut state, &method, path, &body);
        state.log.push(Recorded {
            method: method.to_string(),
            path: uri.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: body.clone(),
            kind,
        });
        (kind, turn, seq)
    };
    shared.recorded.notify_all();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let model = body["model"].as_str().unwrap_or("test-model").to_owned();
    let api = if path == "/v1/responses" {
        Api::Responses
    } else {
        Api::Messages
    };
    match (kind, turn) {
        (RequestKind::Scripted(i), Some(turn)) => answer_turn(api, i, &turn, &model, stream).await,
        (RequestKind::Helper, _) if api == Api::Responses => {
            let tag = format!("helper_{seq}");
            answer_responses(&tag, &model, Output::Text(HELPER_REPLY), stream)
        }
        (RequestKind::Helper, _) => {
            let id = format!("msg_testkit_helper_{seq}");
            answer(&id, &model, Content::Text(HELPER_REPLY), stream)
        }
        (RequestKind::CountTokens, _) => {
            Json(json!({"input_tokens": anthropic::INPUT_TOKENS})).into_response()
        }
        (RequestKind::Probe, _) => StatusCode::OK.into_response(),
        (RequestKind::Exhausted, _) => error(
            api,
            400,
            "invalid_request_error",
            "murmur-testkit: the model script is exhausted",
        ),
        _ => error(
            api,
            404,
            "not_found_error",
            &format!("murmur-testkit: no route for {method} {path}"),
        ),
    }
}

/// Which API a request speaks, by its path: it decides the shape of every answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Messages,
    Responses,
}

fn classify(
    state: &mut ServerState,
    method: &Method,
    path: &str,
    body: &Value,
) -> (RequestKind, Option<Turn>) {
    match (method.as_str(), path) {
        ("POST", "/v1/messages" | "/v1/responses") => {
            // The agent loop always offers tools; the CLI's side tasks (titles, summaries,
            // quota checks) do not. That is the rule that keeps side tasks off the script.
            let has_tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
            if !has_tools {
                return (RequestKind::Helper, None);
            }
            match state.script.pop_front() {
                Some(turn) => {
                    let index = state.served;
                    state.served += 1;
                    (RequestKind::Scripted(index), Some(turn))
                }
                None => (RequestKind::Exhausted, None),
            }
        }
        ("POST", "/v1/messages/count_tokens") => (RequestKind::CountTokens, None),
        ("HEAD" | "GET", "/api/hello") => (RequestKind::Probe, None),
        _ => (RequestKind::Unknown, None),
    }
}

async fn answer_turn(api: Api, index: usize, turn: &Turn, model: &str, stream: bool) -> Response {
    let (message_id, tag) = (format!("msg_testkit_{index}"), index.to_string());
    let (tool_id, call_id) = (
        format!("toolu_testkit_{index}"),
        format!("call_testkit_{index}"),
    );
    match (turn, api) {
        (Turn::Text(text), Api::Messages) => {
            answer(&message_id, model, Content::Text(text), stream)
        }
        (Turn::Text(text), Api::Responses) => {
            answer_responses(&tag, model, Output::Text(text), stream)
        }
        (Turn::ToolUse { name, input }, Api::Messages) => {
            let content = Content::ToolUse {
                id: &tool_id,
                name,
                input,
            };
            answer(&message_id, model, content, stream)
        }
        (Turn::ToolUse { name, input }, Api::Responses) => {
            let call = Output::FunctionCall {
                call_id: &call_id,
                name,
                arguments: input,
            };
            answer_responses(&tag, model, call, stream)
        }
        (Turn::Hang, _) => std::future::pending().await,
        (
            Turn::Error {
                status,
                kind,
                message,
            },
            _,
        ) => error(api, *status, kind, message),
    }
}

fn answer_responses(tag: &str, model: &str, output: Output<'_>, stream: bool) -> Response {
    if !stream {
        return Json(responses::response(tag, model, output)).into_response();
    }
    event_stream(responses::event_stream(tag, model, output))
}

fn answer(id: &str, model: &str, content: Content<'_>, stream: bool) -> Response {
    if !stream {
        return Json(anthropic::message(id, model, content)).into_response();
    }
    event_stream(anthropic::event_stream(id, model, content))
}

fn event_stream(body: String) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(body))
        .expect("static response parts")
}

fn error(api: Api, status: u16, kind: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match api {
        Api::Messages => anthropic::error_body(kind, message),
        Api::Responses => responses::error_body(kind, message),
    };
    (status, Json(body)).into_response()
}

fn parse_body(bytes: &Bytes) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}
