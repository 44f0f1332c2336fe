//! `POST /outbound`'s body: read, checked, and made into a job. Malformed JSON or a
//! field of the wrong type is a 400 naming the field; a value that cannot be a call
//! (a `to` that is neither a SIP URI nor a number, an unknown flow, a window that ends
//! before it starts, a deadline before `not_before`) is a 422. Nothing is stored then.
use super::OutboundConfig;
use super::schedule::{Clock, check_window, next_slot};
use crate::flow::expr::parse_duration;
use crate::store::{NewJob, UtcMs, Window};
use jiff::tz::TimeZone;
use serde_json::Value;
use std::collections::BTreeMap;

/// Why a body was refused: the status (400 or 422) and what to tell the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub error: String,
}

fn bad(error: impl Into<String>) -> Refused {
    Refused {
        status: 400,
        error: error.into(),
    }
}

fn unprocessable(error: impl Into<String>) -> Refused {
    Refused {
        status: 422,
        error: error.into(),
    }
}

fn text(body: &Value, name: &str) -> Result<Option<String>, Refused> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if name == "ticket_id" => Ok(Some(n.to_string())),
        Some(_) => Err(bad(format!("field '{name}' must be a string"))),
    }
}

fn time(body: &Value, name: &str) -> Result<Option<UtcMs>, Refused> {
    let Some(s) = text(body, name)? else {
        return Ok(None);
    };
    let t: jiff::Timestamp = s.parse().map_err(|_| {
        unprocessable(format!(
            "{name} '{s}' is not an RFC 3339 time (2026-12-02T09:00:00+08:00)"
        ))
    })?;
    Ok(Some(UtcMs(t.as_millisecond())))
}

fn duration_ms(body: &Value, name: &str, default: std::time::Duration) -> Result<i64, Refused> {
    let d = match text(body, name)? {
        None => default,
        Some(s) => parse_duration(&s).map_err(|e| unprocessable(format!("{name} '{s}': {e}")))?,
    };
    Ok(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What `to` dials: a SIP URI as given, or a number through the trunk.
pub fn target(to: &str, cfg: &OutboundConfig) -> Result<String, Refused> {
    let to = to.trim();
    let lower = to.to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        let ok = rsipstack::sip::uri::parse_uri(to).is_ok()
            && !to.contains(|c: char| c.is_whitespace() || c == '<' || c == '>');
        return if ok {
            Ok(to.to_string())
        } else {
            Err(unprocessable(format!("to '{to}' is not a valid SIP URI")))
        };
    }
    let digits = to.strip_prefix('+').unwrap_or(to);
    if !digits.is_empty() && digits.len() <= 32 && digits.bytes().all(|b| b.is_ascii_digit()) {
        let Some(domain) = cfg.trunk.domain() else {
            return Err(unprocessable(format!(
                "to '{to}' is a number, and no trunk is set (outbound.trunk.domain or proxy) to dial it through"
            )));
        };
        return Ok(format!("sip:{to}@{domain}"));
    }
    Err(unprocessable(format!(
        "to '{to}' is neither a SIP URI (sip:user@host) nor a phone number"
    )))
}

/// Reads a `POST /outbound` body; `flows` are the flows hotline serves now.
pub fn parse(
    raw: &[u8],
    cfg: &OutboundConfig,
    flows: &[String],
    tz: &TimeZone,
    clock: &Clock,
) -> Result<NewJob, Refused> {
    let body: Value =
        serde_json::from_slice(raw).map_err(|e| bad(format!("malformed JSON: {e}")))?;
    if !body.is_object() {
        return Err(bad(
            "the body must be a JSON object {\"to\", \"flow\", \"vars\", ...}",
        ));
    }
    if let Some(obj) = body.as_object() {
        const KNOWN: [&str; 11] = [
            "to",
            "flow",
            "vars",
            "ticket_id",
            "not_before",
            "deadline",
            "max_attempts",
            "retry_after",
            "ring_timeout",
            "window",
            "idempotency_key",
        ];
        if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(bad(format!(
                "unknown field '{k}' (fields: {})",
                KNOWN.join(", ")
            )));
        }
    }
    let to = text(&body, "to")?.ok_or_else(|| bad("field 'to' is missing"))?;
    let flow = text(&body, "flow")?.ok_or_else(|| bad("field 'flow' is missing"))?;
    let mut vars = BTreeMap::new();
    match body.get("vars") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return Err(bad(format!("vars.{k} must be a string or a number"))),
                };
                vars.insert(k.clone(), v);
            }
        }
        Some(_) => return Err(bad("field 'vars' must be an object")),
    }
    let ticket_id = text(&body, "ticket_id")?;
    let not_before = time(&body, "not_before")?;
    let deadline = time(&body, "deadline")?;
    let max_attempts = match body.get("max_attempts") {
        None | Some(Value::Null) => cfg.max_attempts,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n @ 1..=20) => n as u32,
            _ => return Err(unprocessable("max_attempts must be from 1 to 20")),
        },
        Some(_) => return Err(bad("field 'max_attempts' must be a number")),
    };
    let retry_after_ms = duration_ms(&body, "retry_after", cfg.retry_after)?;
    let ring_timeout_ms = duration_ms(&body, "ring_timeout", cfg.ring_timeout)?;
    let window = match body.get("window") {
        None | Some(Value::Null) => cfg.window.clone(),
        Some(w @ Value::Object(_)) => Window {
            start: text(w, "start")?.ok_or_else(|| bad("field 'window.start' is missing"))?,
            end: text(w, "end")?.ok_or_else(|| bad("field 'window.end' is missing"))?,
        },
        Some(_) => return Err(bad("field 'window' must be an object {\"start\", \"end\"}")),
    };
    let idempotency_key = text(&body, "idempotency_key")?;
    if idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 200)
    {
        return Err(unprocessable("idempotency_key must be 1 to 200 characters"));
    }
    target(&to, cfg)?;
    if !flows.contains(&flow) {
        return Err(unprocessable(format!(
            "flow '{flow}' is not served (flows: {})",
            flows.join(", ")
        )));
    }
    check_window(&window).map_err(unprocessable)?;
    if let (Some(nb), Some(dl)) = (not_before, deadline)
        && dl <= nb
    {
        return Err(unprocessable(format!(
            "deadline {dl} is not after not_before {nb}"
        )));
    }
    if !(1_000..=600_000).contains(&ring_timeout_ms) {
        return Err(unprocessable("ring_timeout must be from 1s to 10m"));
    }
    if retry_after_ms < 1_000 {
        return Err(unprocessable("retry_after must be at least 1s"));
    }
    // The flow's `{ticket}` is the job's ticket unless the vars say otherwise.
    if let Some(t) = &ticket_id {
        vars.entry("ticket".into()).or_insert_with(|| t.clone());
    }
    let now = clock.now();
    let earliest = not_before.map_or(now, |nb| nb.max(now));
    // A job that cannot be attempted before its deadline is due now: the scheduler
    // expires it at once, loudly, rather than keep a promise nobody will make.
    let next = next_slot(earliest, &window, tz);
    let next = if deadline.is_some_and(|d| next > d) {
        now
    } else {
        next
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    Ok(NewJob {
        id: id.get(..16).unwrap_or(&id).to_string(),
        idempotency_key,
        created_at: now,
        to: to.trim().to_string(),
        flow,
        vars,
        ticket_id,
        not_before,
        deadline,
        max_attempts,
        retry_after_ms,
        ring_timeout_ms,
        window,
        next_attempt_at: next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OutboundConfig {
        OutboundConfig::default()
    }

    fn run(body: &str) -> Result<NewJob, Refused> {
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        parse(
            body.as_bytes(),
            &cfg(),
            &["callback".to_string()],
            &tz,
            &Clock::default(),
        )
    }

    fn status(body: &str) -> u16 {
        run(body).err().map_or(201, |r| r.status)
    }

    #[test]
    fn the_bad_input_table() {
        assert_eq!(status("{not json"), 400);
        assert_eq!(status("[1]"), 400);
        assert_eq!(status(r#"{"flow":"callback"}"#), 400);
        assert_eq!(status(r#"{"to":5,"flow":"callback"}"#), 400);
        assert_eq!(status(r#"{"to":"mailto:x@y","flow":"callback"}"#), 422);
        assert_eq!(status(r#"{"to":"12ab","flow":"callback"}"#), 422);
        assert_eq!(status(r#"{"to":"sip:1@127.0.0.5","flow":"nope"}"#), 422);
        assert_eq!(
            status(
                r#"{"to":"sip:1@127.0.0.5","flow":"callback","window":{"start":"21:00","end":"08:00"}}"#
            ),
            422
        );
        assert_eq!(
            status(
                r#"{"to":"sip:1@127.0.0.5","flow":"callback","not_before":"2026-12-03T10:00:00+08:00","deadline":"2026-12-03T09:00:00+08:00"}"#
            ),
            422
        );
        assert_eq!(
            status(r#"{"to":"sip:1@127.0.0.5","flow":"callback","tо":1}"#),
            400
        );
        // A number needs a trunk to go through.
        assert_eq!(status(r#"{"to":"13800138000","flow":"callback"}"#), 422);
        assert_eq!(status(r#"{"to":"sip:1@127.0.0.5","flow":"callback"}"#), 201);
    }

    #[test]
    fn defaults_and_the_ticket_var() {
        let j = run(r#"{"to":"sip:1@127.0.0.5","flow":"callback","ticket_id":10000042}"#).unwrap();
        assert_eq!(j.max_attempts, 3);
        assert_eq!(j.retry_after_ms, 30 * 60_000);
        assert_eq!(j.ring_timeout_ms, 30_000);
        assert_eq!(j.vars.get("ticket").map(String::as_str), Some("10000042"));
        assert_eq!(j.window.start, "08:00");
    }
}
