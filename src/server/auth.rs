//! Who may use the ops API: one bearer token, from `HOTLINE_OPS_TOKEN` or the file the
//! setting `ops_token_file` names. Routes that change state or serve residents' data
//! carry [`OpsAuth::layer`]; `/healthz` and `/metrics` stay open for Prometheus, and
//! recordings keep their own unguessable link tokens for the ticket system.
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The environment variable that carries the token.
pub const TOKEN_ENV: &str = "HOTLINE_OPS_TOKEN";

#[derive(Clone)]
pub struct OpsAuth {
    /// SHA-256 of the token: equal lengths to compare, and the token itself is not
    /// kept in memory longer than it must be. None: open (loopback only).
    token: Option<Arc<[u8; 32]>>,
    refused: Counter,
}

impl OpsAuth {
    /// The token from the environment, else from `file`. On an address other than
    /// loopback, no token is an error that says how to set one.
    pub fn from_settings(
        env: Option<String>,
        file: Option<&Path>,
        http: SocketAddr,
        refused: Counter,
    ) -> Result<OpsAuth, String> {
        let token = match (env.filter(|t| !t.trim().is_empty()), file) {
            (Some(t), _) => Some(t.trim().to_string()),
            (None, Some(f)) => {
                let t = std::fs::read_to_string(f)
                    .map_err(|e| format!("ops_token_file {}: {e}", f.display()))?;
                let t = t.trim().to_string();
                if t.is_empty() {
                    return Err(format!("ops_token_file {} is empty", f.display()));
                }
                Some(t)
            }
            (None, None) => None,
        };
        match token {
            Some(t) => Ok(OpsAuth {
                token: Some(Arc::new(Sha256::digest(t.as_bytes()).into())),
                refused,
            }),
            None if http.ip().is_loopback() => {
                tracing::warn!(
                    %http,
                    "no ops token set: the ops API is open to anyone on this machine (set {TOKEN_ENV} or ops_token_file)"
                );
                Ok(OpsAuth {
                    token: None,
                    refused,
                })
            }
            None => Err(format!(
                "the ops HTTP on {http} needs a token: set the environment variable {TOKEN_ENV}=<secret> or the setting ops_token_file: /path/to/token (a file holding it), or bind --http to 127.0.0.1"
            )),
        }
    }

    /// Puts the token check in front of every route of `router`.
    pub fn protect(&self, router: axum::Router) -> axum::Router {
        router.layer(middleware::from_fn_with_state(self.clone(), check))
    }

    fn allows(&self, req: &Request) -> bool {
        let Some(want) = &self.token else {
            return true;
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        bool::from(given.ct_eq(want.as_ref()))
    }
}

async fn check(State(auth): State<OpsAuth>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_string(), |m| m.as_str().to_string());
    let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !auth.allows(&req) {
        auth.refused.inc();
        tracing::warn!(%method, route, status = 401, "ops request refused: no valid token");
        let mut r = (
            StatusCode::UNAUTHORIZED,
            "unauthorized: send Authorization: Bearer <token>\n",
        )
            .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let r = next.run(req).await;
    if changes {
        tracing::info!(%method, route, status = r.status().as_u16(), "ops request");
    }
    r
}
