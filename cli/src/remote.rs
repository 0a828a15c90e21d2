//! A `murmur serve` seen from the command line (`--server URL`, token in `MURMUR_TOKEN`):
//! blocking HTTP with ureq, errors read from the API's `{"error": {...}}` envelope.

use std::io::Read;

use anyhow::Context;
use serde_json::Value;

/// The server's refusal, as its error envelope says it.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// Present when a flight was refused as invalid.
    pub diagnostics: Vec<Value>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server refused ({} {}): {}",
            self.status, self.code, self.message
        )
    }
}

impl std::error::Error for Refusal {}

#[derive(Clone)]
pub struct Remote {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Remote {
    /// The server at `url`, with the token from `MURMUR_TOKEN`.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let token = std::env::var("MURMUR_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .context("set MURMUR_TOKEN to an API token of the server (`murmur token create` on the server makes one)")?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self {
            base: url.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            agent,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// GET `path` as JSON.
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .agent
            .get(self.url(path))
            .header("Authorization", self.auth())
            .header("Accept", "application/json")
            .call();
        self.answer(path, response)
    }

    /// GET a page of a listing as JSON, with the cursor of the next page (`X-Next-Cursor`).
    pub fn get_page(&self, path: &str) -> anyhow::Result<(Value, Option<String>)> {
        let response = self
            .agent
            .get(self.url(path))
            .header("Authorization", self.auth())
            .header("Accept", "application/json")
            .call();
        let next = response
            .as_ref()
            .ok()
            .and_then(|answer| answer.headers().get("x-next-cursor"))
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok((self.answer(path, response)?, next))
    }

    /// POST `body` as JSON (or nothing) to `path`.
    pub fn post(&self, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let request = self
            .agent
            .post(self.url(path))
            .header("Authorization", self.auth());
        let response = match body {
            Some(body) => request.send_json(body),
            None => request.send_empty(),
        };
        self.answer(path, response)
    }

    /// Opens the run's live event stream, resuming after event `after`.
    pub fn events(&self, run_id: &str, after: i64) -> anyhow::Result<impl Read + use<>> {
        let path = format!("/v1/runs/{run_id}/events");
        let mut request = self
            .agent
            .get(self.url(&path))
            .header("Authorization", self.auth())
            .header("Accept", "text/event-stream");
        if after > 0 {
            request = request.header("Last-Event-ID", after.to_string());
        }
        let response = request.call().map_err(|e| self.unreachable(e))?;
        if response.status().as_u16() != 200 {
            return Err(refusal(response).into());
        }
        Ok(response.into_body().into_reader())
    }

    /// PUT Markdown text to `path`.
    pub fn put_markdown(&self, path: &str, text: &str) -> anyhow::Result<Value> {
        let response = self
            .agent
            .put(self.url(path))
            .header("Authorization", self.auth())
            .header("Content-Type", "text/markdown; charset=utf-8")
            .send(text);
        self.answer(path, response)
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .agent
            .delete(self.url(path))
            .header("Authorization", self.auth())
            .call();
        self.answer(path, response)
    }

    fn answer(
        &self,
        path: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Value> {
        let mut response = response.map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(refusal(response).into());
        }
        if status == 204 {
            return Ok(Value::Null);
        }
        response
            .body_mut()
            .read_json()
            .with_context(|| format!("the server's answer to {path} is not JSON"))
    }

    fn unreachable(&self, error: ureq::Error) -> anyhow::Error {
        anyhow::anyhow!("cannot reach the server at {}: {error}", self.base)
    }
}

/// Prints a refusal (with a refused flight's diagnostics) and hands it back; other errors
/// (an unreachable server) are returned as they are.
pub fn report(error: anyhow::Error) -> anyhow::Result<Refusal> {
    let refusal = error.downcast::<Refusal>()?;
    for diagnostic in &refusal.diagnostics {
        eprintln!(
            "{}:{}: {} [{}] {}",
            diagnostic["line"],
            diagnostic["column"],
            diagnostic["severity"].as_str().unwrap_or("error"),
            diagnostic["code"].as_str().unwrap_or(""),
            diagnostic["message"].as_str().unwrap_or("")
        );
    }
    eprintln!("error: {refusal}");
    Ok(refusal)
}

fn refusal(mut response: ureq::http::Response<ureq::Body>) -> Refusal {
    let status = response.status().as_u16();
    let body: Value = response.body_mut().read_json().unwrap_or(Value::Null);
    let error = &body["error"];
    Refusal {
        status,
        code: error["code"].as_str().unwrap_or("unknown").to_owned(),
        message: error["message"]
            .as_str()
            .unwrap_or("no message from the server")
            .to_owned(),
        diagnostics: error["diagnostics"].as_array().cloned().unwrap_or_default(),
    }
}
