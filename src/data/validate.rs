//! Lookup data checked against what the flows say with it: a due date written
//! `12/06/2026` where a flow speaks it as a date would be spoken as nothing, so it is
//! refused at load, at the data file's own `file:line`, as flows are.
//!
//! The flows say a field as a kind (date, money, a prompt id, ...) either directly
//! (`{date: "{sched.next}"}`) or through a variable copied from it (`set: { month:
//! "{acct.month}" }` and a prompt that speaks `{month}` as a number). Records served
//! by an HTTP back end are not in a file and are not checked here.
use crate::flow::catalogue::{Catalogue, PromptPart};
use crate::flow::diag::{Diagnostic, Diags};
use crate::flow::expr::{Part, Template};
use crate::flow::model::{Flow, SayItem, SpokenKind};
use crate::flow::yaml::{self, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// One way a flow speaks a field of a source.
struct Said {
    source: String,
    field: String,
    kind: SpokenKind,
    /// Where the flow says it, for the message: `flows/water.yaml:88`.
    at: String,
}

/// The single variable a template is, if it is nothing else (`"{acct.month}"`).
fn only_var(t: &Template) -> Option<&str> {
    match t.parts.as_slice() {
        [Part::Var(v)] => Some(v),
        _ => None,
    }
}

fn said_fields(flow: &Flow, cat: &Catalogue) -> Vec<Said> {
    // lookup into -> source
    let into: BTreeMap<&str, &str> = flow
        .states
        .iter()
        .filter_map(|s| s.lookup.as_ref())
        .map(|l| (l.into.as_str(), l.source.as_str()))
        .collect();
    // variable -> "into.field" it is copied from
    let mut alias: BTreeMap<&str, &str> = BTreeMap::new();
    let handlers = flow
        .states
        .iter()
        .flat_map(|s| s.on.all().map(|(_, _, h)| h))
        .chain(flow.on.all().map(|(_, _, h)| h));
    let sets = flow
        .states
        .iter()
        .flat_map(|s| s.set.iter())
        .chain(handlers.flat_map(|h| h.set.iter()));
    for (k, t) in sets {
        if let Some(v) = only_var(t) {
            alias.insert(k, v);
        }
    }
    let resolve = |var: &str| -> Option<(String, String)> {
        let var = alias.get(var).copied().unwrap_or(var);
        let (prefix, field) = var.split_once('.')?;
        Some((into.get(prefix)?.to_string(), field.to_string()))
    };
    let file = flow.file.display().to_string();
    let mut out = Vec::new();
    let mut say = |items: &[SayItem]| {
        for item in items {
            match item {
                SayItem::Spoken {
                    kind, value, pos, ..
                } => {
                    if let Some((source, field)) = only_var(value).and_then(resolve) {
                        out.push(Said {
                            source,
                            field,
                            kind: *kind,
                            at: format!("{file}:{}", pos.line),
                        });
                    }
                }
                SayItem::Prompt { id, pos, .. } => {
                    let Some(p) = cat.prompts.get(id) else {
                        continue;
                    };
                    for part in &p.parts {
                        if let PromptPart::Var(v, kind) = part
                            && let Some((source, field)) = resolve(v)
                        {
                            out.push(Said {
                                source,
                                field,
                                kind: *kind,
                                at: format!("{file}:{} (prompt '{id}')", pos.line),
                            });
                        }
                    }
                }
                SayItem::Pause(_) => {}
            }
        }
    };
    for st in &flow.states {
        say(&st.say);
        for (_, _, h) in st.on.all() {
            say(&h.say);
        }
    }
    for (_, _, h) in flow.on.all() {
        say(&h.say);
    }
    out
}

fn how(kind: SpokenKind) -> &'static str {
    match kind {
        SpokenKind::Date => "a date is written YYYY-MM-DD or MM-DD",
        SpokenKind::Time => "a time is written HH:MM",
        SpokenKind::Money => "an amount is written like 56.30",
        SpokenKind::Number => "a number is written with digits, like 12 or 3.5",
        SpokenKind::Digits | SpokenKind::DigitsSlow => "digits only",
        SpokenKind::Prompt => "it must be a prompt id of prompts/catalogue.yaml",
    }
}

/// Every record value in `dir/<source>.yaml` that a flow speaks as something it cannot
/// be spoken as.
pub fn check(flows: &[&Flow], cat: &Catalogue, dir: &Path) -> Vec<Diagnostic> {
    let mut by_source: BTreeMap<String, Vec<Said>> = BTreeMap::new();
    for f in flows {
        for s in said_fields(f, cat) {
            by_source.entry(s.source.clone()).or_default().push(s);
        }
    }
    let mut out = Vec::new();
    for (source, saids) in by_source {
        let path = dir.join(format!("{source}.yaml"));
        let Ok(text) = crate::flow::read_limited(&path) else {
            continue;
        };
        let mut d = Diags::new(&path);
        let Some(root) = yaml::parse(&text, &mut d) else {
            continue;
        };
        let Value::Map(records) = &root.value else {
            continue;
        };
        for (key, rec) in records {
            let Some(fields) = rec.as_map() else { continue };
            for (fk, fv) in fields {
                let (Some(field), Some(value)) = (fk.scalar(), fv.scalar()) else {
                    continue;
                };
                // An empty field is a record without that value, not a wrong one.
                if value.trim().is_empty() {
                    continue;
                }
                // One message per value, for the first way a flow says it.
                if let Some(s) = saids
                    .iter()
                    .find(|s| s.field == field && cat.spoken(s.kind, &value).is_none())
                {
                    d.error(
                        fv.pos,
                        format!(
                            "'{value}' (record '{}', field '{field}') cannot be spoken as {}, as {} says it: {}",
                            key.scalar().unwrap_or_default(),
                            s.kind.name(),
                            s.at,
                            how(s.kind)
                        ),
                    );
                }
            }
        }
        out.extend(d.into_sorted());
    }
    out
}
