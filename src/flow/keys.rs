//! The words of the flow language, in one place: the loader accepts exactly these,
//! and `hotline schema` describes exactly these, so the two cannot drift apart.

pub const TOP: &[(&str, &str)] = &[
    ("flow", "the flow's name; calls to sip:NAME@host run it"),
    ("description", "free text for the designer"),
    ("settings", "timeouts and names; every one has a default"),
    (
        "vars",
        "initial call variables, usable as {name} in prompts and tickets",
    ),
    (
        "categories",
        "the ticket categories this flow may file (default: the standard list)",
    ),
    ("start", "the state a call begins in"),
    (
        "include",
        "shared files (e.g. common/endings.yaml, relative to this file) whose states and on: handlers this flow uses",
    ),
    ("on", "event handlers every state falls back to"),
    ("states", "the states, by name"),
];

pub const SETTINGS: &[(&str, &str)] = &[
    (
        "no_input",
        "silence (no voice, no key) before no_input fires; default 5s (P-SIL)",
    ),
    (
        "inter_digit",
        "longest gap between digits while collecting; default 3s",
    ),
    (
        "ring_period",
        "one ring-back cadence period, for counting rings; default 5s (P-RING)",
    ),
    (
        "ring_apology_after",
        "rings after which the greeting apologises; default 3 (P-RING)",
    ),
    ("answer_after", "delay the answer by this long; default 0s"),
    (
        "wait_after",
        "a lookup slower than this makes the caller wait politely; default 1s (P-WAIT)",
    ),
    (
        "lookup_timeout",
        "a lookup slower than this is a fault; default 10s (P-FAULT)",
    ),
    (
        "wait_prompt",
        "prompt asking the caller to wait; default please_wait (P-WAIT)",
    ),
    (
        "waited_prompt",
        "prompt thanking the caller for waiting; default sorry_to_keep_you (P-WAIT)",
    ),
    (
        "max_call",
        "the call is ended after this long whatever happens; default 30m",
    ),
    ("record_max", "longest recording; default 60s"),
    (
        "record_end_silence",
        "silence that ends a recording; default 3s",
    ),
    (
        "barge_in",
        "a key press interrupts the prompt; default true",
    ),
    (
        "agent_id",
        "the agent id the prompts say (P-GREET, P-ID); default 0001",
    ),
    (
        "hotline",
        "prompt id of the hotline's spoken name (P-GREET)",
    ),
    (
        "timezone",
        "IANA time zone of now.hour, now.date, ... in conditions; default Asia/Shanghai",
    ),
];

pub const STATE: &[(&str, &str)] = &[
    ("description", "free text for the designer"),
    ("set", "variables to set on entering the state"),
    (
        "inc",
        "counters to add 1 to on entering the state (after set): a name, a list, or {name: N}",
    ),
    (
        "ticket",
        "file a ticket on entering the state; failure raises fault",
    ),
    (
        "lookup",
        "look a record up on entering the state; not_found or fault when it fails",
    ),
    ("say", "prompts to play, in order"),
    ("timeout", "overrides settings.no_input for this state"),
    (
        "group",
        "states of one group share their event counts, kept until the call leaves the group",
    ),
    ("on", "event handlers of this state"),
    ("menu", "a key chooses what happens next"),
    ("collect", "collect digits into a variable"),
    ("record", "record the caller's words to a WAV"),
    ("listen", "wait for the caller; only event handlers lead on"),
    (
        "next",
        "the state to go to after the prompts; or a list of {when, goto}",
    ),
    ("hangup", "hang up after this pause of silence"),
    (
        "transfer",
        "blind transfer to this SIP URI; failure raises fault",
    ),
];

/// Exactly one of these ends a state.
pub const ACTIONS: &[&str] = &[
    "menu", "collect", "record", "listen", "next", "hangup", "transfer",
];

pub const HANDLER: &[(&str, &str)] = &[
    ("say", "prompts to play"),
    ("set", "variables to set"),
    (
        "inc",
        "counters to add 1 to (after set): a name, a list, or {name: N}",
    ),
    ("goto", "the state to go to"),
    ("hangup", "hang up after this pause of silence"),
    ("repeat", "replay the state's prompts and listen again"),
];

pub const SAY: &[(&str, &str)] = &[
    (
        "prompt",
        "a prompt id from prompts/catalogue.yaml, or {var} holding one",
    ),
    ("digits", "read digit by digit"),
    (
        "digits_slow",
        "read digit by digit with pauses, for numbers to write down (P-NOTE)",
    ),
    ("number", "read as a Mandarin number"),
    ("money", "read as an amount in yuan and jiao"),
    ("date", "read a date (YYYY-MM-DD or MM-DD)"),
    ("time", "read a time of day (HH:MM)"),
    ("pause", "silence of this length"),
    ("when", "play only if this condition holds"),
];

pub const COLLECT: &[(&str, &str)] = &[
    ("into", "variable that receives the digits"),
    ("min", "fewest digits; default 1"),
    (
        "max",
        "most digits; collection ends when reached; default 20",
    ),
    ("end", "key that ends the input; default #"),
    ("inter_digit", "overrides settings.inter_digit"),
    (
        "pattern",
        "regular expression the digits must match, else no_match",
    ),
    ("next", "state to go to with the digits"),
];

pub const RECORD: &[(&str, &str)] = &[
    (
        "into",
        "name of the recording, listed in a ticket's recordings",
    ),
    ("max", "overrides settings.record_max"),
    ("end_silence", "overrides settings.record_end_silence"),
    ("next", "state to go to when the recording ends"),
];

pub const TICKET: &[(&str, &str)] = &[
    ("category", "one of the flow's categories"),
    ("priority", "emergency, high, normal (default) or low"),
    (
        "due",
        "how soon the request must be handled, e.g. 15m (P-EMERG), 2h (P-CMPL-SLA)",
    ),
    ("department", "the department the ticket goes to (P-DEPT)"),
    ("fields", "the values collected, as templates"),
    (
        "recordings",
        "recordings (record.into names) attached to the ticket",
    ),
];

pub const LOOKUP: &[(&str, &str)] = &[
    ("source", "data source name: accounts, outages, ..."),
    ("key", "template for the key, e.g. \"{account}\""),
    ("into", "prefix for the result's fields: {into.field}"),
];

pub const BRANCH: &[(&str, &str)] = &[
    (
        "when",
        "condition: var, not var, var OP value, var matches \"REGEX\"",
    ),
    ("goto", "state to go to"),
];

pub fn known(table: &[(&str, &str)], key: &str) -> bool {
    table.iter().any(|(k, _)| *k == key)
}

/// The closest known word, for "did you mean" hints on typos.
pub fn suggest(table: &[(&'static str, &str)], key: &str) -> Option<&'static str> {
    table
        .iter()
        .map(|(k, _)| (*k, edit_distance(k, key)))
        .filter(|(_, d)| *d <= 2)
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| k)
}

/// The designer's name closest to a misspelt one: a typo or two, or one a shortening of
/// the other (`greeting` for `greet`).
pub fn closest<'a>(names: impl IntoIterator<Item = &'a str>, key: &str) -> Option<&'a str> {
    names
        .into_iter()
        .filter(|n| *n != key)
        .map(|n| {
            let d = edit_distance(n, key);
            let (short, long) = if n.len() < key.len() {
                (n, key)
            } else {
                (key, n)
            };
            let prefix = short.len() >= 3 && long.starts_with(short);
            (if prefix { d.min(2) } else { d }, n)
        })
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
