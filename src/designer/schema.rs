//! A JSON Schema of the flow format, built from the same key tables the loader accepts,
//! so an editor's YAML language server completes and checks exactly what `check` does.
use crate::flow::keys::{self, ACTIONS};
use crate::flow::model::{EventKind, Priority};
use serde_json::{Map, Value, json};

fn props(table: &[(&str, &str)], mut f: impl FnMut(&str) -> Value) -> Map<String, Value> {
    table
        .iter()
        .map(|(k, doc)| {
            let mut v = f(k);
            if let Value::Object(o) = &mut v {
                o.insert("description".into(), json!(doc));
            }
            (k.to_string(), v)
        })
        .collect()
}

fn object(table: &[(&str, &str)], f: impl FnMut(&str) -> Value) -> Value {
    json!({ "type": "object", "additionalProperties": false, "properties": props(table, f) })
}

const DURATION: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|min|h))+$";

pub fn schema() -> Value {
    let duration = json!({ "type": "string", "pattern": DURATION });
    let name = json!({ "type": "string", "pattern": r"^[A-Za-z0-9_.\-]+$" });
    let text = json!({ "type": ["string", "number"] });
    let assignments = json!({ "type": "object", "additionalProperties": text });
    let counters = json!({ "oneOf": [
        name.clone(),
        { "type": "array", "items": name.clone() },
        { "type": "object", "additionalProperties": { "type": "integer" } }
    ] });
    let say_item = json!({
        "oneOf": [
            { "type": "string" },
            object(keys::SAY, |k| match k {
                "pause" => duration.clone(),
                "when" => json!({ "type": "string" }),
                _ => text.clone(),
            }),
        ]
    });
    let say = json!({ "oneOf": [ say_item.clone(), { "type": "array", "items": say_item } ] });
    let handler = object(keys::HANDLER, |k| match k {
        "say" => json!({ "$ref": "#/$defs/say" }),
        "set" => assignments.clone(),
        "inc" => counters.clone(),
        "goto" => name.clone(),
        "hangup" => duration.clone(),
        _ => json!({ "type": "boolean" }),
    });
    let counted = json!({
        "oneOf": [
            { "$ref": "#/$defs/handler" },
            { "type": "object", "patternProperties": { "^[1-9][0-9]*$": { "$ref": "#/$defs/handler" } }, "additionalProperties": false }
        ]
    });
    let events: Map<String, Value> = EventKind::ALL
        .iter()
        .map(|e| (e.name().to_string(), counted.clone()))
        .collect();
    let on = json!({ "type": "object", "additionalProperties": false, "properties": events });
    let state = object(keys::STATE, |k| match k {
        "description" => json!({ "type": "string" }),
        "set" => assignments.clone(),
        "inc" => counters.clone(),
        "ticket" => object(keys::TICKET, |t| match t {
            "priority" => json!({ "enum": Priority::ALL.map(|p| p.name()) }),
            "due" => duration.clone(),
            "fields" => assignments.clone(),
            "recordings" => json!({ "type": "array", "items": name.clone() }),
            _ => name.clone(),
        }),
        "lookup" => object(keys::LOOKUP, |_| json!({ "type": "string" })),
        "say" => json!({ "$ref": "#/$defs/say" }),
        "timeout" | "hangup" => duration.clone(),
        "on" => json!({ "$ref": "#/$defs/on" }),
        "menu" => json!({
            "type": "object",
            "propertyNames": { "pattern": "^[0-9*#]$" },
            "additionalProperties": { "oneOf": [ name.clone(), { "$ref": "#/$defs/handler" } ] }
        }),
        "collect" => object(keys::COLLECT, |c| match c {
            "min" | "max" => json!({ "type": "integer", "minimum": 1, "maximum": 64 }),
            "end" => json!({ "enum": ["#", "*", "none"] }),
            "inter_digit" => duration.clone(),
            "pattern" => json!({ "type": "string" }),
            _ => name.clone(),
        }),
        "record" => object(keys::RECORD, |r| match r {
            "max" | "end_silence" => duration.clone(),
            _ => name.clone(),
        }),
        "listen" => json!({ "const": true }),
        "next" => {
            json!({ "oneOf": [ name.clone(), { "type": "array", "items": object(keys::BRANCH, |b| match b {
            "goto" => name.clone(), _ => json!({ "type": "string" }) }) } ] })
        }
        "transfer" => json!({ "type": "string" }),
        _ => json!({}),
    });
    let one_action: Vec<Value> = ACTIONS.iter().map(|a| json!({ "required": [a] })).collect();
    let mut state = state;
    if let Value::Object(o) = &mut state {
        o.insert("oneOf".into(), Value::Array(one_action));
    }
    let settings = object(keys::SETTINGS, |k| match k {
        "ring_apology_after" => json!({ "type": "integer", "minimum": 0 }),
        "barge_in" => json!({ "type": "boolean" }),
        "agent_id" => text.clone(),
        "timezone" => json!({ "type": "string" }),
        "hotline" | "wait_prompt" | "waited_prompt" => name.clone(),
        _ => duration.clone(),
    });
    let mut top = object(keys::TOP, |k| match k {
        "flow" => name.clone(),
        "description" => json!({ "type": "string" }),
        "settings" => settings.clone(),
        "vars" => assignments.clone(),
        "categories" => json!({ "type": "array", "items": name.clone(), "minItems": 1 }),
        "include" => {
            json!({ "oneOf": [ { "type": "string" }, { "type": "array", "items": { "type": "string" } } ] })
        }
        "start" => name.clone(),
        "on" => json!({ "$ref": "#/$defs/on" }),
        "states" => {
            json!({ "type": "object", "additionalProperties": { "$ref": "#/$defs/state" } })
        }
        _ => json!({}),
    });
    if let Value::Object(o) = &mut top {
        o.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        o.insert(
            "$id".into(),
            json!("https://hotline.invalid/flow.schema.json"),
        );
        o.insert("title".into(), json!("hotline call flow"));
        o.insert("required".into(), json!(["flow", "start", "states"]));
        o.insert(
            "$defs".into(),
            json!({ "say": say, "handler": handler, "on": on, "state": state }),
        );
    }
    top
}

/// A JSON Schema of flow test files (`flows/tests/*.yaml`), from the tables the test
/// loader reads, with the caller's steps as the pattern the step parser takes.
pub fn test_schema() -> Value {
    use super::flowtest::{EXPECT_KEYS, FILE_KEYS, OUTCOMES, TEST_KEYS, TICKET_KEYS};
    let duration = json!({ "type": "string", "pattern": DURATION });
    let text = json!({ "type": ["string", "number"] });
    let values = json!({ "type": "object", "additionalProperties": { "type": ["string", "number", "boolean"] } });
    let ticket = json!({
        "oneOf": [
            { "type": "string" },
            {
                "allOf": [
                    object(TICKET_KEYS, |k| match k {
                        "priority" => json!({ "enum": Priority::ALL.map(|p| p.name()) }),
                        "due" => duration.clone(),
                        "fields" => values.clone(),
                        "recordings" => json!({ "type": "array", "items": { "type": "string" } }),
                        _ => json!({ "type": "string" }),
                    }),
                    { "required": ["category"] }
                ]
            }
        ]
    });
    let mut expect_object = object(EXPECT_KEYS, |k| match k {
        "heard" | "transfer" => json!({ "type": "string" }),
        "value" => text.clone(),
        "ticket" => ticket.clone(),
        "at" | "after" => duration.clone(),
        // `hangup: hotline`: only hotline's hang-up is an expectation; the value is a note.
        _ => json!({}),
    });
    if let Value::Object(o) = &mut expect_object {
        o.insert(
            "anyOf".into(),
            json!(["heard", "ticket", "transfer", "hangup"].map(|k| json!({ "required": [k] }))),
        );
    }
    let expect = json!({ "oneOf": [ { "const": "hangup" }, expect_object ] });
    let mut test = object(TEST_KEYS, |k| match k {
        "name" => json!({ "type": "string" }),
        "covers" => json!({ "type": "array", "items": { "type": "string" } }),
        "rings" => json!({ "type": "integer", "minimum": 0, "maximum": 1000 }),
        "vars" => values.clone(),
        "caller" => json!({
            "type": "array",
            "items": { "type": ["string", "integer"], "pattern": super::script::step_pattern() }
        }),
        "expect" => json!({ "type": "array", "items": { "$ref": "#/$defs/expect" } }),
        "outcome" => json!({ "enum": OUTCOMES }),
        _ => json!({}),
    });
    if let Value::Object(o) = &mut test {
        o.insert("required".into(), json!(["name", "expect"]));
    }
    let mut top = object(FILE_KEYS, |k| match k {
        "flow" => json!({ "type": "string" }),
        _ => json!({ "type": "array", "items": { "$ref": "#/$defs/test" } }),
    });
    if let Value::Object(o) = &mut top {
        o.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        o.insert(
            "$id".into(),
            json!("https://hotline.invalid/flow-test.schema.json"),
        );
        o.insert("title".into(), json!("hotline flow tests"));
        o.insert("required".into(), json!(["flow", "tests"]));
        o.insert("$defs".into(), json!({ "test": test, "expect": expect }));
    }
    top
}
