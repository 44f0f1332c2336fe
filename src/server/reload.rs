//! Flow reload while serving: a designer saves a flow, a prompt or the lookup data, and
//! new calls follow it. A change is loaded whole (flows, catalogue, prompts, data) and
//! put in service only when it loads without an error; otherwise every error is logged
//! with its file:line:col and the flows already serving go on. Calls in progress keep
//! the library they started with.
//!
//! The files are watched by polling their size and modification time: a few hundred
//! `stat`s a second is nothing next to the calls, and polling needs no inotify limits
//! and works on every file system a deployment might use. The walk runs on the
//! blocking pool, not on the runtime's worker: a slow or hung file system (NFS) delays
//! the next reload, never a call's SIP. SIGHUP and `POST /reload` load at once.
use super::http::{Health, json};
use crate::call::CallServices;
use crate::config::Config;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// What the last reloads did, for `/healthz` and `GET /reload`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReloadStatus {
    /// The library in service: 1 is the one loaded at start.
    pub generation: u64,
    /// When the library in service was loaded (ms since the Unix epoch).
    pub loaded_at_ms: i64,
    /// Reloads refused since the start.
    pub refused: u64,
    /// The errors of the last attempt, if it was refused; empty once one succeeds.
    pub errors: Vec<String>,
    /// Flow names in service.
    pub flows: Vec<String>,
}

/// Shared between the watcher, the ops HTTP and `/healthz`.
pub struct Reloader {
    cfg: Config,
    svc: Arc<CallServices>,
    status: Mutex<ReloadStatus>,
    /// One reload at a time: a poll and a SIGHUP at once load once each, in turn.
    running: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(cfg: Config, svc: Arc<CallServices>) -> Arc<Reloader> {
        let mut flows: Vec<String> = svc.library().flows.keys().cloned().collect();
        flows.sort();
        Arc::new(Reloader {
            cfg,
            svc,
            status: Mutex::new(ReloadStatus {
                generation: 1,
                loaded_at_ms: crate::store::UtcMs::now().0,
                flows,
                ..ReloadStatus::default()
            }),
            running: tokio::sync::Mutex::new(()),
        })
    }

    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Loads everything now; the new library serves new calls only if it loaded whole.
    pub async fn reload(&self, why: &str) -> ReloadStatus {
        let _one = self.running.lock().await;
        let cfg = self.cfg.clone();
        // Prompts are decoded and encoded here: seconds of CPU, off the call workers.
        let loaded = tokio::task::spawn_blocking(move || super::load(&cfg))
            .await
            .unwrap_or_else(|e| Err(vec![format!("reload task failed: {e}")]));
        let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        match loaded {
            Ok(lib) => {
                let mut flows: Vec<String> = lib.flows.keys().cloned().collect();
                flows.sort();
                self.svc.replace_library(lib);
                st.generation += 1;
                st.loaded_at_ms = crate::store::UtcMs::now().0;
                st.errors.clear();
                st.flows = flows;
                tracing::info!(
                    why,
                    generation = st.generation,
                    flows = %st.flows.join(","),
                    "flows reloaded: new calls follow them"
                );
            }
            Err(errors) => {
                st.refused += 1;
                for e in &errors {
                    tracing::error!(why, "{e}");
                }
                tracing::error!(
                    why,
                    errors = errors.len(),
                    generation = st.generation,
                    "flows not reloaded: the flows already serving go on; fix the errors above (hotline check shows them too) and save again"
                );
                st.errors = errors;
            }
        }
        st.clone()
    }

    /// Watches the files until `cancel`; `poll` zero watches nothing (SIGHUP and
    /// `POST /reload` still work).
    pub async fn watch(self: Arc<Self>, poll: Duration, cancel: CancellationToken) {
        let dirs = [
            self.cfg.flows.clone(),
            self.cfg.prompts.clone(),
            self.cfg.lookups.clone(),
        ];
        let dirs: Arc<[PathBuf]> = dirs.into();
        let mut seen = walk(&dirs).await;
        let mut hup = hangups();
        loop {
            let tick = async {
                if poll.is_zero() {
                    std::future::pending::<()>().await
                } else {
                    tokio::time::sleep(poll).await
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = hup.recv() => {
                    seen = walk(&dirs).await;
                    self.reload("SIGHUP").await;
                    continue;
                }
                _ = tick => {
                    let now = walk(&dirs).await;
                    if now == seen {
                        continue;
                    }
                    // An editor may still be writing: load once the files hold still.
                    tokio::time::sleep(SETTLE).await;
                    let settled = walk(&dirs).await;
                    if settled != now {
                        continue;
                    }
                    seen = settled;
                    self.reload("files changed").await;
                }
            }
        }
    }
}

/// How long changed files must stay unchanged before they are loaded.
const SETTLE: Duration = Duration::from_millis(300);

/// SIGHUP, where there are signals; otherwise a stream that never yields.
fn hangups() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(()).await.is_err() {
                    return;
                }
            }
        });
        return rx;
    }
    std::mem::forget(tx);
    rx
}

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// [`fingerprint`] on the blocking pool; here, where the pool cannot take it (the
/// runtime shutting down).
async fn walk(dirs: &Arc<[PathBuf]>) -> Fingerprint {
    let d = dirs.clone();
    match tokio::task::spawn_blocking(move || fingerprint(&d)).await {
        Ok(f) => f,
        Err(_) => fingerprint(dirs),
    }
}

/// Every file in the directories and their subdirectories, with its size and
/// modification time.
/// A file that cannot be read is in it too, as such, so that fixing it is a change.
fn fingerprint(dirs: &[PathBuf]) -> Fingerprint {
    let mut v = Vec::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d) else {
            v.push((d.clone(), u64::MAX, None));
            continue;
        };
        for e in rd.flatten() {
            let path = e.path();
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => v.push((path, m.len(), m.modified().ok())),
                // One level down: the shared pieces flows include (flows/common/).
                Ok(m) if m.is_dir() => {
                    for f in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                        if let Ok(m) = f.metadata()
                            && m.is_file()
                        {
                            v.push((f.path(), m.len(), m.modified().ok()));
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => v.push((path, u64::MAX, None)),
            }
        }
    }
    v.sort();
    v
}

impl Health for Reloader {
    fn health(&self) -> String {
        let st = self.status();
        format!(
            "flows_generation {}\nflows_reload_refused {}\nflows_reload_failing {}\n",
            st.generation,
            st.refused,
            u8::from(!st.errors.is_empty())
        )
    }
}

/// `GET /reload`: the status; `POST /reload`: load now and answer with what came of it
/// (200 when the new flows serve, 422 with every error when they were refused).
pub fn router(reloader: Arc<Reloader>) -> axum::Router {
    use axum::extract::State;
    use axum::http::StatusCode;
    axum::Router::new()
        .route(
            "/reload",
            axum::routing::get(|State(r): State<Arc<Reloader>>| async move {
                json(StatusCode::OK, &r.status())
            })
            .post(|State(r): State<Arc<Reloader>>| async move {
                let st = r.reload("POST /reload").await;
                let code = if st.errors.is_empty() {
                    StatusCode::OK
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                json(code, &st)
            }),
        )
        .with_state(reloader)
}
