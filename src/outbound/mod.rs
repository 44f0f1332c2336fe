//! Calls hotline places (issue 10, P-SURVEY, W-CALLBACK): a durable queue of jobs in
//! the store, a scheduler that dials them within their calling windows and caps, and
//! the ops routes. An answered call runs on the same call task, media pump and flow
//! interpreter as an inbound call (`call::task::Placed`); the SIP side is
//! `sip::uac`.
//!
//! Durability: an attempt's row is committed (job `dialing`) before its INVITE leaves.
//! At start, a job still `dialing` lost its call with the crash: that attempt counts as
//! made (`failed`), and the job goes on at its next slot, `retry_after` later, never at
//! once. One task per job in flight, and the store's `scheduled -> dialing` claim, keep
//! a job from being dialled twice at once.
pub mod cli;
pub mod jobs;
pub mod routes;
pub mod schedule;

use crate::call::CallServices;
use crate::call::task::{self, Admitted, Placed};
use crate::config::duration;
use crate::server::admission::Admission;
use crate::sip::IncomingCall;
use crate::sip::SipEndpoint;
use crate::sip::sdp::{self, Prefs};
use crate::sip::uac::{DialOutcome, DialRequest, GaveUp};
use crate::store::{AttemptEnd, JobAttempt, JobStatus, OutboundJob, StoreHandle, UtcMs, Window};
use crate::tickets::OutboxHandle;
use jiff::tz::TimeZone;
use schedule::{Clock, next_slot};
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// `outbound:` in the settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Outbound calls at once (they also take lines from `max_calls`).
    pub max_concurrent: usize,
    /// New outbound calls started per second, at most.
    pub calls_per_second: f64,
    /// Calling hours of a job that names none, local time (`timezone`).
    pub window: Window,
    pub max_attempts: u32,
    #[serde(deserialize_with = "duration")]
    pub retry_after: Duration,
    #[serde(deserialize_with = "duration")]
    pub ring_timeout: Duration,
    /// 3xx redirections followed per attempt.
    pub max_redirects: u8,
    /// How often the queue is looked at (a new job or a cancel looks at once).
    #[serde(deserialize_with = "duration")]
    pub poll: Duration,
    /// The scheduler's clock reads this RFC 3339 time at start (tests); default: the
    /// real time.
    pub clock_start: Option<String>,
    pub trunk: TrunkConfig,
}

/// The SIP trunk numbers are dialled through.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrunkConfig {
    /// Outbound proxy: every INVITE goes there first, as a loose `Route`
    /// (`sip:trunk.example.net:5060`).
    pub proxy: Option<String>,
    /// The host numbers are dialled at (`sip:NUMBER@domain`); default: the proxy's.
    pub domain: Option<String>,
    /// Our identity (From); default `sip:hotline@` and the SIP address.
    pub from: Option<String>,
    /// Digest credentials for the trunk's 401/407.
    pub username: Option<String>,
    pub password: Option<String>,
}

impl TrunkConfig {
    pub fn domain(&self) -> Option<String> {
        if let Some(d) = &self.domain {
            return Some(d.clone());
        }
        let p = self.proxy.as_deref()?;
        let uri = p.trim().trim_start_matches('<').trim_end_matches('>');
        let rest = uri.split_once(':')?.1;
        let host = rest.split(';').next()?;
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        Some(host.to_string())
    }
}

impl OutboundConfig {
    /// What `hotline serve` refuses to start with.
    pub fn check(&self) -> Result<(), String> {
        Clock::starting_at(self.clock_start.as_deref())?;
        schedule::check_window(&self.window).map_err(|e| format!("outbound.{e}"))?;
        if self.calls_per_second.is_nan() || self.calls_per_second <= 0.0 {
            return Err("outbound.calls_per_second must be above 0".into());
        }
        if self.trunk.username.is_some() != self.trunk.password.is_some() {
            return Err("outbound.trunk: username and password go together".into());
        }
        Ok(())
    }
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            max_concurrent: 10,
            calls_per_second: 2.0,
            window: Window {
                start: "08:00".into(),
                end: "21:00".into(),
            },
            max_attempts: 3,
            retry_after: Duration::from_secs(30 * 60),
            ring_timeout: Duration::from_secs(30),
            max_redirects: 3,
            poll: Duration::from_secs(1),
            clock_start: None,
            trunk: TrunkConfig::default(),
        }
    }
}

/// What happened to one attempt, in the API's words.
fn outcome_of(code: u16, gave_up: Option<GaveUp>) -> &'static str {
    match (code, gave_up) {
        (_, Some(_)) => "no-answer",
        (486 | 600, _) => "busy",
        (408 | 480 | 487, _) => "no-answer",
        (401 | 403 | 407 | 404 | 484 | 603 | 604, _) => "rejected",
        _ => "failed",
    }
}

/// Whether an attempt that ended so is tried again (the issue's table: busy, no answer,
/// 408, 480 and 503; a call lost to a crash or to the network too).
fn retried(code: u16, outcome: &str) -> bool {
    matches!(outcome, "busy" | "no-answer") || matches!(code, 0 | 408 | 480 | 503)
}

/// The running queue: the scheduler's loop and the jobs in flight.
pub struct Outbound {
    pub(crate) store: StoreHandle,
    endpoint: Arc<SipEndpoint>,
    svc: Arc<CallServices>,
    admission: Arc<Admission>,
    outbox: OutboxHandle,
    pub(crate) cfg: OutboundConfig,
    sip: SocketAddr,
    pub(crate) tz: TimeZone,
    pub(crate) clock: Clock,
    /// Jobs with a call in flight, and how to end it.
    active: Mutex<HashMap<String, CancellationToken>>,
    wake: Notify,
}

impl Outbound {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: OutboundConfig,
        store: StoreHandle,
        endpoint: Arc<SipEndpoint>,
        svc: Arc<CallServices>,
        admission: Arc<Admission>,
        outbox: OutboxHandle,
        tz: TimeZone,
    ) -> Result<Arc<Outbound>, String> {
        let clock = Clock::starting_at(cfg.clock_start.as_deref())?;
        schedule::check_window(&cfg.window).map_err(|e| format!("outbound.{e}"))?;
        for f in svc.library().flows.keys() {
            svc.metrics.survey_flow(f);
        }
        Ok(Arc::new(Outbound {
            store,
            sip: endpoint.local_addr(),
            endpoint,
            svc,
            admission,
            outbox,
            cfg,
            tz,
            clock,
            active: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        }))
    }

    pub(crate) fn flows(&self) -> Vec<String> {
        let mut f: Vec<String> = self.svc.library().flows.keys().cloned().collect();
        f.sort();
        f
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends a job's call in flight politely; false if it had none.
    pub(crate) fn end_call(&self, id: &str) -> bool {
        match self.active().get(id) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// Runs until `stop`; calls in flight end with the server's own stop.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        self.recover().await;
        let mut next_dial = tokio::time::Instant::now();
        let spacing = Duration::from_secs_f64(1.0 / self.cfg.calls_per_second.max(0.01));
        loop {
            let mut busy = false;
            match self.store.due_outbound(self.clock.now()).await {
                Ok(due) => {
                    for job in due {
                        if stop.is_cancelled() {
                            break;
                        }
                        if self.active().contains_key(&job.id) {
                            continue;
                        }
                        match self.check_slot(&job).await {
                            Slot::Now => {}
                            Slot::Later => continue,
                        }
                        if self.active().len() >= self.cfg.max_concurrent.max(1) {
                            busy = true;
                            break;
                        }
                        let now = tokio::time::Instant::now();
                        if now < next_dial {
                            busy = true;
                            break;
                        }
                        let Some(line) = self.admission.try_line() else {
                            busy = true;
                            break;
                        };
                        next_dial = now + spacing;
                        self.clone().start(job, line).await;
                    }
                }
                Err(e) => tracing::error!(error = %e, "outbound: cannot read the queue"),
            }
            let wait = if busy {
                spacing.min(self.cfg.poll).max(Duration::from_millis(20))
            } else {
                self.cfg.poll
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let tokens: Vec<_> = self.active().values().cloned().collect();
        for t in tokens {
            t.cancel();
        }
    }

    /// A due job outside its window is moved to its next slot, or expires when that
    /// is past its deadline.
    async fn check_slot(&self, job: &OutboundJob) -> Slot {
        let now = self.clock.now();
        let slot = next_slot(now, &job.window, &self.tz);
        if let Some(dl) = job.deadline
            && (now >= dl || slot > dl)
        {
            self.expire(job, now).await;
            return Slot::Later;
        }
        if slot > now {
            let _ = self.store.reschedule_outbound(job.id.clone(), slot).await;
            return Slot::Later;
        }
        Slot::Now
    }

    async fn expire(&self, job: &OutboundJob, now: UtcMs) {
        let reason = format!(
            "could not be attempted before its deadline {}",
            job.deadline.unwrap_or(now)
        );
        log_expired(job, &reason);
        let body = job_event(job, JobStatus::Expired, None, Some(&reason), now);
        match self
            .store
            .end_outbound_job(job.id.clone(), JobStatus::Expired, reason, vec![body], now)
            .await
        {
            Ok(true) => self.outbox.wake(),
            Ok(false) => {}
            Err(e) => tracing::error!(job = %job.id, error = %e, "outbound: cannot expire"),
        }
    }

    /// Jobs left `dialing` by a crash: the attempt was made, the job goes on later.
    async fn recover(&self) {
        let jobs = match self.store.outbound_jobs(Some(JobStatus::Dialing)).await {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "outbound: cannot read the queue at start");
                return;
            }
        };
        for job in jobs {
            let Some(open) = job
                .attempts
                .iter()
                .rev()
                .find(|a| a.ended_at.is_none())
                .cloned()
            else {
                continue;
            };
            tracing::warn!(
                job = %job.id, attempt = open.n, call_id = %open.call_id,
                "outbound: hotline stopped while this attempt was dialing; it counts as made"
            );
            self.attempt_ended(
                &job,
                &open,
                0,
                "failed",
                None,
                Some("hotline stopped while this attempt was dialing".into()),
            )
            .await;
        }
    }

    async fn start(self: Arc<Self>, job: OutboundJob, line: tokio::sync::OwnedSemaphorePermit) {
        let Some(port) = self.svc.ports.take() else {
            tracing::warn!(job = %job.id, "outbound: no free RTP port; tried again later");
            return;
        };
        let call_id = format!("{}@hotline", uuid::Uuid::new_v4().simple());
        let now = self.clock.now();
        let n = match self
            .store
            .start_outbound_attempt(job.id.clone(), call_id.clone(), now)
            .await
        {
            Ok(Some(n)) => n,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(job = %job.id, error = %e, "outbound: cannot record the attempt; not dialled");
                return;
            }
        };
        let token = CancellationToken::new();
        self.active().insert(job.id.clone(), token.clone());
        let me = self.clone();
        let span = tracing::info_span!("outbound", job = %job.id, call_id = %call_id);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let attempt = JobAttempt {
                    n,
                    call_id: call_id.clone(),
                    started_at: now,
                    answered_at: None,
                    ended_at: None,
                    sip_code: None,
                    outcome: None,
                };
                me.dial(&job, attempt, port, token).await;
                me.active().remove(&job.id);
                drop(line);
                me.wake();
            },
            span,
        ));
    }

    async fn dial(
        &self,
        job: &OutboundJob,
        attempt: JobAttempt,
        port: crate::call::ports::RtpPort,
        token: CancellationToken,
    ) {
        let target = match jobs::target(&job.to, &self.cfg) {
            Ok(t) => t,
            Err(r) => {
                self.attempt_ended(job, &attempt, 0, "failed", None, Some(r.error))
                    .await;
                return;
            }
        };
        let session_id = u64::from(rand::random::<u32>());
        let offer = sdp::offer(self.svc.media_ip, port.port, &Prefs::new(session_id, 1));
        let from = self
            .cfg
            .trunk
            .from
            .clone()
            .unwrap_or_else(|| format!("sip:hotline@{}", self.sip));
        let credentials = match (&self.cfg.trunk.username, &self.cfg.trunk.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            _ => None,
        };
        tracing::info!(to = %target, attempt = attempt.n, "outbound: dialing");
        let out = self
            .endpoint
            .dial(
                DialRequest {
                    call_id: attempt.call_id.clone(),
                    target: target.clone(),
                    from: from.clone(),
                    proxy: self.cfg.trunk.proxy.clone(),
                    credentials,
                    sdp: offer.to_string(),
                    ring_timeout: Duration::from_millis(job.ring_timeout_ms.max(0) as u64),
                    max_redirects: self.cfg.max_redirects,
                },
                token.clone(),
            )
            .await;
        match out {
            DialOutcome::Failed { code, why, gave_up } => {
                let outcome = outcome_of(code, gave_up);
                tracing::info!(code, %why, outcome, "outbound: no call");
                let reason = if token.is_cancelled() {
                    Some("canceled while ringing".to_string())
                } else {
                    Some(why)
                };
                self.attempt_ended(job, &attempt, code, outcome, None, reason)
                    .await;
            }
            DialOutcome::Answered(a) => {
                let answered_at = self.clock.now();
                let _ = self
                    .store
                    .outbound_answered(job.id.clone(), attempt.n, answered_at)
                    .await;
                let resident = rsipstack::sip::uri::parse_uri(&target)
                    .ok()
                    .and_then(|u| u.user().map(str::to_owned))
                    .unwrap_or_default();
                let library = self.svc.library();
                let call = IncomingCall {
                    call_id: attempt.call_id.clone(),
                    user: job.flow.clone(),
                    from: from.clone(),
                    to: a.to.clone(),
                    caller: resident,
                    offer: String::new(),
                    source: a.source,
                    from_tag: a.local_tag.clone(),
                    // The Call-ID is hotline's own, new for every attempt.
                    invite_branch: String::new(),
                };
                let vars: Vec<(String, String)> = job
                    .vars
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let span =
                    tracing::info_span!("call", call_id = %attempt.call_id, flow = %job.flow);
                let end = tracing::Instrument::instrument(
                    task::run(
                        self.svc.clone(),
                        Admitted {
                            call,
                            events: a.events,
                            commands: a.commands,
                            rings: 0,
                            received_at: attempt.started_at,
                            library,
                            placed: Some(Box::new(Placed {
                                port,
                                offer,
                                session_id,
                                answer: a.sdp,
                                vars,
                                polite_end: token.clone(),
                            })),
                        },
                    ),
                    span,
                )
                .await;
                let result: BTreeMap<String, String> = end.collected.into_iter().collect();
                if let Some(r) = result.get("rating") {
                    self.svc.metrics.survey_rated(&job.flow, r);
                }
                let mut attempt = attempt;
                attempt.answered_at = Some(answered_at);
                let reason = token
                    .is_cancelled()
                    .then(|| "canceled during the call; the flow said goodbye".to_string());
                self.attempt_ended(job, &attempt, 200, "answered", Some(result), reason)
                    .await;
            }
        }
    }

    /// Writes an attempt's end, what becomes of its job, and the events, in one go.
    async fn attempt_ended(
        &self,
        job: &OutboundJob,
        attempt: &JobAttempt,
        code: u16,
        outcome: &str,
        result: Option<BTreeMap<String, String>>,
        reason: Option<String>,
    ) {
        let now = self.clock.now();
        // The store knows best whether a cancel came meanwhile.
        let fresh = self.store.outbound_job(job.id.clone()).await.ok().flatten();
        let canceled = fresh.as_ref().is_some_and(|j| j.cancel_requested);
        let made = fresh
            .as_ref()
            .map_or(attempt.n, |j| j.attempts.len() as u32)
            .max(attempt.n);
        let (status, next, reason) = if canceled {
            (
                JobStatus::Canceled,
                None,
                reason.or(Some("canceled".into())),
            )
        } else if outcome == "answered" {
            (JobStatus::Completed, None, reason)
        } else if !retried(code, outcome) {
            (JobStatus::Failed, None, reason)
        } else if made >= job.max_attempts {
            let why = format!(
                "{made} attempt(s) of {} made; the last: {}",
                job.max_attempts,
                reason.unwrap_or_else(|| outcome.to_string())
            );
            (JobStatus::Failed, None, Some(why))
        } else {
            let after = now.plus(Duration::from_millis(job.retry_after_ms.max(0) as u64));
            let slot = next_slot(after, &job.window, &self.tz);
            match job.deadline {
                Some(dl) if slot > dl => {
                    let why = format!(
                        "could not be attempted again before its deadline {dl} (last: {outcome})"
                    );
                    (JobStatus::Expired, None, Some(why))
                }
                _ => (JobStatus::Scheduled, Some(slot), reason),
            }
        };
        let mut ended = attempt.clone();
        ended.ended_at = Some(now);
        ended.sip_code = (code != 0).then_some(code);
        ended.outcome = Some(outcome.to_string());
        let mut snapshot = fresh.unwrap_or_else(|| job.clone());
        if let Some(a) = snapshot.attempts.iter_mut().find(|a| a.n == ended.n) {
            *a = ended.clone();
        }
        snapshot.result = result.clone().or(snapshot.result);
        snapshot.next_attempt_at = next;
        let mut events = vec![attempt_event(&snapshot, &ended, status, now)];
        if status.is_final() {
            if status == JobStatus::Expired {
                log_expired(&snapshot, reason.as_deref().unwrap_or_default());
            }
            events.push(job_event(
                &snapshot,
                status,
                result.as_ref(),
                reason.as_deref(),
                now,
            ));
        }
        tracing::info!(
            status = status.name(),
            outcome,
            code,
            "outbound: attempt ended"
        );
        let end = AttemptEnd {
            job: job.id.clone(),
            n: ended.n,
            ended_at: now,
            sip_code: ended.sip_code,
            outcome: outcome.to_string(),
            status,
            next_attempt_at: next,
            result,
            reason,
            events,
        };
        if let Err(e) = self.store.end_outbound_attempt(end).await {
            tracing::error!(job = %job.id, error = %e, "outbound: cannot record the attempt's end");
        }
        self.outbox.wake();
    }
}

enum Slot {
    Now,
    Later,
}

fn log_expired(job: &OutboundJob, reason: &str) {
    tracing::error!(
        job = %job.id,
        to = %job.to,
        ticket = job.ticket_id.as_deref().unwrap_or("-"),
        "OUTBOUND JOB {} TO {} EXPIRED ({reason}): this call-back has to go to a person",
        job.id,
        job.to
    );
}

/// `"type": "outbound"`, `"event": "attempt"`: one attempt ended.
fn attempt_event(job: &OutboundJob, a: &JobAttempt, status: JobStatus, now: UtcMs) -> String {
    json!({
        "schema": 1,
        "type": "outbound",
        "event": "attempt",
        "at": now,
        "job_id": job.id,
        "flow": job.flow,
        "to": job.to,
        "ticket_id": job.ticket_id,
        "status": status,
        "attempt": a,
        "next_attempt_at": job.next_attempt_at,
    })
    .to_string()
}

/// `"type": "outbound"`, `"event": "job"`: the job ended; an expired one says so loudly.
fn job_event(
    job: &OutboundJob,
    status: JobStatus,
    result: Option<&BTreeMap<String, String>>,
    reason: Option<&str>,
    now: UtcMs,
) -> String {
    let mut v = json!({
        "schema": 1,
        "type": "outbound",
        "event": "job",
        "at": now,
        "job_id": job.id,
        "flow": job.flow,
        "to": job.to,
        "ticket_id": job.ticket_id,
        "vars": job.vars,
        "status": status,
        "attempts": job.attempts,
        "result": result.or(job.result.as_ref()),
        "reason": reason,
    });
    if status == JobStatus::Expired {
        v["alert"] = json!(format!(
            "EXPIRED: the call to {} was not made before its deadline; this call-back has to go to a person",
            job.to
        ));
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issues_code_table() {
        for (code, outcome, again) in [
            (486, "busy", true),
            (600, "busy", true),
            (408, "no-answer", true),
            (480, "no-answer", true),
            (503, "failed", true),
            (404, "rejected", false),
            (484, "rejected", false),
            (603, "rejected", false),
            (604, "rejected", false),
            (401, "rejected", false),
            (500, "failed", false),
        ] {
            assert_eq!(outcome_of(code, None), outcome, "{code}");
            assert_eq!(retried(code, outcome), again, "{code}");
        }
        assert_eq!(outcome_of(487, Some(GaveUp::RingTimeout)), "no-answer");
    }

    #[test]
    fn a_trunk_domain_from_its_proxy() {
        let t = TrunkConfig {
            proxy: Some("sip:trunk.example.net:5060;transport=udp".into()),
            ..TrunkConfig::default()
        };
        assert_eq!(t.domain().as_deref(), Some("trunk.example.net:5060"));
        assert_eq!(TrunkConfig::default().domain(), None);
    }
}
