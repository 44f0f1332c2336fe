//! Whole-flow checks: targets exist, every state is reached, every state has a way
//! out, prompts exist, and every event a state can meet is handled.
use super::catalogue::Catalogue;
use super::diag::{Diags, Pos};
use super::model::*;
use std::collections::HashSet;

/// Events a state can meet, given what it does.
fn possible_events(st: &State) -> Vec<EventKind> {
    let mut v = vec![EventKind::Hangup];
    if st.action.listens() {
        v.extend([
            EventKind::NoInput,
            EventKind::NoMatch,
            EventKind::TooQuiet,
            EventKind::Noise,
            EventKind::Voice,
        ]);
    }
    if st.lookup.is_some() {
        v.push(EventKind::NotFound);
    }
    if st.lookup.is_some() || st.ticket.is_some() || matches!(st.action, Action::Transfer(_)) {
        v.push(EventKind::Fault);
    }
    v
}

/// The handlers that run for `ev` in `st`: the state's own, else the flow's.
fn effective<'a>(flow: &'a Flow, st: &'a State, ev: EventKind) -> &'a [(u32, Handler)] {
    st.on
        .get(ev)
        .or_else(|| flow.on.get(ev))
        .unwrap_or_default()
}

/// Every state a state can lead to, with whether that leads away by hanging up.
pub(crate) fn successors<'a>(flow: &'a Flow, st: &'a State) -> (Vec<&'a Target>, bool) {
    let mut targets = Vec::new();
    let mut ends = matches!(st.action, Action::Hangup(_) | Action::Transfer(_));
    let mut handler = |h: &'a Handler, targets: &mut Vec<&'a Target>| match &h.then {
        Then::Goto(t) => targets.push(t),
        Then::Hangup(_) => ends = true,
        Then::Listen | Then::Repeat => {}
    };
    match &st.action {
        Action::Menu(keys) => keys.iter().for_each(|k| handler(&k.handler, &mut targets)),
        Action::Collect(c) => targets.push(&c.next),
        Action::Record(r) => targets.push(&r.next),
        Action::Next(b) => targets.extend(b.iter().map(|b| &b.goto)),
        Action::Listen | Action::Hangup(_) | Action::Transfer(_) => {}
    }
    for ev in possible_events(st) {
        for (_, h) in effective(flow, st, ev) {
            handler(h, &mut targets);
        }
    }
    (targets, ends)
}

pub fn check(
    flow: &Flow,
    cat: Option<&Catalogue>,
    sources: Option<&super::Sources>,
    d: &mut Diags,
) {
    check_targets(flow, d);
    check_graph(flow, d);
    check_handlers(flow, d);
    check_counts(flow, d);
    super::setvars::check(
        flow,
        cat,
        &|src| sources.and_then(|s| s.fields.get(src).cloned()),
        d,
    );
    check_tickets(flow, sources.map(|s| s.names.as_slice()), d);
    if let Some(cat) = cat {
        check_prompts(flow, cat, d);
    }
}

fn check_targets(flow: &Flow, d: &mut Diags) {
    let mut all: Vec<&Target> = Vec::new();
    for st in &flow.states {
        let (t, _) = successors(flow, st);
        all.extend(t);
        for (_, _, h) in st.on.all() {
            if let Then::Goto(t) = &h.then {
                all.push(t);
            }
        }
    }
    for (_, _, h) in flow.on.all() {
        if let Then::Goto(t) = &h.then {
            all.push(t);
        }
    }
    let mut seen = HashSet::new();
    for t in all {
        if !flow.index.contains_key(&t.name) && seen.insert((t.pos, t.name.clone())) {
            let hint = super::keys::closest(flow.states.iter().map(|s| s.name.as_str()), &t.name)
                .map(|n| format!(" (did you mean '{n}'?)"))
                .unwrap_or_default();
            d.error(t.pos, format!("there is no state '{}'{hint}", t.name));
        }
    }
}

fn check_graph(flow: &Flow, d: &mut Diags) {
    let n = flow.states.len();
    let succ: Vec<(Vec<usize>, bool)> = flow
        .states
        .iter()
        .map(|st| {
            let (t, ends) = successors(flow, st);
            (
                t.iter()
                    .filter_map(|t| flow.index.get(&t.name).copied())
                    .collect(),
                ends,
            )
        })
        .collect();
    let mut reached = vec![false; n];
    let mut stack = vec![flow.start];
    // Entered from outside the flow, when an outbound call's job is cancelled mid-call.
    stack.extend(flow.index.get(super::CANCELED_STATE).copied());
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut reached[i], true) {
            continue;
        }
        stack.extend(succ[i].0.iter().copied());
    }
    for (i, st) in flow.states.iter().enumerate() {
        if !reached[i] {
            d.error(
                st.pos,
                format!(
                    "state '{}' is never reached from '{}'",
                    st.name, flow.states[flow.start].name
                ),
            );
        }
    }
    // A state can end the call if it hangs up or transfers, or leads to one that can.
    let mut can_end: Vec<bool> = succ.iter().map(|(_, e)| *e).collect();
    loop {
        let mut changed = false;
        for i in 0..n {
            if !can_end[i] && succ[i].0.iter().any(|&j| can_end[j]) {
                can_end[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for (i, st) in flow.states.iter().enumerate() {
        if reached[i] && !can_end[i] {
            d.error(
                st.pos,
                format!(
                    "state '{}' has no way out: no path from it ever hangs up or transfers",
                    st.name
                ),
            );
        }
    }
}

fn check_handlers(flow: &Flow, d: &mut Diags) {
    for st in &flow.states {
        if st.action.listens() && effective(flow, st, EventKind::NoInput).is_empty() {
            d.error(
                st.pos,
                format!(
                    "state '{}' listens but nothing handles no_input: a silent caller would wait forever (add on: no_input here or at the top of the flow, P-SIL)",
                    st.name
                ),
            );
        }
        for ev in possible_events(st) {
            let hs = effective(flow, st, ev);
            let needed = matches!(ev, EventKind::NotFound | EventKind::Fault);
            if needed && hs.is_empty() {
                d.error(
                    st.pos,
                    format!(
                        "state '{}' can meet '{}' but nothing handles it (add on: {} here or at the top of the flow)",
                        st.name,
                        ev.name(),
                        ev.name()
                    ),
                );
            }
            if !st.action.listens() && ev != EventKind::Hangup {
                for (_, h) in hs {
                    if matches!(h.then, Then::Listen | Then::Repeat) {
                        d.error(
                            h.pos,
                            format!(
                                "'{}' in state '{}' must goto a state or hang up: the state does not listen",
                                ev.name(),
                                st.name
                            ),
                        );
                    }
                }
            }
        }
        if let Some(hs) = st.on.get(EventKind::Hangup) {
            for (_, h) in hs {
                if !h.say.is_empty() {
                    d.error(
                        h.pos,
                        "on hangup: the caller is gone and hears nothing; remove 'say'",
                    );
                }
            }
        }
        if !st.action.listens()
            && let Some((_, h)) = st.on.get(EventKind::Voice).and_then(|hs| hs.first())
        {
            d.error(
                h.pos,
                format!(
                    "state '{}' does not listen, so it never hears voice",
                    st.name
                ),
            );
        }
    }
    for (ev, _, h) in flow.on.all() {
        if ev == EventKind::Hangup && !h.say.is_empty() {
            d.error(
                h.pos,
                "on hangup: the caller is gone and hears nothing; remove 'say'",
            );
        }
    }
}

/// Whether the call is still in `st`'s group after `h` ran, so the event can come again
/// and be counted on.
fn stays(flow: &Flow, st: &State, h: Option<&Handler>, ev: EventKind) -> bool {
    match h.map(|h| &h.then) {
        Some(Then::Listen | Then::Repeat) => true,
        Some(Then::Goto(t)) => flow.state(&t.name).is_some_and(|s| s.same_group(st)),
        Some(Then::Hangup(_)) => false,
        // Without a handler: no_input and no_match ask again, media events are ignored,
        // the rest end the call.
        None => matches!(
            ev,
            EventKind::NoInput
                | EventKind::NoMatch
                | EventKind::TooQuiet
                | EventKind::Noise
                | EventKind::Voice
        ),
    }
}

fn pick(hs: &[(u32, Handler)], count: u32) -> Option<&Handler> {
    hs.iter()
        .filter(|(n, _)| *n <= count)
        .max_by_key(|(n, _)| *n)
        .map(|(_, h)| h)
}

/// Counted handlers that can run: `3:` runs only if the first two leave the call in
/// the state's group. A silent caller's last `no_input` must end the silence.
fn check_counts(flow: &Flow, d: &mut Diags) {
    // Per handler position: whether it can run in some state that uses it.
    let mut can_run: std::collections::BTreeMap<Pos, (bool, String)> = Default::default();
    let mut endless: std::collections::BTreeMap<Pos, String> = Default::default();
    for st in &flow.states {
        for ev in possible_events(st) {
            let hs = effective(flow, st, ev);
            for (n, h) in hs {
                let runs = if ev == EventKind::Hangup {
                    // The call ends once: only `1:` (or a bare handler) ever runs.
                    *n <= 1
                } else {
                    (1..*n).all(|k| stays(flow, st, pick(hs, k), ev))
                };
                let why = if ev == EventKind::Hangup {
                    format!("'hangup: {n}:' can never run: a call hangs up once")
                } else {
                    let k = (1..*n)
                        .find(|&k| !stays(flow, st, pick(hs, k), ev))
                        .unwrap_or(1);
                    format!(
                        "'{} {n}:' can never run in state '{}': the handler for {} {k} leaves the state, and the count starts again when the call comes back (states that should count together need a common `group:`)",
                        ev.name(),
                        st.name,
                        ev.name(),
                    )
                };
                let e = can_run.entry(h.pos).or_insert((false, why));
                e.0 |= runs;
            }
            if ev == EventKind::NoInput
                && st.action.listens()
                && let Some((n, last)) = hs.iter().max_by_key(|(n, _)| *n)
                && stays(flow, st, Some(last), ev)
            {
                endless.entry(last.pos).or_insert_with(|| {
                    format!(
                        "a silent caller in state '{}' is asked again forever: its last no_input handler ({n}:) must hang up or goto a state outside the state's group (P-SIL)",
                        st.name
                    )
                });
            }
        }
    }
    for (pos, (runs, why)) in can_run {
        if !runs {
            d.error(pos, why);
        }
    }
    for (pos, why) in endless {
        d.error(pos, why);
    }
}

fn check_tickets(flow: &Flow, sources: Option<&[String]>, d: &mut Diags) {
    let recordings: HashSet<&str> = flow
        .states
        .iter()
        .filter_map(|s| match &s.action {
            Action::Record(r) => Some(r.into.as_str()),
            _ => None,
        })
        .collect();
    for st in &flow.states {
        if let Some(t) = &st.ticket {
            if !flow.categories.contains(&t.category) {
                d.error(
                    t.pos,
                    format!(
                        "ticket category '{}' is not one of this flow's categories: {}",
                        t.category,
                        flow.categories.join(", ")
                    ),
                );
            }
            for r in &t.recordings {
                if !recordings.contains(r.as_str()) {
                    d.error(
                        t.pos,
                        format!(
                            "ticket recording '{r}' is recorded by no state (record: into: {r})"
                        ),
                    );
                }
            }
        }
        if let (Some(l), Some(sources)) = (&st.lookup, sources)
            && !sources.contains(&l.source)
        {
            d.error(
                l.pos,
                format!(
                    "lookup source '{}' does not exist (sources: {})",
                    l.source,
                    sources.join(", ")
                ),
            );
        }
    }
}

fn check_prompts(flow: &Flow, cat: &Catalogue, d: &mut Diags) {
    let check_items = |items: &[SayItem], d: &mut Diags| {
        for i in items {
            if let SayItem::Prompt { id, pos, .. } = i
                && !cat.has(id)
            {
                d.error(
                    *pos,
                    format!("prompt '{id}' is not in {}", cat.file.display()),
                );
            }
        }
    };
    for st in &flow.states {
        check_items(&st.say, d);
        for (_, _, h) in st.on.all() {
            check_items(&h.say, d);
        }
        if let Action::Menu(keys) = &st.action {
            for k in keys {
                check_items(&k.handler.say, d);
            }
        }
    }
    for (_, _, h) in flow.on.all() {
        check_items(&h.say, d);
    }
    let s = &flow.settings;
    for (what, id) in [
        ("settings.wait_prompt", &s.wait_prompt),
        ("settings.waited_prompt", &s.waited_prompt),
        ("settings.hotline", &s.hotline),
    ] {
        if !id.is_empty() && !cat.has(id) {
            d.error(
                Pos::FILE,
                format!("{what}: prompt '{id}' is not in {}", cat.file.display()),
            );
        }
    }
}
