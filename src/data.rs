//! Data sources for lookups (W-BILL accounts, W-OUTAGE outages). The default reads
//! `data/<source>.yaml`, shipped with demo records; an HTTP source or the operators'
//! outage API plug in behind the same trait.
use crate::flow::diag::{Diagnostic, Diags};
use crate::flow::engine::LookupResult;
use crate::flow::yaml::{self, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::RwLock;

pub trait DataSource: Send + Sync {
    fn sources(&self) -> Vec<String>;
    fn lookup(&self, source: &str, key: &str) -> LookupResult;
    /// Every record of a source, for the status page (outages in force); a source that
    /// cannot be listed has none to show.
    fn records(&self, source: &str) -> Vec<(String, Vec<(String, String)>)> {
        let _ = source;
        Vec::new()
    }
}

type Records = BTreeMap<String, Vec<(String, String)>>;

/// Records from YAML files: each file is a source, its top-level keys are record keys,
/// and each record is a mapping of field → value.
#[derive(Default)]
pub struct YamlData {
    sources: RwLock<BTreeMap<String, Records>>,
}

impl YamlData {
    pub fn load_dir(dir: &Path) -> Result<YamlData, Vec<Diagnostic>> {
        let data = YamlData::default();
        let mut errors = Vec::new();
        let files = crate::flow::flow_files(dir).unwrap_or_default();
        for f in files {
            match load_file(&f) {
                Ok(recs) => {
                    let name = f
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or_default()
                        .to_string();
                    if let Ok(mut s) = data.sources.write() {
                        s.insert(name, recs);
                    }
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(data)
        } else {
            Err(errors)
        }
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

fn load_file(path: &Path) -> Result<Records, Vec<Diagnostic>> {
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

    fn lookup(&self, source: &str, key: &str) -> LookupResult {
        let Ok(s) = self.sources.read() else {
            return LookupResult::Failed("data store lock poisoned".into());
        };
        match s.get(source) {
            None => LookupResult::Failed(format!("no data source '{source}'")),
            Some(recs) => match recs.get(key.trim()) {
                Some(f) => LookupResult::Found(f.clone()),
                None => LookupResult::NotFound,
            },
        }
    }

    fn records(&self, source: &str) -> Vec<(String, Vec<(String, String)>)> {
        self.sources
            .read()
            .ok()
            .and_then(|s| s.get(source).cloned())
            .map(|r| r.into_iter().collect())
            .unwrap_or_default()
    }
}
