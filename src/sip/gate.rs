//! What the endpoint asks before it answers an OPTIONS or takes a new INVITE: whether
//! this instance is in service. A proxy in front of several instances (Kamailio's
//! dispatcher) probes with OPTIONS and fails an INVITE over on a 5xx or a 486, so
//! these two answers are how an instance steps out of a farm's rotation.
//!
//! The endpoint knows nothing of draining or lines; the server gives it a [`Gate`].

/// The header a farm's proxy adds to an INVITE while it has other instances to try:
/// an instance whose lines are all busy may then refuse the call (486) at once
/// instead of queueing it ringing. Without it, a full instance queues (P-RING).
pub const TRY_NEXT_HEADER: &str = "X-Hotline-Busy";
pub const TRY_NEXT_VALUE: &str = "try-next";

/// A refusal the endpoint sends statelessly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    /// Seconds for Retry-After (RFC 3261 §21.5.4 on a 503).
    pub retry_after: Option<u32>,
    /// Spread Retry-After over two thirds to four thirds of its value, by the request
    /// (a retransmission gets the same answer): callers refused in the same second do
    /// not all come back in the same second.
    pub spread: bool,
    /// Says why, in a Warning-free `Reason`-like header an operator sees in a trace.
    pub why: &'static str,
    /// Counted in the refusal tally (`hotline_calls_refused_total`, the log's summary),
    /// by the request's source.
    pub tally: Option<super::refusals::Reason>,
}

pub trait Gate: Send + Sync + std::fmt::Debug {
    /// An out-of-dialog OPTIONS: `None` answers 200.
    fn options(&self) -> Option<Refusal>;
    /// A new INVITE; `may_try_next` when the proxy says it has other instances.
    fn invite(&self, may_try_next: bool) -> Option<Refusal>;
}
