//! Where a designer's files live: flows, the prompt catalogue and the data beside them.
use crate::data::{Data, Mode};
use crate::flow::Catalogue;
use crate::flow::diag::Diagnostic;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Project {
    pub catalogue: Arc<Catalogue>,
    /// Lookups answer from the record files: HTTP sources send nothing here.
    pub data: Arc<Data>,
    pub sources: crate::flow::Sources,
}

/// `a/b/../c` → `a/c`, without touching the file system, so that paths in messages stay
/// the ones the designer wrote and relative paths keep working.
pub fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The directories next to a flows path: `flows/x.yaml` → `prompts/`, `data/`.
pub fn sibling(flows: &Path, name: &str) -> PathBuf {
    let dir = if flows.is_dir() {
        flows.to_path_buf()
    } else {
        flows.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    // Flow tests live in flows/tests/ and shared pieces in flows/common/: their project
    // is one level further up.
    let dir = if dir
        .file_name()
        .is_some_and(|n| n == "tests" || n == "common")
    {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    };
    let base = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    base.join(name)
}

impl Project {
    /// Loads the catalogue and data; errors in either are reported, not fatal, so that
    /// `check` can list them together with the flows' own.
    pub fn load(prompts: &Path, data: &Path) -> (Project, Vec<Diagnostic>) {
        let mut errors = Vec::new();
        let cat_file = prompts.join("catalogue.yaml");
        let catalogue = match Catalogue::load(&cat_file) {
            Ok(c) => c,
            Err(mut e) => {
                errors.append(&mut e);
                // Parse what can be parsed, so flows can still be checked against it.
                let mut d = crate::flow::Diags::new(&cat_file);
                let text = std::fs::read_to_string(&cat_file).unwrap_or_default();
                Catalogue::parse(&text, &cat_file, prompts, &mut d).unwrap_or_else(|| Catalogue {
                    file: cat_file.clone(),
                    dir: prompts.to_path_buf(),
                    prompts: Default::default(),
                    clips: Default::default(),
                })
            }
        };
        let data = match Data::load_dir(data, Mode::Offline) {
            Ok(d) => d,
            Err(mut e) => {
                errors.append(&mut e);
                Data::empty()
            }
        };
        let sources = crate::flow::Sources::of(&data);
        (
            Project {
                catalogue: Arc::new(catalogue),
                data: Arc::new(data),
                sources,
            },
            errors,
        )
    }
}
