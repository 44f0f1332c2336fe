//! SIP endpoint: SDP offer/answer now; the rsipstack-based endpoint and dialogs come later.
pub mod sdp;
