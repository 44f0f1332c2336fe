//! Flow tests: scripted calls written as YAML next to the flows (`flows/tests/`).
//!
//! ```yaml
//! flow: ../property.yaml
//! tests:
//!   - name: a silent caller is greeted, asked again, told goodbye, hung up on
//!     covers: [P-SIL, P-GREET]
//!     caller: []                   # says nothing at all
//!     expect:
//!       - heard: greeting
//!       - { heard: how_can_i_help, after: 5s }
//!       - { heard: no_sound_goodbye, after: 5s }
//!       - { hangup: hotline, after: 5s }
//! ```
use super::project::Project;
use super::script::Step;
use super::sim::{Entry, Sim};
use crate::flow::diag::{Diagnostic, Diags, Pos};
use crate::flow::expr::{Vars, fmt_duration, parse_duration};
use crate::flow::model::{Flow, Priority};
use crate::flow::yaml::{self, Node, Value};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct TestFile {
    pub file: PathBuf,
    pub flow: PathBuf,
    pub tests: Vec<FlowTest>,
    /// Tests that could not be read (a typo in a key, a bad step): reported, not run,
    /// while the file's other tests run.
    pub broken: Vec<BrokenTest>,
}

#[derive(Clone, Debug)]
pub struct BrokenTest {
    /// Its name, if it has one.
    pub name: Option<String>,
    pub pos: Pos,
    pub errors: Vec<Diagnostic>,
}

#[derive(Clone, Debug)]
pub struct FlowTest {
    pub name: String,
    pub pos: Pos,
    pub covers: Vec<String>,
    pub rings: u32,
    pub vars: Vars,
    pub caller: Vec<Step>,
    pub expect: Vec<Expect>,
    pub outcome: Option<String>,
    /// `at: 2026-10-01T22:00`: the local time the call is answered at.
    pub at: Option<jiff::civil::DateTime>,
}

#[derive(Clone, Debug)]
pub struct Expect {
    pub pos: Pos,
    pub what: Observed,
    pub at: Option<Duration>,
    pub after: Option<Duration>,
}

/// What the caller (or the ticket system) notices; the timeline is compared on these.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    Heard {
        prompt: String,
        value: Option<String>,
    },
    Ticket(TicketExpect),
    Transfer(String),
    Hangup,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct TicketExpect {
    pub category: String,
    pub priority: Option<Priority>,
    pub due: Option<Duration>,
    pub department: Option<String>,
    pub fields: Vec<(String, String)>,
    pub recordings: Option<Vec<String>>,
}

/// The words of a test file, each with what it means: the loader and the JSON Schema
/// (`hotline schema --tests`) both read these tables.
pub const FILE_KEYS: &[(&str, &str)] = &[
    (
        "flow",
        "the flow file the tests call, relative to this file",
    ),
    (
        "tests",
        "the tests: scripted calls and what must happen on them",
    ),
];
pub const TEST_KEYS: &[(&str, &str)] = &[
    ("name", "what the test shows, in a sentence"),
    (
        "covers",
        "rule ids of docs/PROTOCOL.md the test demonstrates",
    ),
    (
        "rings",
        "rings before the answer (3 or more: the busy apology, P-RING)",
    ),
    ("vars", "call variables, e.g. caller"),
    (
        "caller",
        "the caller's steps: press 1, silence 5s, voice 2s, quiet, noise, hangup, lookup fails, lookup slow 3s, ticket fails, transfer fails; at 2s: STEP acts at a fixed time",
    ),
    (
        "expect",
        "the whole ordered list of what the caller hears, tickets filed, transfers and hotline's hang-up",
    ),
    ("outcome", "how the call ends"),
    (
        "at",
        "the local date and time the call happens, e.g. 2026-10-01T22:00 (default Monday 2026-01-05 10:00)",
    ),
];
pub const EXPECT_KEYS: &[(&str, &str)] = &[
    ("heard", "a prompt id the caller hears"),
    (
        "value",
        "the value a spoken prompt says (digits, a number, a date)",
    ),
    (
        "ticket",
        "a ticket filed: its category, or the fields to compare",
    ),
    ("transfer", "a transfer to this SIP URI"),
    ("hangup", "hotline hangs up"),
    ("at", "when it happens, since the answer"),
    ("after", "when it happens, since the previous thing ended"),
];
pub const TICKET_KEYS: &[(&str, &str)] = &[
    ("category", "the ticket's category"),
    ("priority", "emergency, high, normal or low"),
    ("due", "due this long after filing"),
    ("department", "the department it goes to"),
    (
        "fields",
        "fields that must have these values (others may be there too)",
    ),
    ("recordings", "the recordings attached, all of them"),
];
pub const OUTCOMES: &[&str] = &["caller-hung-up", "hotline-hung-up", "transferred", "failed"];

/// Reads a test file whose every test must be readable: a broken test is an error of
/// the whole file (for the shipped tests, which must all run).
pub fn load(path: &Path) -> Result<TestFile, Vec<Diagnostic>> {
    let tf = load_each(path)?;
    if tf.broken.is_empty() {
        return Ok(tf);
    }
    Err(tf.broken.into_iter().flat_map(|b| b.errors).collect())
}

/// Reads a test file, setting aside each test that cannot be read (`broken`), so that a
/// typo in one test does not stop the others.
pub fn load_each(path: &Path) -> Result<TestFile, Vec<Diagnostic>> {
    let mut d = Diags::new(path);
    let text = match crate::flow::read_limited(path) {
        Ok(t) => t,
        Err(e) => {
            d.error(Pos::FILE, e);
            return Err(d.into_sorted());
        }
    };
    parse_str(&text, path, &mut d)
}

/// Parses a test file's text; `path` places the flow path and the messages. Problems
/// with the file itself are an error; a test with a problem is set aside as broken.
pub fn parse_str(text: &str, path: &Path, d: &mut Diags) -> Result<TestFile, Vec<Diagnostic>> {
    let parsed = yaml::parse(text, d).and_then(|root| parse_file(&root, path, d));
    let d = std::mem::take(&mut d.list);
    match parsed {
        Some(t) if d.is_empty() => Ok(t),
        _ => {
            let mut d = d;
            d.sort();
            Err(d)
        }
    }
}

fn unknown_keys(n: &Node, allowed: &[(&'static str, &str)], what: &str, d: &mut Diags) {
    for (k, _) in n.as_map().unwrap_or_default() {
        let key = k.scalar().unwrap_or_default();
        if !crate::flow::keys::known(allowed, &key) {
            // The flow checker's wording, so a typo reads the same in both kinds of file.
            let hint = match crate::flow::keys::suggest(allowed, &key) {
                Some(s) => format!("did you mean '{s}'?"),
                None => format!(
                    "expected one of: {}",
                    allowed
                        .iter()
                        .map(|(k, _)| *k)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            d.error(k.pos, format!("unknown key '{key}' in {what} ({hint})"));
        }
    }
}

fn get<'n>(n: &'n Node, key: &str) -> Option<&'n Node> {
    n.as_map()?
        .iter()
        .find(|(k, _)| k.scalar().as_deref() == Some(key))
        .map(|(_, v)| v)
}

fn text(n: &Node, what: &str, d: &mut Diags) -> Option<String> {
    match n.scalar() {
        Some(s) => Some(s),
        None => {
            d.error(n.pos, format!("{what} must be text"));
            None
        }
    }
}

/// The items of a list; anything else is an error, not an empty list.
fn list<'n>(n: &'n Node, what: &str, d: &mut Diags) -> &'n [Node] {
    match &n.value {
        Value::Seq(items) => items,
        _ => {
            d.error(n.pos, format!("{what} must be a list, found {}", n.kind()));
            &[]
        }
    }
}

/// `name: value` pairs of plain values; anything else is an error, not left out.
fn pairs(n: &Node, what: &str, d: &mut Diags) -> Vec<(String, String)> {
    let Some(map) = n.as_map() else {
        d.error(
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
        match (k.scalar(), v.scalar()) {
            (Some(k), Some(v)) => out.push((k, v)),
            (Some(k), None) => d.error(
                v.pos,
                format!("{what}.{k} must be a plain value, found {}", v.kind()),
            ),
            (None, _) => d.error(k.pos, format!("a name in {what} must be text")),
        }
    }
    out
}

fn duration(n: &Node, what: &str, d: &mut Diags) -> Option<Duration> {
    let s = text(n, what, d)?;
    match parse_duration(&s) {
        Ok(v) => Some(v),
        Err(e) => {
            d.error(n.pos, format!("{what}: {e}"));
            None
        }
    }
}

fn parse_file(root: &Node, path: &Path, d: &mut Diags) -> Option<TestFile> {
    unknown_keys(root, FILE_KEYS, "a flow test file", d);
    let flow = get(root, "flow").and_then(|n| text(n, "flow", d));
    let Some(flow) = flow else {
        d.error(
            root.pos,
            "missing 'flow: PATH' (the flow file, relative to this file)",
        );
        return None;
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tests = Vec::new();
    let mut broken = Vec::new();
    match get(root, "tests").map(|n| &n.value) {
        Some(Value::Seq(items)) => {
            for item in items {
                // Each test on its own: a typo in one leaves the others to run.
                let mut td = Diags::new(d.file());
                let test = parse_test(item, &mut td);
                match test {
                    Some(t) if td.is_empty() => tests.push(t),
                    _ => broken.push(BrokenTest {
                        name: get(item, "name").and_then(Node::scalar),
                        pos: item.pos,
                        errors: td.into_sorted(),
                    }),
                }
            }
        }
        _ => d.error(root.pos, "missing 'tests:' (a list of tests)"),
    }
    Some(TestFile {
        file: path.to_path_buf(),
        flow: super::project::normalize(&dir.join(flow)),
        tests,
        broken,
    })
}

fn parse_test(n: &Node, d: &mut Diags) -> Option<FlowTest> {
    if n.as_map().is_none() {
        d.error(n.pos, "a test is a mapping with name, caller and expect");
        return None;
    }
    unknown_keys(n, TEST_KEYS, "a test", d);
    let name = get(n, "name").and_then(|v| text(v, "name", d));
    let Some(name) = name else {
        d.error(n.pos, "a test needs a 'name'");
        return None;
    };
    let mut t = FlowTest {
        name,
        pos: n.pos,
        covers: Vec::new(),
        rings: 0,
        vars: Vars::new(),
        caller: Vec::new(),
        expect: Vec::new(),
        outcome: None,
        at: None,
    };
    if let Some(a) = get(n, "at") {
        match text(a, "at", d).map(|s| crate::flow::clock::parse_civil(&s)) {
            Some(Ok(dt)) => t.at = Some(dt),
            Some(Err(e)) => d.error(a.pos, format!("at: {e}")),
            None => {}
        }
    }
    if let Some(c) = get(n, "covers") {
        t.covers = list(c, "covers", d)
            .iter()
            .filter_map(|v| text(v, "covers", d))
            .collect();
    }
    if let Some(r) = get(n, "rings") {
        match r.value {
            Value::Int(i) if (0..=1000).contains(&i) => t.rings = i as u32,
            _ => d.error(r.pos, "rings must be a whole number"),
        }
    }
    if let Some(v) = get(n, "vars") {
        t.vars.extend(pairs(v, "vars", d));
    }
    match get(n, "caller").map(|v| &v.value) {
        Some(Value::Seq(steps)) => {
            for s in steps {
                let Some(line) = text(s, "a caller step", d) else {
                    continue;
                };
                match Step::parse(&line) {
                    Ok(step) => t.caller.push(step),
                    Err(e) => d.error(s.pos, e.lines().next().unwrap_or("").to_string()),
                }
            }
        }
        Some(_) => d.error(n.pos, "caller must be a list of steps"),
        None => {}
    }
    match get(n, "expect").map(|v| &v.value) {
        Some(Value::Seq(items)) => {
            for i in items {
                if let Some(e) = parse_expect(i, d) {
                    t.expect.push(e);
                }
            }
        }
        _ => d.error(n.pos, "a test needs 'expect:' (a list of what must happen)"),
    }
    if let Some(o) = get(n, "outcome") {
        let s = text(o, "outcome", d).unwrap_or_default();
        if OUTCOMES.contains(&s.as_str()) {
            t.outcome = Some(s);
        } else {
            d.error(
                o.pos,
                format!("outcome must be one of: {}", OUTCOMES.join(", ")),
            );
        }
    }
    Some(t)
}

fn parse_expect(n: &Node, d: &mut Diags) -> Option<Expect> {
    if let Value::Str(s) = &n.value {
        // `- hangup` alone is allowed as a short form.
        if s == "hangup" {
            return Some(Expect {
                pos: n.pos,
                what: Observed::Hangup,
                at: None,
                after: None,
            });
        }
    }
    if n.as_map().is_none() {
        d.error(
            n.pos,
            "an expectation is a mapping: heard, ticket, transfer or hangup",
        );
        return None;
    }
    unknown_keys(n, EXPECT_KEYS, "an expectation", d);
    let at = get(n, "at").and_then(|v| duration(v, "at", d));
    let after = get(n, "after").and_then(|v| duration(v, "after", d));
    let what = if let Some(h) = get(n, "heard") {
        Observed::Heard {
            prompt: text(h, "heard", d)?,
            value: get(n, "value").and_then(|v| text(v, "value", d)),
        }
    } else if let Some(t) = get(n, "ticket") {
        Observed::Ticket(parse_ticket(t, d)?)
    } else if let Some(t) = get(n, "transfer") {
        Observed::Transfer(text(t, "transfer", d)?)
    } else if get(n, "hangup").is_some() {
        Observed::Hangup
    } else {
        d.error(
            n.pos,
            "an expectation needs one of heard, ticket, transfer, hangup",
        );
        return None;
    };
    Some(Expect {
        pos: n.pos,
        what,
        at,
        after,
    })
}

fn parse_ticket(n: &Node, d: &mut Diags) -> Option<TicketExpect> {
    if let Some(c) = n.scalar() {
        return Some(TicketExpect {
            category: c,
            ..TicketExpect::default()
        });
    }
    unknown_keys(n, TICKET_KEYS, "a ticket expectation", d);
    let Some(category) = get(n, "category") else {
        d.error(n.pos, "a ticket expectation needs a 'category'");
        return None;
    };
    let mut t = TicketExpect {
        category: text(category, "category", d)?,
        ..TicketExpect::default()
    };
    if let Some(p) = get(n, "priority") {
        let s = text(p, "priority", d).unwrap_or_default();
        t.priority = Priority::from_name(&s);
        if t.priority.is_none() {
            d.error(p.pos, "priority must be emergency, high, normal or low");
        }
    }
    t.due = get(n, "due").and_then(|v| duration(v, "due", d));
    t.department = get(n, "department").and_then(|v| text(v, "department", d));
    if let Some(f) = get(n, "fields") {
        t.fields = pairs(f, "fields", d);
    }
    if let Some(r) = get(n, "recordings") {
        t.recordings = Some(
            list(r, "recordings", d)
                .iter()
                .filter_map(|v| text(v, "a recording", d))
                .collect(),
        );
    }
    Some(t)
}

/// One observed thing on the actual timeline, with its start and end.
#[derive(Clone, Debug)]
struct Seen {
    what: Observed,
    at: Duration,
    end: Duration,
    detail: String,
}

fn observed(timeline: &[Entry]) -> Vec<Seen> {
    timeline
        .iter()
        .filter_map(|e| match e {
            Entry::Heard {
                at,
                end,
                prompt,
                value,
                text,
                cut,
            } => Some(Seen {
                what: Observed::Heard {
                    prompt: prompt.clone(),
                    value: value.clone(),
                },
                at: *at,
                end: *end,
                detail: format!("{text}{}", if *cut { " (cut short)" } else { "" }),
            }),
            Entry::Ticket { at, ticket, id } => Some(Seen {
                what: Observed::Ticket(TicketExpect {
                    category: ticket.category.clone(),
                    priority: Some(ticket.priority),
                    due: ticket.due_in,
                    department: ticket.department.clone(),
                    fields: ticket.fields.clone(),
                    recordings: Some(ticket.recordings.clone()),
                }),
                at: *at,
                end: *at,
                detail: format!("id {}", id.as_deref().unwrap_or("(not filed)")),
            }),
            Entry::Transfer { at, to } => Some(Seen {
                what: Observed::Transfer(to.clone()),
                at: *at,
                end: *at,
                detail: String::new(),
            }),
            Entry::Hangup { at } => Some(Seen {
                what: Observed::Hangup,
                at: *at,
                end: *at,
                detail: String::new(),
            }),
            _ => None,
        })
        .collect()
}

fn matches(exp: &Observed, got: &Observed) -> bool {
    match (exp, got) {
        (
            Observed::Heard { prompt, value },
            Observed::Heard {
                prompt: p2,
                value: v2,
            },
        ) => prompt == p2 && (value.is_none() || value == v2),
        (Observed::Ticket(e), Observed::Ticket(g)) => {
            e.category == g.category
                && e.priority.is_none_or(|p| Some(p) == g.priority)
                && e.due.is_none_or(|d| Some(d) == g.due)
                && e.department
                    .as_ref()
                    .is_none_or(|d| Some(d) == g.department.as_ref())
                && e.fields
                    .iter()
                    .all(|(k, v)| g.fields.iter().any(|(gk, gv)| gk == k && gv == v))
                && e.recordings
                    .as_ref()
                    .is_none_or(|r| Some(r) == g.recordings.as_ref())
        }
        (a, b) => a == b,
    }
}

/// Timings are compared to the millisecond: the simulation is exact, the rest is rounding.
fn close(a: Duration, b: Duration) -> bool {
    a.abs_diff(b) <= Duration::from_millis(1)
}

fn describe(o: &Observed) -> String {
    match o {
        Observed::Heard { prompt, value } => match value {
            Some(v) => format!("heard {prompt} {v}"),
            None => format!("heard {prompt}"),
        },
        Observed::Ticket(t) => {
            let mut s = format!("ticket {}", t.category);
            if let Some(p) = t.priority {
                s += &format!(" {}", p.name());
            }
            if let Some(d) = t.due {
                s += &format!(" due {}", fmt_duration(d));
            }
            if let Some(d) = &t.department {
                s += &format!(" to {d}");
            }
            for (k, v) in &t.fields {
                s += &format!(" {k}={v}");
            }
            if let Some(r) = t.recordings.as_ref().filter(|r| !r.is_empty()) {
                s += &format!(" rec={}", r.join(","));
            }
            s
        }
        Observed::Transfer(to) => format!("transfer {to}"),
        Observed::Hangup => "hangup".into(),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

pub struct TestResult {
    pub name: String,
    pub covers: Vec<String>,
    pub failure: Option<String>,
    pub timeline: Vec<Entry>,
    /// The states and transitions the call visited.
    pub visited: super::coverage::Visited,
}

/// Runs one test and compares what happened with what was expected.
pub fn run_test(flow: &Arc<Flow>, project: &Project, t: &FlowTest) -> TestResult {
    let at =
        t.at.and_then(|dt| crate::flow::clock::in_zone(dt, &flow.settings.timezone).ok());
    let mut sim = Sim::in_project_at(flow.clone(), project, t.rings, t.vars.clone(), at);
    let mut caller: VecDeque<Step> = t.caller.iter().cloned().collect();
    sim.run(&mut caller, &mut |_| {});
    let timeline = std::mem::take(&mut sim.timeline);
    let visited = super::coverage::visited(flow, &timeline, &sim.take_trace());
    let failure = compare(t, &timeline);
    TestResult {
        name: t.name.clone(),
        covers: t.covers.clone(),
        failure,
        timeline,
        visited,
    }
}

fn compare(t: &FlowTest, timeline: &[Entry]) -> Option<String> {
    let seen = observed(timeline);
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    let n = t.expect.len().max(seen.len());
    let mut prev_end = Duration::ZERO;
    for i in 0..n {
        let e = t.expect.get(i);
        let g = seen.get(i);
        let left = e
            .map(|e| {
                let mut s = describe(&e.what);
                if let Some(a) = e.at {
                    s += &format!(" at {}", fmt_duration(a));
                }
                if let Some(a) = e.after {
                    s += &format!(" after {}", fmt_duration(a));
                }
                s
            })
            .unwrap_or_default();
        let right = g
            .map(|g| {
                format!(
                    "{} {} (+{}) {}",
                    secs(g.at),
                    describe(&g.what),
                    secs(g.at.saturating_sub(prev_end)),
                    g.detail
                )
            })
            .unwrap_or_default();
        let ok = match (e, g) {
            (Some(e), Some(g)) => {
                matches(&e.what, &g.what)
                    && e.at.is_none_or(|a| close(a, g.at))
                    && e.after
                        .is_none_or(|a| close(a, g.at.saturating_sub(prev_end)))
            }
            _ => false,
        };
        if !ok && problems.is_empty() {
            problems.push(match (e, g) {
                (Some(e), None) => format!(
                    "line {}: expected {left}, but nothing more happened",
                    e.pos.line
                ),
                (None, Some(_)) => format!("unexpected: {right}"),
                (Some(e), Some(_)) => format!("line {}: expected {left}, got {right}", e.pos.line),
                (None, None) => String::new(),
            });
        }
        rows.push((ok, left, right));
        if let Some(g) = g {
            prev_end = g.end;
        }
    }
    for e in timeline {
        if let Entry::Unused { step } = e {
            problems.push(format!("the call ended before the caller's step '{step}'"));
        }
    }
    if let Some(want) = &t.outcome {
        let got = timeline.iter().find_map(|e| match e {
            Entry::End { outcome, .. } => Some(outcome.name()),
            _ => None,
        });
        if got != Some(want.as_str()) {
            problems.push(format!(
                "outcome: expected {want}, got {}",
                got.unwrap_or("none")
            ));
        }
    }
    if problems.is_empty() {
        return None;
    }
    let width = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    let mut out = problems.join("\n");
    out += &format!("\n    {:width$}   actual\n", "expected");
    for (ok, l, r) in rows {
        let pad = width - l.chars().count();
        out += &format!(
            "  {} {l}{} | {r}\n",
            if ok { " " } else { "✗" },
            " ".repeat(pad)
        );
    }
    out += "  full timeline:\n";
    for e in timeline {
        out += &format!("    {}\n", super::render_entry(e));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TestFile, Vec<Diagnostic>> {
        let path = Path::new("flows/tests/t.yaml");
        parse_str(text, path, &mut Diags::new(path))
    }

    #[test]
    fn a_broken_test_is_set_aside_and_the_others_are_read() {
        let tf = parse(
            "flow: ../f.yaml\ntests:\n  - name: good\n    expect: [hangup]\n  - name: typo\n    caler: [press 1]\n    expect: [hangup]\n  - name: bad step\n    caller: [pres 1]\n    expect: [{ heard: x, aftr: 5s }]\n  - name: also good\n    caller: [press 1]\n    expect: [hangup]\n",
        )
        .unwrap();
        let names: Vec<&str> = tf.tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["good", "also good"]);
        assert_eq!(tf.flow, Path::new("flows/f.yaml"));
        let broken: Vec<(Option<&str>, u32, Vec<String>)> = tf
            .broken
            .iter()
            .map(|b| {
                (
                    b.name.as_deref(),
                    b.pos.line,
                    b.errors.iter().map(|e| e.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(
            broken,
            [
                (
                    Some("typo"),
                    5,
                    vec![
                        "flows/tests/t.yaml:6:5: unknown key 'caler' in a test (did you mean 'caller'?)"
                            .to_string()
                    ]
                ),
                (
                    Some("bad step"),
                    8,
                    vec![
                        "flows/tests/t.yaml:9:14: unknown step 'pres 1'".to_string(),
                        "flows/tests/t.yaml:10:26: unknown key 'aftr' in an expectation (did you mean 'after'?)".to_string()
                    ]
                ),
            ]
        );
    }

    #[test]
    fn a_problem_with_the_file_itself_is_an_error_of_the_file() {
        for bad in [
            "tests:\n  - name: x\n    expect: []\n",
            "flow: f.yaml\n",
            "flow: f.yaml\ntset: []\n",
            "flow: [f.yaml\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
