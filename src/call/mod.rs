//! Calls: one task per call joins the SIP dialog, its RTP stream and a flow session.
pub mod latch;
pub mod lifecycle;
pub mod live;
pub mod media;
pub mod ports;
pub mod pump;
pub mod quiet;
pub mod rtpio;
pub mod task;
pub mod watch;
pub mod wheel;

use crate::data::DataSource;
use crate::flow::{Catalogue, Flow, TicketRequest};
use crate::media::prompt::PromptCache;
use crate::media::voice::VoiceSettings;
use crate::sip::IncomingCall;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

/// A ticket as the call files it: the flow's request, who asked, and the recordings.
#[derive(Clone, Debug)]
pub struct TicketToFile {
    pub call_id: String,
    pub caller: String,
    pub request: TicketRequest,
    /// Paths of the caller's recordings the ticket links.
    pub recordings: Vec<String>,
    /// From's tag, the caller's INVITE branch and the n-th ticket of the filing state:
    /// with the Call-ID, the ticket's identity.
    pub from_tag: String,
    pub invite_branch: String,
    pub ordinal: u32,
}

pub type TicketFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// Where calls leave their records and tickets (P-RECORD). `file_ticket` resolves once
/// the ticket is durable, with its id, or with why it is not.
pub trait Backend: Send + Sync {
    fn file_ticket(&self, t: TicketToFile) -> TicketFuture;
    /// Never blocks the call: the record is queued and written in the background.
    fn record_call(&self, r: CallRecord);
    /// Resolves once everything recorded so far is durable (shutdown, tests).
    fn flush(&self) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

use crate::store::UtcMs;
pub use crate::store::{CallEvent, CallRecord};

/// A fresh record for a call that has just arrived.
pub fn new_record(call: &IncomingCall, flow: &str, received_at: UtcMs, rings: u32) -> CallRecord {
    CallRecord {
        call_id: call.call_id.clone(),
        flow: flow.to_string(),
        from: call.from.clone(),
        to: call.to.clone(),
        caller: call.caller.clone(),
        received_at,
        answered_at: None,
        ended_at: received_at,
        rings,
        outcome: String::new(),
        reason: None,
        path: Vec::new(),
        events: Vec::new(),
    }
}

/// How the call layer fills a record in as the call goes.
pub trait RecordExt {
    fn event(&mut self, offset_ms: i64, kind: &str, detail: String);
    /// Sets the outcome once; later calls keep the first (the first cause wins).
    fn finish(&mut self, outcome: &str, reason: Option<String>);
    /// Playback stopped at `offset_ms`: prompts listed to start later were never heard.
    fn cut_prompts(&mut self, offset_ms: i64);
}

impl RecordExt for CallRecord {
    fn event(&mut self, offset_ms: i64, kind: &str, detail: String) {
        self.events.push(CallEvent {
            offset_ms,
            kind: kind.to_string(),
            detail,
        });
    }

    fn cut_prompts(&mut self, offset_ms: i64) {
        self.events
            .retain(|e| e.kind != "prompt" || e.offset_ms <= offset_ms);
    }

    fn finish(&mut self, outcome: &str, reason: Option<String>) {
        if self.outcome.is_empty() {
            self.outcome = outcome.to_string();
            self.reason = reason;
            self.ended_at = UtcMs::now();
        }
    }
}

/// What a call plays and follows: the flows, the prompts and the lookup data, loaded
/// together and replaced together. A call keeps the library it started with, so a
/// reload never changes a flow under a caller's feet.
pub struct Library {
    pub flows: HashMap<String, Arc<Flow>>,
    pub default_flow: Arc<Flow>,
    pub catalogue: Arc<Catalogue>,
    pub prompts: Arc<PromptCache>,
    pub data: Arc<dyn DataSource>,
    /// Holidays and worked weekend days, for `now.holiday` and `now.workday`.
    pub calendar: Arc<crate::flow::clock::Calendar>,
}

impl Library {
    /// The Request-URI's user names the flow; anyone else gets the default flow.
    pub fn flow_for(&self, user: &str) -> Arc<Flow> {
        self.flows
            .get(user)
            .cloned()
            .unwrap_or_else(|| self.default_flow.clone())
    }
}

/// What every call shares.
pub struct CallServices {
    /// Read once per call; written only by a reload that loaded without an error.
    library: RwLock<Arc<Library>>,
    pub backend: Arc<dyn Backend>,
    pub ports: ports::PortPool,
    /// Sends and receives every call's RTP.
    pub pump: pump::MediaPump,
    pub voice: VoiceSettings,
    pub media_ip: IpAddr,
    pub recordings_dir: PathBuf,
    /// Fires when hotline stops: every call says goodbye with a BYE and leaves its record.
    pub stopping: tokio_util::sync::CancellationToken,
    /// What the calls count for `/metrics`.
    pub metrics: Arc<crate::metrics::CallMetrics>,
    /// The calls in progress and the callers waiting, for `/status`.
    pub live: live::LiveCalls,
}

impl CallServices {
    pub fn new(
        library: Library,
        backend: Arc<dyn Backend>,
        ports: ports::PortPool,
        pump: pump::MediaPump,
        voice: VoiceSettings,
        media_ip: IpAddr,
        recordings_dir: PathBuf,
    ) -> CallServices {
        let metrics = Arc::new(crate::metrics::CallMetrics::default());
        metrics.flows_loaded(&library);
        CallServices {
            library: RwLock::new(Arc::new(library)),
            backend,
            ports,
            pump,
            voice,
            media_ip,
            recordings_dir,
            stopping: tokio_util::sync::CancellationToken::new(),
            metrics,
            live: live::LiveCalls::default(),
        }
    }

    /// Counts into `metrics` (shared with the backend, which counts the records).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::CallMetrics>) -> CallServices {
        metrics.flows_loaded(&self.library());
        self.metrics = metrics;
        self
    }

    /// The library new calls get now.
    pub fn library(&self) -> Arc<Library> {
        // A poisoned lock still holds a whole Arc: the writer only swaps it.
        self.library
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// New calls get `lib`; calls in progress keep theirs.
    pub fn replace_library(&self, lib: Library) {
        self.metrics.flows_loaded(&lib);
        *self.library.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(lib);
    }

    pub fn recording_path(&self, call_id: &str, name: &str) -> PathBuf {
        // Call-IDs come from the network: only safe characters reach the file system.
        let safe: String = call_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let nonce: u64 = rand::random();
        self.recordings_dir
            .join(format!("{safe}-{name}-{nonce:016x}.wav"))
    }
}
