//! The flow engine: model, loader, checker, interpreter. Pure: the interpreter does no
//! I/O and reads no clock; only the loading functions below touch files.
pub mod builtins;
pub mod catalogue;
pub mod check;
pub mod clock;
pub mod diag;
pub mod engine;
pub mod expr;
pub mod include;
pub mod keys;
pub mod load;
pub mod model;
pub mod say;
pub mod setvars;
pub mod trace;
pub mod yaml;

pub use catalogue::Catalogue;
pub use diag::{Diagnostic, Diags, Errors, Pos};
pub use engine::{Command, Event, LookupResult, Outcome, Session, TicketRequest};
pub use model::Flow;

/// The state an outbound call's flow goes to when its job is cancelled mid-call
/// (`DELETE /outbound/ID`): a polite goodbye rather than a cut line. `check` counts it
/// as reached; a flow without it just hangs up.
pub const CANCELED_STATE: &str = "canceled";

use std::path::{Path, PathBuf};

/// Reads, loads and checks one flow file: every problem, with its position.
/// The lookup sources a flow may name, and the fields each one's records have.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub names: Vec<String>,
    /// By source; a source missing here does not say its fields (any `{into.x}`).
    pub fields: std::collections::BTreeMap<String, Vec<String>>,
}

impl Sources {
    pub fn of(data: &dyn crate::data::DataSource) -> Sources {
        let names = data.sources();
        let fields = names
            .iter()
            .filter_map(|n| data.fields(n).map(|f| (n.clone(), f)))
            .collect();
        Sources { names, fields }
    }
}

pub fn load_flow(
    path: &Path,
    cat: Option<&Catalogue>,
    sources: Option<&Sources>,
) -> Result<Flow, Vec<Diagnostic>> {
    let mut d = Diags::new(path);
    let text = match read_limited(path) {
        Ok(t) => t,
        Err(e) => {
            d.error(Pos::FILE, e);
            return Err(d.into_sorted());
        }
    };
    let flow = load::load_str(&text, path, &mut d);
    if let Some(f) = &flow
        && !d.incomplete
    {
        check::check(f, cat, sources, &mut d);
    }
    match flow {
        Some(f) if d.is_empty() => Ok(f),
        _ => Err(d.into_sorted()),
    }
}

/// Reads a designer's file, refusing oversized ones before they are read into memory.
pub fn read_limited(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() > yaml::MAX_FILE_BYTES as u64 {
        return Err(format!(
            "file is {} bytes, over the limit of {} bytes",
            meta.len(),
            yaml::MAX_FILE_BYTES
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (byte {}); save the file as UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The flow files of a directory (`*.yaml`, `*.yml`), sorted; a file path is itself.
pub fn flow_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let rd = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    v.sort();
    Ok(v)
}
