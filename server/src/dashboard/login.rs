//! `GET /login`, `POST /login`, `POST /logout`. The token travels once, in a POST body,
//! and comes back as a session cookie; a token in a URL is never read. The login form is
//! protected against forged logins by a double-submit token: a cookie set with the form,
//! which must match the form's hidden field.

use axum::Form;
use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::html::{self, escape};
use super::session::{self, cookie, random_secret, same_secret, set_cookie};
use crate::AppState;

/// The login form's double-submit cookie.
const LOGIN_COOKIE: &str = "murmur_login";
/// How long a login form stays usable.
const LOGIN_FORM_SECONDS: u64 = 60 * 60;

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// The login form.
pub async fn form(headers: HeaderMap) -> Response {
    login_page(&headers, StatusCode::OK, None)
}

/// Checks the token with the store and opens a session for it.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return login_page(
            &headers,
            StatusCode::BAD_REQUEST,
            Some("Send the login form."),
        );
    };
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(&form.csrf, &expected) {
        let note = "The login form expired; enter the token again.";
        return login_page(&headers, StatusCode::FORBIDDEN, Some(note));
    }
    let token = form.token.trim();
    let caller = match state.store().caller(token).await {
        Ok(Some(caller)) if !token.is_empty() => caller,
        Ok(_) => {
            let note = "That token is not valid here (`murmur token create` makes one).";
            return login_page(&headers, StatusCode::UNAUTHORIZED, Some(note));
        }
        Err(error) => {
            tracing::error!(%error, "login: cannot check the token");
            let note = "The server cannot check tokens right now; try again shortly.";
            return login_page(&headers, StatusCode::SERVICE_UNAVAILABLE, Some(note));
        }
    };
    tracing::info!(token = %caller.name, tenant = %caller.tenant, "dashboard login");
    let (id, _) = state.inner.dashboard.open(token, &caller.tenant);
    let mut response = see_other("/");
    let cookies = response.headers_mut();
    let (key, value) = session::session_cookie(&headers, &id);
    cookies.append(key, value);
    cookies.append(SET_COOKIE, set_cookie(&headers, LOGIN_COOKIE, "", 0));
    response
}

/// Ends the session (its CSRF token must come with the form) and shows the login form.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let sessions = &state.inner.dashboard;
    let Some(current) = sessions.of(&headers) else {
        return see_other("/login");
    };
    let sent = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !same_secret(&sent, &current.csrf) {
        return session::csrf_refused().into_response();
    }
    sessions.close(&headers);
    let mut response = see_other("/login");
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(&headers, session::COOKIE_NAME, "", 0),
    );
    response
}

pub fn see_other(to: &'static str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static(to));
    response
}

/// The form, with a fresh double-submit token in its cookie and hidden field.
fn login_page(headers: &HeaderMap, status: StatusCode, note: Option<&str>) -> Response {
    let csrf = random_secret();
    let note = note
        .map(|n| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(n)))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Log in · Murmur</title><link rel=\"stylesheet\" href=\"/assets/dashboard.css\"></head>\
         <body><main class=\"login\"><h1>Murmur</h1>{note}\
         <form method=\"post\" action=\"/login\">\
         <label for=\"token\">API token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" id=\"login\">Log in</button></form>\
         <p class=\"muted\">Make a token with <code>murmur token create --name NAME</code>.</p>\
         </main></body></html>\n"
    );
    let mut response = html::page(status, body);
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(headers, LOGIN_COOKIE, &csrf, LOGIN_FORM_SECONDS),
    );
    response
}
