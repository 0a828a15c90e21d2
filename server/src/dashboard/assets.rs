//! The pages' static files, embedded in the binary: `cargo build` needs no Node toolchain,
//! and the server serves exactly the files it was built with. Hand-written ES modules and
//! CSS, no build step; `server/assets/dashboard/README.md` says what each is.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

macro_rules! asset {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../assets/dashboard/", $name)),
        )
    };
}

/// Every file, by the name it is served under (`/assets/NAME`).
const FILES: &[(&str, &str)] = &[
    asset!("dashboard.css"),
    asset!("common.js"),
    asset!("sse.js"),
    asset!("graph.js"),
    asset!("runs.js"),
    asset!("run.js"),
    asset!("agent.js"),
    asset!("flights.js"),
    asset!("flight.js"),
    asset!("machines.js"),
];

pub async fn serve(Path(name): Path<String>) -> Response {
    let Some((_, text)) = FILES.iter().find(|(file, _)| *file == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let kind = if name.ends_with(".css") {
        "text/css; charset=utf-8"
    } else {
        "text/javascript; charset=utf-8"
    };
    let mut response = (*text).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    // Revalidated every time: a new binary must never run with an old page's scripts.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
