//! The flow model: what a loaded, checked flow file means.
use super::diag::Pos;
use super::expr::{Cond, Template};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// The caller-side events a flow can handle, each with a counter per state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// No voice and no key for the state's timeout (P-SIL).
    NoInput,
    /// A key or digits the state does not accept, or speech with no key (P-AGAIN).
    NoMatch,
    /// The caller is audible but too quiet (P-QUIET).
    TooQuiet,
    /// The line is too noisy to understand (P-NOISE).
    Noise,
    /// The caller said something (an utterance ended).
    Voice,
    /// The call ended, whichever side hung up; the handler can only file what is left
    /// to file (its prompts are not played).
    Hangup,
    /// A lookup found nothing.
    NotFound,
    /// A back end failed: lookup, ticket store or transfer (P-FAULT).
    Fault,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::NoInput,
        EventKind::NoMatch,
        EventKind::TooQuiet,
        EventKind::Noise,
        EventKind::Voice,
        EventKind::Hangup,
        EventKind::NotFound,
        EventKind::Fault,
    ];
    pub fn name(self) -> &'static str {
        match self {
            EventKind::NoInput => "no_input",
            EventKind::NoMatch => "no_match",
            EventKind::TooQuiet => "too_quiet",
            EventKind::Noise => "noise",
            EventKind::Voice => "voice",
            EventKind::Hangup => "hangup",
            EventKind::NotFound => "not_found",
            EventKind::Fault => "fault",
        }
    }
    pub fn from_name(s: &str) -> Option<EventKind> {
        Self::ALL.into_iter().find(|e| e.name() == s)
    }
}

#[derive(Clone, Debug)]
pub struct Flow {
    pub name: String,
    pub file: PathBuf,
    pub settings: Settings,
    /// Initial variables: the settings that prompts speak, and the flow's `vars:`.
    pub vars: Vec<(String, String)>,
    pub categories: Vec<String>,
    pub start: usize,
    pub states: Vec<State>,
    pub index: HashMap<String, usize>,
    /// Handlers every state falls back to for events it does not handle itself.
    pub on: Handlers,
}

impl Flow {
    pub fn state(&self, name: &str) -> Option<&State> {
        self.index.get(name).map(|&i| &self.states[i])
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub no_input: Duration,
    pub inter_digit: Duration,
    pub ring_period: Duration,
    pub ring_apology_after: u32,
    pub answer_after: Duration,
    pub wait_after: Duration,
    pub lookup_timeout: Duration,
    pub wait_prompt: String,
    pub waited_prompt: String,
    pub max_call: Duration,
    pub record_max: Duration,
    pub record_end_silence: Duration,
    pub barge_in: bool,
    pub agent_id: String,
    pub hotline: String,
    /// The zone of `now.*` (local time in conditions).
    pub timezone: jiff::tz::TimeZone,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            no_input: Duration::from_secs(5),
            inter_digit: Duration::from_secs(3),
            ring_period: Duration::from_secs(5),
            ring_apology_after: 3,
            answer_after: Duration::ZERO,
            wait_after: Duration::from_secs(1),
            lookup_timeout: Duration::from_secs(10),
            wait_prompt: "please_wait".into(),
            waited_prompt: "sorry_to_keep_you".into(),
            max_call: Duration::from_secs(30 * 60),
            record_max: Duration::from_secs(60),
            record_end_silence: Duration::from_secs(3),
            barge_in: true,
            agent_id: "0001".into(),
            hotline: String::new(),
            timezone: super::clock::default_time_zone(),
        }
    }
}

pub const DEFAULT_CATEGORIES: [&str; 10] = [
    "repair",
    "emergency-repair",
    "complaint",
    "inquiry",
    "suggestion",
    "help",
    "warranty",
    "outage-investigation",
    "callback-request",
    "survey",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Emergency,
    High,
    Normal,
    Low,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Emergency,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Priority::Emergency => "emergency",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
    pub fn from_name(s: &str) -> Option<Priority> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }
}

#[derive(Clone, Debug)]
pub struct State {
    pub name: String,
    pub pos: Pos,
    pub set: Vec<(String, Template)>,
    /// Counters to add to on entering (after `set`): `inc: tries`.
    pub inc: Vec<(String, i64)>,
    pub ticket: Option<TicketSpec>,
    pub lookup: Option<LookupSpec>,
    pub say: Vec<SayItem>,
    pub action: Action,
    /// Overrides the flow's `no_input` for this state.
    pub timeout: Option<Duration>,
    /// States of one group share their event counters (a VoiceXML form): the counts
    /// start again only when the call enters a state of another group. Without
    /// `group:` a state is a group of its own.
    pub group: Option<String>,
    pub on: Handlers,
}

impl State {
    /// Whether moving from `self` to `other` keeps the event counts.
    pub fn same_group(&self, other: &State) -> bool {
        match (&self.group, &other.group) {
            (Some(a), Some(b)) => a == b,
            _ => self.name == other.name,
        }
    }
}

/// What a state does once its prompts have been said.
#[derive(Clone, Debug)]
pub enum Action {
    /// One key chooses what happens next.
    Menu(Vec<MenuKey>),
    Collect(CollectSpec),
    Record(RecordSpec),
    /// Wait for the caller; only event handlers lead on (P-LINGER).
    Listen,
    Next(Vec<Branch>),
    /// Hang up after a pause of silence (P-SIL's 5 s).
    Hangup(Duration),
    /// Blind transfer to a SIP URI; a failed transfer raises `fault`.
    Transfer(Template),
}

impl Action {
    pub fn listens(&self) -> bool {
        matches!(
            self,
            Action::Menu(_) | Action::Collect(_) | Action::Record(_) | Action::Listen
        )
    }
}

#[derive(Clone, Debug)]
pub struct MenuKey {
    pub key: char,
    pub pos: Pos,
    pub handler: Handler,
}

#[derive(Clone, Debug)]
pub struct CollectSpec {
    pub into: String,
    pub min: usize,
    pub max: usize,
    pub end: Option<char>,
    pub inter_digit: Option<Duration>,
    pub pattern: Option<regex::Regex>,
    pub next: Target,
}

#[derive(Clone, Debug)]
pub struct RecordSpec {
    pub into: String,
    pub max: Option<Duration>,
    pub end_silence: Option<Duration>,
    pub next: Target,
}

#[derive(Clone, Debug)]
pub struct Branch {
    pub when: Option<Cond>,
    pub goto: Target,
}

/// A state name as written, with where it was written, resolved after loading.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub struct TicketSpec {
    pub pos: Pos,
    pub category: String,
    pub priority: Priority,
    pub due: Option<Duration>,
    pub department: Option<String>,
    pub fields: Vec<(String, Template)>,
    pub recordings: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct LookupSpec {
    pub pos: Pos,
    pub source: String,
    pub key: Template,
    pub into: String,
}

#[derive(Clone, Debug)]
pub enum SayItem {
    Prompt {
        id: String,
        pos: Pos,
        when: Option<Cond>,
    },
    Spoken {
        kind: SpokenKind,
        value: Template,
        pos: Pos,
        when: Option<Cond>,
    },
    Pause(Duration),
}

/// Values spoken from recorded fragments, as Asterisk's `SayNumber` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpokenKind {
    /// One digit at a time, for account and ticket numbers.
    Digits,
    /// Digits with a pause between them, for long numbers the caller writes down (P-NOTE).
    DigitsSlow,
    Number,
    Money,
    Date,
    Time,
    /// The value is itself a prompt id (an area, a reason, a surname).
    Prompt,
}

impl SpokenKind {
    pub const ALL: [SpokenKind; 7] = [
        SpokenKind::Digits,
        SpokenKind::DigitsSlow,
        SpokenKind::Number,
        SpokenKind::Money,
        SpokenKind::Date,
        SpokenKind::Time,
        SpokenKind::Prompt,
    ];
    pub fn name(self) -> &'static str {
        match self {
            SpokenKind::Digits => "digits",
            SpokenKind::DigitsSlow => "digits_slow",
            SpokenKind::Number => "number",
            SpokenKind::Money => "money",
            SpokenKind::Date => "date",
            SpokenKind::Time => "time",
            SpokenKind::Prompt => "prompt",
        }
    }
    pub fn from_name(s: &str) -> Option<SpokenKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// What an event (or a menu key) does: say something, then go on.
#[derive(Clone, Debug, Default)]
pub struct Handler {
    pub pos: Pos,
    pub say: Vec<SayItem>,
    pub set: Vec<(String, Template)>,
    /// Counters to add to (after `set`).
    pub inc: Vec<(String, i64)>,
    pub then: Then,
}

#[derive(Clone, Debug, Default)]
pub enum Then {
    /// Stay in the state and listen again without replaying its prompts.
    #[default]
    Listen,
    /// Replay the state's prompts, then listen.
    Repeat,
    Goto(Target),
    Hangup(Duration),
}

/// Handlers by event; each event has handlers by count, VoiceXML style: the handler
/// with the highest count not above the event's counter runs.
#[derive(Clone, Debug, Default)]
pub struct Handlers {
    pub by_event: Vec<(EventKind, Vec<(u32, Handler)>)>,
}

impl Handlers {
    pub fn get(&self, ev: EventKind) -> Option<&[(u32, Handler)]> {
        self.by_event
            .iter()
            .find(|(e, _)| *e == ev)
            .map(|(_, v)| v.as_slice())
    }
    pub fn pick(&self, ev: EventKind, count: u32) -> Option<&Handler> {
        self.get(ev)?
            .iter()
            .filter(|(n, _)| *n <= count)
            .max_by_key(|(n, _)| *n)
            .map(|(_, h)| h)
    }
    pub fn all(&self) -> impl Iterator<Item = (EventKind, u32, &Handler)> {
        self.by_event
            .iter()
            .flat_map(|(e, v)| v.iter().map(move |(n, h)| (*e, *n, h)))
    }
}
