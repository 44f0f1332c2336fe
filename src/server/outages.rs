//! The outage API (W-OUTAGE): a dispatcher publishes, lists and withdraws water
//! outages while calls run. `POST /outages`, `GET /outages`, `DELETE /outages/ID`.
//!
//! An outage is a record of the `outages` lookup source, keyed by area code. It is
//! written atomically (a temporary file, then a rename) to `outages.yaml` in the
//! lookups directory, so it survives a restart and the reload watcher of every hotline
//! sharing that directory picks it up; this hotline also puts it in the records in
//! memory at once, so the next call hears it with no reload wait.
use super::http::{error, json};
use crate::call::CallServices;
use crate::data::{ENDS_AT, Records, has_ended};
use crate::flow::expr::Vars;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// The lookup source the water flow reads outages from.
pub const SOURCE: &str = "outages";
/// Largest `POST /outages` body.
pub const MAX_BODY: usize = 64 * 1024;
/// The prompt callers from the area hear.
const PROMPT: &str = "outage_known";

pub struct Outages {
    /// `outages.yaml` in the lookups directory.
    file: PathBuf,
    svc: Arc<CallServices>,
    tz: TimeZone,
    /// One read-modify-write of the file at a time in this hotline; [`Outages::farm_lock`]
    /// does the same across the hotlines that share the directory.
    writing: tokio::sync::Mutex<()>,
    /// A reload already under way read the old file: once it is in, it would put the
    /// old records back until the watcher's next pass. Reloading after each change
    /// (reloads run one at a time) makes the newest library hold the new file.
    reloader: Option<Arc<super::reload::Reloader>>,
}

/// One outage as the API shows it.
#[derive(Serialize)]
pub struct Shown {
    pub id: String,
    pub area: String,
    pub reason: String,
    pub until: String,
    pub ends_at: Option<String>,
    /// `in force` or `ended`.
    pub state: &'static str,
    pub text: String,
    pub seconds: f64,
}

type Shared = State<Arc<Outages>>;

impl Outages {
    pub fn new(lookups: &std::path::Path, svc: Arc<CallServices>, tz: TimeZone) -> Outages {
        Outages {
            file: lookups.join(format!("{SOURCE}.yaml")),
            svc,
            tz,
            writing: tokio::sync::Mutex::new(()),
            reloader: None,
        }
    }

    pub fn with_reloader(mut self, r: Arc<super::reload::Reloader>) -> Outages {
        self.reloader = Some(r);
        self
    }

    fn reload_after_change(&self, why: &'static str) {
        if let Some(r) = self.reloader.clone() {
            tokio::spawn(async move {
                r.reload(why).await;
            });
        }
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/outages", get(list).post(publish))
            .route("/outages/{id}", delete(withdraw))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(Arc::new(self))
    }

    /// What callers from `area` hear: the text and how long it plays.
    fn rendered(&self, area_prompt: &str, reason: &str, until: &str) -> (String, f64) {
        let lib = self.svc.library();
        let vars: Vars = [
            ("area".to_string(), area_prompt.to_string()),
            ("reason".to_string(), reason.to_string()),
            ("until".to_string(), until.to_string()),
        ]
        .into_iter()
        .collect();
        match lib.catalogue.utterance(PROMPT, &vars) {
            Some(u) => {
                let secs = lib.catalogue.duration(&u).as_secs_f64();
                (u.text, (secs * 100.0).round() / 100.0)
            }
            None => (String::new(), 0.0),
        }
    }

    fn show(&self, key: &str, fields: &[(String, String)], now: Timestamp) -> Shown {
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
        let area_prompt = get("area").unwrap_or_default();
        let reason = get("reason").unwrap_or_default();
        let until = get("until").unwrap_or_default();
        let (text, seconds) = self.rendered(&area_prompt, &reason, &until);
        Shown {
            id: get("id").unwrap_or_else(|| key.to_string()),
            area: key.to_string(),
            reason,
            until,
            ends_at: get(ENDS_AT),
            state: if has_ended(fields, now) {
                "ended"
            } else {
                "in force"
            },
            text,
            seconds,
        }
    }

    /// An exclusive lock on `.outages.lock` beside the file, held until the guard drops,
    /// so that two hotlines of a farm publishing at once cannot each read the old file
    /// and write back without the other's outage. Advisory (flock), released by the
    /// kernel if a holder dies. The lock file is never written, so holding it changes
    /// nothing the reload watchers see; its name is not a lookup source's.
    fn farm_lock(&self) -> Result<std::fs::File, String> {
        let path = self.file.with_file_name(format!(".{SOURCE}.lock"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // Held for one read and one rename by another hotline: milliseconds.
        f.lock()
            .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
        Ok(f)
    }

    /// The file's records now (none if it does not exist).
    fn read(&self) -> Result<Records, String> {
        if !self.file.exists() {
            return Ok(Records::new());
        }
        crate::data::load_file(&self.file).map_err(|e| {
            let all: Vec<String> = e.iter().map(|d| d.to_string()).collect();
            format!(
                "{} has errors, nothing was changed: {}",
                self.file.display(),
                all.join("; ")
            )
        })
    }

    /// Writes the whole file to a temporary one beside it, then renames it over: a
    /// reader (this hotline's watcher, or another's) sees the old file or the new one.
    fn write(&self, recs: &Records) -> Result<(), String> {
        let mut out = String::from(
            "# Water outages by area code (W-OUTAGE), written by the ops API (POST /outages,\n\
             # DELETE /outages/ID; hotline outages add|list|end). Editing by hand works too:\n\
             # area and reason are prompt ids, until is HH:MM, ends_at (RFC 3339) ends it.\n",
        );
        for (key, fields) in recs {
            out.push_str(&format!("{}:\n", quote(key)));
            for (k, v) in fields {
                out.push_str(&format!("  {k}: {}\n", quote(v)));
            }
        }
        let tmp = self
            .file
            .with_file_name(format!(".{SOURCE}.yaml.{}.tmp", std::process::id()));
        let done = std::fs::write(&tmp, out.as_bytes())
            .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|_| std::fs::rename(&tmp, &self.file));
        done.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write {}: {e}", self.file.display())
        })
    }

    /// The records in memory that new calls look up.
    fn in_memory(&self, f: impl FnOnce(&crate::data::YamlData)) {
        let lib = self.svc.library();
        if let Some(store) = lib.data.record_store() {
            f(store);
        }
    }
}

/// A YAML double-quoted scalar (JSON's string syntax is YAML's).
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The prompt ids of the catalogue with this prefix.
fn known(svc: &CallServices, prefix: &str) -> Vec<String> {
    svc.library()
        .catalogue
        .prompts
        .keys()
        .filter(|k| k.starts_with(prefix))
        .cloned()
        .collect()
}

fn known_areas(svc: &CallServices) -> Vec<String> {
    let mut codes: Vec<String> = known(svc, "area_")
        .into_iter()
        .filter_map(|p| p.strip_prefix("area_").map(str::to_string))
        .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    codes.sort_by_key(|c| c.parse::<u64>().unwrap_or(u64::MAX));
    codes
}

/// `until` as `HH:MM` local time (the next such time from now) or RFC 3339: when the
/// outage ends, and the local `HH:MM` callers hear.
fn parse_until(s: &str, tz: &TimeZone, now: Timestamp) -> Result<(Timestamp, String), String> {
    let s = s.trim();
    let hhmm = |z: DateTime| format!("{:02}:{:02}", z.hour(), z.minute());
    let at_local = |dt: DateTime| {
        dt.to_zoned_datetime(tz.clone())
            .map(|z| z.timestamp())
            .map_err(|e| format!("until '{s}': {e}"))
    };
    if let Some((h, m)) = s.split_once(':')
        && !s.contains('T')
        && !s.contains(' ')
        && h.len() <= 2
        && m.len() == 2
        && h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
    {
        let (h, m): (i8, i8) = (h.parse().unwrap_or(99), m.parse().unwrap_or(99));
        if h > 23 || m > 59 {
            return Err(format!("until '{s}' is not a time of day (00:00 to 23:59)"));
        }
        let today = tz.to_datetime(now).date().at(h, m, 0, 0);
        let mut at = at_local(today)?;
        if at <= now {
            at = at_local(today.tomorrow().map_err(|e| format!("until '{s}': {e}"))?)?;
        }
        return Ok((at, hhmm(tz.to_datetime(at))));
    }
    let t: Timestamp = s.parse().map_err(|_| {
        format!("until '{s}' is neither HH:MM local time nor an RFC 3339 time (2026-12-02T23:30:00+08:00)")
    })?;
    if t <= now {
        return Err(format!("until '{s}' has already passed"));
    }
    Ok((t, hhmm(tz.to_datetime(t))))
}

/// A field of the body that must be a string; the error names it (a 400).
fn field<'a>(body: &'a Value, name: &str) -> Result<&'a str, String> {
    match body.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("field '{name}' must be a string")),
        None => Err(format!("field '{name}' is missing")),
    }
}

async fn publish(State(o): Shared, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object {\"area\", \"reason\", \"until\"}",
            );
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
    };
    let (area, reason, until) = match (
        field(&body, "area"),
        field(&body, "reason"),
        field(&body, "until"),
    ) {
        (Ok(a), Ok(r), Ok(u)) => (a.trim(), r.trim(), u),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return error(StatusCode::BAD_REQUEST, e);
        }
    };
    let areas = known_areas(&o.svc);
    if !areas.iter().any(|a| a == area) {
        return json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({
                "error": format!("area '{area}' is not one the water flow knows"),
                "known_areas": areas,
            }),
        );
    }
    let reasons = known(&o.svc, "reason_");
    if !reasons.iter().any(|r| r == reason) {
        return json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({
                "error": format!("reason '{reason}' is not in the catalogue"),
                "known_reasons": reasons,
            }),
        );
    }
    let now = Timestamp::now();
    let (ends_at, hhmm) = match parse_until(until, &o.tz, now) {
        Ok(x) => x,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    let area_prompt = format!("area_{area}");
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let fields = vec![
        ("id".to_string(), id.clone()),
        ("area".to_string(), area_prompt.clone()),
        ("reason".to_string(), reason.to_string()),
        ("until".to_string(), hhmm.clone()),
        (ENDS_AT.to_string(), ends_at.to_string()),
    ];
    let _one = o.writing.lock().await;
    let _farm = match o.farm_lock() {
        Ok(l) => l,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let mut recs = match o.read() {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let replaced = recs
        .insert(area.to_string(), fields.clone())
        .map(|old| o.show(area, &old, now));
    if let Err(e) = o.write(&recs) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e);
    }
    o.in_memory(|s| s.upsert(SOURCE, area, fields));
    o.reload_after_change("outage published");
    let (text, seconds) = o.rendered(&area_prompt, reason, &hhmm);
    tracing::info!(id, area, reason, until = hhmm, %ends_at, replaced = replaced.as_ref().map(|r| r.id.as_str()), "outage published");
    let mut answer = serde_json::json!({
        "id": id,
        "area": area,
        "reason": reason,
        "until": hhmm,
        "ends_at": ends_at.to_string(),
        "text": text,
        "seconds": seconds,
    });
    if let Some(r) = replaced {
        answer["replaced"] = serde_json::json!(r);
        answer["note"] = serde_json::json!(format!(
            "area {area} already had outage {}: this one replaces it",
            r.id
        ));
    }
    json(StatusCode::CREATED, &answer)
}

async fn list(State(o): Shared) -> Response {
    let now = Timestamp::now();
    match o.read() {
        Ok(recs) => {
            let shown: Vec<Shown> = recs.iter().map(|(k, f)| o.show(k, f, now)).collect();
            json(StatusCode::OK, &shown)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn withdraw(State(o): Shared, Path(id): Path<String>) -> Response {
    let _one = o.writing.lock().await;
    let _farm = match o.farm_lock() {
        Ok(l) => l,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let mut recs = match o.read() {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    // By its id, or by the area code for outages written by hand without one.
    let key = recs
        .iter()
        .find(|(_, f)| f.iter().any(|(k, v)| k == "id" && *v == id))
        .map(|(k, _)| k.clone())
        .or_else(|| recs.contains_key(&id).then(|| id.clone()));
    let Some(key) = key else {
        return error(StatusCode::NOT_FOUND, format!("no outage '{id}'"));
    };
    recs.remove(&key);
    if let Err(e) = o.write(&recs) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e);
    }
    o.in_memory(|s| {
        s.remove(SOURCE, &key);
    });
    o.reload_after_change("outage withdrawn");
    tracing::info!(id, area = key, "outage withdrawn");
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_is_the_next_such_local_time_or_rfc3339() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        let now: Timestamp = "2026-12-02T12:00:00Z".parse().unwrap(); // 20:00 there
        let (t, s) = parse_until("23:30", &tz, now).unwrap();
        assert_eq!(
            (t.to_string().as_str(), s.as_str()),
            ("2026-12-02T15:30:00Z", "23:30")
        );
        let (t, s) = parse_until("7:05", &tz, now).unwrap();
        assert_eq!(
            (t.to_string().as_str(), s.as_str()),
            ("2026-12-02T23:05:00Z", "07:05")
        );
        let (_, s) = parse_until("2026-12-03T01:00:00+08:00", &tz, now).unwrap();
        assert_eq!(s, "01:00");
        for bad in [
            "25:99",
            "24:00",
            "12:60",
            "noon",
            "2026-12-01T00:00:00Z",
            "",
        ] {
            assert!(parse_until(bad, &tz, now).is_err(), "{bad}");
        }
    }
}
