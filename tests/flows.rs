//! The shipped flows: they pass `hotline check`, their flow tests pass, and together the
//! tests name every rule id of docs/PROTOCOL.md.
use hotline::designer::flowtest;
use hotline::designer::project::Project;
use hotline::flow::{self, Diagnostic};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

fn project() -> Project {
    let (p, errors) = Project::load(Path::new("prompts"), Path::new("data"));
    assert!(errors.is_empty(), "{}", show(&errors));
    p
}

fn show(errors: &[Diagnostic]) -> String {
    errors.iter().map(|e| format!("{e}\n")).collect()
}

#[test]
fn shipped_flows_and_catalogue_check_clean() {
    let p = project();
    let files = flow::flow_files(Path::new("flows")).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["callback.yaml", "property.yaml", "water.yaml"]);
    assert!(
        p.catalogue.check_files().is_empty(),
        "{}",
        show(&p.catalogue.check_files())
    );
    for f in files {
        if let Err(e) = flow::load_flow(&f, Some(&p.catalogue), Some(&p.sources)) {
            panic!("{}", show(&e));
        }
    }
}

/// Every rule id in the protocol, e.g. `| P-SIL |` rows of its tables.
fn protocol_ids() -> BTreeSet<String> {
    let text = std::fs::read_to_string("docs/PROTOCOL.md").unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .filter(|id| {
            let id = id.trim();
            (id.starts_with("P-") || id.starts_with("W-")) && id.len() < 16
        })
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn every_flow_test_passes_and_every_rule_is_covered() {
    let p = project();
    let mut covered = BTreeSet::new();
    let mut failures = Vec::new();
    let mut count = 0;
    for file in flow::flow_files(Path::new("flows/tests")).unwrap() {
        let tf = flowtest::load(&file).unwrap_or_else(|e| panic!("{}", show(&e)));
        let f = Arc::new(
            flow::load_flow(&tf.flow, Some(&p.catalogue), Some(&p.sources))
                .unwrap_or_else(|e| panic!("{}", show(&e))),
        );
        for t in &tf.tests {
            count += 1;
            let r = flowtest::run_test(&f, &p, t);
            match r.failure {
                None => covered.extend(r.covers),
                Some(why) => failures.push(format!("{}: {}\n{why}", file.display(), t.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(count >= 40, "only {count} flow tests");
    let ids = protocol_ids();
    assert_eq!(ids.len(), 35, "{ids:?}");
    let missing: Vec<&String> = ids.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "rules no passing flow test names: {missing:?}"
    );
}

#[test]
fn every_prompt_is_mandarin() {
    // P-LANG: the texts are Chinese, with nothing a Mandarin voice would spell out.
    let p = project();
    for (id, def) in &p.catalogue.prompts {
        let text: String = def
            .text
            .chars()
            .filter(|c| *c != '{' && *c != '}')
            .collect();
        let han = text
            .chars()
            .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
            .count();
        assert!(han > 0, "prompt {id} has no Chinese text: {}", def.text);
        let stripped: String = def
            .text
            .split('{')
            .map(|s| s.split_once('}').map_or(s, |x| x.1))
            .collect();
        assert!(
            !stripped.chars().any(|c| c.is_ascii_alphabetic()),
            "prompt {id} has Latin letters: {}",
            def.text
        );
    }
}
