//! The calls in progress and the callers waiting for a line, for the status page: each
//! call task publishes where its flow is (on entering a state, not per packet), and
//! the ops HTTP takes a snapshot. Callers appear masked to their last four digits.
use crate::store::UtcMs;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// A call in a flow, as the status page shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CallView {
    pub flow: String,
    /// The flow state the call is in.
    pub state: String,
    /// When it was answered.
    pub since: UtcMs,
    /// The caller's number, all but the last four digits hidden.
    pub caller: String,
}

/// A caller ringing in the queue for a free line (P-RING).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct WaitingView {
    pub flow: String,
    /// When the INVITE came.
    pub since: UtcMs,
    pub caller: String,
}

#[derive(Default)]
struct Inner {
    next: AtomicU64,
    calls: Mutex<BTreeMap<u64, CallView>>,
    waiting: Mutex<BTreeMap<u64, WaitingView>>,
}

/// The registry; cheap to clone.
#[derive(Clone, Default)]
pub struct LiveCalls(Arc<Inner>);

/// `1380013800` → `******3800`: enough for an operator to tell callers apart.
pub fn mask(caller: &str) -> String {
    let chars: Vec<char> = caller.chars().collect();
    let keep = chars.len().min(4);
    let hidden = chars.len() - keep;
    let mut s: String = "*".repeat(hidden.max(1));
    s.extend(&chars[hidden..]);
    s
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LiveCalls {
    /// A call answered into `flow`; it leaves the registry when the guard drops.
    pub fn answered(&self, flow: &str, caller: &str) -> LiveCall {
        let id = self.0.next.fetch_add(1, Relaxed);
        lock(&self.0.calls).insert(
            id,
            CallView {
                flow: flow.to_string(),
                state: String::new(),
                since: UtcMs::now(),
                caller: mask(caller),
            },
        );
        LiveCall {
            reg: self.0.clone(),
            id,
        }
    }

    /// A caller queued for a line since `since`, until the guard drops.
    pub fn waiting(&self, flow: &str, caller: &str, since: UtcMs) -> Waiting {
        let id = self.0.next.fetch_add(1, Relaxed);
        lock(&self.0.waiting).insert(
            id,
            WaitingView {
                flow: flow.to_string(),
                since,
                caller: mask(caller),
            },
        );
        Waiting {
            reg: self.0.clone(),
            id,
        }
    }

    /// The calls in progress, longest first.
    pub fn calls(&self) -> Vec<CallView> {
        lock(&self.0.calls).values().cloned().collect()
    }

    /// The callers waiting, in arrival order.
    pub fn waiting_callers(&self) -> Vec<WaitingView> {
        lock(&self.0.waiting).values().cloned().collect()
    }
}

/// A call's entry; it updates its state and leaves when dropped.
pub struct LiveCall {
    reg: Arc<Inner>,
    id: u64,
}

impl LiveCall {
    pub fn enter(&self, state: &str) {
        if let Some(c) = lock(&self.reg.calls).get_mut(&self.id) {
            c.state.clear();
            c.state.push_str(state);
        }
    }
}

impl Drop for LiveCall {
    fn drop(&mut self) {
        lock(&self.reg.calls).remove(&self.id);
    }
}

pub struct Waiting {
    reg: Arc<Inner>,
    id: u64,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        lock(&self.reg.waiting).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_listed_while_it_lasts_with_its_state_and_a_masked_caller() {
        let live = LiveCalls::default();
        let w = live.waiting("water", "13800138000", UtcMs(5));
        let c = live.answered("property", "13800138000");
        c.enter("greet");
        assert_eq!(live.calls()[0].state, "greet");
        assert_eq!(live.calls()[0].caller, "*******8000");
        assert_eq!(live.waiting_callers()[0].flow, "water");
        drop(c);
        drop(w);
        assert!(live.calls().is_empty() && live.waiting_callers().is_empty());
        assert_eq!(mask("12"), "*12");
        assert_eq!(mask(""), "*");
    }
}
