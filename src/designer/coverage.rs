//! Which states and transitions of a flow no test visited (`hotline test --coverage`):
//! states, menu keys, event handlers by event and count, `next` branches, and the `next`
//! of a `collect` or `record`. What the tests took comes from the session's trace of
//! the transitions it took and the states it entered.
use super::runner::FileRun;
use super::sim::Entry;
use crate::flow::diag::Pos;
use crate::flow::model::{Action, EventKind, Flow, Handler, Handlers, Then};
use crate::flow::trace::{HandlerId, Taken};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use std::path::PathBuf;

/// A state or a transition, named so that runs of separately loaded copies of one flow
/// add up.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Item {
    State(String),
    MenuKey {
        state: String,
        key: char,
    },
    /// An event handler of a state, or of the flow's top-level `on:` (`state: None`).
    Handler {
        state: Option<String>,
        event: EventKind,
        count: u32,
    },
    /// The `next:` branch at `index` (from 0) of a state.
    Branch {
        state: String,
        index: usize,
    },
    /// The `next` of a state's `collect` or `record`.
    Next {
        state: String,
    },
}

pub type Visited = BTreeSet<Item>;

/// A state or transition, where it is written, and how to say it.
#[derive(Clone, Debug)]
pub struct Point {
    pub item: Item,
    pub pos: Pos,
    pub what: String,
}

fn then(h: &Handler) -> String {
    match &h.then {
        Then::Goto(t) => format!("→ {}", t.name),
        Then::Hangup(_) => "→ hang up".into(),
        Then::Repeat => "→ repeat".into(),
        Then::Listen => "→ listen again".into(),
    }
}

fn handler_points(
    handlers: &Handlers,
    state: Option<&str>,
    out: &mut Vec<Point>,
    ids: &mut HashMap<HandlerId, Item>,
) {
    for (event, count, h) in handlers.all() {
        let item = Item::Handler {
            state: state.map(str::to_string),
            event,
            count,
        };
        // `noise: {...}` is written without a count: say it without one.
        let counted = handlers
            .get(event)
            .is_some_and(|l| l.len() > 1 || count > 1);
        let ev = if counted {
            format!("{} {count}", event.name())
        } else {
            event.name().to_string()
        };
        let whose = match state {
            Some(s) => format!("of state '{s}'"),
            None => "of the flow's on:".to_string(),
        };
        out.push(Point {
            item: item.clone(),
            pos: h.pos,
            what: format!("handler {ev} {whose} {}", then(h)),
        });
        ids.insert(HandlerId::of(h), item);
    }
}

/// Every state and transition of a flow, in the file's order, and its handlers by
/// identity (to read a trace with).
fn points_and_ids(flow: &Flow) -> (Vec<Point>, HashMap<HandlerId, Item>) {
    let mut out = Vec::new();
    let mut ids = HashMap::new();
    for st in &flow.states {
        let name = &st.name;
        out.push(Point {
            item: Item::State(name.clone()),
            pos: st.pos,
            what: format!("state '{name}'"),
        });
        match &st.action {
            Action::Menu(keys) => {
                for m in keys {
                    let item = Item::MenuKey {
                        state: name.clone(),
                        key: m.key,
                    };
                    out.push(Point {
                        item: item.clone(),
                        pos: m.pos,
                        what: format!("menu key {} of state '{name}' {}", m.key, then(&m.handler)),
                    });
                    ids.insert(HandlerId::of(&m.handler), item);
                }
            }
            Action::Next(branches)
                if branches.len() > 1 || branches.iter().any(|b| b.when.is_some()) =>
            {
                for (index, b) in branches.iter().enumerate() {
                    let when = b
                        .when
                        .as_ref()
                        .map(|c| format!("when {} ", c.source))
                        .unwrap_or_default();
                    out.push(Point {
                        item: Item::Branch {
                            state: name.clone(),
                            index,
                        },
                        pos: b.goto.pos,
                        what: format!(
                            "next branch {} of state '{name}' {when}→ {}",
                            index + 1,
                            b.goto.name
                        ),
                    });
                }
            }
            // A lone unconditional `next:` is taken whenever its state is entered.
            Action::Next(_) => {}
            Action::Collect(c) => out.push(Point {
                item: Item::Next {
                    state: name.clone(),
                },
                pos: c.next.pos,
                what: format!("collect of state '{name}' completed → {}", c.next.name),
            }),
            Action::Record(r) => out.push(Point {
                item: Item::Next {
                    state: name.clone(),
                },
                pos: r.next.pos,
                what: format!("record of state '{name}' completed → {}", r.next.name),
            }),
            Action::Listen | Action::Hangup(_) | Action::Transfer(_) => {}
        }
        handler_points(&st.on, Some(name), &mut out, &mut ids);
    }
    handler_points(&flow.on, None, &mut out, &mut ids);
    out.sort_by_key(|p| p.pos);
    (out, ids)
}

/// Every state and transition of a flow, in the file's order.
pub fn points(flow: &Flow) -> Vec<Point> {
    points_and_ids(flow).0
}

/// What one call visited: the states its timeline entered and the transitions in the
/// session's trace, which must come from this very `flow` (handlers are by identity).
pub fn visited(flow: &Flow, timeline: &[Entry], trace: &[Taken]) -> Visited {
    let (_, ids) = points_and_ids(flow);
    let mut v: Visited = timeline
        .iter()
        .filter_map(|e| match e {
            Entry::State { name, .. } => Some(Item::State(name.clone())),
            _ => None,
        })
        .collect();
    for t in trace {
        let item = match *t {
            Taken::Handler(id) => ids.get(&id).cloned(),
            Taken::Branch { state, index } => flow.states.get(state).map(|s| Item::Branch {
                state: s.name.clone(),
                index,
            }),
            Taken::Next { state } => flow.states.get(state).map(|s| Item::Next {
                state: s.name.clone(),
            }),
        };
        v.extend(item);
    }
    v
}

/// One flow's coverage over every test that called it.
#[derive(Clone, Debug)]
pub struct FlowCoverage {
    pub file: PathBuf,
    pub total: usize,
    /// What no test visited, in the file's order.
    pub missed: Vec<Point>,
}

impl FlowCoverage {
    pub fn visited(&self) -> usize {
        self.total - self.missed.len()
    }
    /// Rounded down: 100 % means everything.
    pub fn percent(&self) -> usize {
        (self.visited() * 100)
            .checked_div(self.total)
            .unwrap_or(100)
    }
}

/// Coverage per flow, over the runs of every test file, plus flows no test calls.
pub fn compute(runs: &[FileRun], untested: &[&Flow]) -> Vec<FlowCoverage> {
    let mut by_flow: BTreeMap<PathBuf, (&Flow, Visited)> = BTreeMap::new();
    for r in runs {
        let Some(flow) = &r.flow else { continue };
        let key = super::runner::same_file_key(&flow.file);
        let entry = by_flow.entry(key).or_insert_with(|| (flow, Visited::new()));
        for c in &r.cases {
            entry.1.extend(c.visited.iter().cloned());
        }
    }
    for f in untested {
        by_flow
            .entry(super::runner::same_file_key(&f.file))
            .or_insert_with(|| (f, Visited::new()));
    }
    by_flow
        .into_values()
        .map(|(flow, seen)| {
            let all = points(flow);
            FlowCoverage {
                file: flow.file.clone(),
                total: all.len(),
                missed: all
                    .into_iter()
                    .filter(|p| !seen.contains(&p.item))
                    .collect(),
            }
        })
        .collect()
}

/// The report `hotline test --coverage` prints: per flow, a percentage, then what no
/// test visited, each at its `file:line:col` for an editor to jump to.
pub fn render(cov: &[FlowCoverage]) -> String {
    let mut out = String::new();
    for c in cov {
        let _ = writeln!(
            out,
            "coverage {}: {}% ({} of {} states and transitions visited)",
            c.file.display(),
            c.percent(),
            c.visited(),
            c.total
        );
        for p in &c.missed {
            let _ = writeln!(
                out,
                "  {}:{}:{}: not visited: {}",
                c.file.display(),
                p.pos.line,
                p.pos.col.max(1),
                p.what
            );
        }
    }
    out
}
