//! The flow as a diagram: Mermaid (renders on GitHub and in most Markdown viewers) or
//! Graphviz dot.
use crate::flow::expr::fmt_duration;
use crate::flow::model::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Mermaid,
    Dot,
}

struct Edge {
    from: String,
    to: String,
    label: String,
}

const ANY: &str = "any_state";
const END: &str = "hang_up";

fn node_id(name: &str) -> String {
    // Mermaid ids cannot contain '-' or '.', and 'end' is a keyword.
    let id: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("s_{id}")
}

fn edges(flow: &Flow) -> Vec<Edge> {
    let mut out = Vec::new();
    let handler = |from: &str, label: String, h: &Handler, out: &mut Vec<Edge>| {
        let to = match &h.then {
            Then::Goto(t) => node_id(&t.name),
            Then::Hangup(_) => END.to_string(),
            Then::Listen | Then::Repeat => return,
        };
        out.push(Edge {
            from: from.to_string(),
            to,
            label,
        });
    };
    for st in &flow.states {
        let id = node_id(&st.name);
        match &st.action {
            Action::Menu(keys) => {
                for k in keys {
                    handler(&id, format!("key {}", k.key), &k.handler, &mut out);
                }
            }
            Action::Collect(c) => out.push(Edge {
                from: id.clone(),
                to: node_id(&c.next.name),
                label: format!("{} digits", c.into),
            }),
            Action::Record(r) => out.push(Edge {
                from: id.clone(),
                to: node_id(&r.next.name),
                label: format!("recorded {}", r.into),
            }),
            Action::Next(b) => {
                for br in b {
                    out.push(Edge {
                        from: id.clone(),
                        to: node_id(&br.goto.name),
                        label: br
                            .when
                            .as_ref()
                            .map(|c| c.source.clone())
                            .unwrap_or_default(),
                    })
                }
            }
            Action::Hangup(d) => out.push(Edge {
                from: id.clone(),
                to: END.into(),
                label: fmt_duration(*d),
            }),
            Action::Transfer(t) => out.push(Edge {
                from: id.clone(),
                to: "transferred".into(),
                label: t.to_string(),
            }),
            Action::Listen => {}
        }
        for (ev, n, h) in st.on.all() {
            handler(&id, format!("{} {n}", ev.name()), h, &mut out);
        }
    }
    for (ev, n, h) in flow.on.all() {
        handler(ANY, format!("{} {n}", ev.name()), h, &mut out);
    }
    out
}

fn label(st: &State) -> String {
    let mut s = st.name.clone();
    if st.ticket.is_some() {
        s += " 🎫";
    }
    if st.lookup.is_some() {
        s += " 🔎";
    }
    s
}

pub fn render(flow: &Flow, format: Format) -> String {
    let es = edges(flow);
    let mut out = String::new();
    let esc = |s: &str| s.replace('"', "'");
    match format {
        Format::Mermaid => {
            out += "flowchart TD\n";
            for st in &flow.states {
                out += &format!("  {}[\"{}\"]\n", node_id(&st.name), esc(&label(st)));
            }
            out += &format!("  {END}((hang up))\n");
            if es.iter().any(|e| e.from == ANY) {
                out += &format!("  {ANY}{{{{any state}}}}\n");
            }
            if es.iter().any(|e| e.to == "transferred") {
                out += "  transferred((transferred))\n";
            }
            out += &format!(
                "  start(( )) --> {}\n",
                node_id(&flow.states[flow.start].name)
            );
            for e in es {
                if e.label.is_empty() {
                    out += &format!("  {} --> {}\n", e.from, e.to);
                } else {
                    out += &format!("  {} -->|\"{}\"| {}\n", e.from, esc(&e.label), e.to);
                }
            }
        }
        Format::Dot => {
            out += &format!(
                "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box];\n",
                esc(&flow.name)
            );
            for st in &flow.states {
                out += &format!("  {} [label=\"{}\"];\n", node_id(&st.name), esc(&label(st)));
            }
            out += &format!("  {END} [label=\"hang up\", shape=doublecircle];\n");
            out += &format!("  {ANY} [label=\"any state\", shape=hexagon];\n");
            out += "  transferred [shape=doublecircle];\n";
            out += &format!(
                "  start [shape=point];\n  start -> {};\n",
                node_id(&flow.states[flow.start].name)
            );
            for e in es {
                out += &format!("  {} -> {} [label=\"{}\"];\n", e.from, e.to, esc(&e.label));
            }
            out += "}\n";
        }
    }
    out
}
