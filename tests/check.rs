//! `hotline check` on broken flows: every error, each at its line and column, and never a
//! panic, whatever the file holds.
use hotline::designer::project::Project;
use hotline::flow::{self, Diagnostic};
use std::path::Path;

fn check_text(text: &str) -> Vec<Diagnostic> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, text).unwrap();
    let (p, errors) = Project::load(Path::new("prompts"), Path::new("data"));
    assert!(errors.is_empty());
    match flow::load_flow(&path, Some(&p.catalogue), Some(&p.sources)) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

/// Asserts an error at `line` whose message contains `needle`.
fn has(errors: &[Diagnostic], line: u32, needle: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.pos.line == line && e.message.contains(needle)),
        "no error at line {line} containing {needle:?}; got:\n{}",
        errors.iter().map(|e| format!("{e}\n")).collect::<String>()
    );
}

const MANY_ERRORS: &str = r#"flow: broken
settings:
  no_input: 5             # 3: no unit
  agentid: "1"            # 4: typo
start: greet
on:
  no_input: { say: how_can_i_help, hangup: 5s }
  silence: { hangup: 1s }                        # 8: no such event
states:
  greet:
    say: [greeting, no_such_prompt]              # 11: prompt missing
    menu:
      "1": repair
      1: elsewhere                               # 14: key used twice
      "2": nowhere                               # 15: no such state
      "3": trap
  repair:
    say: repair_menu
    collect: { into: x, pattern: "[0-9", next: greet }   # 19: bad pattern
  orphan:                                        # 20: never reached
    say: greeting
    next: orphan
  trap:                                          # 23: no way out
    listen: true
    on:
      no_input: { goto: trap }
  ticketing:
    ticket: { category: plumbing, priority: urgent }     # 28: bad category, bad priority
    next: greet
    goto: greet                                          # 30: not a state key
"#;

#[test]
fn every_error_is_reported_with_its_position() {
    let e = check_text(MANY_ERRORS);
    has(&e, 3, "duration with a unit");
    has(
        &e,
        4,
        "unknown key 'agentid' in settings (did you mean 'agent_id'?)",
    );
    has(&e, 8, "unknown event 'silence'");
    has(&e, 11, "prompt 'no_such_prompt' is not in");
    has(&e, 14, "used twice");
    has(&e, 15, "there is no state 'nowhere'");
    has(&e, 19, "not a valid regular expression");
    has(&e, 20, "never reached");
    has(&e, 23, "no way out");
    has(&e, 28, "priority 'urgent'");
    has(&e, 30, "unknown key 'goto' in state 'ticketing'");
    let shown = e[0].to_string();
    assert!(shown.contains("broken.yaml:"), "{shown}");
    assert!(e.len() >= 11, "{e:?}");
}

#[test]
fn yaml_syntax_errors_point_at_the_spot() {
    let e = check_text("flow: x\nstates:\n  a: [1, 2\n  b: 3\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].pos.line, 4);
}

#[test]
fn a_state_that_ends_nowhere_is_refused() {
    let e = check_text("flow: x\nstart: a\nstates:\n  a:\n    say: greeting\n");
    has(&e, 4, "says what to do next nowhere");
}

#[test]
fn listening_without_a_silence_handler_is_refused() {
    let e =
        check_text("flow: x\nstart: a\nstates:\n  a:\n    menu: { 1: b }\n  b:\n    hangup: 0s\n");
    has(&e, 4, "nothing handles no_input");
}

#[test]
fn a_yaml_bomb_is_refused() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let p = i - 1;
        bomb += &format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        );
    }
    let e = check_text(&bomb);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].message.contains("budget") || e[0].message.contains("alias"),
        "{e:?}"
    );
}

#[test]
fn oversized_and_binary_files_are_refused() {
    let big = format!("flow: x\n#{}\n", "x".repeat(2 * 1024 * 1024));
    let e = check_text(&big);
    assert!(e[0].message.contains("over the limit"), "{e:?}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bin.yaml");
    std::fs::write(&path, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let e = flow::load_flow(&path, None, None).unwrap_err();
    assert!(e[0].message.contains("UTF-8"), "{e:?}");
}

#[test]
fn prompts_catalogue_problems_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalogue.yaml");
    std::fs::write(
        &cat,
        "prompts:\n  hello: { text: 你好, file: hello.wav }\n  bad: { text: '{x}好', file: bad.wav }\n  odd: { text: 好, file: ../odd.wav, colour: red }\n",
    )
    .unwrap();
    let mut d = flow::Diags::new(&cat);
    let text = std::fs::read_to_string(&cat).unwrap();
    let c = flow::Catalogue::parse(&text, &cat, dir.path(), &mut d).unwrap();
    let e = d.into_sorted();
    has(&e, 3, "say how {x} is spoken");
    has(&e, 4, "unknown key 'colour'");
    has(&e, 4, "must be a NAME.wav");
    assert!(
        e.iter()
            .any(|x| x.message.contains("fragment prompt 'num_0'"))
    );
    let files = c.check_files();
    assert!(
        files[0].message.contains("hello.wav is missing"),
        "{files:?}"
    );
    // A WAV of the wrong format, then one whose text changed after it was recorded.
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(dir.path().join("hello.wav"), spec).unwrap();
    w.write_sample(0i16).unwrap();
    w.write_sample(0i16).unwrap();
    w.finalize().unwrap();
    let c = flow::Catalogue::parse(&text, &cat, dir.path(), &mut flow::Diags::new(&cat)).unwrap();
    assert!(
        c.check_files()[0].message.contains("must be 8000 Hz"),
        "{:?}",
        c.check_files()
    );
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        ..spec
    };
    let mut w = hound::WavWriter::create(dir.path().join("hello.wav"), spec).unwrap();
    for _ in 0..800 {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
    std::fs::write(dir.path().join("stamps.tsv"), "hello\tdeadbeef\n").unwrap();
    let c = flow::Catalogue::parse(&text, &cat, dir.path(), &mut flow::Diags::new(&cat)).unwrap();
    assert!(
        c.check_files()[0].message.contains("older than its text"),
        "{:?}",
        c.check_files()
    );
    let stamp = hotline::flow::catalogue::text_hash("你好");
    std::fs::write(dir.path().join("stamps.tsv"), format!("hello\t{stamp}\n")).unwrap();
    let c = flow::Catalogue::parse(&text, &cat, dir.path(), &mut flow::Diags::new(&cat)).unwrap();
    assert!(
        c.check_files()
            .iter()
            .all(|d| !d.message.contains("'hello'")),
        "{:?}",
        c.check_files()
    );
}

/// The designer's silent failures: counts that can never be reached, a silent caller
/// asked forever, and variables that nothing sets.
const SILENT_FAILURES: &str = r#"flow: quiet
start: ask
on:
  no_input:
    1: { say: how_can_i_help }
    2: { say: no_sound_goodbye, hangup: 5s }
  no_match: { say: key_not_recognised }
  fault: { hangup: 0s }
states:
  ask:
    say: ask_account
    collect: { into: account, min: 6, max: 10, next: find }
  find:
    lookup: { source: accounts, key: "{acount}", into: acct }
    next: tell
    on:
      not_found:
        1: { say: account_not_found, goto: ask }
        3: { goto: bye }
  tell:
    set: { amount: "{acct.amount}", month: "{mnth}" }
    say: bill_amount
    menu: { "1": bye }
    on:
      no_input:
        1: { repeat: true }
      hangup:
        2: { goto: bye }
  bye:
    say: thanks_goodbye
    next:
      - { when: "callr == 1", goto: bye2 }
      - { goto: bye2 }
  bye2:
    hangup: 0s
"#;

#[test]
fn counts_that_cannot_be_reached_and_unset_variables_are_reported() {
    let e = check_text(SILENT_FAILURES);
    has(&e, 19, "'not_found 3:' can never run in state 'find'");
    has(&e, 19, "common `group:`");
    has(&e, 14, "{acount} is used in 'find' but nothing sets it");
    has(&e, 14, "did you mean 'account'?");
    has(&e, 20, "{mnth} is used in 'tell' but nothing sets it");
    has(
        &e,
        26,
        "a silent caller in state 'tell' is asked again forever",
    );
    has(&e, 28, "'hangup: 2:' can never run");
    has(&e, 32, "{callr} is used in 'bye'");
    has(&e, 32, "did you mean 'caller'?");
}

#[test]
fn a_group_makes_the_count_reachable_and_a_set_variable_is_known() {
    let fixed = SILENT_FAILURES
        .replace("  ask:\n", "  ask:\n    group: bill\n")
        .replace("  find:\n", "  find:\n    group: bill\n")
        .replace("{acount}", "{account}")
        .replace("{mnth}", "{acct.month}")
        .replace(
            "        1: { repeat: true }\n",
            "        1: { repeat: true }\n        2: { hangup: 0s }\n",
        )
        .replace("        2: { goto: bye }\n", "        1: { goto: bye }\n")
        .replace("callr == 1", "caller == 1");
    let e = check_text(&fixed);
    assert!(
        e.is_empty(),
        "{}",
        e.iter().map(|e| format!("{e}\n")).collect::<String>()
    );
}

#[test]
fn a_key_written_twice_is_reported_with_the_other_errors() {
    let e = check_text(
        "flow: x\nstart: a\non:\n  no_input: { hangup: 0s }\nstates:\n  a:\n    say: greeting\n    menu:\n      \"1\": b\n      \"1\": b\n      \"2\": nowhere\n  b:\n    hangup: 0s\n",
    );
    has(
        &e,
        10,
        "'1' is used twice in this mapping (first at line 9)",
    );
    has(&e, 11, "there is no state 'nowhere'");
}

#[test]
fn a_misspelt_start_gets_a_suggestion_and_a_tab_is_named_plainly() {
    let e = check_text(
        "flow: x\nstart: greeting\non:\n  no_input: { hangup: 0s }\nstates:\n  greet:\n    hangup: 0s\n",
    );
    has(
        &e,
        2,
        "start state 'greeting' does not exist (did you mean 'greet'?)",
    );
    let e = check_text("flow: x\nstart: a\nstates:\n  a:\n\tsay: greeting\n");
    has(&e, 5, "a tab is used for indentation here");
    assert!(!e[0].message.contains("line 5"), "{}", e[0].message);
}

/// A mistake in a shared piece is reported at the piece's own file and line; the flow's
/// own handler for an event replaces the piece's.
#[test]
fn an_included_file_is_checked_at_its_own_lines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("common")).unwrap();
    std::fs::write(
        dir.path().join("common/end.yaml"),
        "on:\n  no_input:\n    1: { say: how_can_i_help }\n    2: { hangup: 5s }\n  fault: { goto: nowhere }\nstates:\n  bye:\n    say: thanks_goodbye\n    hangup: 0s\n  extra:\n    sayy: greeting\n    hangup: 0s\n",
    )
    .unwrap();
    let flow = dir.path().join("f.yaml");
    std::fs::write(
        &flow,
        "flow: f\nstart: a\ninclude: [common/end.yaml]\non:\n  fault: { hangup: 0s }\nstates:\n  a:\n    say: greeting\n    menu: { \"1\": bye }\n",
    )
    .unwrap();
    let (p, _) = Project::load(Path::new("prompts"), Path::new("data"));
    let e = flow::load_flow(&flow, Some(&p.catalogue), Some(&p.sources)).unwrap_err();
    let shown: Vec<String> = e.iter().map(|d| d.to_string()).collect();
    let piece = dir.path().join("common/end.yaml");
    let at = |line: u32, needle: &str| {
        assert!(
            e.iter()
                .any(|d| d.file == piece && d.pos.line == line && d.message.contains(needle)),
            "no {needle:?} at {}:{line}; got {shown:#?}",
            piece.display()
        )
    };
    at(11, "unknown key 'sayy'");
    at(10, "state 'extra' is never reached");
    // The flow's own fault handler replaced the piece's goto nowhere.
    assert!(!shown.iter().any(|s| s.contains("nowhere")), "{shown:#?}");
    // A piece that cannot be read is said once, not as every state it would have held.
    std::fs::write(
        &flow,
        "flow: f\nstart: a\ninclude: [common/missing.yaml]\nstates:\n  a:\n    say: greeting\n    menu: { \"1\": bye }\n",
    )
    .unwrap();
    let e = flow::load_flow(&flow, Some(&p.catalogue), Some(&p.sources)).unwrap_err();
    has(&e, 3, "include 'common/missing.yaml'");
    assert_eq!(e.len(), 1, "{e:?}");
}

#[test]
fn a_misspelt_lookup_field_is_reported_with_the_fields_the_source_has() {
    let e = check_text(
        "flow: x\nstart: a\non:\n  fault: { hangup: 0s }\n  not_found: { hangup: 0s }\nstates:\n  a:\n    lookup: { source: accounts, key: \"100234\", into: acct }\n    set: { amount: \"{acct.amont}\", month: \"{acct.month}\" }\n    say: bill_amount\n    hangup: 0s\n",
    );
    has(&e, 7, "{acct.amont} is used in 'a' but nothing sets it");
    has(&e, 7, "did you mean 'acct.amount'?");
    assert_eq!(e.len(), 1, "{e:?}");
}

#[test]
fn a_shared_piece_checked_alone_is_said_to_be_one() {
    let e = check_text("states:\n  bye:\n    say: thanks_goodbye\n    hangup: 0s\n");
    has(&e, 1, "this is a shared piece");
    assert_eq!(e.len(), 1, "{e:?}");
}
