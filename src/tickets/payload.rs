//! A ticket's JSON form as the ticket system receives it (`"schema": 1`). The body of
//! a ticket is the same on every attempt, so a receiver may compare repeats byte for
//! byte; only the timestamp header changes.
use crate::store::{Outgoing, TicketId, UtcMs};
use base64::Engine as _;
use serde::Serialize;
use serde::ser::SerializeMap;
use std::path::Path;

/// Bumped when a field changes meaning or goes away; new fields may appear without it.
pub const SCHEMA: u32 = 1;

/// A recording bigger than this is linked, never inlined: a POST stays bounded.
const MAX_INLINE: u64 = 20 * 1024 * 1024;

#[derive(Serialize)]
struct TicketJson<'a> {
    schema: u32,
    id: TicketId,
    idempotency_key: &'a str,
    call_id: &'a str,
    caller: &'a str,
    flow: &'a str,
    state: &'a str,
    category: &'a str,
    priority: &'a str,
    department: Option<&'a str>,
    created_at: UtcMs,
    due_at: Option<UtcMs>,
    fields: Fields<'a>,
    recordings: Vec<Recording>,
}

/// The values collected, as one object in the order the flow collected them.
struct Fields<'a>(&'a [(String, String)]);

impl Serialize for Fields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct Recording {
    name: String,
    content_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
    /// Why an inline recording is missing (it was linked instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// How recordings reach the ticket system.
#[derive(Clone, Debug)]
pub struct Recordings {
    /// The ops HTTP as the ticket system reaches it, without a trailing slash.
    pub base_url: String,
    pub inline: bool,
}

impl Recordings {
    /// `BASE/recordings/TOKEN/N`: the token is 128 random bits per ticket.
    pub fn url(&self, token: &str, index: usize) -> String {
        format!("{}/recordings/{token}/{index}", self.base_url)
    }
}

pub fn content_type(path: &str) -> &'static str {
    if Path::new(path)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
    {
        "audio/wav"
    } else {
        "application/octet-stream"
    }
}

/// The JSON body of a ticket.
pub async fn body(o: &Outgoing, rec: &Recordings) -> Vec<u8> {
    let t = &o.ticket;
    let mut recordings = Vec::with_capacity(t.recordings.len());
    for (i, path) in t.recordings.iter().enumerate() {
        let name = Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("recording-{i}"));
        let mut r = Recording {
            name,
            content_type: content_type(path),
            url: Some(rec.url(&o.access_token, i)),
            data_base64: None,
            error: None,
        };
        if rec.inline {
            match read_bounded(path).await {
                Ok(bytes) => {
                    r.url = None;
                    r.data_base64 = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
                }
                // A missing file must not keep the ticket from its desk: it goes with
                // the link and the reason.
                Err(e) => r.error = Some(e),
            }
        }
        recordings.push(r);
    }
    let j = TicketJson {
        schema: SCHEMA,
        id: t.id,
        idempotency_key: &t.idempotency_key,
        call_id: &t.call_id,
        caller: &t.caller,
        flow: &t.flow,
        state: &t.state,
        category: &t.category,
        priority: &t.priority,
        department: t.department.as_deref(),
        created_at: t.created_at,
        due_at: t.due_at,
        fields: Fields(&t.fields),
        recordings,
    };
    // Strings and numbers only: serialising cannot fail.
    serde_json::to_vec(&j).unwrap_or_default()
}

async fn read_bounded(path: &str) -> Result<Vec<u8>, String> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    if meta.len() > MAX_INLINE {
        return Err(format!("{path}: {} bytes, too big to inline", meta.len()));
    }
    tokio::fs::read(path)
        .await
        .map_err(|e| format!("{path}: {e}"))
}
