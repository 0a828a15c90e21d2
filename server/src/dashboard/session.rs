//! Dashboard sessions: an API token given once at login becomes an opaque session id in an
//! `HttpOnly; SameSite=Strict` cookie, so the token never sits in the page's reach, a URL or
//! the browser's storage. The server keeps the token beside the session and every request
//! checks it again with the store (a revoked token ends its sessions at once), under the
//! tenant the token belonged to at login. Sessions live in this process's memory: a restart
//! (or another server of the same store) asks for the token again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::error::ApiError;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "murmur_session";
/// The header a page's changing requests carry the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts from its login, whatever it is used for.
const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// More sessions than this (a client logging in in a loop) drop the oldest.
const MOST_SESSIONS: usize = 10_000;

/// One logged-in browser.
#[derive(Clone)]
pub struct Session {
    /// The API token it logged in with; checked with the store on every request.
    pub token: String,
    /// The tenant the token belonged to at login; pages of another tenant answer 404.
    pub tenant: String,
    /// Sent back with every changing request from the page.
    pub csrf: String,
    expires: Instant,
}

/// Every live session of this process, by id.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session for `token` of `tenant`; returns its id and CSRF token.
    pub fn open(&self, token: &str, tenant: &str) -> (String, String) {
        let id = random_secret();
        let csrf = random_secret();
        let now = Instant::now();
        let mut by_id = self.lock();
        by_id.retain(|_, s| s.expires > now);
        if by_id.len() >= MOST_SESSIONS
            && let Some(oldest) = by_id
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            by_id.remove(&oldest);
        }
        let session = Session {
            token: token.to_owned(),
            tenant: tenant.to_owned(),
            csrf: csrf.clone(),
            expires: now + LIFETIME,
        };
        by_id.insert(id.clone(), session);
        (id, csrf)
    }

    /// The live session the request's cookie names.
    pub fn of(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE_NAME)?;
        let by_id = self.lock();
        by_id
            .get(&id)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    /// Ends the session the request's cookie names, if any.
    pub fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE_NAME) {
            self.lock().remove(&id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock cannot leave the map half-changed: every change
        // is one insert or remove.
        self.by_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The API token of the request's session, for the token check of `auth`: `None` without a
/// live session cookie; a 403 when a changing request lacks the session's CSRF token (a
/// cookie alone is what a forged cross-site request would carry).
pub fn token_for(
    sessions: &Sessions,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    let Some(session) = sessions.of(headers) else {
        return Ok(None);
    };
    if !matches!(*method, Method::GET | Method::HEAD) {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !sent.is_some_and(|sent| same_secret(sent, &session.csrf)) {
            return Err(csrf_refused());
        }
    }
    Ok(Some(session.token))
}

pub fn csrf_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf",
        "this request needs the page's CSRF token; reload the page and try again",
    )
}

/// Compares secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// 256 random bits as hex (two v4 UUIDs, from the operating system's generator).
pub fn random_secret() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!("{}{}", a.simple(), b.simple())
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
}

/// A `Set-Cookie` for `name`: `HttpOnly; SameSite=Strict; Path=/`, `Secure` behind HTTPS,
/// lasting `max_age` seconds (0 deletes it).
pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let secure = if secure { "; Secure" } else { "" };
    let text =
        format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
    // Names and values are ours: hex and ASCII.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The session cookie for a new session.
pub fn session_cookie(headers: &HeaderMap, id: &str) -> (axum::http::HeaderName, HeaderValue) {
    (
        SET_COOKIE,
        set_cookie(headers, COOKIE_NAME, id, LIFETIME.as_secs()),
    )
}
