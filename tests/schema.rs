//! `hotline schema` describes the language the loader accepts: the shipped flows pass it,
//! a flow with an unknown key does not, and docs/flow.schema.json is up to date.
use hotline::designer::schema::schema;
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
