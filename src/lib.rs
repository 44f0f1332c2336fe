//! hotline: a telephony IVR engine. Pure cores (`flow`, `media`) with thin async edges.
pub mod call;
pub mod config;
pub mod data;
pub mod designer;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod logs;
pub mod media;
pub mod metrics;
pub mod outbound;
pub mod server;
pub mod sip;
pub mod store;
pub mod tickets;
pub mod timers;
