//! The flow language's finer points, on small flows: digit collection, recordings,
//! speech without keys, counted handlers, P-WAIT timing.
use hotline::designer::project::Project;
use hotline::designer::script::Step;
use hotline::designer::sim::{CallSetup, Entry, Sim};
use hotline::flow::{self, Flow};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

fn project() -> &'static Project {
    static P: OnceLock<Project> = OnceLock::new();
    P.get_or_init(|| Project::load(Path::new("prompts"), Path::new("data")).0)
}

fn flow(states: &str) -> Arc<Flow> {
    let text = format!(
        "flow: t\nstart: a\non:\n  no_input:\n    1: {{ say: how_can_i_help }}\n    2: {{ hangup: 0s }}\n  no_match: {{ say: key_not_recognised }}\n  fault: {{ hangup: 0s }}\nstates:\n{states}  done:\n    say: thanks_goodbye\n    hangup: 0s\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, text).unwrap();
    let p = project();
    Arc::new(
        flow::load_flow(&path, Some(&p.catalogue), Some(&p.sources)).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter().map(|d| d.to_string() + "\n").collect::<String>()
            )
        }),
    )
}

/// (what, seconds) of every prompt heard, ticket and hang-up; vars at the end.
fn call(f: Arc<Flow>, steps: &[&str]) -> (Vec<(String, f64)>, Vec<Entry>) {
    let p = project();
    let mut sim = Sim::new(
        f,
        &p.catalogue,
        p.catalogue.clone(),
        p.data.as_ref(),
        CallSetup {
            rings: 0,
            vars: Default::default(),
        },
    );
    let mut caller: VecDeque<Step> = steps.iter().map(|s| Step::parse(s).unwrap()).collect();
    sim.run(&mut caller, &mut |_| {});
    let seen = sim
        .timeline
        .iter()
        .filter_map(|e| match e {
            Entry::Heard { prompt, at, .. } => Some((prompt.clone(), at.as_secs_f64())),
            Entry::Ticket { ticket, at, .. } => Some((
                format!(
                    "ticket {}",
                    ticket
                        .fields
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                at.as_secs_f64(),
            )),
            Entry::Hangup { at } => Some(("hangup".into(), at.as_secs_f64())),
            _ => None,
        })
        .collect();
    (seen, sim.timeline)
}

fn names(seen: &[(String, f64)]) -> Vec<&str> {
    seen.iter().map(|(n, _)| n.as_str()).collect()
}

const COLLECT: &str = "  a:\n    collect: { into: n, min: 3, max: 5, pattern: \"1[0-9]*\", next: b }\n  b:\n    ticket: { category: inquiry, fields: { n: \"{n}\" } }\n    next: done\n";

#[test]
fn digits_end_on_hash_on_max_length_or_after_the_inter_digit_gap() {
    let (s, _) = call(flow(COLLECT), &["press 12#"]);
    assert_eq!(names(&s)[0], "key_not_recognised", "too short: {s:?}");
    let (s, _) = call(flow(COLLECT), &["press 123#"]);
    assert_eq!(names(&s)[0], "ticket n=123");
    let (s, _) = call(flow(COLLECT), &["press 1234567"]);
    assert_eq!(names(&s)[0], "ticket n=12345", "stops at max: {s:?}");
    // Three digits then nothing: the 3 s inter-digit gap completes the input.
    let (s, _) = call(flow(COLLECT), &["press 123"]);
    assert_eq!(names(&s)[0], "ticket n=123");
    let t = s[0].1;
    assert!((t - (0.5 + 3.0)).abs() < 0.01, "completed at {t}");
    let (s, _) = call(flow(COLLECT), &["press 999#"]);
    assert_eq!(names(&s)[0], "key_not_recognised", "pattern: {s:?}");
}

const RECORD: &str = "  a:\n    say: say_address\n    record: { into: addr, max: 10s, end_silence: 2s, next: b }\n  b:\n    ticket: { category: repair, recordings: [addr] }\n    next: done\n";

#[test]
fn a_recording_ends_on_silence_on_hash_or_at_its_maximum() {
    let (s, tl) = call(flow(RECORD), &["voice 3s"]);
    let said = s.iter().find(|(n, _)| n == "say_address").unwrap().1;
    let ticket = s.iter().find(|(n, _)| n.starts_with("ticket")).unwrap().1;
    let say_len = s[1].1 - said; // the ticket comes right after the recording
    let _ = say_len;
    assert!(
        tl.iter()
            .any(|e| matches!(e, Entry::Recording { kept: true, .. }))
    );
    let (s2, _) = call(flow(RECORD), &["voice 3s", "press #"]);
    let t2 = s2.iter().find(|(n, _)| n.starts_with("ticket")).unwrap().1;
    assert!(
        (ticket - t2 - 2.0).abs() < 0.01,
        "silence ends 2 s after # would: {ticket} vs {t2}"
    );
    let (s3, _) = call(flow(RECORD), &["voice 30s"]);
    let t3 = s3.iter().find(|(n, _)| n.starts_with("ticket")).unwrap().1;
    assert!((t3 - t2 - 7.0).abs() < 0.01, "10 s maximum: {t3} vs {t2}");
}

#[test]
fn a_recording_nobody_speaks_into_is_no_input_and_is_discarded() {
    let (s, tl) = call(flow(RECORD), &[]);
    assert_eq!(names(&s), ["say_address", "how_can_i_help", "hangup"]);
    assert!(
        tl.iter()
            .all(|e| !matches!(e, Entry::Recording { kept: true, .. }))
    );
}

const MENU: &str = "  a:\n    say: main_menu\n    menu: { 1: done }\n";

#[test]
fn speech_without_a_key_is_no_match_after_the_silence() {
    let (s, _) = call(flow(MENU), &["voice 2s"]);
    assert_eq!(names(&s)[..2], ["main_menu", "key_not_recognised"]);
    let menu_end = s[1].1; // key_not_recognised starts when no_match fires
    let (s0, _) = call(flow(MENU), &[]);
    // A silent caller gets no_input 5 s after the menu; the speaker 2 s + 5 s after.
    assert!(
        (menu_end - (s0[1].1 + 2.0)).abs() < 0.01,
        "{menu_end} vs {}",
        s0[1].1
    );
}

#[test]
fn counted_handlers_pick_the_highest_count_reached() {
    let text = "  a:\n    say: main_menu\n    menu: { 1: done }\n    on:\n      no_match:\n        1: { say: key_not_recognised }\n        3: { say: out_of_scope, hangup: 0s }\n";
    let (s, _) = call(flow(text), &["press 9", "press 9", "press 9"]);
    assert_eq!(
        names(&s),
        [
            "main_menu",
            "key_not_recognised",
            "key_not_recognised",
            "out_of_scope",
            "hangup"
        ]
    );
}

#[test]
fn a_slow_lookup_is_waited_for_politely_and_a_fast_one_is_not() {
    let text = "  a:\n    lookup: { source: accounts, key: \"100234\", into: acct }\n    next: done\n    on:\n      not_found: { goto: done }\n      fault: { goto: done }\n";
    let (s, _) = call(flow(text), &[]);
    assert_eq!(names(&s), ["thanks_goodbye", "hangup"]);
    let (s, _) = call(flow(text), &["lookup slow 3s"]);
    assert_eq!(
        names(&s),
        [
            "please_wait",
            "sorry_to_keep_you",
            "thanks_goodbye",
            "hangup"
        ]
    );
    assert!(
        (s[0].1 - 1.0).abs() < 0.01,
        "asked to wait after 1 s: {s:?}"
    );
    let (s, _) = call(flow(text), &["lookup slow 30s"]);
    assert_eq!(
        names(&s),
        ["please_wait", "thanks_goodbye", "hangup"],
        "timed out at 10 s"
    );
    assert!((s[1].1 - 10.0).abs() < 0.01, "{s:?}");
    let _ = Duration::ZERO;
}

/// Two states that loop into each other: without a group each entry starts the count
/// again and `3:` never fires; in one group the third wrong key leaves the loop.
#[test]
fn a_group_keeps_its_counts_across_states_and_leaving_it_starts_them_again() {
    let looped = |group: &str| {
        format!(
            "  a:\n{group}    say: main_menu\n    menu: {{ \"1\": done }}\n    on:\n      no_match:\n        1: {{ say: key_not_recognised, goto: b }}\n        3: {{ goto: c }}\n  b:\n{group}    next: a\n  c:\n    say: out_of_scope\n    menu: {{ \"1\": a }}\n"
        )
    };
    // Without the group `3:` could never run, and `check` refuses the flow for it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(
        &path,
        format!(
            "flow: t\nstart: a\non:\n  no_input: {{ hangup: 0s }}\nstates:\n{}  done:\n    hangup: 0s\n",
            looped("")
        ),
    )
    .unwrap();
    let e =
        flow::load_flow(&path, Some(&project().catalogue), Some(&project().sources)).unwrap_err();
    assert!(
        e.iter()
            .any(|d| d.message.contains("'no_match 3:' can never run")),
        "{e:?}"
    );
    let (s, _) = call(
        flow(&looped("    group: g\n")),
        &[
            "press 9", "press 9", "press 9", "press 1", "press 9", "hangup",
        ],
    );
    assert_eq!(
        names(&s),
        [
            "main_menu",
            "key_not_recognised",
            "main_menu",
            "key_not_recognised",
            "main_menu",
            "out_of_scope",
            // c is outside the group: back in a, the count starts again
            "main_menu",
            "key_not_recognised",
            "main_menu",
        ]
    );
}

/// `on: hangup` runs whoever ends the call: the caller, hotline after P-SIL, or max_call.
#[test]
fn a_hangup_handler_files_what_is_left_whoever_hangs_up() {
    let text = "  a:\n    say: say_address\n    record: { into: address, next: done }\n    on:\n      hangup: { goto: kept }\n  kept:\n    say: thanks_goodbye\n    ticket: { category: emergency-repair, priority: emergency, fields: { caller: \"{caller}\" }, recordings: [address] }\n    hangup: 0s\n";
    // hotline hangs up on a silent caller, then files
    let (s, tl) = call(flow(text), &[]);
    assert_eq!(
        names(&s),
        ["say_address", "how_can_i_help", "hangup", "ticket caller=",]
    );
    let outcome = tl.iter().find_map(|e| match e {
        Entry::End { outcome, .. } => Some(outcome.clone()),
        _ => None,
    });
    assert_eq!(outcome, Some(flow::Outcome::HotlineHungUp));
    // the caller hangs up mid-sentence: the recording goes with the ticket
    let (_, tl) = call(flow(text), &["voice 3s", "hangup"]);
    let rec = tl.iter().find_map(|e| match e {
        Entry::Ticket { ticket, .. } => Some(ticket.recordings.clone()),
        _ => None,
    });
    assert_eq!(rec, Some(vec!["address".to_string()]));
    // the caller hangs up before saying anything: no recording to attach
    let (_, tl) = call(flow(text), &["at 1s: hangup"]);
    let rec = tl.iter().find_map(|e| match e {
        Entry::Ticket { ticket, .. } => Some(ticket.recordings.clone()),
        _ => None,
    });
    assert_eq!(rec, Some(vec![]));
    assert!(
        !tl.iter()
            .any(|e| matches!(e, Entry::Heard { prompt, .. } if prompt == "thanks_goodbye")),
        "nobody hears the prompts of a state entered after the hang-up"
    );
}
