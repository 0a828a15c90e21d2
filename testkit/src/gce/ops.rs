//! Zone operations of the Compute Engine test server: each look moves one step towards `DONE`,
//! and the change lands (or fails) when it gets there.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Inner, error, zone_link};

/// What happens when an operation reaches `DONE`.
pub(super) enum Effect {
    Status(&'static str),
    Delete,
    /// The zone had no room: the operation ends with `ZONE_RESOURCE_POOL_EXHAUSTED`.
    Exhausted,
}

pub(super) struct Operation {
    resource: Value,
    zone: String,
    name: String,
    effect: Option<Effect>,
}

impl Inner {
    pub(super) fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Starts an operation on instance `name` and answers it, `PENDING`.
    pub(super) fn begin(
        &mut self,
        project: &str,
        zone: &str,
        name: &str,
        kind: &str,
        effect: Effect,
    ) -> Response {
        let id = self.take_id();
        let link = zone_link(project, zone);
        let resource = json!({
            "kind": "compute#operation",
            // Compute Engine's ids are uint64 sent as decimal strings.
            "id": id.to_string(),
            "name": format!("operation-{id}"),
            "zone": link,
            "operationType": kind,
            "targetLink": format!("{link}/instances/{name}"),
            "status": "PENDING",
            "progress": 0,
            "selfLink": format!("{link}/operations/operation-{id}"),
        });
        let answer = resource.clone();
        self.operations.insert(
            id,
            Operation {
                resource,
                zone: zone.into(),
                name: name.into(),
                effect: Some(effect),
            },
        );
        axum::Json(answer).into_response()
    }

    /// Answers a look at an operation, moving it one step on.
    pub(super) fn look(&mut self, name: &str) -> Response {
        let Some(id) = name
            .strip_prefix("operation-")
            .and_then(|id| id.parse::<u64>().ok())
        else {
            return error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("The resource '{name}' was not found"),
            );
        };
        let Some(operation) = self.operations.get_mut(&id) else {
            return error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("The resource '{name}' was not found"),
            );
        };
        let next = match operation.resource["status"].as_str() {
            Some("PENDING") => "RUNNING",
            _ => "DONE",
        };
        operation.resource["status"] = json!(next);
        let effect = if next == "DONE" {
            operation.effect.take()
        } else {
            None
        };
        let (zone, target) = (operation.zone.clone(), operation.name.clone());
        if let Some(effect) = effect {
            self.land(id, &zone, &target, effect);
        }
        axum::Json(self.operations[&id].resource.clone()).into_response()
    }

    fn land(&mut self, id: u64, zone: &str, name: &str, effect: Effect) {
        let key = (zone.to_owned(), name.to_owned());
        match effect {
            Effect::Status(status) => {
                if let Some(instance) = self.instances.get_mut(&key) {
                    instance["status"] = json!(status);
                }
            }
            Effect::Delete => {
                self.instances.remove(&key);
            }
            Effect::Exhausted => {
                let operation = self.operations.get_mut(&id).expect("operation");
                operation.resource["error"] = json!({"errors": [{
                    "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                    "message": format!("The zone '{zone}' does not have enough resources available to fulfill the request."),
                }]});
                operation.resource["httpErrorStatusCode"] = json!(503);
                operation.resource["httpErrorMessage"] = json!("SERVICE UNAVAILABLE");
            }
        }
        let _ = self
            .operations
            .get_mut(&id)
            .map(|o| o.resource["progress"] = json!(100));
    }
}

/// Parses `labels.KEY = "VALUE"` (quotes optional), the one filter the pool sends.
pub(super) fn label_filter(filter: &str) -> Option<(String, String)> {
    let (left, right) = filter.split_once('=')?;
    let key = left.trim().strip_prefix("labels.")?;
    let value = right.trim().trim_matches('"');
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    (valid(key) && valid(value)).then(|| (key.to_owned(), value.to_owned()))
}
