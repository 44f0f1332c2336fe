//! Capacity and P-RING: `max_calls` calls in flows at once; further calls wait ringing
//! in arrival order, up to `queue_max` of them for at most `queue_max_wait`; beyond
//! that, 486. A call answered after waiting is told how many rings it heard.
use crate::call::task::{self, Admitted};
use crate::call::{CallServices, RecordExt, new_record};
use crate::sip::{IncomingCall, SipCommand, SipEvent};
use crate::store::UtcMs;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

pub struct Admission {
    /// Whether the media threads can pace another call (`overload_refuse`).
    pub overload: super::overload::Overload,
    lines: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue_max: usize,
    queue_max_wait: Duration,
}

/// Ring-back periods started between the INVITE and the answer: a call answered at
/// once heard none, one answered 10.5 s later with 5 s periods heard three.
pub fn rings(waited: Duration, period: Duration) -> u32 {
    if period.is_zero() {
        return 0;
    }
    let n = waited.as_micros().div_ceil(period.as_micros());
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Admission {
    pub fn new(max_calls: usize, queue_max: usize, queue_max_wait: Duration) -> Admission {
        Admission {
            overload: super::overload::Overload::new(true),
            lines: Arc::new(Semaphore::new(max_calls)),
            waiting: AtomicUsize::new(0),
            queue_max,
            queue_max_wait,
        }
    }

    pub fn in_flows(&self, max_calls: usize) -> usize {
        max_calls.saturating_sub(self.lines.available_permits())
    }

    /// A line for a call hotline places (src/outbound); None when every line is taken.
    /// Outbound calls hold lines like inbound ones, so a campaign never takes more
    /// than what residents leave free.
    pub fn try_line(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.lines.clone().try_acquire_owned().ok()
    }

    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Rings the call, waits for a line if need be, then runs it through its flow.
    pub async fn admit(
        self: Arc<Self>,
        svc: Arc<CallServices>,
        call: IncomingCall,
        mut events: mpsc::Receiver<SipEvent>,
        commands: mpsc::Sender<SipCommand>,
    ) {
        let received = Instant::now();
        let received_at = UtcMs::now();
        let library = svc.library();
        let flow = library.flow_for(&call.user);
        // The two it needs, not a clone of all the flow's settings held for the call.
        let (answer_after, ring_period) = (flow.settings.answer_after, flow.settings.ring_period);
        // A caller answered at once hears no ringing: a 180 then would be one more
        // message each way for nothing (its 200 follows within milliseconds).
        let free = self.lines.clone().try_acquire_owned();
        if free.is_err() || !answer_after.is_zero() {
            let _ = commands.send(SipCommand::Ringing).await;
        }
        let permit = match free {
            Ok(p) => p,
            Err(_) => {
                let _listed = svc.live.waiting(&flow.name, &call.caller, received_at);
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue_max {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return refuse(
                        &svc,
                        &flow.name,
                        &call,
                        &commands,
                        received_at,
                        486,
                        "every line and the queue are busy",
                    )
                    .await;
                }
                let got = tokio::select! {
                    p = self.lines.clone().acquire_owned() => p.ok(),
                    _ = svc.stopping.cancelled() => {
                        self.waiting.fetch_sub(1, Ordering::SeqCst);
                        return refuse(&svc, &flow.name, &call, &commands, received_at, 503, "hotline is stopping").await;
                    }
                    _ = tokio::time::sleep(self.queue_max_wait) => None,
                    cancelled = wait_for_hangup(&mut events) => {
                        self.waiting.fetch_sub(1, Ordering::SeqCst);
                        return gave_up(&svc, &flow.name, &call, received_at, cancelled, "while waiting for a line");
                    }
                };
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                match got {
                    Some(p) => p,
                    None => {
                        return refuse(
                            &svc,
                            &flow.name,
                            &call,
                            &commands,
                            received_at,
                            486,
                            "waited too long for a line",
                        )
                        .await;
                    }
                }
            }
        };
        // The flow may ask for a delayed answer; the caller hears ringing meanwhile.
        if !answer_after.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(answer_after) => {}
                cancelled = wait_for_hangup(&mut events) => {
                    return gave_up(&svc, &flow.name, &call, received_at, cancelled, "before the answer");
                }
            }
        }
        let rings = rings(received.elapsed(), ring_period);
        let span = tracing::info_span!("call", call_id = %call.call_id, flow = %flow.name);
        let _permit = permit;
        tracing::Instrument::instrument(
            task::run(
                svc,
                Admitted {
                    call,
                    events,
                    commands,
                    rings,
                    received_at,
                    library,
                    placed: None,
                },
            ),
            span,
        )
        .await;
    }
}

/// Resolves when the caller gives up: true for CANCEL, false for a closed dialog.
async fn wait_for_hangup(events: &mut mpsc::Receiver<SipEvent>) -> bool {
    loop {
        match events.recv().await {
            Some(SipEvent::Hangup { cancelled }) => return cancelled,
            None => return false,
            Some(_) => {}
        }
    }
}

/// The caller left before the answer: the call still leaves a record (P-RECORD).
fn gave_up(
    svc: &CallServices,
    flow: &str,
    call: &IncomingCall,
    received_at: UtcMs,
    cancelled: bool,
    when: &str,
) {
    let mut r = new_record(call, flow, received_at, 0);
    r.finish(
        if cancelled {
            "cancelled"
        } else {
            "caller-hung-up"
        },
        Some(when.into()),
    );
    svc.backend.record_call(r);
}

async fn refuse(
    svc: &CallServices,
    flow: &str,
    call: &IncomingCall,
    commands: &mpsc::Sender<SipCommand>,
    received_at: UtcMs,
    code: u16,
    why: &str,
) {
    tracing::info!(call_id = %call.call_id, code, why, "call refused");
    // A 503 says when to try again (RFC 3261 21.5.4); a 486 is the caller's to retry.
    let retry_after = (code == 503).then_some(30);
    let _ = commands
        .send(SipCommand::Reject { code, retry_after })
        .await;
    let mut r = new_record(call, flow, received_at, 0);
    r.finish("rejected", Some(format!("{code}: {why}")));
    svc.backend.record_call(r);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_count_started_periods() {
        let p = Duration::from_secs(5);
        assert_eq!(rings(Duration::ZERO, p), 0);
        assert_eq!(rings(Duration::from_millis(200), p), 1);
        assert_eq!(rings(Duration::from_secs(5), p), 1);
        assert_eq!(rings(Duration::from_millis(10_500), p), 3);
        assert_eq!(rings(Duration::from_secs(15), p), 3);
        assert_eq!(rings(Duration::from_secs(15), Duration::ZERO), 0);
    }

    /// The size of what an async fn returns, without calling it.
    fn future_size<A, B, C, D, E, F: std::future::Future>(
        _: impl FnOnce(A, B, C, D, E) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    /// A call's flow task is one of these for the whole call: 8.5 KiB when its parts
    /// were stored more than once and it had room for an outbound call (issue 11).
    #[test]
    fn a_calls_flow_task_stays_small() {
        let size = future_size(Admission::admit);
        assert!(size <= 6 * 1024, "{size} bytes");
    }
}
