//! Flow files: YAML text → `Flow`, reporting every problem with its position.
//!
//! Loading is structural (keys, types, values); `check` then looks at the flow as a
//! whole (targets, reachability, prompts). Both keep going after an error.
use super::diag::{Diags, Pos};
use super::expr::{Cond, Template, parse_duration, valid_var_name};
use super::keys::{self, suggest};
use super::model::*;
use super::yaml::{self, Node, Value};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Structural loading of one flow file. `None` when the file is too broken to go on.
pub fn load_str(text: &str, file: &Path, diags: &mut Diags) -> Option<Flow> {
    let root = yaml::parse(text, diags)?;
    let root = super::include::merge(root, file, diags);
    let mut l = Loader { d: diags };
    l.flow(&root, file)
}

struct Loader<'a> {
    d: &'a mut Diags,
}

impl Loader<'_> {
    fn err(&mut self, pos: Pos, msg: impl Into<String>) {
        self.d.error(pos, msg);
    }

    /// The entries of a mapping, with unknown keys reported (and a hint for typos).
    fn entries<'n>(
        &mut self,
        node: &'n Node,
        table: &[(&'static str, &str)],
        what: &str,
    ) -> Vec<(&'static str, &'n Node)> {
        let Some(map) = node.as_map() else {
            self.err(
                node.pos,
                format!("{what} must be a mapping, found {}", node.kind()),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in map {
            let key = k.scalar().unwrap_or_default();
            match table.iter().find(|(t, _)| *t == key) {
                Some((t, _)) => out.push((*t, v)),
                None => {
                    let hint = match suggest(table, &key) {
                        Some(s) => format!(" (did you mean '{s}'?)"),
                        None => format!(
                            " (expected one of: {})",
                            table.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    self.err(k.pos, format!("unknown key '{key}' in {what}{hint}"));
                }
            }
        }
        out
    }

    fn string(&mut self, n: &Node, what: &str) -> Option<String> {
        match &n.value {
            Value::Str(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Int(i) => Some(i.to_string()),
            _ => {
                self.err(n.pos, format!("{what} must be text, found {}", n.kind()));
                None
            }
        }
    }

    fn name(&mut self, n: &Node, what: &str) -> Option<String> {
        let s = self.string(n, what)?;
        if valid_var_name(&s) {
            Some(s)
        } else {
            self.err(
                n.pos,
                format!("{what} \"{s}\" must be a name (letters, digits, '_', '-', '.')"),
            );
            None
        }
    }

    fn duration(&mut self, n: &Node, what: &str) -> Option<Duration> {
        match &n.value {
            Value::Str(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(n.pos, format!("{what}: {e}"));
                    None
                }
            },
            _ => {
                self.err(
                    n.pos,
                    format!(
                        "{what} must be a duration with a unit (5s, 500ms, 15m), found {}",
                        n.kind()
                    ),
                );
                None
            }
        }
    }

    fn uint(&mut self, n: &Node, what: &str, max: u64) -> Option<u64> {
        match n.value {
            Value::Int(i) if i >= 0 && (i as u64) <= max => Some(i as u64),
            _ => {
                self.err(
                    n.pos,
                    format!("{what} must be a whole number from 0 to {max}"),
                );
                None
            }
        }
    }

    fn boolean(&mut self, n: &Node, what: &str) -> Option<bool> {
        match n.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.err(n.pos, format!("{what} must be true or false"));
                None
            }
        }
    }

    fn template(&mut self, n: &Node, what: &str) -> Option<Template> {
        let s = match &n.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                self.err(n.pos, format!("{what} must be text, found {}", n.kind()));
                return None;
            }
        };
        match Template::parse(&s) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(n.pos, format!("{what}: {e}"));
                None
            }
        }
    }

    fn cond(&mut self, n: &Node) -> Option<Cond> {
        let s = self.string(n, "when")?;
        match Cond::parse(&s) {
            Ok(c) => Some(c),
            Err(e) => {
                self.err(n.pos, e);
                None
            }
        }
    }

    fn target(&mut self, n: &Node, what: &str) -> Option<Target> {
        let name = self.name(n, what)?;
        Some(Target { name, pos: n.pos })
    }

    fn assignments(&mut self, n: &Node, what: &str) -> Vec<(String, Template)> {
        let Some(map) = n.as_map() else {
            self.err(
                n.pos,
                format!(
                    "{what} must be a mapping of name: value, found {}",
                    n.kind()
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in map {
            let (Some(name), Some(t)) = (self.name(k, "variable name"), self.template(v, what))
            else {
                continue;
            };
            out.push((name, t));
        }
        out
    }

    /// `inc: tries`, `inc: [tries, visits]` or `inc: { tries: 2 }`.
    fn counters(&mut self, n: &Node) -> Vec<(String, i64)> {
        const LIMIT: i64 = 1_000_000;
        match &n.value {
            Value::Str(_) => self.name(n, "inc").map(|c| (c, 1)).into_iter().collect(),
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| self.name(i, "inc").map(|c| (c, 1)))
                .collect(),
            Value::Map(m) => {
                let mut out = Vec::new();
                for (k, v) in m {
                    let Some(c) = self.name(k, "counter name") else {
                        continue;
                    };
                    match v.value {
                        Value::Int(by) if by != 0 && by.abs() <= LIMIT => out.push((c, by)),
                        _ => self.err(
                            v.pos,
                            format!(
                                "inc: {c} must go up or down by a whole number, not 0, at most {LIMIT}"
                            ),
                        ),
                    }
                }
                out
            }
            _ => {
                self.err(
                    n.pos,
                    format!(
                        "inc must be a counter name, a list of names or {{name: N}}, found {}",
                        n.kind()
                    ),
                );
                Vec::new()
            }
        }
    }

    fn flow(&mut self, root: &Node, file: &Path) -> Option<Flow> {
        let entries = self.entries(root, keys::TOP, "the flow");
        root.as_map()?;
        let mut settings = Settings::default();
        let mut name = None;
        let mut vars = Vec::new();
        let mut categories: Vec<String> =
            DEFAULT_CATEGORIES.iter().map(|s| s.to_string()).collect();
        let mut start = None;
        let mut on = Handlers::default();
        let mut states_node = None;
        for (k, v) in entries {
            match k {
                "flow" => name = self.name(v, "flow"),
                "description" => {}
                "settings" => self.settings(v, &mut settings),
                "vars" => vars = self.assignments(v, "vars"),
                "categories" => categories = self.categories(v),
                "start" => start = self.target(v, "start"),
                "on" => on = self.handlers(v, "on"),
                "states" => states_node = Some(v),
                _ => {}
            }
        }
        let Some(name) = name else {
            if start.is_none() && (states_node.is_some() || !on.by_event.is_empty()) {
                self.err(
                    root.pos,
                    "this is a shared piece (states: and on: only), not a flow: flows use it with include:, and `hotline check` checks it as part of them",
                );
                return None;
            }
            self.err(root.pos, "missing 'flow: NAME' (the name callers dial)");
            return None;
        };
        let Some(states_node) = states_node else {
            self.err(
                root.pos,
                "missing 'states:' (a flow needs at least one state)",
            );
            return None;
        };
        let mut states = Vec::new();
        let mut index = HashMap::new();
        match states_node.as_map() {
            Some(map) if !map.is_empty() => {
                for (k, v) in map {
                    let Some(sname) = self.name(k, "state name") else {
                        continue;
                    };
                    if index.contains_key(&sname) {
                        self.err(k.pos, format!("state '{sname}' is defined twice"));
                        continue;
                    }
                    if let Some(st) = self.state(&sname, k.pos, v) {
                        index.insert(sname, states.len());
                        states.push(st);
                    }
                }
            }
            _ => {
                self.err(
                    states_node.pos,
                    "states must be a mapping of state name: state",
                );
                return None;
            }
        }
        let start_idx = match &start {
            None => {
                self.err(root.pos, "missing 'start: STATE'");
                return None;
            }
            Some(t) => match index.get(&t.name) {
                Some(&i) => i,
                None => {
                    let hint = keys::closest(index.keys().map(String::as_str), &t.name)
                        .map(|n| format!(" (did you mean '{n}'?)"))
                        .unwrap_or_default();
                    self.err(
                        t.pos,
                        format!("start state '{}' does not exist{hint}", t.name),
                    );
                    return None;
                }
            },
        };
        let mut all_vars = vec![
            ("agent_id".to_string(), settings.agent_id.clone()),
            ("hotline".to_string(), settings.hotline.clone()),
            (
                "ring_apology_after".to_string(),
                settings.ring_apology_after.to_string(),
            ),
        ];
        for (k, t) in vars {
            // Initial vars may refer to settings ("{agent_id}"), nothing else exists yet.
            let map = all_vars.iter().cloned().collect();
            all_vars.push((k, t.render(&map)));
        }
        Some(Flow {
            name,
            file: file.to_path_buf(),
            settings,
            vars: all_vars,
            categories,
            start: start_idx,
            states,
            index,
            on,
        })
    }

    fn settings(&mut self, n: &Node, s: &mut Settings) {
        for (k, v) in self.entries(n, keys::SETTINGS, "settings") {
            let what = format!("settings.{k}");
            match k {
                "no_input" => set(&mut s.no_input, self.duration(v, &what)),
                "inter_digit" => set(&mut s.inter_digit, self.duration(v, &what)),
                "ring_period" => set(&mut s.ring_period, self.duration(v, &what)),
                "ring_apology_after" => set(
                    &mut s.ring_apology_after,
                    self.uint(v, &what, 100).map(|x| x as u32),
                ),
                "answer_after" => set(&mut s.answer_after, self.duration(v, &what)),
                "wait_after" => set(&mut s.wait_after, self.duration(v, &what)),
                "lookup_timeout" => set(&mut s.lookup_timeout, self.duration(v, &what)),
                "wait_prompt" => set(&mut s.wait_prompt, self.name(v, &what)),
                "waited_prompt" => set(&mut s.waited_prompt, self.name(v, &what)),
                "max_call" => set(&mut s.max_call, self.duration(v, &what)),
                "record_max" => set(&mut s.record_max, self.duration(v, &what)),
                "record_end_silence" => set(&mut s.record_end_silence, self.duration(v, &what)),
                "barge_in" => set(&mut s.barge_in, self.boolean(v, &what)),
                "agent_id" => set(&mut s.agent_id, self.string(v, &what)),
                "hotline" => set(&mut s.hotline, self.name(v, &what)),
                "timezone" => {
                    if let Some(name) = self.string(v, &what) {
                        match super::clock::time_zone(&name) {
                            Ok(tz) => s.timezone = tz,
                            Err(e) => self.err(v.pos, format!("{what}: {e}")),
                        }
                    }
                }
                _ => {}
            }
        }
        for (d, what) in [
            (s.no_input, "no_input"),
            (s.ring_period, "ring_period"),
            (s.max_call, "max_call"),
            (s.inter_digit, "inter_digit"),
        ] {
            if d.is_zero() {
                self.err(n.pos, format!("settings.{what} must be longer than 0s"));
            }
        }
    }

    fn categories(&mut self, n: &Node) -> Vec<String> {
        match &n.value {
            Value::Seq(items) if !items.is_empty() => items
                .iter()
                .filter_map(|i| self.name(i, "category"))
                .collect(),
            _ => {
                self.err(n.pos, "categories must be a non-empty list of names");
                DEFAULT_CATEGORIES.iter().map(|s| s.to_string()).collect()
            }
        }
    }

    fn state(&mut self, name: &str, pos: Pos, n: &Node) -> Option<State> {
        let what = format!("state '{name}'");
        let entries = self.entries(n, keys::STATE, &what);
        n.as_map()?;
        let mut st = State {
            name: name.to_string(),
            pos,
            set: Vec::new(),
            inc: Vec::new(),
            ticket: None,
            lookup: None,
            say: Vec::new(),
            action: Action::Listen,
            timeout: None,
            group: None,
            on: Handlers::default(),
        };
        let mut action: Option<(&str, Action)> = None;
        for (k, v) in entries {
            let a = match k {
                "description" => None,
                "set" => {
                    st.set = self.assignments(v, "set");
                    None
                }
                "inc" => {
                    st.inc = self.counters(v);
                    None
                }
                "ticket" => {
                    st.ticket = self.ticket(v);
                    None
                }
                "lookup" => {
                    st.lookup = self.lookup(v);
                    None
                }
                "say" => {
                    st.say = self.say(v);
                    None
                }
                "timeout" => {
                    st.timeout = self.duration(v, "timeout");
                    None
                }
                "on" => {
                    st.on = self.handlers(v, &format!("{what} on"));
                    None
                }
                "group" => {
                    st.group = self.name(v, "group");
                    None
                }
                "menu" => self.menu(v).map(Action::Menu),
                "collect" => self.collect(v).map(Action::Collect),
                "record" => self.record(v).map(Action::Record),
                "listen" => match self.boolean(v, "listen") {
                    Some(true) => Some(Action::Listen),
                    Some(false) => {
                        self.err(v.pos, "listen: false does nothing; remove it");
                        None
                    }
                    None => None,
                },
                "next" => self.next(v).map(Action::Next),
                "hangup" => self.duration(v, "hangup").map(Action::Hangup),
                "transfer" => self.template(v, "transfer").map(Action::Transfer),
                _ => None,
            };
            if let Some(a) = a {
                if let Some((prev, _)) = &action {
                    self.err(
                        v.pos,
                        format!(
                            "{what} has both '{prev}' and '{k}': a state ends in exactly one of {}",
                            keys::ACTIONS.join(", ")
                        ),
                    );
                } else {
                    action = Some((k, a));
                }
            }
        }
        match action {
            Some((_, a)) => st.action = a,
            None if keys::ACTIONS.iter().any(|k| {
                n.as_map()
                    .is_some_and(|m| m.iter().any(|(kk, _)| kk.scalar().as_deref() == Some(*k)))
            }) =>
            {
                // The action was written but invalid; its error is already reported.
            }
            None => self.err(
                pos,
                format!(
                    "{what} says what to do next nowhere: give it one of {}",
                    keys::ACTIONS.join(", ")
                ),
            ),
        }
        Some(st)
    }

    fn say(&mut self, n: &Node) -> Vec<SayItem> {
        match &n.value {
            Value::Seq(items) => items.iter().filter_map(|i| self.say_item(i)).collect(),
            _ => self.say_item(n).into_iter().collect(),
        }
    }

    fn say_item(&mut self, n: &Node) -> Option<SayItem> {
        if let Value::Str(_) = n.value {
            return self.prompt_ref(n, None);
        }
        let entries = self.entries(n, keys::SAY, "a say item");
        n.as_map()?;
        let mut when = None;
        let mut main: Option<(&str, &Node)> = None;
        for (k, v) in entries {
            if k == "when" {
                when = self.cond(v);
                continue;
            }
            if let Some((prev, _)) = main {
                self.err(
                    v.pos,
                    format!("a say item says one thing: '{prev}' or '{k}', not both"),
                );
                continue;
            }
            main = Some((k, v));
        }
        let Some((k, v)) = main else {
            self.err(
                n.pos,
                "a say item needs one of prompt, digits, number, money, date, time, pause",
            );
            return None;
        };
        match k {
            "prompt" => self.prompt_ref(v, when),
            "pause" => self.duration(v, "pause").map(SayItem::Pause),
            other => {
                let kind = SpokenKind::from_name(other)?;
                let value = self.template(v, other)?;
                Some(SayItem::Spoken {
                    kind,
                    value,
                    pos: v.pos,
                    when,
                })
            }
        }
    }

    /// A prompt id, or a `{var}` whose value is a prompt id (an area, a surname).
    fn prompt_ref(&mut self, n: &Node, when: Option<Cond>) -> Option<SayItem> {
        let s = self.string(n, "prompt")?;
        if s.contains('{') {
            let value = self.template(n, "prompt")?;
            return Some(SayItem::Spoken {
                kind: SpokenKind::Prompt,
                value,
                pos: n.pos,
                when,
            });
        }
        if !valid_var_name(&s) {
            self.err(n.pos, format!("\"{s}\" is not a prompt id"));
            return None;
        }
        Some(SayItem::Prompt {
            id: s,
            pos: n.pos,
            when,
        })
    }

    fn menu(&mut self, n: &Node) -> Option<Vec<MenuKey>> {
        let Some(map) = n.as_map() else {
            self.err(n.pos, "menu must be a mapping of key: state");
            return None;
        };
        let mut out: Vec<MenuKey> = Vec::new();
        for (k, v) in map {
            let key = k.scalar().unwrap_or_default();
            let mut chars = key.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                self.err(k.pos, format!("menu key '{key}' must be one of 0-9, *, #"));
                continue;
            };
            if !(c.is_ascii_digit() || c == '*' || c == '#') {
                self.err(k.pos, format!("menu key '{key}' must be one of 0-9, *, #"));
                continue;
            }
            if let Some(prev) = out.iter().find(|m| m.key == c) {
                self.err(
                    k.pos,
                    format!(
                        "menu key '{c}' is used twice (first at line {})",
                        prev.pos.line
                    ),
                );
                continue;
            }
            let handler = match &v.value {
                Value::Str(_) => self.target(v, "menu target").map(|t| Handler {
                    pos: v.pos,
                    then: Then::Goto(t),
                    ..Handler::default()
                }),
                _ => self.handler(v, &format!("menu key '{c}'")),
            };
            if let Some(handler) = handler {
                out.push(MenuKey {
                    key: c,
                    pos: k.pos,
                    handler,
                });
            }
        }
        if out.is_empty() && map.is_empty() {
            self.err(n.pos, "menu has no keys");
        }
        Some(out)
    }

    fn collect(&mut self, n: &Node) -> Option<CollectSpec> {
        let entries = self.entries(n, keys::COLLECT, "collect");
        n.as_map()?;
        let (mut into, mut next) = (None, None);
        let mut spec = CollectSpec {
            into: String::new(),
            min: 1,
            max: 20,
            end: Some('#'),
            inter_digit: None,
            pattern: None,
            next: Target {
                name: String::new(),
                pos: n.pos,
            },
        };
        for (k, v) in entries {
            match k {
                "into" => into = self.name(v, "collect.into"),
                "min" => set(
                    &mut spec.min,
                    self.uint(v, "collect.min", 64).map(|x| x as usize),
                ),
                "max" => set(
                    &mut spec.max,
                    self.uint(v, "collect.max", 64).map(|x| x as usize),
                ),
                "end" => {
                    let s = v.scalar().unwrap_or_default();
                    spec.end = match s.as_str() {
                        "#" => Some('#'),
                        "*" => Some('*'),
                        "none" => None,
                        _ => {
                            self.err(v.pos, "collect.end must be \"#\", \"*\" or none");
                            spec.end
                        }
                    }
                }
                "inter_digit" => spec.inter_digit = self.duration(v, "collect.inter_digit"),
                "pattern" => {
                    if let Some(p) = self.string(v, "collect.pattern") {
                        // Anchored: a pattern describes the whole input, not a part of it.
                        match regex::Regex::new(&format!("^(?:{p})$")) {
                            Ok(r) => spec.pattern = Some(r),
                            Err(e) => self.err(
                                v.pos,
                                format!(
                                    "collect.pattern is not a valid regular expression: {}",
                                    e.to_string().lines().last().unwrap_or("")
                                ),
                            ),
                        }
                    }
                }
                "next" => next = self.target(v, "collect.next"),
                _ => {}
            }
        }
        if spec.min == 0 || spec.min > spec.max {
            self.err(
                n.pos,
                format!(
                    "collect: min {} and max {} need 1 <= min <= max",
                    spec.min, spec.max
                ),
            );
        }
        match (into, next) {
            (Some(i), Some(t)) => {
                spec.into = i;
                spec.next = t;
                Some(spec)
            }
            (i, t) => {
                if i.is_none() {
                    self.err(n.pos, "collect needs 'into: VAR'");
                }
                if t.is_none() {
                    self.err(n.pos, "collect needs 'next: STATE'");
                }
                None
            }
        }
    }

    fn record(&mut self, n: &Node) -> Option<RecordSpec> {
        let entries = self.entries(n, keys::RECORD, "record");
        n.as_map()?;
        let (mut into, mut next, mut max, mut end_silence) = (None, None, None, None);
        for (k, v) in entries {
            match k {
                "into" => into = self.name(v, "record.into"),
                "max" => max = self.duration(v, "record.max"),
                "end_silence" => end_silence = self.duration(v, "record.end_silence"),
                "next" => next = self.target(v, "record.next"),
                _ => {}
            }
        }
        if into.is_none() {
            self.err(n.pos, "record needs 'into: NAME'");
        }
        if next.is_none() {
            self.err(n.pos, "record needs 'next: STATE'");
        }
        Some(RecordSpec {
            into: into?,
            max,
            end_silence,
            next: next?,
        })
    }

    fn next(&mut self, n: &Node) -> Option<Vec<Branch>> {
        match &n.value {
            Value::Str(_) => Some(vec![Branch {
                when: None,
                goto: self.target(n, "next")?,
            }]),
            Value::Seq(items) if !items.is_empty() => {
                let mut out = Vec::new();
                for i in items {
                    let mut b = Branch {
                        when: None,
                        goto: Target {
                            name: String::new(),
                            pos: i.pos,
                        },
                    };
                    let mut has_goto = false;
                    for (k, v) in self.entries(i, keys::BRANCH, "a next branch") {
                        match k {
                            "when" => b.when = self.cond(v),
                            "goto" => {
                                if let Some(t) = self.target(v, "goto") {
                                    b.goto = t;
                                    has_goto = true;
                                }
                            }
                            _ => {}
                        }
                    }
                    if has_goto {
                        out.push(b);
                    } else if i.as_map().is_some() {
                        self.err(i.pos, "a next branch needs 'goto: STATE'");
                    }
                }
                if let Some(last) = out.last()
                    && last.when.is_some()
                {
                    self.err(
                        last.goto.pos,
                        "the last next branch must have no 'when', so that some branch is always taken",
                    );
                }
                Some(out)
            }
            _ => {
                self.err(n.pos, "next must be a state name or a list of {when, goto}");
                None
            }
        }
    }

    fn ticket(&mut self, n: &Node) -> Option<TicketSpec> {
        let entries = self.entries(n, keys::TICKET, "ticket");
        n.as_map()?;
        let mut t = TicketSpec {
            pos: n.pos,
            category: String::new(),
            priority: Priority::Normal,
            due: None,
            department: None,
            fields: Vec::new(),
            recordings: Vec::new(),
        };
        for (k, v) in entries {
            match k {
                "category" => set(&mut t.category, self.name(v, "ticket.category")),
                "priority" => {
                    let s = self.string(v, "ticket.priority").unwrap_or_default();
                    match Priority::from_name(&s) {
                        Some(p) => t.priority = p,
                        None => self.err(
                            v.pos,
                            format!("ticket.priority '{s}' must be emergency, high, normal or low"),
                        ),
                    }
                }
                "due" => t.due = self.duration(v, "ticket.due"),
                "department" => t.department = self.name(v, "ticket.department"),
                "fields" => t.fields = self.assignments(v, "ticket.fields"),
                "recordings" => match &v.value {
                    Value::Seq(items) => {
                        t.recordings = items
                            .iter()
                            .filter_map(|i| self.name(i, "recording"))
                            .collect()
                    }
                    _ => self.err(v.pos, "ticket.recordings must be a list of record names"),
                },
                _ => {}
            }
        }
        if t.category.is_empty() {
            self.err(n.pos, "ticket needs 'category'");
            return None;
        }
        Some(t)
    }

    fn lookup(&mut self, n: &Node) -> Option<LookupSpec> {
        let entries = self.entries(n, keys::LOOKUP, "lookup");
        n.as_map()?;
        let (mut source, mut key, mut into) = (None, None, None);
        for (k, v) in entries {
            match k {
                "source" => source = self.name(v, "lookup.source"),
                "key" => key = self.template(v, "lookup.key"),
                "into" => into = self.name(v, "lookup.into"),
                _ => {}
            }
        }
        for (missing, what) in [
            (source.is_none(), "source"),
            (key.is_none(), "key"),
            (into.is_none(), "into"),
        ] {
            if missing {
                self.err(n.pos, format!("lookup needs '{what}'"));
            }
        }
        Some(LookupSpec {
            pos: n.pos,
            source: source?,
            key: key?,
            into: into?,
        })
    }

    fn handlers(&mut self, n: &Node, what: &str) -> Handlers {
        let Some(map) = n.as_map() else {
            self.err(n.pos, format!("{what} must be a mapping of event: handler"));
            return Handlers::default();
        };
        let mut h = Handlers::default();
        for (k, v) in map {
            let name = k.scalar().unwrap_or_default();
            let Some(ev) = EventKind::from_name(&name) else {
                let names: Vec<&str> = EventKind::ALL.iter().map(|e| e.name()).collect();
                self.err(
                    k.pos,
                    format!("unknown event '{name}' (events: {})", names.join(", ")),
                );
                continue;
            };
            let counted = v.as_map().is_some_and(|m| {
                !m.is_empty() && m.iter().all(|(c, _)| matches!(c.value, Value::Int(_)))
            });
            let mut list = Vec::new();
            if counted {
                for (c, hv) in v.as_map().unwrap_or_default() {
                    let Some(count) = self.uint(c, "event count", 1000).map(|x| x as u32) else {
                        continue;
                    };
                    if count == 0 {
                        self.err(c.pos, "event counts start at 1");
                        continue;
                    }
                    if let Some(hd) = self.handler(hv, &format!("{name} {count}")) {
                        list.push((count, hd));
                    }
                }
            } else if let Some(hd) = self.handler(v, &name) {
                list.push((1, hd));
            }
            list.sort_by_key(|(c, _)| *c);
            h.by_event.push((ev, list));
        }
        h
    }

    fn handler(&mut self, n: &Node, what: &str) -> Option<Handler> {
        let entries = self.entries(n, keys::HANDLER, what);
        n.as_map()?;
        let mut h = Handler {
            pos: n.pos,
            ..Handler::default()
        };
        let mut then: Option<&str> = None;
        for (k, v) in entries {
            let t = match k {
                "say" => {
                    h.say = self.say(v);
                    None
                }
                "set" => {
                    h.set = self.assignments(v, "set");
                    None
                }
                "inc" => {
                    h.inc = self.counters(v);
                    None
                }
                "goto" => self.target(v, "goto").map(Then::Goto),
                "hangup" => self.duration(v, "hangup").map(Then::Hangup),
                "repeat" => match self.boolean(v, "repeat") {
                    Some(true) => Some(Then::Repeat),
                    _ => None,
                },
                _ => None,
            };
            if let Some(t) = t {
                if let Some(prev) = then {
                    self.err(
                        v.pos,
                        format!("{what}: '{prev}' and '{k}' both say what comes next; keep one"),
                    );
                } else {
                    then = Some(k);
                    h.then = t;
                }
            }
        }
        Some(h)
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}
