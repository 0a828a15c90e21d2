//! The pages' HTML shells and the headers every dashboard response carries. A shell holds no
//! data but the page's kind, the id it shows and the session's CSRF token, all escaped; the
//! page's module script fetches the rest and builds the DOM with `textContent`.

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// No inline script or style, nothing from elsewhere, no framing, forms only to us.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Escapes text for HTML content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// What a shell shows: which page script runs, and the values it starts from.
pub struct Shell<'a> {
    pub title: &'a str,
    /// `runs`, `run`, `flights`, `flight` or `machines`: the module `/assets/{page}.js`.
    pub page: &'a str,
    /// The run id or flight name the page shows; empty for lists.
    pub subject: &'a str,
    pub csrf: &'a str,
}

impl Shell<'_> {
    pub fn render(&self) -> String {
        let title = escape(self.title);
        let page = escape(self.page);
        let subject = escape(self.subject);
        let csrf = escape(self.csrf);
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · Murmur</title>\
             <link rel=\"stylesheet\" href=\"/assets/dashboard.css\">\
             <meta name=\"csrf-token\" content=\"{csrf}\">\
             <script type=\"module\" src=\"/assets/{page}.js\"></script></head>\
             <body data-page=\"{page}\" data-subject=\"{subject}\">{nav}\
             <main id=\"main\"><p class=\"muted\">Loading…</p></main></body></html>\n",
            nav = nav(&csrf),
        )
    }
}

/// The navigation bar with the logout form.
fn nav(csrf: &str) -> String {
    format!(
        "<header class=\"bar\"><a class=\"brand\" href=\"/\">Murmur</a>\
         <nav><a href=\"/\">Runs</a><a href=\"/flights\">Flights</a><a href=\"/machines\">Machines</a></nav>\
         <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\">Log out</button></form></header>"
    )
}

/// An HTML answer with the dashboard's headers.
pub fn page(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// A page that says what is missing, as a 404 (another tenant's run looks the same).
pub fn not_found(what: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found · Murmur</title>\
         <link rel=\"stylesheet\" href=\"/assets/dashboard.css\"></head><body><main>\
         <h1>Not found</h1><p>{}</p><p><a href=\"/\">All runs</a></p></main></body></html>\n",
        escape(what)
    );
    page(StatusCode::NOT_FOUND, body)
}

/// Adds the security headers to a dashboard response (a middleware's `map_response`).
pub async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
