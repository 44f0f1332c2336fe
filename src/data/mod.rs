//! Data sources for lookups (W-BILL accounts, W-OUTAGE outages) and the holiday
//! calendar, all from the data directory (`data/` by default):
//!
//! - `<source>.yaml`: records by key, each a mapping of field: value;
//! - `<source>.http.yaml`: a back end asked over HTTP ([`http`]). `hotline serve` asks
//!   it; `simulate` and flow tests send nothing and answer from `<source>.yaml`, the
//!   source's test records, when there is one;
//! - `holidays.yaml`: the calendar of `now.holiday` and `now.workday`.
pub mod http;
pub mod validate;

use crate::flow::clock::Calendar;
use crate::flow::diag::{Diagnostic, Diags};
use crate::flow::engine::LookupResult;
use crate::flow::yaml::{self, Value};
pub use http::{HttpSource, LookupFuture};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// A lookup's answer: at once (records in memory), or later (a back end).
pub enum Answer {
    Now(LookupResult),
    Later(LookupFuture),
}

pub trait DataSource: Send + Sync {
    fn sources(&self) -> Vec<String>;
    /// The fields a source's records have (for an HTTP source, its mapping's), so that
    /// `check` knows what `{into.FIELD}` can be; `None` for no such source.
    fn fields(&self, source: &str) -> Option<Vec<String>>;
    fn lookup(&self, source: &str, key: &str) -> Answer;
    /// Every record of a source, for the status page (outages in force); a source that
    /// cannot be listed (a back end) has none to show.
    fn records(&self, source: &str) -> Vec<(String, Vec<(String, String)>)> {
        let _ = source;
        Vec::new()
    }
    /// The records held in memory, for the outage API to publish through.
    fn record_store(&self) -> Option<&YamlData> {
        None
    }
}

/// The field that ends a record by itself: an RFC 3339 time after which the lookup no
/// longer finds it (an outage whose water is back is no longer announced).
pub const ENDS_AT: &str = "ends_at";

/// Whether a record's `ends_at` has passed.
pub fn has_ended(fields: &[(String, String)], now: jiff::Timestamp) -> bool {
    fields
        .iter()
        .find(|(k, _)| k == ENDS_AT)
        .and_then(|(_, v)| v.parse::<jiff::Timestamp>().ok())
        .is_some_and(|t| t <= now)
}

/// The file the holiday calendar is read from, in the data directory.
pub const CALENDAR_FILE: &str = "holidays.yaml";
const HTTP_SUFFIXES: [&str; 2] = [".http.yaml", ".http.yml"];

/// Whether HTTP sources are asked (`serve`) or stood in for by their test records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Ask the back ends; their `${ENV}` headers must be set.
    Live,
    /// `check`, `simulate` and flow tests: send nothing.
    Offline,
}

/// Everything in a data directory.
pub struct Data {
    files: YamlData,
    http: BTreeMap<String, Arc<HttpSource>>,
    calendar: Arc<Calendar>,
    /// In `Mode::Live` only.
    client: Option<reqwest::Client>,
}

impl Data {
    /// Loads a data directory; HTTP sources read `${NAME}` from hotline's environment.
    pub fn load_dir(dir: &Path, mode: Mode) -> Result<Data, Vec<Diagnostic>> {
        Data::load_dir_with_env(dir, mode, &|k| std::env::var(k).ok())
    }

    /// As [`Data::load_dir`], with `env` for the environment.
    pub fn load_dir_with_env(
        dir: &Path,
        mode: Mode,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Data, Vec<Diagnostic>> {
        let files = YamlData::default();
        let mut http = BTreeMap::new();
        let mut calendar = Calendar::default();
        let mut errors = Vec::new();
        for f in crate::flow::flow_files(dir).unwrap_or_default() {
            let fname = f.file_name().and_then(|s| s.to_str()).unwrap_or_default();
            if fname == CALENDAR_FILE {
                match Calendar::load(&f) {
                    Ok(c) => calendar = c,
                    Err(mut e) => errors.append(&mut e),
                }
            } else if let Some(name) = HTTP_SUFFIXES.iter().find_map(|s| fname.strip_suffix(s)) {
                let mut d = Diags::new(&f);
                let text = match crate::flow::read_limited(&f) {
                    Ok(t) => t,
                    Err(e) => {
                        d.error(crate::flow::Pos::FILE, e);
                        errors.append(&mut d.list);
                        continue;
                    }
                };
                let resolve: Option<http::Env<'_>> = match mode {
                    Mode::Live => Some(env),
                    Mode::Offline => None,
                };
                let src = HttpSource::parse(name, &f, &text, resolve, &mut d);
                match src {
                    Some(s) if d.is_empty() => {
                        http.insert(name.to_string(), Arc::new(s));
                    }
                    _ => errors.extend(d.into_sorted()),
                }
            } else {
                match load_file(&f) {
                    Ok(recs) => {
                        let name = f
                            .file_stem()
                            .and_then(|s| s.to_str())
                            .unwrap_or_default()
                            .to_string();
                        if let Ok(mut s) = files.sources.write() {
                            s.insert(name, recs);
                        }
                    }
                    Err(mut e) => errors.append(&mut e),
                }
            }
        }
        let client = match (mode, http.is_empty()) {
            (Mode::Live, false) => match reqwest::Client::builder()
                // A lookup goes where it was configured to: a redirect is a fault.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("hotline/", env!("CARGO_PKG_VERSION")))
                .build()
            {
                Ok(c) => Some(c),
                Err(e) => {
                    errors.push(Diagnostic {
                        file: dir.to_path_buf(),
                        pos: crate::flow::Pos::FILE,
                        message: format!("cannot start the HTTP client: {e}"),
                    });
                    None
                }
            },
            _ => None,
        };
        if errors.is_empty() {
            Ok(Data {
                files,
                http,
                calendar: Arc::new(calendar),
                client,
            })
        } else {
            Err(errors)
        }
    }

    /// No sources, no holidays.
    pub fn empty() -> Data {
        Data {
            files: YamlData::default(),
            http: BTreeMap::new(),
            calendar: Arc::default(),
            client: None,
        }
    }

    pub fn calendar(&self) -> Arc<Calendar> {
        self.calendar.clone()
    }

    /// The record files; the outage API publishes through these.
    pub fn records(&self) -> &YamlData {
        &self.files
    }

    pub fn http_source(&self, name: &str) -> Option<&HttpSource> {
        self.http.get(name).map(Arc::as_ref)
    }
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Data")
            .field("sources", &self.sources())
            .field("http", &self.http.values().collect::<Vec<_>>())
            .field("holidays", &self.calendar.len())
            .finish()
    }
}

impl DataSource for Data {
    fn sources(&self) -> Vec<String> {
        let mut v = self.files.sources();
        v.extend(self.http.keys().cloned());
        v.sort();
        v.dedup();
        v
    }

    fn fields(&self, source: &str) -> Option<Vec<String>> {
        match self.http.get(source) {
            Some(h) => Some(h.field_names()),
            None => self.files.fields(source),
        }
    }

    fn records(&self, source: &str) -> Vec<(String, Vec<(String, String)>)> {
        self.files.records(source)
    }

    fn record_store(&self) -> Option<&YamlData> {
        Some(&self.files)
    }

    fn lookup(&self, source: &str, key: &str) -> Answer {
        match (self.http.get(source), &self.client) {
            (Some(h), Some(c)) => Answer::Later(h.clone().fetch(c.clone(), key.to_string())),
            (Some(h), None) if !self.files.has(source) => {
                Answer::Now(LookupResult::Failed(format!(
                    "'{source}' is an HTTP source ({}): simulate and flow tests send nothing and answer from {source}.yaml beside it, which does not exist",
                    h.file.display()
                )))
            }
            _ => self.files.lookup(source, key),
        }
    }
}

pub type Records = BTreeMap<String, Vec<(String, String)>>;

/// Records from YAML files: each file is a source, its top-level keys are record keys,
/// and each record is a mapping of field → value.
#[derive(Default)]
pub struct YamlData {
    sources: RwLock<BTreeMap<String, Records>>,
}

impl YamlData {
    pub fn has(&self, source: &str) -> bool {
        self.sources.read().is_ok_and(|s| s.contains_key(source))
    }

    /// Replaces or adds one record; the outage API publishes through this.
    pub fn upsert(&self, source: &str, key: &str, fields: Vec<(String, String)>) {
        if let Ok(mut s) = self.sources.write() {
            s.entry(source.to_string())
                .or_default()
                .insert(key.to_string(), fields);
        }
    }

    pub fn remove(&self, source: &str, key: &str) -> bool {
        self.sources
            .write()
            .map(|mut s| s.get_mut(source).and_then(|r| r.remove(key)).is_some())
            .unwrap_or(false)
    }
}

/// One `<source>.yaml` file's records.
pub fn load_file(path: &Path) -> Result<Records, Vec<Diagnostic>> {
    let mut d = Diags::new(path);
    let text = crate::flow::read_limited(path).map_err(|e| {
        d.error(crate::flow::Pos::FILE, e);
        std::mem::take(&mut d.list)
    })?;
    let Some(root) = yaml::parse(&text, &mut d) else {
        return Err(d.into_sorted());
    };
    let mut recs = Records::new();
    match &root.value {
        Value::Map(m) => {
            for (k, v) in m {
                let key = k.scalar().unwrap_or_default();
                let Some(fields) = v.as_map() else {
                    d.error(
                        v.pos,
                        format!("record '{key}' must be a mapping of field: value"),
                    );
                    continue;
                };
                let mut out = Vec::new();
                for (fk, fv) in fields {
                    match (fk.scalar(), fv.scalar()) {
                        (Some(a), Some(b)) => out.push((a, b)),
                        _ => d.error(fv.pos, "a field value must be text or a number"),
                    }
                }
                recs.insert(key, out);
            }
        }
        Value::Null => {}
        _ => d.error(root.pos, "a data file is a mapping of key: record"),
    }
    if d.is_empty() {
        Ok(recs)
    } else {
        Err(d.into_sorted())
    }
}

impl DataSource for YamlData {
    fn sources(&self) -> Vec<String> {
        self.sources
            .read()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn records(&self, source: &str) -> Vec<(String, Vec<(String, String)>)> {
        self.sources
            .read()
            .ok()
            .and_then(|s| s.get(source).cloned())
            .map(|r| r.into_iter().collect())
            .unwrap_or_default()
    }

    fn fields(&self, source: &str) -> Option<Vec<String>> {
        let s = self.sources.read().ok()?;
        let mut out: Vec<String> = Vec::new();
        for rec in s.get(source)?.values() {
            for (f, _) in rec {
                if !out.contains(f) {
                    out.push(f.clone());
                }
            }
        }
        Some(out)
    }

    fn lookup(&self, source: &str, key: &str) -> Answer {
        let Ok(s) = self.sources.read() else {
            return Answer::Now(LookupResult::Failed("data store lock poisoned".into()));
        };
        Answer::Now(match s.get(source) {
            None => LookupResult::Failed(format!("no data source '{source}'")),
            Some(recs) => match recs.get(key.trim()) {
                Some(f) if has_ended(f, jiff::Timestamp::now()) => LookupResult::NotFound,
                Some(f) => LookupResult::Found(f.clone()),
                None => LookupResult::NotFound,
            },
        })
    }
}
