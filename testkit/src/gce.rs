//! A Compute Engine test server: the real REST paths of `instances` and `zoneOperations`, the
//! real operation semantics (a change answers an operation that goes `PENDING` → `RUNNING` →
//! `DONE` as it is looked at, its effect landing at `DONE`), decimal-string ids and the real
//! error shape `{"error": {"code", "message", "status"}}`. Faults are switched on by the test:
//! a zone without capacity (`ZONE_RESOURCE_POOL_EXHAUSTED` in the operation), every call
//! refused with 403. It also answers `POST /token` so application default credentials of the
//! `authorized_user` kind can point their `token_uri` here.
//!
//! There is no usable Compute Engine emulator (see `shared/spec/dependencies.md`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;

mod ops;

use ops::{Effect, Operation};

/// The bearer token `POST /token` hands out.
pub const ACCESS_TOKEN: &str = "gce-test-access-token";

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Option<Value>,
}

#[derive(Default)]
struct Inner {
    project: String,
    /// `(zone, name)` → the instance resource as answered.
    instances: BTreeMap<(String, String), Value>,
    operations: HashMap<u64, Operation>,
    next_id: u64,
    exhausted: HashSet<String>,
    deny: bool,
    requests: Vec<Request>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running server; dropping it stops it.
pub struct GceServer {
    url: String,
    shared: Shared,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl GceServer {
    /// Serves project `project` on 127.0.0.1 with a free port.
    pub fn start(project: &str) -> GceServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let shared: Shared = Arc::new(Mutex::new(Inner {
            project: project.to_owned(),
            next_id: 7_000_000_000_000_000_001,
            ..Inner::default()
        }));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(shared.clone());
        let thread = std::thread::Builder::new()
            .name("gce-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("gce server runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    tokio::select! {
                        result = async { axum::serve(listener, app).await } => result.expect("gce server"),
                        _ = stopped => {}
                    }
                });
            })
            .expect("spawn gce server thread");
        GceServer {
            url,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The endpoint for the client, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Inserts into `zone` from now on end with `ZONE_RESOURCE_POOL_EXHAUSTED`.
    pub fn exhaust_zone(&self, zone: &str) {
        self.inner().exhausted.insert(zone.to_owned());
    }

    /// Every call answers 403 PERMISSION_DENIED while `deny` is true.
    pub fn deny_all(&self, deny: bool) {
        self.inner().deny = deny;
    }

    /// The instance resource as the API would answer it.
    pub fn instance(&self, zone: &str, name: &str) -> Option<Value> {
        self.inner()
            .instances
            .get(&(zone.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every instance, as `(zone, name, status)`.
    pub fn instances(&self) -> Vec<(String, String, String)> {
        let inner = self.inner();
        let status = |v: &Value| v["status"].as_str().unwrap_or_default().to_owned();
        inner
            .instances
            .iter()
            .map(|((z, n), v)| (z.clone(), n.clone(), status(v)))
            .collect()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.inner().requests.clone()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.lock().expect("gce server state")
    }
}

impl Drop for GceServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn router(shared: Shared) -> Router {
    let zone = "/compute/v1/projects/{project}/zones/{zone}";
    Router::new()
        .route(&format!("{zone}/instances"), get(list).post(insert))
        .route(
            &format!("{zone}/instances/{{name}}"),
            get(get_instance).delete(delete),
        )
        .route(&format!("{zone}/instances/{{name}}/{{verb}}"), post(act))
        .route(
            &format!("{zone}/operations/{{operation}}"),
            get(get_operation),
        )
        .route("/token", post(token))
        .with_state(shared)
}

/// The error shape of every Google API.
pub(crate) fn error(code: StatusCode, status: &str, message: &str) -> Response {
    let body = json!({"error": {
        "code": code.as_u16(),
        "message": message,
        "status": status,
        "errors": [{"message": message, "domain": "global", "reason": status.to_ascii_lowercase()}],
    }});
    (code, axum::Json(body)).into_response()
}

/// Records the request, then answers the refusal when the test said so or the project is unknown.
fn admit(
    inner: &mut Inner,
    method: &'static str,
    path: String,
    headers: &HeaderMap,
    body: Option<Value>,
    project: &str,
) -> Option<Response> {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    inner.requests.push(Request {
        method,
        path,
        authorization,
        body,
    });
    if inner.deny {
        return Some(error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Required 'compute.instances.insert' permission for 'projects/acme'",
        ));
    }
    if project != inner.project {
        return Some(error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("The resource 'projects/{project}' was not found"),
        ));
    }
    None
}

fn zone_link(project: &str, zone: &str) -> String {
    format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}")
}

async fn insert(
    State(shared): State<Shared>,
    Path((project, zone)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Json(mut body): axum::Json<Value>,
) -> Response {
    let mut inner = shared.lock().expect("state");
    let path = format!("/compute/v1/projects/{project}/zones/{zone}/instances");
    if let Some(refused) = admit(
        &mut inner,
        "POST",
        path,
        &headers,
        Some(body.clone()),
        &project,
    ) {
        return refused;
    }
    let Some(name) = body["name"].as_str().map(str::to_owned) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Invalid value for field 'resource.name': ''",
        );
    };
    let key = (zone.clone(), name.clone());
    if inner.instances.contains_key(&key) {
        return error(
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            &format!("The resource '{name}' already exists"),
        );
    }
    let exhausted = inner.exhausted.contains(&zone);
    let id = inner.take_id();
    body["id"] = json!(id.to_string());
    body["kind"] = json!("compute#instance");
    body["status"] = json!("PROVISIONING");
    body["zone"] = json!(zone_link(&project, &zone));
    body["selfLink"] = json!(format!("{}/instances/{name}", zone_link(&project, &zone)));
    if !exhausted {
        inner.instances.insert(key.clone(), body);
    }
    let effect = if exhausted {
        Effect::Exhausted
    } else {
        Effect::Status("RUNNING")
    };
    inner.begin(&project, &zone, &name, "insert", effect)
}

async fn act(
    State(shared): State<Shared>,
    Path((project, zone, name, verb)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut inner = shared.lock().expect("state");
    let path = format!("/compute/v1/projects/{project}/zones/{zone}/instances/{name}/{verb}");
    if let Some(refused) = admit(&mut inner, "POST", path, &headers, None, &project) {
        return refused;
    }
    let (during, after) = match verb.as_str() {
        "suspend" => ("SUSPENDING", "SUSPENDED"),
        "resume" | "start" => ("PROVISIONING", "RUNNING"),
        "stop" => ("STOPPING", "TERMINATED"),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("no method {verb}"),
            );
        }
    };
    let Some(instance) = inner.instances.get_mut(&(zone.clone(), name.clone())) else {
        return not_found(&project, &zone, &name);
    };
    instance["status"] = json!(during);
    inner.begin(&project, &zone, &name, &verb, Effect::Status(after))
}

async fn delete(
    State(shared): State<Shared>,
    Path((project, zone, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut inner = shared.lock().expect("state");
    let path = format!("/compute/v1/projects/{project}/zones/{zone}/instances/{name}");
    if let Some(refused) = admit(&mut inner, "DELETE", path, &headers, None, &project) {
        return refused;
    }
    let Some(instance) = inner.instances.get_mut(&(zone.clone(), name.clone())) else {
        return not_found(&project, &zone, &name);
    };
    instance["status"] = json!("STOPPING");
    inner.begin(&project, &zone, &name, "delete", Effect::Delete)
}

async fn get_instance(
    State(shared): State<Shared>,
    Path((project, zone, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut inner = shared.lock().expect("state");
    let path = format!("/compute/v1/projects/{project}/zones/{zone}/instances/{name}");
    if let Some(refused) = admit(&mut inner, "GET", path, &headers, None, &project) {
        return refused;
    }
    match inner.instances.get(&(zone.clone(), name.clone())) {
        Some(instance) => axum::Json(instance.clone()).into_response(),
        None => not_found(&project, &zone, &name),
    }
}

async fn list(
    State(shared): State<Shared>,
    Path((project, zone)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut inner = shared.lock().expect("state");
    let path = format!("/compute/v1/projects/{project}/zones/{zone}/instances");
    if let Some(refused) = admit(&mut inner, "GET", path, &headers, None, &project) {
        return refused;
    }
    let wanted = match query.get("filter").map(|f| ops::label_filter(f)) {
        None => None,
        Some(Some(pair)) => Some(pair),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "Invalid list filter expression",
            );
        }
    };
    let items: Vec<Value> = inner
        .instances
        .iter()
        .filter(|((z, _), _)| *z == zone)
        .filter(|(_, v)| {
            wanted
                .as_ref()
                .is_none_or(|(k, want)| v["labels"][k].as_str() == Some(want))
        })
        .map(|(_, v)| v.clone())
        .collect();
    axum::Json(json!({"kind": "compute#instanceList", "id": format!("projects/{project}/zones/{zone}/instances"), "items": items})).into_response()
}

async fn get_operation(
    State(shared): State<Shared>,
    Path((project, zone, operation)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut inner = shared.lock().expect("state");
    let path = format!("/compute/v1/projects/{project}/zones/{zone}/operations/{operation}");
    if let Some(refused) = admit(&mut inner, "GET", path, &headers, None, &project) {
        return refused;
    }
    inner.look(&operation)
}

async fn token() -> Response {
    axum::Json(json!({"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}))
        .into_response()
}

fn not_found(project: &str, zone: &str, name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        &format!("The resource 'projects/{project}/zones/{zone}/instances/{name}' was not found"),
    )
}
