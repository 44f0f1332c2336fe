//! A simulated call: the flow interpreter driven by a scripted caller on a clock the
//! simulation steps itself. Flow tests and `hotline simulate` both use it; prompts take
//! as long as their recordings do.
use super::script::{Action, KEY_GAP, Step};
use crate::data::{Answer, DataSource};
use crate::flow::catalogue::{Catalogue, Utterance};
use crate::flow::engine::{Command, Event, LookupResult, Outcome, Session, TicketRequest};
use crate::flow::expr::Vars;
use crate::flow::model::Flow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Something that happened on the simulated call, at a time since the answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Heard {
        at: Duration,
        end: Duration,
        prompt: String,
        value: Option<String>,
        text: String,
        /// The caller cut it short with a key.
        cut: bool,
    },
    Caller {
        at: Duration,
        step: String,
    },
    State {
        at: Duration,
        name: String,
    },
    Lookup {
        at: Duration,
        source: String,
        key: String,
        result: String,
    },
    Ticket {
        at: Duration,
        id: Option<String>,
        ticket: TicketRequest,
    },
    Recording {
        at: Duration,
        name: String,
        kept: bool,
    },
    Transfer {
        at: Duration,
        to: String,
    },
    Hangup {
        at: Duration,
    },
    End {
        at: Duration,
        outcome: Outcome,
    },
    /// Script steps the call ended before using.
    Unused {
        step: String,
    },
}

impl Entry {
    pub fn at(&self) -> Duration {
        match self {
            Entry::Heard { at, .. }
            | Entry::Caller { at, .. }
            | Entry::State { at, .. }
            | Entry::Lookup { at, .. }
            | Entry::Ticket { at, .. }
            | Entry::Recording { at, .. }
            | Entry::Transfer { at, .. }
            | Entry::Hangup { at }
            | Entry::End { at, .. } => *at,
            Entry::Unused { .. } => Duration::MAX,
        }
    }
}

pub struct CallSetup {
    pub rings: u32,
    pub vars: Vars,
}

/// The wall-clock time a simulated call is answered at unless it says otherwise: a
/// working Monday morning, so that a flow test without `at:` means the same any day.
pub const DEFAULT_AT: &str = "2026-01-05T10:00";

/// Where the next caller step comes from: a test's list, or a designer at a terminal.
pub trait Caller {
    /// The next step, given the time since the answer; `None`: the caller stays silent.
    fn next(&mut self, now: Duration) -> Option<Step>;
    /// A step with an `at` time that is next in line, taken ahead of its turn so that it
    /// can happen during a prompt.
    fn take_timed(&mut self) -> Option<Step> {
        None
    }
    /// A back-end condition next in line (`lookup slow 3s`): it sets up what happens
    /// next and needs no question to answer, so it is taken at once.
    fn take_condition(&mut self) -> Option<Step> {
        None
    }
    /// Steps never taken because the call ended first.
    fn leftover(&mut self) -> Vec<Step> {
        Vec::new()
    }
}

impl Caller for VecDeque<Step> {
    fn next(&mut self, _now: Duration) -> Option<Step> {
        self.pop_front()
    }
    fn take_timed(&mut self) -> Option<Step> {
        if self.front().is_some_and(|s| s.at.is_some()) {
            self.pop_front()
        } else {
            None
        }
    }
    fn take_condition(&mut self) -> Option<Step> {
        if self
            .front()
            .is_some_and(|s| s.at.is_none() && s.action.is_condition())
        {
            self.pop_front()
        } else {
            None
        }
    }
    fn leftover(&mut self) -> Vec<Step> {
        self.drain(..).collect()
    }
}

#[derive(Debug)]
enum Pending {
    Engine(Event),
    CallerStep(Step),
}

struct Playing {
    id: u64,
    /// (utterance, start, end), in order.
    parts: Vec<(Utterance, Duration, Duration)>,
    /// Index of the first part in the timeline.
    first_entry: usize,
}

pub struct Sim<'a> {
    cat: &'a Catalogue,
    data: &'a dyn DataSource,
    session: Session,
    t0: Instant,
    now: Duration,
    queue: Vec<(Duration, u64, Pending)>,
    seq: u64,
    hold_until: Duration,
    lookup_fails: u32,
    lookup_delay: Duration,
    ticket_fails: u32,
    transfer_fails: u32,
    tickets: u64,
    playing: Option<Playing>,
    pub timeline: Vec<Entry>,
    ended: bool,
    caller_done: bool,
    /// The listening episode the caller last acted in: a caller acts once per question,
    /// then waits for the hotline's answer (a recording's end, the next prompt).
    acted_epoch: u64,
}

/// Uses up one of `n` pending back-end failures.
fn take_one(n: &mut u32) -> bool {
    let had = *n > 0;
    *n = n.saturating_sub(1);
    had
}

/// No simulated call runs past this, whatever the flow says (max_call guards real ones).
const SIM_LIMIT: Duration = Duration::from_secs(4 * 3600);

impl<'a> Sim<'a> {
    pub fn new(
        flow: Arc<Flow>,
        cat: &'a Catalogue,
        cat_arc: Arc<Catalogue>,
        data: &'a dyn DataSource,
        setup: CallSetup,
    ) -> Sim<'a> {
        Sim::new_at(flow, cat, cat_arc, data, setup, None, Default::default())
    }

    /// A call answered at `at` (a Unix time; `None`: [`DEFAULT_AT`] in the flow's time
    /// zone), with `calendar`'s holidays.
    pub fn new_at(
        flow: Arc<Flow>,
        cat: &'a Catalogue,
        cat_arc: Arc<Catalogue>,
        data: &'a dyn DataSource,
        setup: CallSetup,
        at: Option<jiff::Timestamp>,
        calendar: Arc<crate::flow::clock::Calendar>,
    ) -> Sim<'a> {
        let t0 = Instant::now();
        let tz = flow.settings.timezone.clone();
        let wall = at.unwrap_or_else(|| {
            crate::flow::clock::parse_local(DEFAULT_AT, &tz).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        });
        let mut session = Session::new(flow, cat_arc, setup.vars, t0);
        // For `hotline test --coverage`: which keys, handlers and branches the call took.
        session.trace_transitions();
        session.set_wall_clock(crate::flow::clock::WallClock::new(t0, wall, calendar));
        session.handle(Event::Answered { rings: setup.rings }, t0);
        Sim {
            cat,
            data,
            session,
            t0,
            now: Duration::ZERO,
            queue: Vec::new(),
            seq: 0,
            hold_until: Duration::ZERO,
            lookup_fails: 0,
            lookup_delay: Duration::ZERO,
            ticket_fails: 0,
            transfer_fails: 0,
            tickets: 0,
            playing: None,
            timeline: Vec::new(),
            ended: false,
            caller_done: false,
            acted_epoch: u64::MAX,
        }
    }

    /// A simulated call to a flow of a designer's project, from a demo caller number
    /// unless `vars` names one.
    pub fn in_project(
        flow: Arc<Flow>,
        project: &'a super::project::Project,
        rings: u32,
        vars: Vars,
    ) -> Sim<'a> {
        Sim::in_project_at(flow, project, rings, vars, None)
    }

    /// As [`Sim::in_project`], answered at `at` (`None`: [`DEFAULT_AT`]). The call
    /// variables a live call has are set too: `called` is the flow's name.
    pub fn in_project_at(
        flow: Arc<Flow>,
        project: &'a super::project::Project,
        rings: u32,
        mut vars: Vars,
        at: Option<jiff::Timestamp>,
    ) -> Sim<'a> {
        vars.entry("caller".into())
            .or_insert_with(|| "13800138000".into());
        vars.entry("called".into())
            .or_insert_with(|| flow.name.clone());
        vars.entry("call_id".into())
            .or_insert_with(|| "simulated".into());
        Sim::new_at(
            flow,
            &project.catalogue,
            project.catalogue.clone(),
            project.data.as_ref(),
            CallSetup { rings, vars },
            at,
            project.data.calendar(),
        )
    }

    /// The menu keys, handlers and branches the call took so far.
    pub fn take_trace(&mut self) -> Vec<crate::flow::trace::Taken> {
        self.session.take_trace()
    }

    fn push(&mut self, at: Duration, p: Pending) {
        self.seq += 1;
        self.queue.push((at, self.seq, p));
    }

    /// Runs the call to its end. `sink` sees each entry as it happens.
    pub fn run(&mut self, caller: &mut dyn Caller, sink: &mut dyn FnMut(&Entry)) {
        let mut shown = 0;
        // The session answered in `new` and may already be asking the back end.
        let held: Vec<Command> = std::iter::from_fn(|| self.session.poll_command()).collect();
        self.take_ahead(caller);
        self.replay(held);
        loop {
            self.drain_commands();
            // An entry is shown once its time has come: prompts queued after the one
            // playing may yet be cut by a key.
            while shown < self.timeline.len() && self.timeline[shown].at() <= self.now {
                sink(&self.timeline[shown]);
                shown += 1;
            }
            if self.ended {
                break;
            }
            if self.fetch_step(caller) {
                continue;
            }
            if !self.step_once() {
                break;
            }
        }
        for s in caller.leftover() {
            self.timeline.push(Entry::Unused {
                step: s.to_string(),
            });
        }
        for (_, _, p) in std::mem::take(&mut self.queue) {
            if let Pending::CallerStep(s) = p {
                self.timeline.push(Entry::Unused {
                    step: s.to_string(),
                });
            }
        }
        while shown < self.timeline.len() {
            sink(&self.timeline[shown]);
            shown += 1;
        }
    }

    /// The caller is ready to act once the question has been asked and nothing else
    /// (a key still being pressed, a lookup, a pause) is under way.
    fn idle(&self) -> bool {
        self.session.awaiting_input()
            && self.session.listen_epoch() != self.acted_epoch
            && self.now >= self.hold_until
            && !self
                .queue
                .iter()
                .any(|(_, _, p)| matches!(p, Pending::Engine(_)))
    }

    /// Takes the caller's steps that can be taken now: timed steps are queued for their
    /// time, conditions apply at once, and one action is applied if the caller is idle.
    /// Returns true if something was applied.
    fn fetch_step(&mut self, caller: &mut dyn Caller) -> bool {
        self.take_ahead(caller);
        while !self.caller_done && self.idle() {
            match caller.next(self.now) {
                None => self.caller_done = true,
                Some(s) if s.at.is_some() => {
                    let at = s.at.unwrap_or(self.now);
                    self.push(at, Pending::CallerStep(s));
                }
                Some(s) if s.action.is_condition() => self.apply(s),
                Some(s) => {
                    self.apply(s);
                    return true;
                }
            }
        }
        false
    }

    /// Steps that need no question to answer: timed ones are queued, conditions applied.
    fn take_ahead(&mut self, caller: &mut dyn Caller) {
        loop {
            if let Some(s) = caller.take_timed() {
                let at = s.at.unwrap_or(self.now);
                self.push(at, Pending::CallerStep(s));
            } else if let Some(s) = caller.take_condition() {
                self.apply(s);
            } else {
                break;
            }
        }
    }

    /// Advances to the next thing that happens; false when nothing ever will.
    fn step_once(&mut self) -> bool {
        let wake = self
            .session
            .poll_timeout()
            .map(|t| t.duration_since(self.t0));
        let queued = self.queue.iter().map(|(t, _, _)| *t).min();
        let hold = (self.hold_until > self.now).then_some(self.hold_until);
        let Some(next) = [wake, queued, hold].into_iter().flatten().min() else {
            return false;
        };
        if next > SIM_LIMIT {
            return false;
        }
        self.now = self.now.max(next);
        let now_i = self.t0 + self.now;
        // Events due now go first, in the order they were scheduled.
        self.queue.sort_by_key(|(t, s, _)| (*t, *s));
        if let Some(pos) = self.queue.iter().position(|(t, _, _)| *t <= self.now) {
            let (_, _, p) = self.queue.remove(pos);
            match p {
                Pending::Engine(ev) => self.session.handle(ev, now_i),
                Pending::CallerStep(s) => self.apply(s),
            }
            return true;
        }
        if wake.is_some_and(|w| w <= self.now) {
            self.session.handle_timeout(now_i);
        }
        true
    }

    fn apply(&mut self, step: Step) {
        let now = self.now;
        // Speaking or waiting leaves the caller free to act again on the same question
        // (press # after speaking to end a recording); keys and hanging up answer it.
        if matches!(
            step.action,
            Action::Press(_) | Action::Quiet | Action::Noise | Action::Hangup
        ) {
            self.acted_epoch = self.session.listen_epoch();
        }
        self.timeline.push(Entry::Caller {
            at: now,
            step: step.to_string(),
        });
        match step.action {
            Action::Press(keys) => {
                for (i, k) in keys.chars().enumerate() {
                    self.push(now + KEY_GAP * i as u32, Pending::Engine(Event::Dtmf(k)));
                }
            }
            Action::Silence(d) => self.hold_until = now + d,
            Action::Voice(d) => {
                self.push(now, Pending::Engine(Event::VoiceStart));
                self.push(now + d, Pending::Engine(Event::VoiceEnd));
            }
            Action::Quiet => self.push(now, Pending::Engine(Event::TooQuiet)),
            Action::Noise => self.push(now, Pending::Engine(Event::Noise)),
            Action::Hangup => self.push(now, Pending::Engine(Event::Hangup)),
            Action::LookupFails => self.lookup_fails += 1,
            Action::LookupSlow(d) => self.lookup_delay = d,
            Action::TicketFails => self.ticket_fails += 1,
            Action::TransferFails => self.transfer_fails += 1,
        }
    }

    fn replay(&mut self, cmds: Vec<Command>) {
        for cmd in cmds {
            self.command(cmd);
        }
    }

    fn drain_commands(&mut self) {
        while let Some(cmd) = self.session.poll_command() {
            self.command(cmd);
        }
    }

    fn command(&mut self, cmd: Command) {
        {
            let now = self.now;
            match cmd {
                Command::Entered { state } => self.timeline.push(Entry::State {
                    at: now,
                    name: state,
                }),
                Command::Play { id, utterances } => self.play(id, utterances),
                Command::StopPlay => self.stop_play(),
                Command::StartRecording { .. } => {}
                Command::StopRecording { name, keep } => self.timeline.push(Entry::Recording {
                    at: now,
                    name,
                    kept: keep,
                }),
                Command::Lookup { id, source, key } => {
                    let result = if take_one(&mut self.lookup_fails) {
                        LookupResult::Failed("the script says: lookup fails".into())
                    } else {
                        match self.data.lookup(&source, &key) {
                            Answer::Now(r) => r,
                            Answer::Later(_) => LookupResult::Failed(
                                "a simulated call sends nothing to a back end".into(),
                            ),
                        }
                    };
                    let delay = std::mem::take(&mut self.lookup_delay);
                    self.timeline.push(Entry::Lookup {
                        at: now,
                        source,
                        key,
                        result: match &result {
                            LookupResult::Found(_) => "found".into(),
                            LookupResult::NotFound => "not found".into(),
                            LookupResult::Failed(e) => format!("failed: {e}"),
                        },
                    });
                    self.push(
                        now + delay,
                        Pending::Engine(Event::LookupDone { id, result }),
                    );
                }
                Command::FileTicket { id, ticket } => {
                    let result = if take_one(&mut self.ticket_fails) {
                        Err("the script says: ticket fails".to_string())
                    } else {
                        self.tickets += 1;
                        Ok(format!("{}", 10_000_000 + self.tickets))
                    };
                    self.timeline.push(Entry::Ticket {
                        at: now,
                        id: result.clone().ok(),
                        ticket,
                    });
                    self.push(now, Pending::Engine(Event::TicketDone { id, result }));
                }
                Command::Transfer { id, to } => {
                    let ok = !take_one(&mut self.transfer_fails);
                    self.timeline.push(Entry::Transfer { at: now, to });
                    self.push(now, Pending::Engine(Event::TransferDone { id, ok }));
                }
                Command::Hangup => {
                    self.stop_play();
                    self.timeline.push(Entry::Hangup { at: now })
                }
                Command::Ended { outcome } => {
                    self.timeline.push(Entry::End { at: now, outcome });
                    self.ended = true;
                }
            }
        }
    }

    fn play(&mut self, id: u64, utterances: Vec<Utterance>) {
        self.stop_play();
        let mut t = self.now;
        let first_entry = self.timeline.len();
        let mut parts = Vec::new();
        for u in utterances {
            let d = self.cat.duration(&u);
            if u.prompt != "pause" {
                self.timeline.push(Entry::Heard {
                    at: t,
                    end: t + d,
                    prompt: u.prompt.clone(),
                    value: u.value.clone(),
                    text: u.text.clone(),
                    cut: false,
                });
            }
            parts.push((u, t, t + d));
            t += d;
        }
        self.push(t, Pending::Engine(Event::PlayDone { id }));
        self.playing = Some(Playing {
            id,
            parts,
            first_entry,
        });
    }

    /// A prompt stopped early: what had not started is not heard, what had is cut.
    fn stop_play(&mut self) {
        let Some(p) = self.playing.take() else {
            return;
        };
        let now = self.now;
        self.queue.retain(
            |(_, _, e)| !matches!(e, Pending::Engine(Event::PlayDone { id }) if *id == p.id),
        );
        let mut keep = Vec::new();
        let mut idx = p.first_entry;
        for (u, start, end) in &p.parts {
            if u.prompt == "pause" {
                continue;
            }
            if let Some(Entry::Heard { end: e, cut, .. }) = self.timeline.get_mut(idx) {
                if *start < now && *end > now {
                    *e = now;
                    *cut = true;
                }
                keep.push(*start < now || (*start == now && *end == now));
            }
            idx += 1;
        }
        // Remove the not-yet-started prompts, from the back so indices stay valid.
        for (i, k) in keep.iter().enumerate().rev() {
            if !k && p.first_entry + i < self.timeline.len() {
                self.timeline.remove(p.first_entry + i);
            }
        }
    }
}
