//! The bearer token that guards mutating endpoints (and, with
//! `protect_reads`, the read-only ones).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;

/// A configured token, kept only as its SHA-256 so comparing takes the same
/// time whatever the guess (no length or prefix leaks).
#[derive(Clone)]
pub struct Token([u8; 32]);

impl Token {
    /// `None` for an empty token: an empty secret would let anyone in.
    pub fn new(secret: &str) -> Option<Token> {
        let secret = secret.trim();
        (!secret.is_empty()).then(|| Token(Sha256::digest(secret.as_bytes()).into()))
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`.
    pub fn check(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        given.ct_eq(&self.0).into()
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

/// `Err` holds what to tell the client.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), &'static str> {
    match &state.token {
        None => Err("this endpoint needs a token, and none is configured: set [http] token_file (or token, or the \
             RELFLOW_HTTP_TOKEN environment variable) and restart relflow serve"),
        Some(t) if t.check(headers) => Ok(()),
        Some(_) => Err("missing or wrong token: send `Authorization: Bearer <[http] token>`"),
    }
}

/// Middleware for replay, purge and publish.
pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match authorize(&state, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(r) => {
            // Read the (bounded) body before answering: closing a connection
            // with unread request bytes makes the kernel reset it, and the
            // client would see "connection reset" instead of the 401.
            let limit = state.config.max_message_bytes.saturating_add(64 << 10);
            let _ = axum::body::to_bytes(request.into_body(), limit).await;
            unauthorized(r)
        }
    }
}

/// Middleware for read-only endpoints: open unless `protect_reads`.
pub async fn read_access(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.protect_reads {
        if let Err(r) = authorize(&state, request.headers()) {
            return unauthorized(r);
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn only_the_exact_token_passes() {
        let t = Token::new("s3cret\n").unwrap();
        assert!(t.check(&bearer("Bearer s3cret")));
        assert!(!t.check(&bearer("Bearer s3cre")));
        assert!(!t.check(&bearer("Bearer s3cret2")));
        assert!(!t.check(&bearer("Basic s3cret")));
        assert!(!t.check(&HeaderMap::new()));
        assert!(Token::new("  ").is_none(), "an empty token is no token");
    }
}
