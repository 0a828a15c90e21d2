//! The dashboard through the router, without a socket: login and the session cookie's flags,
//! the CSP on every page, CSRF refusals, escaping, 404s, and the data the pages read.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use murmur_engine::{Clock, SystemClock};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::html::{self, CSP, Shell};
use crate::{AppState, router};

pub(super) const TOKEN: &str = "mur_dashboard_token";
const FLIGHT: &str = "---\nruntime: exec\ninputs:\n  who: { default: world }\n---\n# Hello\n\n## greet\n> command: echo \"hello ${{ inputs.who }}\"\n";
const FAN_OUT: &str = "---\nruntime: exec\n---\n# Fan\n\n## plan\n> command: printf 'a\\nb\\nc\\n'\n\n## part\n> needs: plan\n> each: ${{ needs.plan.response }}\n> command: echo part\n\n## sum\n> needs: part\n> command: echo sum\n";

pub(super) struct Dashboard {
    _dir: tempfile::TempDir,
    pub(super) app: Router,
    pub(super) state: AppState,
}

pub(super) async fn dashboard() -> Dashboard {
    let dir = tempfile::tempdir().expect("temp dir");
    let flights = dir.path().join(".murmur/flights");
    std::fs::create_dir_all(&flights).expect("mkdir");
    std::fs::write(flights.join("hello.md"), FLIGHT).expect("flight");
    std::fs::write(flights.join("fan.md"), FAN_OUT).expect("flight");
    std::fs::write(
        flights.join("broken.md"),
        "# Broken\n\n## a\n> needs: zzz\n\nA.\n",
    )
    .expect("flight");
    let executor = crate::tests::test_executor(dir.path(), Arc::new(SystemClock)).await;
    executor
        .store
        .add_token("dashboard", TOKEN, &SystemClock.stamp())
        .await
        .expect("token");
    let state = AppState::new(executor, dir.path().to_path_buf(), None);
    Dashboard {
        _dir: dir,
        app: router(state.clone()),
        state,
    }
}

/// The answer's status, headers and body text.
pub(super) async fn send(
    app: &Router,
    request: Request<Body>,
) -> (StatusCode, header::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

pub(super) fn set_cookies(headers: &header::HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

/// The value of `name="..."` after `marker` in a page.
pub(super) fn attribute_after(page: &str, marker: &str, name: &str) -> String {
    let rest = &page[page
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {page}"))..];
    let start = rest.find(&format!("{name}=\"")).expect("attribute") + name.len() + 2;
    rest[start..start + rest[start..].find('"').expect("end")].to_owned()
}

/// A logged-in browser: its session cookie and the page's CSRF token.
pub(super) struct Browser {
    pub(super) cookie: String,
    pub(super) csrf: String,
}

pub(super) async fn log_in(app: &Router) -> Browser {
    let (status, headers, form) =
        send(app, Request::get("/login").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let login_cookie = set_cookies(&headers)[0]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = attribute_after(&form, "name=\"csrf\"", "value");
    let body = format!("token={TOKEN}&csrf={csrf}");
    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, &login_cookie)
        .body(Body::from(body))
        .unwrap();
    let (status, headers, _) = send(app, request).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/");
    let session = set_cookies(&headers)
        .into_iter()
        .find(|c| c.starts_with("murmur_session="))
        .expect("a session cookie");
    let cookie = session.split(';').next().unwrap().to_owned();
    let (status, _, page) = send(app, get_with("/", &cookie)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let csrf = attribute_after(&page, "name=\"csrf-token\"", "content");
    Browser { cookie, csrf }
}

pub(super) fn get_with(uri: &str, cookie: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

pub(super) fn post_json(
    uri: &str,
    browser: &Browser,
    csrf: Option<&str>,
    body: Value,
) -> Request<Body> {
    let mut request = Request::post(uri)
        .header(header::COOKIE, &browser.cookie)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(csrf) = csrf {
        request = request.header("X-CSRF-Token", csrf);
    }
    request.body(Body::from(body.to_string())).unwrap()
}

pub(super) fn as_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn login_makes_an_http_only_strict_session_cookie_and_pages_carry_the_csp() {
    let d = dashboard().await;
    let (status, headers, _) = send(&d.app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "no session: the login form");
    assert_eq!(headers[header::LOCATION], "/login");
    let (_, headers, form) =
        send(&d.app, Request::get("/login").body(Body::empty()).unwrap()).await;
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
    assert!(form.contains("method=\"post\" action=\"/login\""), "{form}");
    let browser = log_in(&d.app).await;
    let (_, headers, page) = send(&d.app, get_with("/", &browser.cookie)).await;
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(!page.contains("<script>"), "no inline script: {page}");
    assert!(page.contains("<script type=\"module\" src=\"/assets/runs.js\">"));
    // The cookie's flags, as the login set it.
    let d2 = dashboard().await;
    let (_, headers, form) =
        send(&d2.app, Request::get("/login").body(Body::empty()).unwrap()).await;
    let login_cookie = set_cookies(&headers)[0].clone();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"));
    let csrf = attribute_after(&form, "name=\"csrf\"", "value");
    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, login_cookie.split(';').next().unwrap())
        .body(Body::from(format!("token={TOKEN}&csrf={csrf}")))
        .unwrap();
    let (_, headers, _) = send(&d2.app, request).await;
    let session = set_cookies(&headers)
        .into_iter()
        .find(|c| c.starts_with("murmur_session="))
        .expect("session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(session.contains(flag), "{flag} in {session}");
    }
    assert!(
        !session.contains(TOKEN),
        "the cookie is not the token: {session}"
    );
}

#[tokio::test]
async fn a_wrong_token_or_a_forged_login_opens_no_session() {
    let d = dashboard().await;
    let (_, headers, form) =
        send(&d.app, Request::get("/login").body(Body::empty()).unwrap()).await;
    let login_cookie = set_cookies(&headers)[0]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = attribute_after(&form, "name=\"csrf\"", "value");
    let attempt = |body: String, cookie: Option<&str>| {
        let mut request = Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.body(Body::from(body)).unwrap()
    };
    let wrong = attempt(format!("token=mur_wrong&csrf={csrf}"), Some(&login_cookie));
    let (status, headers, page) = send(&d.app, wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("not valid"), "{page}");
    assert!(
        set_cookies(&headers)
            .iter()
            .all(|c| !c.starts_with("murmur_session="))
    );
    // A form posted from elsewhere has no login cookie to match.
    let forged = attempt(format!("token={TOKEN}&csrf={csrf}"), None);
    let (status, headers, _) = send(&d.app, forged).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        set_cookies(&headers)
            .iter()
            .all(|c| !c.starts_with("murmur_session="))
    );
    // A token in the URL is never read.
    let (status, _, _) = send(
        &d.app,
        Request::get(format!("/?token={TOKEN}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused() {
    let d = dashboard().await;
    let browser = log_in(&d.app).await;
    let start = "/v1/flights/hello/runs";
    let body = json!({"inputs": {}});
    for csrf in [None, Some("0".repeat(64).as_str()), Some("")] {
        let (status, _, answer) =
            send(&d.app, post_json(start, &browser, csrf, body.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert_eq!(as_json(&answer)["error"]["code"], "csrf");
    }
    let (status, _, runs) = send(&d.app, get_with("/v1/runs", &browser.cookie)).await;
    assert_eq!(
        (status, as_json(&runs)),
        (StatusCode::OK, json!([])),
        "nothing started"
    );
    let (status, _, answer) = send(
        &d.app,
        post_json(start, &browser, Some(&browser.csrf), body),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    // Logging out takes the CSRF token too, and ends the session.
    let logout = |csrf: &str| {
        Request::post("/logout")
            .header(header::COOKIE, &browser.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}")))
            .unwrap()
    };
    assert_eq!(send(&d.app, logout("nope")).await.0, StatusCode::FORBIDDEN);
    let (status, _, _) = send(&d.app, logout(&browser.csrf)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        send(&d.app, get_with("/v1/runs", &browser.cookie)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn unknown_runs_and_flights_answer_404() {
    let d = dashboard().await;
    let browser = log_in(&d.app).await;
    for uri in [
        "/runs/no-such-run",
        "/flights/nope",
        "/flights/..%2F..%2Fetc",
    ] {
        let (status, headers, page) = send(&d.app, get_with(uri, &browser.cookie)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {page}");
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
    }
    for uri in [
        "/ui/runs/no-such-run",
        "/ui/runs/no-such-run/agents/a/log",
        "/ui/flights/nope",
    ] {
        let (status, _, body) = send(&d.app, get_with(uri, &browser.cookie)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(as_json(&body)["error"]["code"], "not_found");
    }
    assert_eq!(
        send(&d.app, get_with("/assets/nope.js", &browser.cookie))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Without a session the data routes answer 401, not the data.
    let (status, _, _) = send(
        &d.app,
        Request::get("/ui/flights").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[test]
fn shells_and_error_pages_escape_what_they_show() {
    let hostile = "\"><script>alert(1)</script><img src=x onerror=alert(2)>";
    let page = Shell {
        title: hostile,
        page: "run",
        subject: hostile,
        csrf: "c",
    }
    .render();
    assert!(
        !page.contains("<script>alert") && !page.contains("<img"),
        "{page}"
    );
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_eq!(html::escape("a&b<'\">"), "a&amp;b&lt;&#39;&quot;&gt;");
    assert!(!html::not_found(hostile).status().is_success());
}

#[tokio::test]
async fn a_hostile_run_id_in_a_page_address_comes_back_escaped() {
    let d = dashboard().await;
    let browser = log_in(&d.app).await;
    let uri = "/runs/%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let (status, _, page) = send(&d.app, get_with(uri, &browser.cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        page.contains("&lt;script&gt;") && !page.contains("<script>alert"),
        "{page}"
    );
}

#[test]
fn cookies_are_read_from_hostile_headers_without_harm() {
    use super::session::{cookie, same_secret};
    let mut headers = header::HeaderMap::new();
    headers.append(
        header::COOKIE,
        "a=1; murmur_session=abc ; =x; junk".parse().unwrap(),
    );
    headers.append(header::COOKIE, "b=2".parse().unwrap());
    assert_eq!(cookie(&headers, "murmur_session").as_deref(), Some("abc"));
    assert_eq!(cookie(&headers, "b").as_deref(), Some("2"));
    assert_eq!(cookie(&headers, "missing"), None);
    assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("abc", "ab"));
}
