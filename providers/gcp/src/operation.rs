//! Waiting for a zone operation: Compute Engine answers a change with an operation, and the
//! change is only done, or failed, when the operation says `DONE`.

use std::time::{Duration, Instant};

use google_cloud_compute_v1::model::Operation;
use google_cloud_compute_v1::model::operation::Status;
use murmur_pool::Error;

use crate::Gce;

/// How long a change may take before the pool gives up waiting (VM inserts take ~1 minute).
const DEADLINE: Duration = Duration::from_secs(600);
const FIRST_LOOK: Duration = Duration::from_millis(100);
const SLOWEST_LOOK: Duration = Duration::from_secs(2);

impl Gce {
    /// Looks at `operation` until it is `DONE`, then returns its first error, sorted.
    pub(crate) async fn wait(
        &self,
        zone: &str,
        mut operation: Operation,
        action: &str,
        subject: &str,
    ) -> Result<(), Error> {
        let started = Instant::now();
        let mut pause = FIRST_LOOK;
        while operation.status != Some(Status::Done) {
            let Some(name) = operation.name.clone() else {
                return Err(self.malformed(action, "an operation without a name"));
            };
            if started.elapsed() > DEADLINE {
                return Err(Error::Api {
                    action: action.into(),
                    code: "DEADLINE_EXCEEDED".into(),
                    message: format!("operation {name} not done after {} s", DEADLINE.as_secs()),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(SLOWEST_LOOK);
            operation = self
                .client
                .get_operation()
                .set_project(&self.placement.project)
                .set_zone(zone)
                .set_operation(&name)
                .send()
                .await
                .map_err(|e| self.error("zoneOperations.get", subject, e))?;
        }
        self.outcome(&operation, action, subject)
    }

    fn outcome(&self, operation: &Operation, action: &str, subject: &str) -> Result<(), Error> {
        if let Some(first) = operation.error.as_ref().and_then(|e| e.errors.first()) {
            let code = first.code.clone().unwrap_or_else(|| "UNKNOWN".into());
            let message = first.message.clone().unwrap_or_default();
            return Err(self.operation_error(action, subject, &code, message));
        }
        match operation.http_error_status_code {
            Some(code) if code >= 400 => Err(self.operation_error(
                action,
                subject,
                &format!("HTTP_{code}"),
                operation.http_error_message.clone().unwrap_or_default(),
            )),
            _ => Ok(()),
        }
    }

    fn malformed(&self, action: &str, what: &str) -> Error {
        Error::Api {
            action: action.into(),
            code: "MALFORMED".into(),
            message: format!("{} answered {what}", self.endpoint),
        }
    }
}
