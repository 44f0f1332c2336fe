//! Whatever a designer's file holds, loading it gives diagnostics, never a panic.
use hotline::designer::flowtest;
use hotline::designer::project::Project;
use hotline::designer::script::Step;
use hotline::flow::{self, Catalogue, Diags};
use proptest::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

fn project() -> &'static Project {
    static P: OnceLock<Project> = OnceLock::new();
    P.get_or_init(|| Project::load(Path::new("prompts"), Path::new("data")).0)
}

fn shipped() -> &'static Vec<String> {
    static S: OnceLock<Vec<String>> = OnceLock::new();
    S.get_or_init(|| {
        [
            "flows/property.yaml",
            "flows/water.yaml",
            "flows/tests/property.yaml",
            "prompts/catalogue.yaml",
        ]
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
    })
}

/// Loads `text` every way a designer's file is loaded.
fn load_all_ways(text: &str) {
    let p = project();
    let path = Path::new("fuzz.yaml");
    let mut d = Diags::new(path);
    if let Some(f) = flow::load::load_str(text, path, &mut d) {
        flow::check::check(&f, Some(&p.catalogue), Some(&p.sources), &mut d);
        let _ = hotline::designer::graph::render(&f, hotline::designer::graph::Format::Mermaid);
    }
    let mut d = Diags::new(path);
    let _ = Catalogue::parse(text, path, Path::new("prompts"), &mut d);
    let mut d = Diags::new(path);
    let _ = flowtest::parse_str(text, path, &mut d);
    for line in text.lines().take(50) {
        let _ = Step::parse(line);
    }
}

/// A shipped file with a few bytes changed: near-valid input finds the deep paths.
fn mutated() -> impl Strategy<Value = String> {
    (
        0usize..4,
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    )
        .prop_map(|(which, edits)| {
            let mut bytes = shipped()[which].clone().into_bytes();
            for (at, b, kind) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes[i] = b,
                    1 => {
                        bytes.remove(i);
                    }
                    _ => bytes.insert(i, b" :-{}[]#&*!|>'\"\n1"[b as usize % 17]),
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_files_never_panic(text in mutated()) {
        load_all_ways(&text);
    }

    #[test]
    fn yaml_like_noise_never_panics(text in "[a-z0-9_:{}\\[\\], \n\"'#&*!|>-]{0,400}") {
        load_all_ways(&text);
    }
}
