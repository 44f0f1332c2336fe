//! `hotline test`: which test files the paths on the command line mean, and what came of
//! each test in them. The command prints these; `junit` and `coverage` read them too.
use super::flowtest::{self, TestFile};
use super::project::{Project, normalize, sibling};
use super::sim::Entry;
use crate::flow::{self, Diagnostic, Flow};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where prompts and data are, when not beside the flows.
#[derive(Clone, Debug, Default)]
pub struct Dirs {
    pub prompts: Option<PathBuf>,
    pub data: Option<PathBuf>,
}

impl Dirs {
    /// The catalogue and data for the flow at `path`.
    pub fn project(&self, path: &Path) -> (Project, Vec<Diagnostic>) {
        let prompts = self
            .prompts
            .clone()
            .unwrap_or_else(|| sibling(path, "prompts"));
        let data = self.data.clone().unwrap_or_else(|| sibling(path, "data"));
        Project::load(&prompts, &data)
    }
}

#[derive(Clone, Debug)]
pub enum Verdict {
    Passed,
    /// What differs, with the expected and actual timelines side by side.
    Failed(String),
    /// Not run: the test cannot be read, or its flow does not load.
    Broken(Vec<Diagnostic>),
}

#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub line: u32,
    pub verdict: Verdict,
    pub covers: Vec<String>,
    pub timeline: Vec<Entry>,
    pub visited: super::coverage::Visited,
    /// Wall-clock time the simulated call took to run.
    pub time: Duration,
}

/// One test file's run.
#[derive(Clone, Debug)]
pub struct FileRun {
    pub file: PathBuf,
    /// The flow its tests call, if it loaded.
    pub flow: Option<Arc<Flow>>,
    /// The file itself could not be read: none of its tests ran.
    pub errors: Vec<Diagnostic>,
    /// Problems with the catalogue or data beside the flow that did not stop the tests.
    pub warnings: Vec<Diagnostic>,
    /// In the file's order.
    pub cases: Vec<Case>,
    pub time: Duration,
}

/// Runs every test of a test file; a test that cannot be read is reported as broken and
/// the others run.
pub fn run_file(file: &Path, dirs: &Dirs) -> FileRun {
    let start = Instant::now();
    let mut run = FileRun {
        file: file.to_path_buf(),
        flow: None,
        errors: Vec::new(),
        warnings: Vec::new(),
        cases: Vec::new(),
        time: Duration::ZERO,
    };
    let tf = match flowtest::load_each(file) {
        Ok(t) => t,
        Err(e) => {
            run.errors = e;
            run.time = start.elapsed();
            return run;
        }
    };
    let (project, mut problems) = dirs.project(&tf.flow);
    let flow = flow::load_flow(&tf.flow, Some(&project.catalogue), Some(&project.sources));
    match flow {
        Ok(f) => {
            run.warnings = problems;
            let f = Arc::new(f);
            run.flow = Some(f.clone());
            for t in &tf.tests {
                let t0 = Instant::now();
                let r = flowtest::run_test(&f, &project, t);
                run.cases.push(Case {
                    name: r.name,
                    line: t.pos.line,
                    verdict: r.failure.map_or(Verdict::Passed, Verdict::Failed),
                    covers: r.covers,
                    timeline: r.timeline,
                    visited: r.visited,
                    time: t0.elapsed(),
                });
            }
        }
        Err(mut e) => {
            // Every test of the file is stopped by the flow's errors (and the catalogue's).
            problems.append(&mut e);
            for t in &tf.tests {
                run.cases
                    .push(not_run(t.name.clone(), t.pos.line, problems.clone()));
            }
            if tf.tests.is_empty() {
                run.errors = problems;
            }
        }
    }
    for b in tf.broken {
        let name = b
            .name
            .unwrap_or_else(|| format!("(test at line {})", b.pos.line));
        run.cases.push(not_run(name, b.pos.line, b.errors));
    }
    run.cases.sort_by_key(|c| c.line);
    run.time = start.elapsed();
    run
}

fn not_run(name: String, line: u32, errors: Vec<Diagnostic>) -> Case {
    Case {
        name,
        line,
        verdict: Verdict::Broken(errors),
        covers: Vec::new(),
        timeline: Vec::new(),
        visited: Default::default(),
        time: Duration::ZERO,
    }
}

/// What the paths on the command line mean.
#[derive(Debug, Default)]
pub struct Selection {
    /// Test files to run, each once, in order.
    pub test_files: Vec<PathBuf>,
    /// Flows named on the command line (a flow file, or a folder of flows) that no test
    /// file calls.
    pub untested: Vec<PathBuf>,
    /// Paths that could not be read.
    pub problems: Vec<String>,
}

/// A path may be a test file, a folder of them (`flows/tests`), a flow file or a folder
/// of flows (`flows`, as `hotline check` takes): a flow means the test files in the
/// `tests/` folder beside it whose `flow:` is that flow.
pub fn select(paths: &[PathBuf]) -> Selection {
    let mut sel = Selection::default();
    let mut seen = std::collections::HashSet::new();
    let mut add = |sel: &mut Selection, f: PathBuf| {
        if seen.insert(same_file_key(&f)) {
            sel.test_files.push(f);
        }
    };
    for p in paths {
        let files = match flow::flow_files(p) {
            Ok(f) => f,
            Err(e) => {
                sel.problems.push(e);
                continue;
            }
        };
        for f in files {
            if !is_flow_file(&f) {
                add(&mut sel, f);
                continue;
            }
            let tests = tests_of(&f);
            if tests.is_empty() {
                sel.untested.push(f);
            }
            for t in tests {
                add(&mut sel, t);
            }
        }
    }
    sel
}

/// A flow file has `states:` (or `start:`); a test file has `tests:`. A file that is
/// neither, or is not YAML at all, is left to the test loader to report.
fn is_flow_file(path: &Path) -> bool {
    let Ok(text) = flow::read_limited(path) else {
        return false;
    };
    let mut d = flow::Diags::new(path);
    let Some(root) = flow::yaml::parse(&text, &mut d) else {
        return false;
    };
    let has = |key: &str| {
        root.as_map()
            .unwrap_or_default()
            .iter()
            .any(|(k, _)| k.scalar().as_deref() == Some(key))
    };
    !has("tests") && (has("states") || has("start"))
}

/// The test files in `tests/` beside a flow whose `flow:` is that flow.
pub fn tests_of(flow_file: &Path) -> Vec<PathBuf> {
    let dir = flow_file.parent().unwrap_or(Path::new("."));
    let Ok(candidates) = flow::flow_files(&dir.join("tests")) else {
        return Vec::new();
    };
    let want = same_file_key(flow_file);
    candidates
        .into_iter()
        .filter(|t| match flowtest::load_each(t) {
            Ok(TestFile { flow, .. }) => same_file_key(&flow) == want,
            Err(_) => false,
        })
        .collect()
}

/// One name for one file however the command line spelled it (`./flows/x.yaml`,
/// `flows/../flows/x.yaml`, an absolute path).
pub fn same_file_key(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| normalize(p))
}

/// Counts over a run, for the summary line and the exit status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    pub broken: usize,
}

impl Totals {
    pub fn of(runs: &[FileRun]) -> Totals {
        let mut t = Totals::default();
        for r in runs {
            if !r.errors.is_empty() {
                t.broken += 1;
            }
            for c in &r.cases {
                match c.verdict {
                    Verdict::Passed => t.passed += 1,
                    Verdict::Failed(_) => t.failed += 1,
                    Verdict::Broken(_) => t.broken += 1,
                }
            }
        }
        t
    }
}
