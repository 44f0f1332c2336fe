//! A YAML document as a tree of positioned nodes.
//!
//! Flow files are read into this generic tree first and converted to the model by hand,
//! so that the loader can report every unknown key, wrong type and bad value with its
//! line and column instead of stopping at the first one, as a derived deserializer would.
use super::diag::{Diags, Pos};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Files larger than this are refused before parsing: a flow is a few kilobytes.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The node as a scalar string: YAML's `1:` and `"1":` both name key 1.
    pub fn scalar(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Bool(_) => "a true/false",
            Value::Int(_) => "a number",
            Value::Float(_) => "a number",
            Value::Str(_) => "text",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<Value>::deserialize(d)?;
        Ok(Node {
            pos: Pos::new(s.referenced.line(), s.referenced.column()),
            value: s.value,
        })
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Str(v.to_string()),
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(n) = a.next_element::<Node>()? {
            v.push(n);
        }
        Ok(Value::Seq(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some((k, n)) = a.next_entry::<Node, Node>()? {
            v.push((k, n));
        }
        Ok(Value::Map(v))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    // A flow has hundreds of nodes; these limits stop alias bombs long before memory does.
    budget.max_nodes = 100_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_events = 200_000;
    budget.max_depth = 64;
    let mut o = serde_saphyr::Options::default();
    o.budget = Some(budget);
    // YAML 1.2 booleans: `on:` is a key, not `true`, and `no` is a word, not `false`.
    o.strict_booleans = true;
    // Account and agent numbers keep their leading zeros.
    o.leading_zero_numbers_as_strings = true;
    // A key written twice (a menu's "1") reaches the loader, which reports it with the
    // file's other errors; as a parse error it would hide them all.
    o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    o
}

/// Parses one YAML document; a syntax error, a budget breach or an oversized file
/// becomes a diagnostic with its position.
pub fn parse(text: &str, diags: &mut Diags) -> Option<Node> {
    if text.len() > MAX_FILE_BYTES {
        diags.error(
            Pos::FILE,
            format!(
                "file is {} bytes, over the limit of {} bytes",
                text.len(),
                MAX_FILE_BYTES
            ),
        );
        return None;
    }
    if text.trim().is_empty() {
        diags.error(Pos::at(1, 1), "file is empty");
        return None;
    }
    match serde_saphyr::from_str_with_options::<Node>(text, options()) {
        Ok(mut n) => {
            drop_repeated_keys(&mut n, diags);
            Some(n)
        }
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos::new(l.line(), l.column()))
                .unwrap_or(Pos::at(1, 1));
            diags.error(pos, clean_message(&e.without_snippet().to_string()));
            None
        }
    }
}

/// Reports a key written twice in one mapping and keeps the first, so that the file's
/// other errors are still found (`1:` and `"1":` are the same key to a designer).
fn drop_repeated_keys(n: &mut Node, diags: &mut Diags) {
    match &mut n.value {
        Value::Map(entries) => {
            let mut seen: Vec<(String, u32)> = Vec::new();
            entries.retain(|(k, _)| {
                let Some(key) = k.scalar() else {
                    return true;
                };
                if let Some((_, line)) = seen.iter().find(|(s, _)| *s == key) {
                    diags.error(
                        k.pos,
                        format!(
                            "'{key}' is used twice in this mapping (first at line {line}); keep one"
                        ),
                    );
                    return false;
                }
                seen.push((key, k.pos.line));
                true
            });
            for (_, v) in entries.iter_mut() {
                drop_repeated_keys(v, diags);
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(|i| drop_repeated_keys(i, diags)),
        _ => {}
    }
}

/// serde-saphyr's messages start with "error: line N column M: "; the diagnostic
/// already carries the position, so only the message proper is kept.
fn clean_message(s: &str) -> String {
    let first = s.lines().next().unwrap_or(s).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let msg = match first.find(": ") {
        Some(i) if first.starts_with("line ") => &first[i + 2..],
        _ => first,
    };
    let msg = msg.split(", set DuplicateKeyPolicy").next().unwrap_or(msg);
    // The position is the diagnostic's own; the parser repeats it at the end.
    let msg = match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(", column ") => &msg[..i],
        _ => msg,
    };
    if msg.contains("tabs disallowed") || msg.contains("tab character") {
        "a tab is used for indentation here: YAML indents with spaces only".to_string()
    } else if msg.contains("budget breached") {
        format!("{msg} (the document expands too far: YAML alias bombs are refused)")
    } else {
        msg.to_string()
    }
}
