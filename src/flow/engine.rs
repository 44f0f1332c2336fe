//! The interpreter: one call's walk through a flow, sans I/O.
//!
//! Events and the current time go in; commands come out; `poll_timeout` says when to
//! wake it next. No clock, socket or runtime here, so live calls, `hotline simulate`
//! and flow tests all run exactly this code.
use super::catalogue::{Catalogue, Utterance};
use super::expr::Vars;
use super::model::*;
use super::trace::{HandlerId, Taken};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The call was answered after `rings` ring-back periods (P-RING).
    Answered {
        rings: u32,
    },
    Dtmf(char),
    VoiceStart,
    VoiceEnd,
    TooQuiet,
    Noise,
    PlayDone {
        id: u64,
    },
    LookupDone {
        id: u64,
        result: LookupResult,
    },
    /// The ticket is durably filed (its id), or could not be (why).
    TicketDone {
        id: u64,
        result: Result<String, String>,
    },
    TransferDone {
        id: u64,
        ok: bool,
    },
    /// The caller hung up.
    Hangup,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LookupResult {
    Found(Vec<(String, String)>),
    NotFound,
    Failed(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// The call entered a state: for the call record's path through the flow.
    Entered {
        state: String,
    },
    Play {
        id: u64,
        utterances: Vec<Utterance>,
    },
    StopPlay,
    StartRecording {
        name: String,
    },
    StopRecording {
        name: String,
        keep: bool,
    },
    Lookup {
        id: u64,
        source: String,
        key: String,
    },
    FileTicket {
        id: u64,
        ticket: TicketRequest,
    },
    Transfer {
        id: u64,
        to: String,
    },
    /// Hotline hangs up (sends BYE).
    Hangup,
    /// The session is over; nothing more will come out of it.
    Ended {
        outcome: Outcome,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct TicketRequest {
    pub flow: String,
    pub state: String,
    pub category: String,
    pub priority: Priority,
    pub due_in: Option<Duration>,
    pub department: Option<String>,
    pub fields: Vec<(String, String)>,
    pub recordings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    CallerHungUp,
    HotlineHungUp,
    Transferred(String),
    Failed(String),
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::CallerHungUp => "caller-hung-up",
            Outcome::HotlineHungUp => "hotline-hung-up",
            Outcome::Transferred(_) => "transferred",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// The longest utterance a listening state waits out before it counts as no match.
const MAX_UTTERANCE: Duration = Duration::from_secs(30);

/// Chains of states that neither wait nor listen longer than this are a loop in the
/// flow; the call ends rather than spin.
const MAX_HOPS: u32 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Ticket,
    Lookup,
    Say,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    /// Do what the state does after its prompts: listen, go on, hang up, transfer.
    Action,
    Enter(usize),
    Hangup(Duration),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Ticket,
    Lookup,
    Transfer,
}

#[derive(Clone, Debug)]
enum Phase {
    NotAnswered,
    Playing {
        id: u64,
        after: After,
    },
    Listening {
        deadline: Option<Instant>,
    },
    Collecting {
        digits: String,
        deadline: Option<Instant>,
    },
    Recording {
        name: String,
        voice_seen: bool,
        deadline: Option<Instant>,
        max_at: Instant,
    },
    Waiting {
        op: Op,
        id: u64,
        ask_at: Option<Instant>,
        timeout_at: Option<Instant>,
        asking: Option<u64>,
    },
    HangupPause {
        at: Instant,
    },
    Ended,
}

pub struct Session {
    flow: Arc<Flow>,
    cat: Arc<Catalogue>,
    vars: Vars,
    state: usize,
    stage: Stage,
    counters: [u32; EventKind::ALL.len()],
    /// Events fired over the whole call, for the metrics (`counters` restart per state).
    fired: [u64; EventKind::ALL.len()],
    phase: Phase,
    out: VecDeque<Command>,
    next_id: u64,
    end_at: Instant,
    detached: bool,
    speaking: bool,
    heard_voice: bool,
    /// Noise or quietness noticed while a prompt played, delivered when it ends.
    pending: Option<EventKind>,
    /// The caller was asked to wait (P-WAIT) and is owed an apology before going on.
    owe_thanks: bool,
    hops: u32,
    outcome: Option<Outcome>,
    /// Hotline sent the BYE; a `hangup` handler that files what is left after it does
    /// not make the caller the one who hung up.
    hotline_hung_up: bool,
    /// Counts the times the session started listening, so a driver can tell a fresh
    /// question from the same one still waiting.
    listen_epoch: u64,
    /// A back-end answer that came while "please wait" was still playing: the prompt is
    /// finished first, a sentence cut in half is worse than a second's wait.
    held: Option<Event>,
    /// The transitions taken, when a designer's tool asked for them (coverage).
    trace: Option<Vec<Taken>>,
    /// The driver's wall clock, for `now.*`; the engine reads none itself.
    wall: Option<super::clock::WallClock>,
}

impl Session {
    /// A call that has not been answered yet; `vars` are the call's own (caller, called).
    pub fn new(flow: Arc<Flow>, cat: Arc<Catalogue>, vars: Vars, now: Instant) -> Session {
        let mut all: Vars = flow.vars.iter().cloned().collect();
        all.extend(vars);
        let end_at = now + flow.settings.max_call;
        let start = flow.start;
        Session {
            flow,
            cat,
            vars: all,
            state: start,
            stage: Stage::Ticket,
            counters: [0; EventKind::ALL.len()],
            fired: [0; EventKind::ALL.len()],
            phase: Phase::NotAnswered,
            out: VecDeque::new(),
            next_id: 1,
            end_at,
            detached: false,
            speaking: false,
            heard_voice: false,
            pending: None,
            owe_thanks: false,
            hops: 0,
            outcome: None,
            hotline_hung_up: false,
            listen_epoch: 0,
            held: None,
            trace: None,
            wall: None,
        }
    }

    /// From now on, records which menu keys, handlers and branches the call takes.
    pub fn trace_transitions(&mut self) {
        self.trace.get_or_insert_with(Vec::new);
    }

    /// The transitions recorded since the last call (none unless traced).
    pub fn take_trace(&mut self) -> Vec<Taken> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn took(&mut self, t: Taken) {
        if let Some(trace) = &mut self.trace {
            trace.push(t);
        }
    }

    /// Gives the session the wall-clock time, before the answer: `now.*` follows it.
    pub fn set_wall_clock(&mut self, clock: super::clock::WallClock) {
        self.wall = Some(clock);
    }

    fn tick(&mut self, now: Instant) {
        if let Some(w) = &mut self.wall {
            w.update(now, &self.flow.settings.timezone, &mut self.vars);
        }
    }

    pub fn poll_command(&mut self) -> Option<Command> {
        self.out.pop_front()
    }

    /// When the session next wants `handle_timeout`, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::NotAnswered | Phase::Ended => return None,
            Phase::Playing { .. } => None,
            Phase::Listening { deadline } | Phase::Collecting { deadline, .. } => *deadline,
            Phase::Recording {
                deadline, max_at, ..
            } => Some(deadline.map_or(*max_at, |d| d.min(*max_at))),
            Phase::Waiting {
                ask_at, timeout_at, ..
            } => match (ask_at, timeout_at) {
                (Some(a), Some(t)) => Some(*a.min(t)),
                (a, t) => a.or(*t),
            },
            Phase::HangupPause { at } => Some(*at),
        };
        Some(phase.map_or(self.end_at, |p| p.min(self.end_at)))
    }

    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended)
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    pub fn state_name(&self) -> &str {
        &self.flow.states[self.state].name
    }

    /// True when nothing is playing or pending and the flow waits for the caller.
    pub fn awaiting_input(&self) -> bool {
        matches!(
            self.phase,
            Phase::Listening { .. } | Phase::Collecting { .. } | Phase::Recording { .. }
        )
    }

    /// Increases each time the flow starts listening for the caller anew.
    pub fn listen_epoch(&self) -> u64 {
        self.listen_epoch
    }

    /// How many times `kind` has fired in this call so far.
    pub fn fired(&self, kind: EventKind) -> u64 {
        self.fired[kind as usize]
    }

    pub fn handle(&mut self, ev: Event, now: Instant) {
        if self.is_ended() {
            return;
        }
        self.tick(now);
        self.hops = 0;
        match ev {
            Event::Answered { rings } => {
                if matches!(self.phase, Phase::NotAnswered) {
                    self.vars.insert("rings".into(), rings.to_string());
                    self.enter(self.flow.start, now);
                }
            }
            Event::Hangup => self.caller_hung_up(now),
            Event::PlayDone { id } => self.play_done(id, now),
            Event::Dtmf(k) => self.dtmf(k, now),
            Event::VoiceStart => self.voice_start(now),
            Event::VoiceEnd => self.voice_end(now),
            Event::TooQuiet => self.media_event(EventKind::TooQuiet, now),
            Event::Noise => self.media_event(EventKind::Noise, now),
            Event::LookupDone { id, result } => self.lookup_done(id, result, now),
            Event::TicketDone { id, result } => self.ticket_done(id, result, now),
            Event::TransferDone { id, ok } => self.transfer_done(id, ok, now),
        }
    }

    /// Sends the call to `state` from outside the flow (an outbound call whose job was
    /// cancelled mid-call goes to `canceled`): what plays stops and the state runs as if
    /// a transition led there. A flow without that state hangs up.
    pub fn goto(&mut self, state: &str, now: Instant) {
        if self.is_ended() || self.detached || matches!(self.phase, Phase::NotAnswered) {
            return;
        }
        self.tick(now);
        self.hops = 0;
        self.out.push_back(Command::StopPlay);
        self.speaking = false;
        self.pending = None;
        self.held = None;
        match self.flow.index.get(state).copied() {
            Some(i) => self.enter(i, now),
            None => self.hang_up(now),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_ended() || matches!(self.phase, Phase::NotAnswered) {
            return;
        }
        self.tick(now);
        self.hops = 0;
        if now >= self.end_at {
            self.out.push_back(Command::StopPlay);
            self.hang_up(now);
            return;
        }
        match self.phase.clone() {
            Phase::Listening { deadline: Some(d) } if now >= d => {
                let ev = if self.heard_voice || self.speaking {
                    EventKind::NoMatch
                } else {
                    EventKind::NoInput
                };
                self.fire(ev, now);
            }
            Phase::Collecting {
                digits,
                deadline: Some(d),
            } if now >= d => {
                if digits.is_empty() {
                    let ev = if self.heard_voice || self.speaking {
                        EventKind::NoMatch
                    } else {
                        EventKind::NoInput
                    };
                    self.fire(ev, now);
                } else {
                    self.collect_complete(digits, now);
                }
            }
            Phase::Recording {
                name,
                voice_seen,
                deadline,
                max_at,
            } => {
                if now >= max_at || (voice_seen && deadline.is_some_and(|d| now >= d)) {
                    self.record_complete(name, now);
                } else if deadline.is_some_and(|d| now >= d) {
                    self.fire(EventKind::NoInput, now);
                }
            }
            Phase::Waiting {
                op,
                id,
                ask_at,
                timeout_at,
                asking,
            } => {
                if timeout_at.is_some_and(|t| now >= t) {
                    if asking.is_some() {
                        self.out.push_back(Command::StopPlay);
                    }
                    self.held = None;
                    self.owe_thanks = false;
                    self.fire(EventKind::Fault, now);
                } else if ask_at.is_some_and(|a| now >= a) {
                    // P-WAIT: ask the caller to hold before the hold, not after.
                    let prompt = self.flow.settings.wait_prompt.clone();
                    let asking = self.play_id(&prompt);
                    self.owe_thanks = true;
                    self.phase = Phase::Waiting {
                        op,
                        id,
                        ask_at: None,
                        timeout_at,
                        asking,
                    };
                }
            }
            Phase::HangupPause { at } if now >= at => self.hang_up(now),
            _ => {}
        }
    }

    // ----- entering states ---------------------------------------------------------

    fn enter(&mut self, idx: usize, now: Instant) {
        self.hops += 1;
        if self.hops > MAX_HOPS {
            let msg = format!(
                "state '{}' was entered {MAX_HOPS} times without waiting for anything: the flow loops",
                self.flow.states[idx].name
            );
            self.fail(msg);
            return;
        }
        if !self.flow.states[idx].same_group(&self.flow.states[self.state]) {
            self.counters = [0; EventKind::ALL.len()];
        }
        self.state = idx;
        self.heard_voice = false;
        self.out.push_back(Command::Entered {
            state: self.flow.states[idx].name.clone(),
        });
        let flow = self.flow.clone();
        for (k, t) in &flow.states[idx].set {
            let v = t.render(&self.vars);
            self.vars.insert(k.clone(), v);
        }
        super::expr::count(&mut self.vars, &flow.states[idx].inc);
        self.stage = Stage::Ticket;
        self.advance(now);
    }

    /// Runs the state's entry steps from `self.stage` on: ticket, lookup, prompts.
    fn advance(&mut self, now: Instant) {
        let flow = self.flow.clone();
        let st = &flow.states[self.state];
        if self.stage == Stage::Ticket {
            self.stage = Stage::Lookup;
            if let Some(t) = &st.ticket {
                let ticket = self.ticket_request(t);
                let id = self.id();
                self.out.push_back(Command::FileTicket { id, ticket });
                self.wait(Op::Ticket, id, now);
                return;
            }
        }
        if self.stage == Stage::Lookup {
            self.stage = Stage::Say;
            if let Some(l) = &st.lookup {
                let id = self.id();
                self.out.push_back(Command::Lookup {
                    id,
                    source: l.source.clone(),
                    key: l.key.render(&self.vars),
                });
                self.wait(Op::Lookup, id, now);
                return;
            }
        }
        let mut items: Vec<Utterance> = Vec::new();
        if std::mem::take(&mut self.owe_thanks) {
            items.extend(self.cat.utterance(&flow.settings.waited_prompt, &self.vars));
        }
        items.extend(self.render(&st.say));
        self.play_then(items, After::Action, now);
    }

    fn ticket_request(&self, t: &TicketSpec) -> TicketRequest {
        TicketRequest {
            flow: self.flow.name.clone(),
            state: self.state_name().to_string(),
            category: t.category.clone(),
            priority: t.priority,
            due_in: t.due,
            department: t.department.clone(),
            fields: t
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.render(&self.vars)))
                .collect(),
            recordings: t
                .recordings
                .iter()
                .filter(|r| self.vars.contains_key(&format!("recording.{r}")))
                .cloned()
                .collect(),
        }
    }

    fn wait(&mut self, op: Op, id: u64, now: Instant) {
        let s = &self.flow.settings;
        let (ask_at, timeout_at) = match op {
            Op::Transfer => (None, None),
            _ if self.detached => (None, Some(now + s.lookup_timeout)),
            _ => (Some(now + s.wait_after), Some(now + s.lookup_timeout)),
        };
        self.phase = Phase::Waiting {
            op,
            id,
            ask_at,
            timeout_at,
            asking: None,
        };
    }

    /// Plays `items` (unless there is nothing to play or nobody to hear it), then `after`.
    fn play_then(&mut self, items: Vec<Utterance>, after: After, now: Instant) {
        if items.is_empty() || self.detached {
            self.after(after, now);
            return;
        }
        let id = self.id();
        self.out.push_back(Command::Play {
            id,
            utterances: items,
        });
        self.phase = Phase::Playing { id, after };
    }

    fn after(&mut self, after: After, now: Instant) {
        match after {
            After::Enter(i) => self.enter(i, now),
            After::Hangup(d) => {
                if self.detached {
                    self.end(Outcome::CallerHungUp);
                } else {
                    self.phase = Phase::HangupPause { at: now + d };
                }
            }
            After::Action => self.action(now),
        }
    }

    fn action(&mut self, now: Instant) {
        let flow = self.flow.clone();
        let st = &flow.states[self.state];
        if self.detached {
            // Nobody is on the line: only a `next` chain can still file what is left.
            match &st.action {
                Action::Next(branches) => self.branch(branches, now),
                _ => self.end(Outcome::CallerHungUp),
            }
            return;
        }
        if st.action.listens() {
            self.listen_epoch += 1;
        }
        let timeout = st.timeout.unwrap_or(flow.settings.no_input);
        // The silence timer runs from when the caller stops speaking, not while they speak.
        let deadline = Some(self.listen_deadline(now, timeout));
        match &st.action {
            Action::Menu(_) | Action::Listen => self.phase = Phase::Listening { deadline },
            Action::Collect(_) => {
                self.phase = Phase::Collecting {
                    digits: String::new(),
                    deadline,
                }
            }
            Action::Record(r) => {
                let max = r.max.unwrap_or(flow.settings.record_max);
                self.out.push_back(Command::StartRecording {
                    name: r.into.clone(),
                });
                self.phase = Phase::Recording {
                    name: r.into.clone(),
                    voice_seen: self.speaking,
                    deadline: (!self.speaking).then_some(now + timeout),
                    max_at: now + max,
                };
            }
            Action::Next(branches) => self.branch(branches, now),
            Action::Hangup(d) => self.phase = Phase::HangupPause { at: now + *d },
            Action::Transfer(to) => {
                let id = self.id();
                self.out.push_back(Command::Transfer {
                    id,
                    to: to.render(&self.vars),
                });
                self.wait(Op::Transfer, id, now);
            }
        }
        if let Some(ev) = self.pending.take()
            && self.awaiting_input()
        {
            self.fire(ev, now);
        }
    }

    fn branch(&mut self, branches: &[Branch], now: Instant) {
        let chosen = branches
            .iter()
            .position(|b| b.when.as_ref().is_none_or(|c| c.eval(&self.vars)));
        if let Some(index) = chosen {
            self.took(Taken::Branch {
                state: self.state,
                index,
            });
        }
        let target = chosen.and_then(|i| self.flow.index.get(&branches[i].goto.name).copied());
        match target {
            Some(i) => self.enter(i, now),
            None => self.fail("no next branch applies".into()),
        }
    }

    // ----- events -------------------------------------------------------------------

    /// Counts the event in this state and runs its handler (the state's, else the flow's).
    fn fire(&mut self, ev: EventKind, now: Instant) {
        let i = ev as usize;
        self.counters[i] = self.counters[i].saturating_add(1);
        self.fired[i] = self.fired[i].saturating_add(1);
        let count = self.counters[i];
        let flow = self.flow.clone();
        let st = &flow.states[self.state];
        let handlers = if st.on.get(ev).is_some() {
            &st.on
        } else {
            &flow.on
        };
        match handlers.pick(ev, count) {
            Some(h) => self.run_handler(h, now),
            None => match ev {
                // Without a handler, a caller who did not answer hears the question again.
                EventKind::NoInput | EventKind::NoMatch => {
                    let h = Handler {
                        then: Then::Repeat,
                        ..Handler::default()
                    };
                    self.run_handler(&h, now);
                }
                EventKind::TooQuiet | EventKind::Noise | EventKind::Voice => {
                    if !self.awaiting_input() {
                        self.action(now);
                    }
                }
                EventKind::Hangup => self.end(Outcome::CallerHungUp),
                EventKind::NotFound | EventKind::Fault => self.fail(format!(
                    "{} in state '{}' has no handler",
                    ev.name(),
                    st.name
                )),
            },
        }
    }

    fn run_handler(&mut self, h: &Handler, now: Instant) {
        self.took(Taken::Handler(HandlerId::of(h)));
        for (k, t) in &h.set {
            let v = t.render(&self.vars);
            self.vars.insert(k.clone(), v);
        }
        super::expr::count(&mut self.vars, &h.inc);
        if let Phase::Recording { name, .. } = &self.phase {
            self.out.push_back(Command::StopRecording {
                name: name.clone(),
                keep: false,
            });
        }
        let mut items = self.render(&h.say);
        let after = match &h.then {
            Then::Listen => After::Action,
            Then::Repeat => {
                let st_say = self.flow.states[self.state].say.clone();
                items.extend(self.render(&st_say));
                After::Action
            }
            Then::Goto(t) => match self.flow.index.get(&t.name) {
                Some(&i) => After::Enter(i),
                None => {
                    self.fail(format!("goto unknown state '{}'", t.name));
                    return;
                }
            },
            Then::Hangup(d) => After::Hangup(*d),
        };
        self.heard_voice = false;
        self.play_then(items, after, now);
    }

    fn play_done(&mut self, id: u64, now: Instant) {
        match self.phase.clone() {
            Phase::Playing { id: p, after } if p == id => self.after(after, now),
            Phase::Waiting {
                op,
                id: wid,
                ask_at,
                timeout_at,
                asking: Some(a),
            } if a == id => {
                self.phase = Phase::Waiting {
                    op,
                    id: wid,
                    ask_at,
                    timeout_at,
                    asking: None,
                };
                if let Some(ev) = self.held.take() {
                    self.handle(ev, now);
                }
            }
            _ => {}
        }
    }

    fn dtmf(&mut self, key: char, now: Instant) {
        if let Phase::Playing { after, .. } = self.phase {
            let st = &self.flow.states[self.state];
            if after == After::Action && st.action.listens() && self.flow.settings.barge_in {
                // A caller who knows the menu need not hear it out.
                self.out.push_back(Command::StopPlay);
                self.action(now);
            } else {
                return;
            }
        }
        let flow = self.flow.clone();
        let st = &flow.states[self.state];
        match (self.phase.clone(), &st.action) {
            (Phase::Listening { .. }, Action::Menu(keys)) => {
                match keys.iter().find(|m| m.key == key) {
                    Some(m) => self.run_handler(&m.handler, now),
                    None => self.fire(EventKind::NoMatch, now),
                }
            }
            (Phase::Listening { .. }, _) => self.fire(EventKind::NoMatch, now),
            (Phase::Collecting { mut digits, .. }, Action::Collect(c)) => {
                if Some(key) == c.end {
                    self.collect_complete(digits, now);
                    return;
                }
                digits.push(key);
                if digits.len() >= c.max {
                    self.collect_complete(digits, now);
                } else {
                    let gap = c.inter_digit.unwrap_or(flow.settings.inter_digit);
                    self.phase = Phase::Collecting {
                        digits,
                        deadline: Some(now + gap),
                    };
                }
            }
            (Phase::Recording { name, .. }, _) if key == '#' => self.record_complete(name, now),
            _ => {}
        }
    }

    fn collect_complete(&mut self, digits: String, now: Instant) {
        let flow = self.flow.clone();
        let Action::Collect(c) = &flow.states[self.state].action else {
            return;
        };
        let ok = digits.len() >= c.min
            && digits.len() <= c.max
            && c.pattern.as_ref().is_none_or(|p| p.is_match(&digits));
        if !ok {
            self.fire(EventKind::NoMatch, now);
            return;
        }
        self.vars.insert(c.into.clone(), digits);
        self.took(Taken::Next { state: self.state });
        match flow.index.get(&c.next.name) {
            Some(&i) => self.enter(i, now),
            None => self.fail(format!("collect.next: unknown state '{}'", c.next.name)),
        }
    }

    fn record_complete(&mut self, name: String, now: Instant) {
        let flow = self.flow.clone();
        self.out.push_back(Command::StopRecording {
            name: name.clone(),
            keep: true,
        });
        self.vars.insert(format!("recording.{name}"), name.clone());
        let next = match &flow.states[self.state].action {
            Action::Record(r) => flow.index.get(&r.next.name).copied(),
            _ => None,
        };
        self.took(Taken::Next { state: self.state });
        match next {
            Some(i) => self.enter(i, now),
            None => self.fail("record.next: unknown state".into()),
        }
    }

    /// While the caller speaks, the silence timer waits; an utterance that never ends
    /// (a television, a caller reading out a letter at a menu) is no match after
    /// [`MAX_UTTERANCE`], or the call would hang on it until `max_call`.
    fn listen_deadline(&self, now: Instant, timeout: Duration) -> Instant {
        if self.speaking {
            now + MAX_UTTERANCE
        } else {
            now + timeout
        }
    }

    fn voice_start(&mut self, now: Instant) {
        self.speaking = true;
        let deadline_now = self.listen_deadline(now, Duration::ZERO);
        match &mut self.phase {
            Phase::Listening { deadline } | Phase::Collecting { deadline, .. } => {
                *deadline = Some(deadline_now);
            }
            Phase::Recording {
                voice_seen,
                deadline,
                ..
            } => {
                *voice_seen = true;
                *deadline = None;
            }
            _ => {}
        }
    }

    /// The caller finished saying something. Without speech recognition the flow can
    /// only react to *that* they spoke: a `voice` handler runs if there is one, else the
    /// silence timer restarts and, if no key follows, `no_match` fires (P-AGAIN).
    fn voice_end(&mut self, now: Instant) {
        self.speaking = false;
        let flow = self.flow.clone();
        let st = &flow.states[self.state];
        let timeout = st.timeout.unwrap_or(flow.settings.no_input);
        match &mut self.phase {
            Phase::Listening { deadline } | Phase::Collecting { deadline, .. } => {
                self.heard_voice = true;
                *deadline = Some(now + timeout);
                if st.on.get(EventKind::Voice).is_some() || flow.on.get(EventKind::Voice).is_some()
                {
                    self.fire(EventKind::Voice, now);
                }
            }
            Phase::Recording { deadline, .. } => {
                let end = match &st.action {
                    Action::Record(r) => r.end_silence.unwrap_or(flow.settings.record_end_silence),
                    _ => flow.settings.record_end_silence,
                };
                *deadline = Some(now + end);
            }
            _ => {}
        }
    }

    fn media_event(&mut self, ev: EventKind, now: Instant) {
        if ev == EventKind::Noise {
            // Noise cancels an utterance the classifier had opened: no VoiceEnd follows.
            self.speaking = false;
        }
        if self.awaiting_input() {
            self.fire(ev, now);
        } else if matches!(self.phase, Phase::Playing { .. }) {
            self.pending = Some(ev);
        }
    }

    fn lookup_done(&mut self, id: u64, result: LookupResult, now: Instant) {
        if self.hold_if_asking(&Event::LookupDone {
            id,
            result: result.clone(),
        }) {
            return;
        }
        if !self.take_wait(Op::Lookup, id) {
            return;
        }
        match result {
            LookupResult::Found(fields) => {
                let flow = self.flow.clone();
                if let Some(l) = &flow.states[self.state].lookup {
                    for (k, v) in fields {
                        self.vars.insert(format!("{}.{k}", l.into), v);
                    }
                }
                self.advance(now);
            }
            LookupResult::NotFound => self.fire(EventKind::NotFound, now),
            LookupResult::Failed(_) => {
                self.owe_thanks = false;
                self.fire(EventKind::Fault, now)
            }
        }
    }

    fn ticket_done(&mut self, id: u64, result: Result<String, String>, now: Instant) {
        if self.hold_if_asking(&Event::TicketDone {
            id,
            result: result.clone(),
        }) {
            return;
        }
        if !self.take_wait(Op::Ticket, id) {
            return;
        }
        match result {
            Ok(tid) => {
                self.vars.insert("ticket_id".into(), tid);
                self.advance(now);
            }
            Err(_) => {
                self.owe_thanks = false;
                self.fire(EventKind::Fault, now)
            }
        }
    }

    fn transfer_done(&mut self, id: u64, ok: bool, now: Instant) {
        if !self.take_wait(Op::Transfer, id) {
            return;
        }
        if ok {
            let to = match &self.flow.states[self.state].action {
                Action::Transfer(t) => t.render(&self.vars),
                _ => String::new(),
            };
            self.end(Outcome::Transferred(to));
        } else {
            self.fire(EventKind::Fault, now);
        }
    }

    /// Ends the wait for `op` #`id` if that is what the session waits for; a stale
    /// answer (after a timeout) is ignored.
    fn take_wait(&mut self, op: Op, id: u64) -> bool {
        match &self.phase {
            Phase::Waiting {
                op: o,
                id: i,
                asking,
                ..
            } if *o == op && *i == id => asking.is_none(),
            _ => false,
        }
    }

    /// Holds a back-end answer for the end of "please wait", if that is playing.
    fn hold_if_asking(&mut self, ev: &Event) -> bool {
        if let Phase::Waiting {
            asking: Some(_), ..
        } = self.phase
        {
            self.held = Some(ev.clone());
            return true;
        }
        false
    }

    fn caller_hung_up(&mut self, now: Instant) {
        if self.detached {
            return;
        }
        if matches!(self.phase, Phase::NotAnswered) {
            self.detached = true;
            self.end(Outcome::CallerHungUp);
            return;
        }
        self.leave(now);
    }

    /// The line is gone, whoever hung up. What the caller said before is kept (a
    /// complaint half told is still a complaint, P-RECORD), and the state's `hangup`
    /// handler may still go where a ticket is filed with what is known: an emergency
    /// whose caller stopped before giving the address is still an emergency (P-EMERG).
    fn leave(&mut self, now: Instant) {
        self.detached = true;
        self.speaking = false;
        if matches!(
            self.phase,
            Phase::Playing { .. }
                | Phase::Waiting {
                    asking: Some(_),
                    ..
                }
        ) {
            // Nobody hears the rest: the call record and the test timeline end here.
            self.out.push_back(Command::StopPlay);
        }
        if let Phase::Recording {
            name, voice_seen, ..
        } = &self.phase
        {
            // A recording the caller never spoke into is no recording.
            let (name, keep) = (name.clone(), *voice_seen);
            self.out.push_back(Command::StopRecording {
                name: name.clone(),
                keep,
            });
            if keep {
                self.vars.insert(format!("recording.{name}"), name);
            }
        }
        let flow = self.flow.clone();
        let st = &flow.states[self.state];
        let h = st
            .on
            .pick(EventKind::Hangup, 1)
            .or_else(|| flow.on.pick(EventKind::Hangup, 1));
        if let Some(h) = h {
            self.took(Taken::Handler(HandlerId::of(h)));
        }
        match h.map(|h| &h.then) {
            Some(Then::Goto(t)) => match flow.index.get(&t.name) {
                Some(&i) => self.enter(i, now),
                None => self.end(Outcome::CallerHungUp),
            },
            _ => self.end(Outcome::CallerHungUp),
        }
    }

    // ----- ending -------------------------------------------------------------------

    fn hang_up(&mut self, now: Instant) {
        self.out.push_back(Command::Hangup);
        self.hotline_hung_up = true;
        if self.detached {
            self.end(Outcome::HotlineHungUp);
        } else {
            self.leave(now);
        }
    }

    fn fail(&mut self, why: String) {
        if !self.detached {
            self.out.push_back(Command::StopPlay);
            self.out.push_back(Command::Hangup);
        }
        self.end(Outcome::Failed(why));
    }

    fn end(&mut self, outcome: Outcome) {
        if self.is_ended() {
            return;
        }
        // After a hang-up the recording was already closed when the caller left.
        if let (false, Phase::Recording { name, .. }) = (self.detached, &self.phase) {
            self.out.push_back(Command::StopRecording {
                name: name.clone(),
                keep: true,
            });
        }
        let outcome = match outcome {
            Outcome::CallerHungUp if self.hotline_hung_up => Outcome::HotlineHungUp,
            o => o,
        };
        self.outcome = Some(outcome.clone());
        self.out.push_back(Command::Ended { outcome });
        self.phase = Phase::Ended;
    }

    // ----- prompts ------------------------------------------------------------------

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn render(&self, items: &[SayItem]) -> Vec<Utterance> {
        let mut out = Vec::new();
        for item in items {
            match item {
                SayItem::Prompt { id, when, .. } => {
                    if when.as_ref().is_none_or(|c| c.eval(&self.vars))
                        && let Some(u) = self.cat.utterance(id, &self.vars)
                    {
                        out.push(u);
                    }
                }
                SayItem::Spoken {
                    kind, value, when, ..
                } => {
                    if when.as_ref().is_none_or(|c| c.eval(&self.vars))
                        && let Some(u) = self.cat.spoken(*kind, &value.render(&self.vars))
                    {
                        out.push(u);
                    }
                }
                SayItem::Pause(d) => out.push(Utterance {
                    prompt: "pause".into(),
                    value: None,
                    text: String::new(),
                    clips: vec![super::catalogue::Clip::Pause(*d)],
                }),
            }
        }
        out
    }

    fn play_id(&mut self, prompt: &str) -> Option<u64> {
        let u = self.cat.utterance(prompt, &self.vars)?;
        let id = self.id();
        self.out.push_back(Command::Play {
            id,
            utterances: vec![u],
        });
        Some(id)
    }
}
