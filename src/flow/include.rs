//! Shared pieces: `include: [common/endings.yaml]` brings states and top-level handlers
//! written once (reading a ticket number, "anything else?", the fault path, P-SIL's
//! handlers) into a flow.
//!
//! Included files are merged into the flow's YAML tree before the flow is loaded, with
//! every node keeping its own file's number in its position, so that the loader and
//! `check` report a mistake inside an included file at that file's own `file:line`.
//! A state may be defined once, in the flow or in one include; the flow's own top-level
//! handler for an event replaces an included one for that event, as a state's own
//! handlers replace the flow's.
use super::diag::{Diags, Pos};
use super::yaml::{self, Node, Value};
use std::path::{Path, PathBuf};

/// What an included file may hold.
pub const KEYS: &[(&str, &str)] = &[
    ("description", "free text for the designer"),
    ("states", "states the including flows share"),
    ("on", "top-level event handlers the including flows share"),
];

/// Replaces `root`'s `include:` by the pieces it names; problems go to `d`.
pub fn merge(mut root: Node, flow_file: &Path, d: &mut Diags) -> Node {
    let Value::Map(entries) = &mut root.value else {
        return root;
    };
    let Some(at) = entries
        .iter()
        .position(|(k, _)| k.scalar().as_deref() == Some("include"))
    else {
        return root;
    };
    let (_, list) = entries.remove(at);
    let paths: Vec<(PathBuf, Pos)> = match &list.value {
        Value::Str(s) => vec![(PathBuf::from(s), list.pos)],
        Value::Seq(items) => items
            .iter()
            .filter_map(|i| match &i.value {
                Value::Str(s) => Some((PathBuf::from(s), i.pos)),
                _ => {
                    d.error(i.pos, "include: lists file paths (text)");
                    None
                }
            })
            .collect(),
        _ => {
            d.error(list.pos, "include: is a file path or a list of them");
            Vec::new()
        }
    };
    let dir = flow_file.parent().unwrap_or(Path::new("."));
    let mut seen: Vec<PathBuf> = Vec::new();
    for (rel, pos) in paths {
        let path = dir.join(&rel);
        if seen.contains(&path) {
            d.error(pos, format!("'{}' is included twice", rel.display()));
            continue;
        }
        seen.push(path.clone());
        let Some(piece) = load_piece(&path, &rel, pos, d) else {
            d.incomplete = true;
            continue;
        };
        graft(entries, piece, d);
    }
    root
}

/// Reads an included file, numbering its positions.
fn load_piece(path: &Path, rel: &Path, pos: Pos, d: &mut Diags) -> Option<Node> {
    let text = match super::read_limited(path) {
        Ok(t) => t,
        Err(e) => {
            d.error(pos, format!("include '{}': {e}", rel.display()));
            return None;
        }
    };
    let n = d.add_file(path);
    let mut sub = Diags::new(path);
    let parsed = yaml::parse(&text, &mut sub);
    d.list.append(&mut sub.list);
    let mut node = parsed?;
    renumber(&mut node, n);
    let Value::Map(entries) = &node.value else {
        d.error(
            node.pos,
            "an included file is a mapping with states: and on:",
        );
        return None;
    };
    for (k, _) in entries {
        let key = k.scalar().unwrap_or_default();
        if !super::keys::known(KEYS, &key) {
            let hint = match super::keys::suggest(KEYS, &key) {
                Some(s) => format!("did you mean '{s}'?"),
                None => "an included file holds only states: and on: (and a description)".into(),
            };
            d.error(
                k.pos,
                format!("unknown key '{key}' in an included file ({hint})"),
            );
        }
    }
    Some(node)
}

fn renumber(n: &mut Node, file: u16) {
    n.pos.file = file;
    match &mut n.value {
        Value::Map(m) => {
            for (k, v) in m {
                renumber(k, file);
                renumber(v, file);
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(|i| renumber(i, file)),
        _ => {}
    }
}

fn section<'a>(entries: &'a mut Vec<(Node, Node)>, key: &str, pos: Pos) -> &'a mut Node {
    let at = match entries
        .iter()
        .position(|(k, _)| k.scalar().as_deref() == Some(key))
    {
        Some(i) => i,
        None => {
            entries.push((
                Node {
                    value: Value::Str(key.into()),
                    pos,
                },
                Node {
                    value: Value::Map(Vec::new()),
                    pos,
                },
            ));
            entries.len() - 1
        }
    };
    &mut entries[at].1
}

/// Adds the piece's states and handlers to the flow's tree.
fn graft(flow: &mut Vec<(Node, Node)>, piece: Node, d: &mut Diags) {
    let Value::Map(parts) = piece.value else {
        return;
    };
    for (k, v) in parts {
        match k.scalar().as_deref() {
            Some("states") => {
                let Value::Map(states) = v.value else {
                    d.error(v.pos, "states must be a mapping of state name: state");
                    continue;
                };
                // A state defined twice is reported by the loader, at the second one.
                if let Value::Map(mine) = &mut section(flow, "states", k.pos).value {
                    mine.extend(states);
                }
            }
            Some("on") => {
                let Value::Map(handlers) = v.value else {
                    d.error(v.pos, "on must be a mapping of event: handler");
                    continue;
                };
                if let Value::Map(mine) = &mut section(flow, "on", k.pos).value {
                    for (ev, h) in handlers {
                        let name = ev.scalar();
                        let existing = mine.iter().find(|(e, _)| e.scalar() == name);
                        match existing {
                            // The flow's own handler for the event wins.
                            Some((e, _)) if e.pos.file == 0 => {}
                            Some((e, _)) => d.error(
                                ev.pos,
                                format!(
                                    "'{}' is handled by two included files (the other at line {}); keep one, or handle it in the flow itself",
                                    name.unwrap_or_default(),
                                    e.pos.line
                                ),
                            ),
                            None => mine.push((ev, h)),
                        }
                    }
                }
            }
            _ => {}
        }
    }
}
