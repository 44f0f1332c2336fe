//! The SIP endpoint. `sdp` is pure offer/answer; `endpoint` runs the rsipstack-based
//! user agent server and hands each call to the call layer through the types below.
//! Nothing here knows about flows: a call is a stream of `SipEvent`s in and
//! `SipCommand`s out.
mod build;
mod check;
mod dialog;
mod digest;
pub mod endpoint;
#[doc(hidden)]
pub mod fuzz;
pub mod gate;
pub mod guard;
pub mod refusals;
pub mod sdp;
pub mod uac;
mod wire;

pub use endpoint::{NewCall, SipConfig, SipEndpoint, SipError, SipStats};

use std::net::SocketAddr;

/// A new INVITE, as the call layer needs it.
#[derive(Clone, Debug)]
pub struct IncomingCall {
    pub call_id: String,
    /// The Request-URI's user part: names the flow (`sip:water@host`).
    pub user: String,
    /// The caller: From's display name and URI, as text.
    pub from: String,
    pub to: String,
    /// The caller's number or user part, for tickets.
    pub caller: String,
    /// From's tag: with the Call-ID, the call's identity wherever a proxy delivers it
    /// (a ticket's idempotency key is derived from both and the INVITE's branch).
    pub from_tag: String,
    /// The branch of the caller's own Via (the bottom one), when it is RFC 3261's
    /// (`z9hG4bK...`): unique to this INVITE, and the same wherever a proxy delivers
    /// it. With the Call-ID and From's tag, what tells this call from a later one whose
    /// phone reused both (a counter reset by a reboot); empty otherwise.
    pub invite_branch: String,
    /// The SDP offer body (empty when the INVITE had none: offer in the 200, answer in ACK).
    pub offer: String,
    pub source: SocketAddr,
}

/// What the SIP layer tells a call, in order.
#[derive(Debug)]
pub enum SipEvent {
    /// The 200 was acknowledged (ACK, with the SDP answer if the INVITE had no offer).
    Acked { sdp: Option<String> },
    /// The 200 was never acknowledged within 64·T1; the call is over.
    AckTimeout,
    /// The caller hung up (BYE) or cancelled while ringing (CANCEL, answered with 487).
    Hangup { cancelled: bool },
    /// A re-INVITE with a new offer; the call answers with `SipCommand::Reoffer`.
    Reinvite { offer: String },
    /// A key by SIP INFO (`application/dtmf-relay` or `application/dtmf`).
    Dtmf(char),
    /// The outcome of a REFER the call asked for: true once the transferee is connected
    /// (NOTIFY with a 2xx sipfrag), false on a REFER rejection or a failed sipfrag.
    TransferDone { ok: bool },
}

/// What a call tells the SIP layer.
#[derive(Debug)]
pub enum SipCommand {
    /// 180 Ringing (again: call waiting in the queue; the call layer repeats it).
    Ringing,
    /// 200 OK with this SDP answer; retransmitted until ACKed (RFC 3261 13.3.1.4).
    Answer { sdp: String },
    /// A final error response to the INVITE: 486, 488, 503 (+ Retry-After), 480, 404...
    Reject { code: u16, retry_after: Option<u32> },
    /// 200 to the pending re-INVITE with this answer, or an error code (488).
    Reoffer { result: Result<String, u16> },
    /// Blind transfer (RFC 3515 REFER) to this URI.
    Refer { target: String },
    /// Send BYE (after answering) and forget the dialog.
    Hangup,
}
