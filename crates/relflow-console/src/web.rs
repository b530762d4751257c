//! The web page: one HTML file, one script, one stylesheet, compiled into the
//! binary, so there is no front-end build and nothing to deploy beside it.
//!
//! The script renders every value with `textContent` (never `innerHTML`),
//! and the Content-Security-Policy forbids inline script, so a message or log
//! holding `<script>` shows as text and cannot run.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

pub fn routes() -> Router {
    let asset = |content_type: &'static str, body: &'static str| {
        get(move || async move {
            ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
        })
    };
    Router::new()
        .route("/", asset("text/html; charset=utf-8", INDEX))
        .route("/assets/app.js", asset("text/javascript; charset=utf-8", SCRIPT))
        .route("/assets/style.css", asset("text/css; charset=utf-8", STYLE))
}

/// On every answer: no inline script or foreign origins, no MIME sniffing
/// (a log served as text/plain stays text), no framing.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
