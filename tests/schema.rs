//! `hotline schema` describes the language the loader accepts: the shipped flows pass it,
//! a flow with an unknown key does not, and docs/flow.schema.json is up to date. The same
//! for test files: `hotline schema --tests`, flows/tests/, docs/flow-test.schema.json.
use hotline::designer::flowtest;
use hotline::designer::schema::{schema, test_schema};
use hotline::flow::Diags;
use hotline::flow::yaml::{self, Node, Value};
use serde_json::{Map, Value as Json, json};
use std::path::Path;

fn to_json(n: &Node) -> Json {
    match &n.value {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::Str(s) => json!(s),
        Value::Seq(v) => Json::Array(v.iter().map(to_json).collect()),
        Value::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| (k.scalar().unwrap_or_default(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

fn load(text: &str) -> Json {
    let mut d = Diags::new(Path::new("x.yaml"));
    to_json(&yaml::parse(text, &mut d).unwrap())
}

#[test]
fn shipped_flows_match_the_schema() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    for f in [
        "flows/property.yaml",
        "flows/water.yaml",
        "flows/callback.yaml",
    ] {
        let doc = load(&std::fs::read_to_string(f).unwrap());
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{f}: {errors:#?}");
    }
}

#[test]
fn the_schema_refuses_what_the_loader_refuses() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let good = "flow: x\nstart: a\nstates:\n  a:\n    say: greeting\n    hangup: 5s\n";
    assert!(validator.is_valid(&load(good)));
    for bad in [
        "flow: x\nstart: a\nstates:\n  a:\n    sya: greeting\n    hangup: 5s\n",
        "flow: x\nstart: a\nstates:\n  a:\n    say: greeting\n    hangup: 5\n",
        "flow: x\nstart: a\nstates:\n  a:\n    say: greeting\n",
        "flow: x\nstart: a\nstates:\n  a:\n    hangup: 1s\n    next: a\n",
        "flow: x\nstart: a\non:\n  silence: { hangup: 1s }\nstates:\n  a:\n    hangup: 1s\n",
    ] {
        assert!(!validator.is_valid(&load(bad)), "schema accepted:\n{bad}");
    }
}

#[test]
fn the_committed_schema_file_is_current() {
    let committed: Json =
        serde_json::from_str(&std::fs::read_to_string("docs/flow.schema.json").unwrap()).unwrap();
    assert_eq!(
        committed,
        schema(),
        "docs/flow.schema.json is stale: run `cargo run -- schema > docs/flow.schema.json`"
    );
}

#[test]
fn shipped_flow_tests_match_the_test_schema() {
    let validator = jsonschema::validator_for(&test_schema()).unwrap();
    let files = hotline::flow::flow_files(Path::new("flows/tests")).unwrap();
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let doc = load(&std::fs::read_to_string(&f).unwrap());
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
    }
}

/// Whether the test loader reads every test of `text`.
fn loader_accepts(text: &str) -> bool {
    let path = Path::new("flows/tests/x.yaml");
    flowtest::parse_str(text, path, &mut Diags::new(path)).is_ok_and(|t| t.broken.is_empty())
}

#[test]
fn the_test_schema_refuses_what_the_test_loader_refuses() {
    let validator = jsonschema::validator_for(&test_schema()).unwrap();
    let good = "flow: ../property.yaml\ntests:\n  - name: t\n    rings: 3\n    vars: { caller: \"139\" }\n    caller: [press 1, \"at 2s: press 1\", silence 5, voice, lookup slow 3s]\n    expect:\n      - heard: greeting\n      - { heard: x, value: 12, at: 0s, after: 5s }\n      - ticket: repair\n      - ticket: { category: repair, priority: high, due: 15m, fields: { a: b }, recordings: [r] }\n      - transfer: sip:x@y\n      - { hangup: hotline, after: 5s }\n      - hangup\n    outcome: hotline-hung-up\n";
    assert!(loader_accepts(good));
    assert!(validator.is_valid(&load(good)), "schema refused:\n{good}");
    for bad in [
        "flow: a.yaml\ntests:\n  - name: t\n    caler: [press 1]\n    expect: []\n",
        "flow: a.yaml\ntests:\n  - name: t\n    caller: [pres 1]\n    expect: []\n",
        "flow: a.yaml\ntests:\n  - name: t\n    caller: [\"at 2s press 1\"]\n    expect: []\n",
        "flow: a.yaml\ntests:\n  - name: t\n    expect: [{ heard: x, aftr: 5s }]\n",
        "flow: a.yaml\ntests:\n  - name: t\n    expect: [{ heard: x, after: 5 }]\n",
        "flow: a.yaml\ntests:\n  - name: t\n    expect: [{ at: 5s }]\n",
        "flow: a.yaml\ntests:\n  - name: t\n    expect: [{ ticket: { priority: high } }]\n",
        "flow: a.yaml\ntests:\n  - name: t\n    expect: [{ ticket: { category: x, priority: urgent } }]\n",
        "flow: a.yaml\ntests:\n  - name: t\n    expect: []\n    outcome: hung-up\n",
        "flow: a.yaml\ntests:\n  - caller: []\n    expect: []\n",
        "flow: a.yaml\ntests:\n  - name: t\n    covers: P-SIL\n    expect: []\n",
        "flow: a.yaml\ntests:\n  - name: t\n    vars: [caller]\n    expect: []\n",
        "flow: a.yaml\ntests:\n  - name: t\n    expect: [{ ticket: { category: x, fields: [a] } }]\n",
        "flow: a.yaml\ntset: []\n",
        "tests: []\n",
    ] {
        assert!(!loader_accepts(bad), "loader accepted:\n{bad}");
        assert!(!validator.is_valid(&load(bad)), "schema accepted:\n{bad}");
    }
}

#[test]
fn the_committed_test_schema_file_is_current() {
    let committed: Json =
        serde_json::from_str(&std::fs::read_to_string("docs/flow-test.schema.json").unwrap())
            .unwrap();
    assert_eq!(
        committed,
        test_schema(),
        "docs/flow-test.schema.json is stale: run `cargo run -- schema --tests > docs/flow-test.schema.json`"
    );
}
