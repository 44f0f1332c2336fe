//! What a call shows the operators while it goes: its entry among the live calls
//! (the status page) and its share of the metrics. The call task hands it each flow
//! command and looks in after each event; nothing here is per packet.
use super::CallServices;
use super::live::LiveCall;
use crate::flow::model::EventKind;
use crate::flow::{Command, Flow, Session};
use crate::metrics::{CallMetrics, hangup_reason};
use crate::store::UtcMs;
use std::sync::Arc;
use std::time::Duration;

/// The protocol's events as the metrics count them.
const COUNTED: [EventKind; 5] = [
    EventKind::NoInput,
    EventKind::NoMatch,
    EventKind::TooQuiet,
    EventKind::Noise,
    EventKind::Voice,
];

pub struct CallWatch {
    metrics: Arc<CallMetrics>,
    live: LiveCall,
    flow: String,
    /// The last prompt played: a hang-up after one of the protocol's closing lines is
    /// the protocol's hang-up.
    last_prompt: Option<String>,
    /// The session's event counts already counted.
    seen: [u64; COUNTED.len()],
}

impl CallWatch {
    /// The call was answered after `rings` rings; it rang since `received_at`.
    pub fn answered(
        svc: &CallServices,
        flow: &Flow,
        caller: &str,
        rings: u32,
        received_at: UtcMs,
    ) -> CallWatch {
        let waited = Duration::from_millis(UtcMs::now().since(received_at).max(0) as u64);
        svc.metrics.answered(flow, rings, waited);
        CallWatch {
            metrics: svc.metrics.clone(),
            live: svc.live.answered(&flow.name, caller),
            flow: flow.name.clone(),
            last_prompt: None,
            seen: [0; COUNTED.len()],
        }
    }

    /// A command from the flow, before the call carries it out.
    pub fn command(&mut self, cmd: &Command) {
        match cmd {
            Command::Entered { state } => self.live.enter(state),
            Command::Play { utterances, .. } => {
                self.metrics.prompts_played(&self.flow, utterances.len());
                if let Some(u) = utterances.last() {
                    self.last_prompt = Some(u.prompt.clone());
                }
            }
            Command::Hangup => {
                if let Some(r) = self.last_prompt.as_deref().and_then(hangup_reason) {
                    self.metrics.protocol_hangup(r);
                }
            }
            _ => {}
        }
    }

    /// Counts the protocol events the session met since the last look.
    pub fn events(&mut self, session: &Session) {
        for (kind, seen) in COUNTED.iter().zip(self.seen.iter_mut()) {
            let n = session.fired(*kind);
            if n > *seen {
                self.metrics.protocol_event(*kind, n - *seen);
                *seen = n;
            }
        }
    }
}
