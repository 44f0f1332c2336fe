//! Which variables can be set where: a use of `{name}` (in a prompt, a ticket, a
//! condition, a transfer) that no path through the flow sets is a mistake the caller
//! would hear as silence ("十二號樓電梯的下次保養日期是。"), so `check` reports it.
//!
//! A may-analysis over the state graph: a variable is known in a state when some path
//! from the start sets it before. Stricter (must-set on every path) would reject the
//! honest pattern of a ticket that names the call-back number when the caller gave
//! one, and the empty value is what such a ticket should carry.
use super::builtins::BUILTINS;
use super::catalogue::{Catalogue, PromptPart};
use super::diag::{Diags, Pos};
use super::expr::{Cond, Template};
use super::keys::closest;
use super::model::*;
use std::collections::BTreeSet;

/// What a name in a flow can be, as `check` sees it.
#[derive(Default)]
struct Known {
    names: BTreeSet<String>,
    /// Prefixes of lookups whose source does not say its fields: any `{into.x}`.
    open_prefixes: BTreeSet<String>,
}

impl Known {
    fn has(&self, v: &str) -> bool {
        self.names.contains(v)
            || v.split_once('.')
                .is_some_and(|(p, _)| self.open_prefixes.contains(p))
    }
    fn union(&mut self, other: &Known) -> bool {
        let before = self.names.len() + self.open_prefixes.len();
        self.names.extend(other.names.iter().cloned());
        self.open_prefixes
            .extend(other.open_prefixes.iter().cloned());
        before != self.names.len() + self.open_prefixes.len()
    }
}

/// A use of a variable, with the nearest position the loader kept.
struct Use<'a> {
    var: &'a str,
    pos: Pos,
}

/// `fields(source)`: the field names of a lookup source, if it knows them.
pub fn check(
    flow: &Flow,
    cat: Option<&Catalogue>,
    fields: &dyn Fn(&str) -> Option<Vec<String>>,
    d: &mut Diags,
) {
    let n = flow.states.len();
    let sets_of: Vec<Known> = flow.states.iter().map(|s| sets(s, fields)).collect();
    let mut start = Known::default();
    start.names.extend(
        BUILTINS
            .iter()
            .filter(|b| b.always)
            .map(|b| b.name.to_string()),
    );
    start.names.extend(flow.vars.iter().map(|(k, _)| k.clone()));
    // Flow-level handlers may set variables in any state.
    for (_, _, h) in flow.on.all() {
        start.names.extend(h.set.iter().map(|(k, _)| k.clone()));
        start.names.extend(h.inc.iter().map(|(k, _)| k.clone()));
    }
    let succ: Vec<Vec<usize>> = flow
        .states
        .iter()
        .map(|st| {
            super::check::successors(flow, st)
                .0
                .iter()
                .filter_map(|t| flow.index.get(&t.name).copied())
                .collect()
        })
        .collect();
    // What is known before the first state is known everywhere: nothing unsets it.
    let mut known_in: Vec<Known> = (0..n)
        .map(|_| {
            let mut k = Known::default();
            k.union(&start);
            k
        })
        .collect();
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..n {
            let mut out = Known::default();
            out.union(&known_in[i]);
            out.union(&sets_of[i]);
            for &j in &succ[i] {
                if known_in[j].union(&out) {
                    changed = true;
                }
            }
        }
    }
    let every_name: BTreeSet<&str> = sets_of
        .iter()
        .flat_map(|g| g.names.iter().map(String::as_str))
        .chain(start.names.iter().map(String::as_str))
        .collect();
    let mut reported = BTreeSet::new();
    for (i, st) in flow.states.iter().enumerate() {
        let mut here = Known::default();
        here.union(&known_in[i]);
        here.union(&sets_of[i]);
        for u in uses(st, cat) {
            if here.has(u.var) || !reported.insert((u.pos, u.var.to_string())) {
                continue;
            }
            d.error(u.pos, unset_message(u.var, &st.name, &every_name, &here));
        }
    }
    // The flow's own handlers run in any state: a name there must be set somewhere.
    let mut anywhere = Known::default();
    for g in sets_of.iter().chain(std::iter::once(&start)) {
        anywhere.union(g);
    }
    for (_, _, h) in flow.on.all() {
        let mut us = Vec::new();
        handler_uses(h, cat, &mut us);
        for u in us {
            if !anywhere.has(u.var) && reported.insert((u.pos, u.var.to_string())) {
                d.error(
                    u.pos,
                    unset_message(u.var, "the flow's on:", &every_name, &anywhere),
                );
            }
        }
    }
}

fn unset_message(var: &str, wher: &str, every: &BTreeSet<&str>, here: &Known) -> String {
    let hint = closest(
        every
            .iter()
            .copied()
            .chain(here.names.iter().map(String::as_str)),
        var,
    )
    .map(|k| format!(" (did you mean '{k}'?)"))
    .unwrap_or_default();
    if every.contains(var) {
        format!(
            "{{{var}}} is used in '{wher}' but no path to it sets it: it would be spoken or filed as nothing{hint}"
        )
    } else {
        format!(
            "{{{var}}} is used in '{wher}' but nothing sets it (set:, collect into:, record into:, lookup into:, vars:, or a built-in: {}){hint}",
            BUILTINS
                .iter()
                .filter(|b| b.always)
                .map(|b| b.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// What entering `st` and acting in it can set.
fn sets(st: &State, fields: &dyn Fn(&str) -> Option<Vec<String>>) -> Known {
    let mut k = Known::default();
    k.names.extend(st.set.iter().map(|(n, _)| n.clone()));
    k.names.extend(st.inc.iter().map(|(n, _)| n.clone()));
    if st.ticket.is_some() {
        k.names.insert("ticket_id".into());
    }
    if let Some(l) = &st.lookup {
        match fields(&l.source) {
            Some(fs) => k
                .names
                .extend(fs.into_iter().map(|f| format!("{}.{f}", l.into))),
            None => {
                k.open_prefixes.insert(l.into.clone());
            }
        }
    }
    match &st.action {
        Action::Collect(c) => {
            k.names.insert(c.into.clone());
        }
        Action::Record(r) => {
            k.names.insert(format!("recording.{}", r.into));
        }
        Action::Menu(keys) => {
            for m in keys {
                k.names.extend(m.handler.set.iter().map(|(n, _)| n.clone()));
                k.names.extend(m.handler.inc.iter().map(|(n, _)| n.clone()));
            }
        }
        _ => {}
    }
    for (_, _, h) in st.on.all() {
        k.names.extend(h.set.iter().map(|(n, _)| n.clone()));
        k.names.extend(h.inc.iter().map(|(n, _)| n.clone()));
    }
    k
}

fn template_uses<'a>(t: &'a Template, pos: Pos, out: &mut Vec<Use<'a>>) {
    out.extend(t.vars().map(|var| Use { var, pos }));
}

fn cond_uses<'a>(c: &'a Cond, pos: Pos, out: &mut Vec<Use<'a>>) {
    out.push(Use { var: &c.var, pos });
    if let Some((_, rhs)) = &c.cmp {
        template_uses(rhs, pos, out);
    }
}

fn say_uses<'a>(items: &'a [SayItem], cat: Option<&'a Catalogue>, out: &mut Vec<Use<'a>>) {
    for item in items {
        match item {
            SayItem::Prompt { id, pos, when } => {
                if let Some(c) = when {
                    cond_uses(c, *pos, out);
                }
                // A prompt chosen by a variable (`prompt: "{area}"`) names that variable.
                if let Some(v) = id.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                    out.push(Use { var: v, pos: *pos });
                } else if let Some(p) = cat.and_then(|c| c.prompts.get(id)) {
                    for part in &p.parts {
                        if let PromptPart::Var(v, _) = part {
                            out.push(Use { var: v, pos: *pos });
                        }
                    }
                }
            }
            SayItem::Spoken {
                value, pos, when, ..
            } => {
                if let Some(c) = when {
                    cond_uses(c, *pos, out);
                }
                template_uses(value, *pos, out);
            }
            SayItem::Pause(_) => {}
        }
    }
}

fn handler_uses<'a>(h: &'a Handler, cat: Option<&'a Catalogue>, out: &mut Vec<Use<'a>>) {
    for (_, t) in &h.set {
        template_uses(t, h.pos, out);
    }
    say_uses(&h.say, cat, out);
}

fn uses<'a>(st: &'a State, cat: Option<&'a Catalogue>) -> Vec<Use<'a>> {
    let mut out = Vec::new();
    for (_, t) in &st.set {
        template_uses(t, st.pos, &mut out);
    }
    if let Some(t) = &st.ticket {
        for (_, v) in &t.fields {
            template_uses(v, t.pos, &mut out);
        }
    }
    if let Some(l) = &st.lookup {
        template_uses(&l.key, l.pos, &mut out);
    }
    say_uses(&st.say, cat, &mut out);
    match &st.action {
        Action::Menu(keys) => {
            for k in keys {
                handler_uses(&k.handler, cat, &mut out);
            }
        }
        Action::Next(branches) => {
            for b in branches {
                if let Some(c) = &b.when {
                    cond_uses(c, b.goto.pos, &mut out);
                }
            }
        }
        Action::Transfer(t) => template_uses(t, st.pos, &mut out),
        _ => {}
    }
    for (_, _, h) in st.on.all() {
        handler_uses(h, cat, &mut out);
    }
    out
}
