//! hotline: a telephony IVR engine. Pure cores (`flow`, `media`) with thin async edges.
pub mod flow;
pub mod media;
pub mod sip;
