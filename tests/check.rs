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
