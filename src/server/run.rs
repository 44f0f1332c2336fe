//! The server's main loop: everything `hotline serve` starts, and its clean stop.
use super::admission::Admission;
use super::farm::Farm;
use super::http::{self, Health};
use crate::call::{Backend, CallServices};
use crate::config::Config;
use crate::sip::endpoint::{SipConfig, SipEndpoint};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where things listen once started; tests read the ports back.
#[derive(Clone, Debug)]
pub struct Bound {
    pub sip: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
}

struct Status {
    admission: Arc<Admission>,
    max_calls: usize,
    endpoint: Arc<SipEndpoint>,
}

impl Health for Status {
    fn health(&self) -> String {
        let s = self.endpoint.stats();
        format!(
            "ok\ncalls_in_flows {}\ncalls_waiting {}\nsip_dialogs {}\nsip_malformed_dropped {}\n",
            self.admission.in_flows(self.max_calls),
            self.admission.waiting(),
            s.calls_active,
            s.malformed_dropped
        )
    }
}

/// What the ops HTTP serves beyond the server's own `/healthz` lines.
#[derive(Default)]
pub struct Ops {
    /// Routers merged into the ops HTTP.
    pub routes: Vec<axum::Router>,
    /// More `/healthz` lines, after the calls'.
    pub health: Vec<Arc<dyn Health>>,
}

/// The running server's parts that the ops HTTP reports on.
pub struct Core {
    pub svc: Arc<CallServices>,
    pub admission: Arc<Admission>,
    pub endpoint: Arc<SipEndpoint>,
    pub max_calls: usize,
    /// Draining and the farm's view of this instance's lines.
    pub farm: Arc<Farm>,
}

/// Runs until `cancel` fires (SIGTERM, Ctrl-C), then ends every call with a BYE and
/// waits for the call tasks to leave their records.
pub async fn run(
    cfg: Config,
    svc: Arc<CallServices>,
    backend: Arc<dyn Backend>,
    cancel: CancellationToken,
    ops: impl FnOnce(&Core) -> Ops,
    ready: impl FnOnce(Bound),
) -> Result<(), String> {
    let admission = super::admission(&cfg);
    let farm = Farm::new(admission.clone(), cfg.max_calls);
    let sip_cfg = SipConfig {
        udp: cfg.sip,
        tcp: Some(cfg.sip),
        contact_host: None,
        t1: cfg.sip_t1,
        // The handoff to the call layer is not P-RING's queue: the call layer admits,
        // queues or refuses each call itself, so the handoff holds every call it could
        // take. Bounded by P-RING's 200, one worker's turn away from the SIP loop under
        // 2,500 set-ups a second refused 527–1,855 of 25,000 callers with 503 while
        // lines were free (benches/setup-rate.sh, 2026-12-04).
        call_queue: cfg.max_calls.saturating_add(cfg.queue_max).max(256),
        gate: Some(farm.clone()),
        guard: cfg.guard(),
        ..SipConfig::default()
    };
    let (endpoint, mut incoming) = SipEndpoint::start(sip_cfg, cancel.child_token())
        .await
        .map_err(|e| e.to_string())?;
    let endpoint = Arc::new(endpoint);
    tokio::spawn(farm.clone().drain_on_sigusr1());
    tokio::spawn(super::overload::watch(
        admission.clone(),
        svc.clone(),
        cancel.child_token(),
    ));
    let status = Arc::new(Status {
        admission: admission.clone(),
        max_calls: cfg.max_calls,
        endpoint: endpoint.clone(),
    });
    let core = Core {
        svc: svc.clone(),
        admission: admission.clone(),
        endpoint: endpoint.clone(),
        max_calls: cfg.max_calls,
        farm: farm.clone(),
    };
    let ops = ops(&core);
    let mut health: Vec<Arc<dyn Health>> = vec![status];
    health.extend(ops.health);
    let limits = http::Limits::default();
    let app = http::router(Arc::new(http::HealthList(health)), ops.routes);
    let http_addr = http::serve(cfg.http, app, limits, cancel.child_token())
        .await
        .map_err(|e| format!("cannot bind ops HTTP {}: {e}", cfg.http))?;
    let bound = Bound {
        sip: endpoint.local_addr(),
        http: http_addr,
    };
    tracing::info!(sip = %bound.sip, http = %bound.http, flows = svc.library().flows.len(), "hotline serving");
    ready(bound);
    // A tracker, not a JoinSet: a call's end wakes nobody unless the server is waiting
    // for the last one (draining, stopping). Joining each call woke this loop twice a
    // call, ~1 thread switch a call when it ran on the runtime's own thread.
    let calls = TaskTracker::new();
    let mut drain = farm.watch();
    loop {
        let draining = drain.borrow().is_some();
        let wait_last = draining && cfg.exit_when_drained;
        if wait_last {
            // Closed, the tracker's wait() ends when the last call does; spawning still
            // works, for calls handed over before the drain.
            calls.close();
        }
        // Drained: no call in a flow or ringing, and none handed over and not yet
        // taken. Dialogs that only linger to absorb retransmissions, or wait for the
        // answer to hotline's BYE, are the endpoint's shutdown's to end.
        if wait_last && calls.is_empty() && incoming.is_empty() {
            tracing::warn!("drained: the last call has ended; stopping");
            break;
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            nc = incoming.recv() => {
                let Some(nc) = nc else { break };
                calls.spawn(admission.clone().admit(svc.clone(), nc.call, nc.events, nc.commands));
            }
            _ = calls.wait(), if wait_last => {}
            _ = drain.changed(), if !draining => {}
        }
    }
    tracing::info!(calls = calls.len(), "stopping: ending calls");
    // Calls end themselves (BYE, record); a stuck one is not waited for forever.
    svc.stopping.cancel();
    calls.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), calls.wait()).await;
    // Whatever is left at the SIP level (ringing calls, unanswered BYEs) goes now.
    endpoint.shutdown().await;
    backend.flush().await;
    Ok(())
}
