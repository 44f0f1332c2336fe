//! `hotline serve`: loads flows, prompts and data once, starts the SIP endpoint and the
//! ops HTTP, admits calls, and on SIGTERM/Ctrl-C ends calls with BYE and flushes records.
pub mod admission;
pub mod auth;
pub mod conns;
pub mod farm;
pub mod http;
pub mod outages;
pub mod overload;
pub mod reload;
pub mod run;
pub mod status;

use crate::call::ports::PortPool;
use crate::call::pump::MediaPump;
use crate::call::{Backend, CallRecord, CallServices, Library, TicketFuture, TicketToFile};
use crate::config::Config;
use crate::data::{Data, Mode};
use crate::flow::{self, Catalogue, Diagnostic};
use crate::media::prompt::PromptCache;
use crate::metrics::collect::Readings;
use crate::metrics::{CallMetrics, Exporter};
use crate::store::{NewTicket, Store, StoreHandle};
use crate::tickets::{self, Outbox, OutboxHandle, TicketRoutes};
use admission::Admission;
use reload::Reloader;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Loads the flows, prompts and lookup data, every error at once: hotline refuses to
/// start, or to reload, rather than serve a broken flow.
pub fn load(cfg: &Config) -> Result<Library, Vec<String>> {
    let show = |d: Vec<Diagnostic>| d.into_iter().map(|e| e.to_string()).collect::<Vec<_>>();
    let catalogue = Catalogue::load(&cfg.prompts.join("catalogue.yaml")).map_err(show)?;
    let data = Data::load_dir(&cfg.lookups, Mode::Live).map_err(show)?;
    let sources = flow::Sources::of(&data);
    let files = flow::flow_files(&cfg.flows).map_err(|e| vec![e])?;
    let mut flows = HashMap::new();
    let mut errors = Vec::new();
    for f in files {
        match flow::load_flow(&f, Some(&catalogue), Some(&sources)) {
            Ok(fl) => {
                flows.insert(fl.name.clone(), Arc::new(fl));
            }
            Err(e) => errors.extend(show(e)),
        }
    }
    // Lookup data the flows would speak as nothing is refused like a broken flow.
    let all: Vec<&flow::Flow> = flows.values().map(|f| f.as_ref()).collect();
    errors.extend(show(crate::data::validate::check(
        &all,
        &catalogue,
        &cfg.lookups,
    )));
    if let Some(why) = data
        .calendar()
        .running_out(flow::clock::today_in(&cfg.timezone))
    {
        tracing::warn!(file = %cfg.lookups.join(crate::data::CALENDAR_FILE).display(), "{why}");
    }
    let default_flow = flows.get(&cfg.default_flow).cloned();
    if default_flow.is_none() && errors.is_empty() {
        errors.push(format!(
            "default_flow '{}' is not among the flows in {}",
            cfg.default_flow,
            cfg.flows.display()
        ));
    }
    let prompts = PromptCache::load_dir(&cfg.prompts)
        .map_err(|e| vec![format!("{}: {e}", cfg.prompts.display())])?;
    let Some(default_flow) = default_flow.filter(|_| errors.is_empty()) else {
        return Err(errors);
    };
    Ok(Library {
        flows,
        default_flow,
        catalogue: Arc::new(catalogue),
        prompts: Arc::new(prompts),
        calendar: data.calendar(),
        data: Arc::new(data),
    })
}

pub fn services(
    cfg: &Config,
    library: Library,
    backend: Arc<dyn Backend>,
    metrics: Arc<CallMetrics>,
) -> Result<Arc<CallServices>, String> {
    let threads = match cfg.media_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let pump = MediaPump::start_with(
        threads,
        cfg.metrics,
        cfg.media_io,
        crate::call::pump::Placement {
            pin: cfg.media_pin,
            realtime: cfg.media_realtime,
        },
    )
    .map_err(|e| format!("cannot start the media threads: {e}"))?;
    Ok(Arc::new(
        CallServices::new(
            library,
            backend,
            PortPool::new(
                cfg.media_ip(),
                cfg.rtp_ports.lo,
                cfg.rtp_ports.hi,
                cfg.rtp_send_socket,
            ),
            pump,
            cfg.voice.clone(),
            cfg.media_ip(),
            cfg.data.join("recordings"),
        )
        .with_metrics(metrics),
    ))
}

/// Stops on SIGTERM or Ctrl-C.
pub async fn shutdown_signal(cancel: CancellationToken) {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
        _ = cancel.cancelled() => {}
    }
}

pub use admission::rings;

/// Admission shared by the accept loop and the ops HTTP.
pub fn admission(cfg: &Config) -> Arc<Admission> {
    let mut a = Admission::new(cfg.max_calls, cfg.queue_max, cfg.queue_max_wait);
    a.overload = overload::Overload::with_marks(
        cfg.overload_refuse,
        cfg.overload_busy.0,
        cfg.overload_machine.0,
    );
    Arc::new(a)
}

/// Calls leave their records and tickets in the SQLite store; a filed ticket wakes
/// the outbox, so an emergency goes out at once rather than at its next look. Every
/// call's record and every ticket pass here, so here they are counted.
pub struct StoreBackend {
    pub store: StoreHandle,
    pub outbox: Option<OutboxHandle>,
    pub metrics: Arc<CallMetrics>,
}

impl Backend for StoreBackend {
    fn file_ticket(&self, t: TicketToFile) -> TicketFuture {
        let h = self.store.clone();
        let outbox = self.outbox.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let (category, priority) = (t.request.category.clone(), t.request.priority);
            let mut nt = NewTicket::from_request(&t.call_id, &t.caller, t.request);
            nt.recordings = t.recordings;
            nt.from_tag = t.from_tag;
            nt.invite_branch = t.invite_branch;
            nt.ordinal = t.ordinal;
            let filed = h.file_ticket(nt).await;
            if filed.is_ok() {
                metrics.ticket_filed(&category, priority);
            }
            if let (Ok(_), Some(o)) = (&filed, outbox) {
                o.wake();
            }
            filed.map(|id| id.to_string()).map_err(|e| e.to_string())
        })
    }

    fn record_call(&self, r: CallRecord) {
        self.metrics.call_ended(&r);
        self.store.record_call(r);
    }

    fn flush(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let h = self.store.clone();
        Box::pin(async move {
            if let Err(e) = h.flush().await {
                tracing::error!(error = %e, "call records not flushed");
            }
        })
    }
}

/// The outbox's `/healthz` lines: an operator's first look at whether tickets move.
struct OutboxHealth(OutboxHandle);

impl http::Health for OutboxHealth {
    fn health(&self) -> String {
        let s = self.0.stats();
        format!(
            "tickets_pending {}\ntickets_failed {}\ntickets_oldest_pending_s {}\ntickets_overdue {}\nwebhook_unreachable {}\n",
            s.pending,
            s.failed,
            s.oldest_pending_age_ms.map_or(0, |ms| ms / 1000),
            s.overdue,
            u8::from(s.receiver_unreachable)
        )
    }
}

/// The media threads' `/healthz` lines: late visits mean the machine cannot keep up.
struct MediaHealth(Arc<CallServices>);

impl http::Health for MediaHealth {
    fn health(&self) -> String {
        let s = self.0.pump.stats();
        format!(
            "media_legs {}\nrtp_sent {}\nrtp_received {}\nrtp_send_errors {}\nmedia_late_visits {}\nmedia_io {}\nmedia_busy_share {:.3}\n",
            s.legs,
            s.rtp_sent,
            s.rtp_received,
            s.rtp_send_errors,
            s.late_visits,
            self.0.pump.io_path(),
            // The busiest thread's share of its time spent visiting, since start (a copy
            // of the formula here said 2 ms slots after they became 4 ms: twice the share).
            crate::call::pump::busy_share(s.busiest_busy_ns, s.busiest_visits),
        )
    }
}

/// The holiday calendar's `/healthz` line: days until it runs out, so that an alert
/// (deploy/prometheus) or an operator adds next year's before flows misjudge it.
struct CalendarHealth(Arc<CallServices>, String);

impl http::Health for CalendarHealth {
    fn health(&self) -> String {
        match self
            .0
            .library()
            .calendar
            .days_left(flow::clock::today_in(&self.1))
        {
            Some(n) => format!("holiday_calendar_days_left {n}\n"),
            None => String::new(),
        }
    }
}

/// Whether new calls are refused because the media threads are behind.
struct OverloadHealth(Arc<Admission>);

impl http::Health for OverloadHealth {
    fn health(&self) -> String {
        self.0.overload.health()
    }
}

/// The store's `/healthz` lines: a full disk or a locked database shows here first.
struct StoreHealth(StoreHandle);

impl http::Health for StoreHealth {
    fn health(&self) -> String {
        let s = self.0.stats();
        format!(
            "store_queued {}\nstore_tickets_held {}\nstore_ticket_failures {}\nstore_write_failures {}\nstore_dropped {}\n",
            s.queued, s.pending_tickets, s.ticket_failures, s.write_failures, s.dropped
        )
    }
}

/// Each call holds one or two UDP sockets (`rtp_send_socket`: src/call/ports.rs); the
/// usual soft limit of 1,024 descriptors would cap hotline far below `max_calls`, so it
/// takes what the hard limit allows.
fn raise_fd_limit(max_calls: usize, sockets_per_call: u64) {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return;
            }
            if lim.rlim_cur < lim.rlim_max {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
        // Calls' RTP sockets, one more per call for SIP and the rest, the store, the
        // ops HTTP.
        let need = (max_calls as u64).saturating_mul(sockets_per_call + 1) + 256;
        let have: u64 = lim.rlim_cur;
        if have < need {
            tracing::warn!(
                limit = have,
                need,
                "the open-file limit may refuse calls before max_calls; raise it (ulimit -n)"
            );
        }
    }
}

/// `hotline serve`: refuses to start on a broken flow, a bad prompt or an unusable
/// store, with every error; then serves until SIGTERM or Ctrl-C.
pub async fn serve(cfg: Config) -> Result<(), String> {
    raise_fd_limit(cfg.max_calls, 1 + u64::from(cfg.rtp_send_socket));
    let loaded = load(&cfg).map_err(|e| format!("{}\nhotline not started", e.join("\n")))?;
    let store = Store::open(&cfg.data)
        .and_then(Store::start_writer)
        .map_err(|e| e.to_string())?;
    let outbox = match Outbox::start(store.clone(), &cfg.webhook, tickets::recordings(&cfg)) {
        Ok(o) => o,
        Err(e) => {
            let _ = store.shutdown().await;
            return Err(format!("{e}\nhotline not started"));
        }
    };
    let metrics = Arc::new(CallMetrics::default());
    if let Err(e) = cfg.outbound.check() {
        outbox.stop().await;
        let _ = store.shutdown().await;
        return Err(format!("{e}\nhotline not started"));
    }
    let tz = match crate::flow::clock::time_zone(&cfg.timezone) {
        Ok(tz) => tz,
        Err(e) => {
            outbox.stop().await;
            let _ = store.shutdown().await;
            return Err(format!("timezone: {e}\nhotline not started"));
        }
    };
    let auth = match auth::OpsAuth::from_settings(
        std::env::var(auth::TOKEN_ENV).ok(),
        cfg.ops_token_file.as_deref(),
        cfg.http,
        metrics.ops_refused.clone(),
    ) {
        Ok(a) => a,
        Err(e) => {
            outbox.stop().await;
            let _ = store.shutdown().await;
            return Err(format!("{e}\nhotline not started"));
        }
    };
    let backend: Arc<dyn Backend> = Arc::new(StoreBackend {
        store: store.clone(),
        outbox: Some(outbox.handle()),
        metrics: metrics.clone(),
    });
    let svc = match services(&cfg, loaded, backend.clone(), metrics) {
        Ok(s) => s,
        Err(e) => {
            outbox.stop().await;
            let _ = store.shutdown().await;
            return Err(format!("{e}\nhotline not started"));
        }
    };
    let reloader = Reloader::new(cfg.clone(), svc.clone());
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal(stop.clone()).await;
        stop.cancel();
    });
    tokio::spawn(
        reloader
            .clone()
            .watch(cfg.reload_poll, cancel.child_token()),
    );
    let (tickets, recordings) = TicketRoutes {
        store: store.clone(),
        outbox: outbox.handle(),
    }
    .routers();
    let metrics_on = cfg.metrics;
    let lookups = cfg.lookups.clone();
    let timezone = cfg.timezone.clone();
    let outbound_cfg = cfg.outbound.clone();
    let outbound_stop = cancel.child_token();
    let ops = |core: &run::Core| {
        // Outbound calls (issue 10): the queue's scheduler and its routes.
        let outbound = match crate::outbound::Outbound::new(
            outbound_cfg,
            store.clone(),
            core.endpoint.clone(),
            core.svc.clone(),
            core.admission.clone(),
            outbox.handle(),
            tz.clone(),
        ) {
            Ok(o) => {
                tokio::spawn(o.clone().run(outbound_stop));
                Some(auth.protect(crate::outbound::routes::router(o)))
            }
            Err(e) => {
                tracing::error!(error = %e, "outbound calls are off");
                None
            }
        };
        let (status_data, status_page) = status::StatusSources {
            svc: core.svc.clone(),
            admission: core.admission.clone(),
            max_calls: core.max_calls,
            outbox: outbox.handle(),
            reloader: reloader.clone(),
            farm: core.farm.clone(),
        }
        .routers();
        run::Ops {
            routes: vec![
                auth.protect(tickets.clone()),
                auth.protect(reload::router(reloader.clone())),
                auth.protect(status_data),
                status_page,
                auth.protect(core.farm.router()),
                auth.protect(
                    outages::Outages::new(&lookups, core.svc.clone(), tz.clone())
                        .with_reloader(reloader.clone())
                        .router(),
                ),
                recordings.clone(),
            ]
            .into_iter()
            .chain(outbound)
            .chain([crate::metrics::router(metrics_on.then(|| {
                Exporter::new(
                    &core.svc.metrics,
                    Readings {
                        svc: core.svc.clone(),
                        admission: core.admission.clone(),
                        max_calls: core.max_calls,
                        endpoint: core.endpoint.clone(),
                        outbox: outbox.handle(),
                        store: store.clone(),
                        reloader: reloader.clone(),
                        timezone: timezone.clone(),
                        farm: core.farm.clone(),
                    },
                )
            }))])
            .collect(),
            health: vec![
                reloader.clone() as Arc<dyn http::Health>,
                Arc::new(OutboxHealth(outbox.handle())),
                Arc::new(StoreHealth(store.clone())),
                Arc::new(MediaHealth(core.svc.clone())),
                Arc::new(CalendarHealth(core.svc.clone(), timezone.clone())),
                Arc::new(OverloadHealth(core.admission.clone())),
            ],
        }
    };
    let result = run::run(cfg, svc, backend, cancel, ops, |b| {
        let banner = format!(
            "hotline: answering SIP on {} (UDP and TCP); status at http://{}/ ; Ctrl-C stops",
            b.sip, b.http
        );
        // JSON logs are read by machines: every line on stderr is one of them.
        if crate::logs::json() {
            tracing::info!("{banner}");
        } else {
            eprintln!("{banner}");
        }
    })
    .await;
    // Before the store: a delivery that lands during the stop is still recorded.
    outbox.stop().await;
    if let Err(e) = store.shutdown().await {
        tracing::error!(error = %e, "store did not close cleanly");
    }
    result
}
