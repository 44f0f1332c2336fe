//! The fuzz corpus (fuzz/corpus/TARGET/*, seeds and what the fuzzer kept, findings
//! included) replayed through the same entry points AFL++ drives (src/fuzzing.rs):
//! every file must return without a panic. A plain test, no fuzzer needed.
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_returns() {
    for (target, run) in hotline::fuzzing::TARGETS {
        let files = corpus(target);
        assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
        for f in &files {
            let data = std::fs::read(f).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target}: {} panicked", f.display());
        }
        eprintln!("{target}: {} files", files.len());
    }
}

#[test]
fn every_fuzz_target_has_a_binary_and_a_corpus() {
    for (target, _) in hotline::fuzzing::TARGETS {
        let bin =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("fuzz/src/bin/{target}.rs"));
        assert!(bin.is_file(), "{} missing", bin.display());
    }
}
