//! Who is calling, and whether they may: bearer tokens with roles, checked
//! per endpoint, and every mutation written to the audit log.
//!
//! Each route declares what it needs with [`needs`]; adding an endpoint is
//! one `.route(...)` line with its [`Permission`] and action name:
//!
//! ```ignore
//! .route("/api/runs/{id}/rerun", post(rerun).route_layer(auth::needs(&state, Permission::Operate, "rerun")))
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::extract::{ConnectInfo, RawPathParams, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{FromFnLayer, Next};
use axum::response::{IntoResponse, Response};
use relflow_core::config::{Permission, Role};
use relflow_core::Config;
use relflow_store::NewAudit;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::warn;

use super::error::ApiError;
use super::AppState;

/// The audit name of the shared `[http] token` (or RELFLOW_HTTP_TOKEN).
pub const SHARED_TOKEN_NAME: &str = "[http] token";

/// Who a valid token belongs to. Handlers that care (approve) find it in
/// the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub groups: Vec<String>,
}

/// A configured token, kept only as its SHA-256 so comparing takes the same
/// time whatever the guess (no length or prefix leaks).
#[derive(Clone)]
struct Key {
    hash: [u8; 32],
    caller: Arc<Caller>,
}

/// Every configured token.
#[derive(Clone, Default)]
pub struct Tokens(Vec<Key>);

impl Tokens {
    /// The shared admin token (RELFLOW_HTTP_TOKEN, else `[http] token_file`,
    /// else `[http] token`) and every `[[http.token]]`, secrets read now.
    pub fn load(config: &Config) -> Result<Tokens> {
        let mut tokens = Tokens::default();
        if let Some(secret) = shared_secret(config)? {
            tokens.add(&secret, Caller { name: SHARED_TOKEN_NAME.into(), role: Role::Admin, groups: vec![] })?;
        }
        let base = config.path.parent().unwrap_or(std::path::Path::new("."));
        for t in config.http.named_tokens() {
            let secret = match (&t.token_file, &t.token_env) {
                (Some(file), _) => read_secret(&base.join(file), &format!("[[http.token]] {:?} token_file", t.name))?,
                (None, Some(var)) => std::env::var(var)
                    .with_context(|| format!("[[http.token]] {:?}: environment variable {var} is not set", t.name))?,
                (None, None) => bail!("[[http.token]] {:?} has no token_file or token_env", t.name),
            };
            tokens.add(&secret, Caller { name: t.name.clone(), role: t.role, groups: t.groups.clone() })?;
        }
        Ok(tokens)
    }

    /// Adds a token; an empty secret is refused (it would let anyone in),
    /// and so is one already given to another name (who would it be?).
    pub fn add(&mut self, secret: &str, caller: Caller) -> Result<()> {
        let secret = secret.trim();
        if secret.is_empty() {
            bail!("the token of {:?} is empty; give it a long random secret", caller.name);
        }
        let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        if let Some(other) = self.0.iter().find(|k| bool::from(k.hash.ct_eq(&hash))) {
            bail!("{:?} and {:?} have the same secret; give each token its own", other.caller.name, caller.name);
        }
        self.0.push(Key { hash, caller: Arc::new(caller) });
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The caller whose token `headers` carry (`Authorization: Bearer ...`).
    /// Every key is compared, in constant time each, whichever matches.
    pub fn caller(&self, headers: &HeaderMap) -> Option<Arc<Caller>> {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))?;
        let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        let mut found = None;
        for key in &self.0 {
            if bool::from(key.hash.ct_eq(&given)) {
                found = Some(Arc::clone(&key.caller));
            }
        }
        found
    }
}

/// RELFLOW_HTTP_TOKEN, else `[http] token_file`, else `[http] token`.
fn shared_secret(config: &Config) -> Result<Option<String>> {
    if let Ok(t) = std::env::var("RELFLOW_HTTP_TOKEN") {
        return Ok(Some(t));
    }
    if let Some(file) = &config.http.token_file {
        let path = config.path.parent().unwrap_or(std::path::Path::new(".")).join(file);
        return read_secret(&path, "[http] token_file").map(Some);
    }
    Ok(config.http.shared_token().map(str::to_owned))
}

fn read_secret(path: &std::path::Path, what: &str) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("cannot read {what} {} (create it with a long random secret, mode 0600)", path.display())
    })?;
    if text.trim().is_empty() {
        bail!("{what} {} is empty; put a long random secret in it", path.display());
    }
    Ok(text)
}

/// What a route needs, and its name in the audit log.
#[derive(Clone)]
pub struct Need {
    state: AppState,
    permission: Permission,
    action: &'static str,
}

/// The layer guarding one route: `permission` checked against the caller's
/// role; for anything but reads, the attempt and its outcome audited as `action`.
pub fn needs(
    state: &AppState,
    permission: Permission,
    action: &'static str,
) -> FromFnLayer<GuardFn, Need, (State<Need>, Request)> {
    let need = Need { state: Arc::clone(state), permission, action };
    axum::middleware::from_fn_with_state(need, guard as GuardFn)
}

// A plain fn pointer, so the layer's type can be named in `needs`.
type GuardFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;
type GuardFn = fn(State<Need>, Request, Next) -> GuardFuture;

fn guard(State(need): State<Need>, request: Request, next: Next) -> GuardFuture {
    Box::pin(check(need, request, next))
}

async fn check(need: Need, mut request: Request, next: Next) -> Response {
    let state = &need.state;
    let caller = state.tokens.caller(request.headers());
    let open_read = need.permission == Permission::Read && !state.protect_reads;
    let Some(caller) = caller else {
        if open_read {
            return next.run(request).await;
        }
        return unauthorized(state, request, need.permission).await;
    };
    let entry = audit_entry(&need, &caller, &mut request).await;
    if !caller.role.allows(need.permission) {
        let message = format!(
            "token {:?} has role {}, and {} needs {}; see the roles table in the README",
            caller.name,
            caller.role.as_str(),
            need.action,
            role_for(need.permission)
        );
        state.record(entry, "denied").await;
        return ApiError::new(StatusCode::FORBIDDEN, message).into_response();
    }
    request.extensions_mut().insert(Arc::clone(&caller));
    let response = next.run(request).await;
    let status = response.status();
    let outcome = if status.is_success() { "ok".to_owned() } else { format!("failed: {}", status.as_u16()) };
    state.record(entry, &outcome).await;
    response
}

/// The weakest role that has `permission`, for the 403's words.
fn role_for(permission: Permission) -> &'static str {
    match permission {
        Permission::Read => "any token",
        Permission::Operate => "role operator or admin",
        Permission::Approve => "role approver or admin",
        Permission::Admin => "role admin",
    }
}

/// The audit row for a mutation (`None` for reads, which are not audited).
async fn audit_entry(need: &Need, caller: &Caller, request: &mut Request) -> Option<NewAudit> {
    if need.permission == Permission::Read {
        return None;
    }
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.to_string()).unwrap_or_default();
    // The route's ids (`/api/dead-letters/{id}/replay`: the id), else the
    // query (publish: the topic).
    let target = match axum::RequestExt::extract_parts::<RawPathParams>(request).await {
        Ok(params) => params.iter().map(|(_, v)| v).collect::<Vec<_>>().join("/"),
        Err(_) => String::new(),
    };
    let target = if target.is_empty() { request.uri().query().unwrap_or_default().to_owned() } else { target };
    Some(NewAudit {
        who: caller.name.clone(),
        role: caller.role.as_str().into(),
        action: need.action.into(),
        target,
        peer,
        outcome: String::new(),
    })
}

impl super::Shared {
    /// Writes an audit entry; a store that is down is logged, not fatal (the
    /// action itself already happened, or was refused).
    pub(crate) async fn record(&self, entry: Option<NewAudit>, outcome: &str) {
        let Some(mut entry) = entry else { return };
        entry.outcome = outcome.to_owned();
        if let Err(e) = self.store.audit(&entry).await {
            warn!(who = %entry.who, action = %entry.action, "cannot write the audit log: {e}");
        }
    }
}

async fn unauthorized(state: &AppState, request: Request, permission: Permission) -> Response {
    let message = if state.tokens.is_empty() {
        "this endpoint needs a token, and none is configured: set [http] token_file (or [[http.token]], or the \
         RELFLOW_HTTP_TOKEN environment variable) and restart relflow serve"
    } else {
        "missing or wrong token: send `Authorization: Bearer <token>`"
    };
    if permission != Permission::Read {
        // Read the (bounded) body before answering: closing a connection
        // with unread request bytes makes the kernel reset it, and the
        // client would see "connection reset" instead of the 401.
        let limit = state.config.max_message_bytes.saturating_add(relflow_core::WRAPPING_ALLOWANCE);
        let _ = axum::body::to_bytes(request.into_body(), limit).await;
    }
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    fn caller(name: &str, role: Role) -> Caller {
        Caller { name: name.into(), role, groups: vec![] }
    }

    #[test]
    fn only_an_exact_token_names_its_caller() {
        let mut t = Tokens::default();
        t.add("s3cret\n", caller("ops", Role::Operator)).unwrap();
        t.add("other-secret", caller("vera", Role::Viewer)).unwrap();
        assert_eq!(t.caller(&bearer("Bearer s3cret")).unwrap().name, "ops");
        assert_eq!(t.caller(&bearer("bearer other-secret")).unwrap().role, Role::Viewer);
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "Bearer "] {
            assert!(t.caller(&bearer(wrong)).is_none(), "{wrong}");
        }
        assert!(t.caller(&HeaderMap::new()).is_none());
    }

    #[test]
    fn empty_and_shared_secrets_are_refused() {
        let mut t = Tokens::default();
        assert!(t.add("  ", caller("a", Role::Admin)).unwrap_err().to_string().contains("empty"));
        t.add("same", caller("a", Role::Admin)).unwrap();
        assert!(t.add("same", caller("b", Role::Viewer)).unwrap_err().to_string().contains("same secret"));
    }
}
