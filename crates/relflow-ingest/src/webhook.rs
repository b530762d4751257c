//! Webhooks: `POST /hooks/{name}`, signed with a shared secret.
//!
//! The sender computes HMAC-SHA256 of the raw request body with the shared
//! secret and sends it as `sha256=<hex>` in the signature header
//! (`X-Hub-Signature-256` by default: GitHub, Gitea, Forgejo and Pagure's
//! "sha256" mode all do this). The comparison is constant-time. A request
//! without the header, or with the wrong signature, gets `401` and a reason,
//! and nothing is queued.
//!
//! With `format = "json"` (the default) the body is any JSON object and
//! becomes the message body on the source's topic; the request's `X-*`
//! headers (minus the signature) become the message headers, so rules can
//! match on e.g. `headers["x-github-event"]`. With `format = "message"` the
//! body is a fedmsg envelope or fedora-messaging message and keeps its own
//! topic and id.
//!
//! Replays: a body queued from a hook is a duplicate for `[ingest]
//! dedupe_window` whatever delivery id comes with it (the id header is not
//! signed, so a captured request resent with a fresh id must not run again).
//! Where the sender signs a timestamp (`timestamp_header`), the HMAC covers
//! `<timestamp>.<body>` and a request outside `timestamp_tolerance` is
//! refused.
//!
//! Responses (JSON): `202` queued, `200` duplicate, `400` rejected (with the
//! check and reason), `401` bad signature, `404` unknown hook, `503` the work
//! queue is down (the sender should retry).
//!
//! [`router`] returns a plain `axum::Router` so `relflow serve` can merge it
//! into its own server; `relflow bridge` serves it alone ([`WebhookServer`]).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use relflow_core::config::ingest::{WebhookFormat, WebhookSource};
use relflow_core::Message;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::sink::{Outcome, Sink};
use crate::Source;

/// One configured hook, its secret loaded.
struct Hook {
    config: WebhookSource,
    secret: Vec<u8>,
    label: String,
}

struct Hooks {
    by_name: HashMap<String, Hook>,
    sink: Sink,
}

/// The `POST /hooks/{name}` routes for `hooks`, delivering to `sink`. Reads
/// the secret files now, so a missing one is a start-up error.
pub fn router(hooks: &[WebhookSource], sink: Sink) -> anyhow::Result<Router> {
    let mut by_name = HashMap::new();
    for h in hooks {
        let secret = match (&h.secret, &h.secret_file) {
            (Some(s), _) => s.clone(),
            (None, Some(p)) => std::fs::read_to_string(p)
                .with_context(|| format!("webhook {:?}: cannot read secret_file {}", h.name, p.display()))?
                .trim()
                .to_owned(),
            (None, None) => anyhow::bail!("webhook {:?}: no secret or secret_file", h.name),
        };
        if secret.is_empty() {
            anyhow::bail!("webhook {:?}: the secret is empty", h.name);
        }
        let hook = Hook { config: h.clone(), secret: secret.into_bytes(), label: format!("webhook:{}", h.name) };
        by_name.insert(h.name.clone(), hook);
    }
    // A little over the limit, so a body just over it gets the JSON reason
    // from `receive` rather than a bare 413; far over it, the bare 413.
    let limit = relflow_core::queue_payload_limit(sink.max_bytes());
    let state = Arc::new(Hooks { by_name, sink });
    Ok(Router::new().route("/hooks/{name}", post(receive)).layer(DefaultBodyLimit::max(limit)).with_state(state))
}

/// The signature header value for `body`: `sha256=<hex HMAC-SHA256>`. What a
/// sender computes; handy for tests and for `curl`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn receive(
    State(hooks): State<Arc<Hooks>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(hook) = hooks.by_name.get(&name) else {
        return reply(StatusCode::NOT_FOUND, json!({"error": format!("no webhook source named {name:?}")}));
    };
    let sink = &hooks.sink;
    // The limit is on the body the sender sent; the message wrapped around
    // it (topic, id, headers) may be larger, and the queue allows for that.
    if body.len() > sink.max_bytes() {
        let reason = format!("body is {} bytes, over max_message_bytes ({})", body.len(), sink.max_bytes());
        let outcome = sink.reject(&hook.label, None, None, "too_large", reason);
        return reply(StatusCode::PAYLOAD_TOO_LARGE, json!(outcome));
    }
    if let Err(reason) = check_signature(hook, &headers, &body) {
        let outcome = sink.reject(&hook.label, None, None, "hmac", reason);
        return reply(StatusCode::UNAUTHORIZED, json!(outcome));
    }
    let msg = match to_message(hook, &headers, &body, sink.max_bytes()) {
        Ok(m) => m,
        Err(reason) => {
            let outcome = sink.reject(&hook.label, None, None, "decode", reason);
            return reply(StatusCode::BAD_REQUEST, json!(outcome));
        }
    };
    let id = msg.id.clone();
    let content_key = format!("{}:sha256:{}", hook.label, hex::encode(Sha256::digest(&body)));
    match sink.submit_once(msg, &content_key).await {
        Ok(Outcome::Queued) => reply(StatusCode::ACCEPTED, json!({"outcome": "queued", "id": id})),
        Ok(Outcome::Duplicate) => reply(StatusCode::OK, json!({"outcome": "duplicate", "id": id})),
        Ok(rejected) => reply(StatusCode::BAD_REQUEST, json!(rejected)),
        Err(e) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": format!("{e}"), "hint": "nothing was queued; send it again later"}),
        ),
    }
}

fn check_signature(hook: &Hook, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let name = &hook.config.signature_header;
    let value = headers.get(name.as_str()).ok_or_else(|| {
        format!("unsigned: no {name} header (send `sha256=<hex HMAC-SHA256 of the body>` with the shared secret)")
    })?;
    let hex_sig = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("sha256="))
        .ok_or_else(|| format!("malformed {name} header: expected `sha256=<hex>`"))?;
    let sig = hex::decode(hex_sig).map_err(|_| format!("malformed {name} header: the signature is not hex"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&hook.secret).expect("HMAC takes any key length");
    if let Some(ts_name) = &hook.config.timestamp_header {
        let ts = signed_timestamp(headers, ts_name, hook.config.timestamp_tolerance)?;
        mac.update(format!("{ts}.").as_bytes());
    }
    mac.update(body);
    mac.verify_slice(&sig)
        .map_err(|_| format!("{name} does not match the body (wrong shared secret, or the body was changed)"))
}

/// The timestamp header's Unix seconds, if within `tolerance` of now.
fn signed_timestamp(headers: &HeaderMap, name: &str, tolerance: std::time::Duration) -> Result<i64, String> {
    let value = headers.get(name).ok_or_else(|| format!("no {name} header (the signed send time)"))?;
    let ts: i64 = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("malformed {name} header: expected Unix seconds"))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let skew = now.abs_diff(ts);
    if skew > tolerance.as_secs() {
        return Err(format!(
            "{name} is {skew}s away from now, over timestamp_tolerance ({}s): a stale or replayed request",
            tolerance.as_secs()
        ));
    }
    Ok(ts)
}

fn to_message(hook: &Hook, headers: &HeaderMap, body: &[u8], max_bytes: usize) -> Result<Message, String> {
    match hook.config.format {
        WebhookFormat::Message => Message::decode(body, &hook.label, max_bytes).map_err(|e| e.to_string()),
        WebhookFormat::Json => {
            let value: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
            if !value.is_object() {
                return Err(format!("body must be a JSON object, found {}", relflow_core::json_type(&value)));
            }
            let signature = hook.config.signature_header.to_ascii_lowercase();
            let mut http = Map::new();
            for (k, v) in headers {
                let k = k.as_str();
                if k.starts_with("x-") && k != signature {
                    if let Ok(v) = v.to_str() {
                        http.insert(k.to_owned(), v.into());
                    }
                }
            }
            let mut m = Map::new();
            m.insert("topic".into(), hook.config.topic().into());
            if let Some(h) = &hook.config.id_header {
                if let Some(id) = headers.get(h.as_str()).and_then(|v| v.to_str().ok()) {
                    m.insert("id".into(), format!("{}:{id}", hook.label).into());
                }
            }
            m.insert("headers".into(), Value::Object(http));
            m.insert("body".into(), value);
            Message::from_fedora_messaging(m, &hook.label).map_err(|e| e.to_string())
        }
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// Serves the webhook routes on their own address (`[ingest] listen`), for
/// `relflow bridge`. `relflow serve` merges [`router`] instead.
pub struct WebhookServer {
    listen: String,
    hooks: Vec<WebhookSource>,
}

impl WebhookServer {
    pub fn new(listen: String, hooks: Vec<WebhookSource>) -> WebhookServer {
        WebhookServer { listen, hooks }
    }
}

#[async_trait]
impl Source for WebhookServer {
    fn name(&self) -> &str {
        "webhooks"
    }

    async fn run(self: Box<Self>, sink: Sink, shutdown: CancellationToken) -> anyhow::Result<()> {
        let app = router(&self.hooks, sink)?;
        let listener = tokio::net::TcpListener::bind(&self.listen)
            .await
            .with_context(|| format!("cannot listen on {} ([ingest] listen)", self.listen))?;
        tracing::info!(listen = %self.listen, hooks = self.hooks.len(), "serving POST /hooks/{{name}}");
        crate::http::serve(listener, app, crate::http::HttpLimits::default(), shutdown).await;
        Ok(())
    }
}
