//! `POST /outbound`, `GET /outbound?status=`, `GET /outbound/ID`, `DELETE /outbound/ID`
//! (behind the ops token, like every route that changes state).
use super::{Outbound, jobs};
use crate::store::JobStatus;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type Shared = State<Arc<Outbound>>;

const MAX_BODY: usize = 64 * 1024;

pub fn router(o: Arc<Outbound>) -> Router {
    Router::new()
        .route("/outbound", get(list).post(create))
        .route("/outbound/{id}", get(show).delete(cancel))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(o)
}

fn reply(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        format!("{v}\n"),
    )
        .into_response()
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    reply(status, &json!({ "error": msg.into() }))
}

fn store_error(e: crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "outbound: store error");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the store cannot answer: {e}"),
    )
}

async fn create(State(o): Shared, body: Bytes) -> Response {
    let job = match jobs::parse(&body, &o.cfg, &o.flows(), &o.tz, &o.clock) {
        Ok(j) => j,
        Err(r) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
            return error(status, r.error);
        }
    };
    match o.store.create_outbound(job).await {
        Ok((job, created)) => {
            if created {
                tracing::info!(job = %job.id, to = %job.to, flow = %job.flow, "outbound job scheduled");
                o.wake();
            }
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            reply(
                status,
                &json!({
                    "id": job.id,
                    "status": job.status,
                    "next_attempt_at": job.next_attempt_at,
                }),
            )
        }
        Err(e) => store_error(e),
    }
}

async fn list(State(o): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let status = match q.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(s) => match JobStatus::from_name(s) {
            Some(s) => Some(s),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "status '{s}' is not one of {}",
                        JobStatus::ALL.map(|s| s.name()).join(", ")
                    ),
                );
            }
        },
    };
    match o.store.outbound_jobs(status).await {
        Ok(jobs) => reply(StatusCode::OK, &json!(jobs)),
        Err(e) => store_error(e),
    }
}

async fn show(State(o): Shared, Path(id): Path<String>) -> Response {
    match o.store.outbound_job(id.clone()).await {
        Ok(Some(job)) => reply(StatusCode::OK, &json!(job)),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no outbound job '{id}'")),
        Err(e) => store_error(e),
    }
}

/// A scheduled job ends `canceled` at once; a call in progress is ended by its flow
/// (`canceled` state) and the job ends `canceled` with it. 200 with the job.
async fn cancel(State(o): Shared, Path(id): Path<String>) -> Response {
    let job = match o.store.outbound_job(id.clone()).await {
        Ok(Some(j)) => j,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no outbound job '{id}'")),
        Err(e) => return store_error(e),
    };
    match job.status {
        JobStatus::Scheduled => {
            let now = o.clock.now();
            let reason = "canceled by the operator".to_string();
            let body = super::job_event(&job, JobStatus::Canceled, None, Some(&reason), now);
            match o
                .store
                .end_outbound_job(id.clone(), JobStatus::Canceled, reason, vec![body], now)
                .await
            {
                Ok(true) => {
                    tracing::info!(job = %id, "outbound job canceled");
                    o.outbox.wake();
                }
                Ok(false) => return Box::pin(cancel(State(o), Path(id))).await,
                Err(e) => return store_error(e),
            }
        }
        JobStatus::Dialing => {
            match o.store.request_outbound_cancel(id.clone()).await {
                Ok(_) => {}
                Err(e) => return store_error(e),
            }
            tracing::info!(job = %id, "outbound job canceled during its call: the flow ends it");
            o.end_call(&id);
        }
        _ => {
            return reply(
                StatusCode::CONFLICT,
                &json!({
                    "error": format!("job '{id}' has already ended ({})", job.status.name()),
                    "job": job,
                }),
            );
        }
    }
    match o.store.outbound_job(id).await {
        Ok(Some(job)) => reply(StatusCode::OK, &json!(job)),
        Ok(None) => error(StatusCode::NOT_FOUND, "the job went away"),
        Err(e) => store_error(e),
    }
}
