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
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;

mod ops;

use ops::{Effect, Operation};

/// The bearer token `POST /token` hands out.
pub const ACCESS_TOKEN: &str = "gce-test-access-token";

/// Application default credentials of the `authorized_user` kind whose token comes from the
/// server at `url`: what `GOOGLE_APPLICATION_CREDENTIALS` names in a test.
pub fn user_credentials(url: &str) -> Value {
    json!({
        "type": "authorized_user",
        "client_id": "murmur-test",
        "client_secret": "not-a-secret",
        "refresh_token": "refresh",
        "token_uri": format!("{url}/token"),
    })
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
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
    /// Only inserts are refused (the credentials lack `compute.instances.create`).
    deny_inserts: bool,
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

    /// Inserts answer 403 PERMISSION_DENIED (a missing `compute.instances.create`) while
    /// `deny` is true; every other call is served.
    pub fn deny_inserts(&self, deny: bool) {
        self.inner().deny_inserts = deny;
    }

    /// Inserts into `zone` succeed again.
    pub fn refill_zone(&self, zone: &str) {
        self.inner().exhausted.remove(zone);
    }

    /// A running instance made outside the API (by someone else, behind the pool's back),
    /// with `labels` and no startup-script.
    pub fn put_running(&self, zone: &str, name: &str, labels: &[(&str, &str)]) {
        let mut inner = self.inner();
        let id = inner.take_id();
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        let body = json!({"name": name, "labels": labels});
        let project = inner.project.clone();
        let instance = completed(body, id, &project, zone, "RUNNING");
        inner
            .instances
            .insert((zone.to_owned(), name.to_owned()), instance);
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

/// Records the request, then locks the state for the handler, or answers the refusal when
/// the test said so or the project is unknown.
fn admit<'s>(
    shared: &'s Shared,
    request: (&Method, &Uri, &HeaderMap),
    body: Option<Value>,
    project: &str,
) -> Result<MutexGuard<'s, Inner>, Box<Response>> {
    let (method, uri, headers) = request;
    let mut inner = shared.lock().expect("gce server state");
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let inserting = *method == Method::POST && uri.path().ends_with("/instances");
    inner.requests.push(Request {
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        authorization,
        body,
    });
    if inner.deny || (inner.deny_inserts && inserting) {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            &format!(
                "Required 'compute.instances.{}' permission for 'projects/{project}'",
                if inserting { "create" } else { "get" }
            ),
        )));
    }
    if project != inner.project {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("The resource 'projects/{project}' was not found"),
        )));
    }
    Ok(inner)
}

fn zone_link(project: &str, zone: &str) -> String {
    format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}")
}

/// The resource fields the API adds to an inserted instance.
fn completed(mut body: Value, id: u64, project: &str, zone: &str, status: &str) -> Value {
    let name = body["name"].as_str().unwrap_or_default().to_owned();
    body["id"] = json!(id.to_string());
    body["kind"] = json!("compute#instance");
    body["status"] = json!(status);
    body["zone"] = json!(zone_link(project, zone));
    body["selfLink"] = json!(format!("{}/instances/{name}", zone_link(project, zone)));
    body
}

async fn insert(
    State(shared): State<Shared>,
    Path((project, zone)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let request = (&method, &uri, &headers);
    let mut inner = match admit(&shared, request, Some(body.clone()), &project) {
        Ok(inner) => inner,
        Err(refused) => return *refused,
    };
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
    let id = inner.take_id();
    let effect = if inner.exhausted.contains(&zone) {
        Effect::Exhausted
    } else {
        let instance = completed(body, id, &project, &zone, "PROVISIONING");
        inner.instances.insert(key, instance);
        Effect::Status("RUNNING")
    };
    inner.begin(&project, &zone, &name, "insert", effect)
}

async fn act(
    State(shared): State<Shared>,
    Path((project, zone, name, verb)): Path<(String, String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut inner = match admit(&shared, (&method, &uri, &headers), None, &project) {
        Ok(inner) => inner,
        Err(refused) => return *refused,
    };
    let (during, effect) = match verb.as_str() {
        "suspend" => ("SUSPENDING", Effect::Status("SUSPENDED")),
        "resume" | "start" => ("PROVISIONING", Effect::Status("RUNNING")),
        "stop" => ("STOPPING", Effect::Status("TERMINATED")),
        "delete" if method == Method::DELETE => ("STOPPING", Effect::Delete),
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
    inner.begin(&project, &zone, &name, &verb, effect)
}

async fn delete(
    State(shared): State<Shared>,
    Path((project, zone, name)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let verb = "delete".to_owned();
    act(
        State(shared),
        Path((project, zone, name, verb)),
        method,
        uri,
        headers,
    )
    .await
}

async fn get_instance(
    State(shared): State<Shared>,
    Path((project, zone, name)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let inner = match admit(&shared, (&method, &uri, &headers), None, &project) {
        Ok(inner) => inner,
        Err(refused) => return *refused,
    };
    match inner.instances.get(&(zone.clone(), name.clone())) {
        Some(instance) => axum::Json(instance.clone()).into_response(),
        None => not_found(&project, &zone, &name),
    }
}

async fn list(
    State(shared): State<Shared>,
    Path((project, zone)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let inner = match admit(&shared, (&method, &uri, &headers), None, &project) {
        Ok(inner) => inner,
        Err(refused) => return *refused,
    };
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
    Path((project, _zone, operation)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match admit(&shared, (&method, &uri, &headers), None, &project) {
        Ok(mut inner) => inner.look(&operation),
        Err(refused) => *refused,
    }
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
