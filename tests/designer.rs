//! The designer's commands as a designer runs them: `hotline simulate` and `hotline test`
//! on a small flow of their own, in a folder of their own.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A small flow: a menu, a second menu, a goodbye; P-SIL at the top level.
const FLOW: &str = r#"flow: fixture
start: greet
on:
  no_input:
    1: { say: how_can_i_help, repeat: true }
    2: { say: no_sound_goodbye, hangup: 5s }
states:
  greet:
    say: greeting
    menu: { "1": repair, "2": bye }
  repair:
    say: repair_menu
    menu: { "1": bye, "2": bye }
  bye:
    say: no_sound_goodbye
    hangup: 5s
"#;

/// A designer's folder: `flows/fixture.yaml`, `flows/tests/`, and the repository's
/// prompts and data.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("flows/tests")).unwrap();
        let p = Project { dir };
        p.write("flows/fixture.yaml", FLOW);
        p
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `hotline ARGS` run in the project's folder, with the repository's prompts and data.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hotline"));
        cmd.current_dir(self.dir.path())
            .args(args)
            .arg("--prompts")
            .arg(repo.join("prompts"))
            .arg("--data")
            .arg(repo.join("data"));
        let out = match stdin {
            Some(text) => {
                use std::io::Write;
                cmd.stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                let mut child = cmd.spawn().unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(text.as_bytes())
                    .unwrap();
                child.wait_with_output().unwrap()
            }
            None => cmd.stdin(std::process::Stdio::null()).output().unwrap(),
        };
        Run::from(out)
    }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok: {}\n--- stdout\n{}--- stderr\n{}",
            self.ok, self.stdout, self.stderr
        )
    }
}

// ----- simulate ----------------------------------------------------------------------

#[test]
fn a_bad_step_in_a_script_stops_simulate_naming_the_step_and_its_line() {
    let p = Project::new();
    p.write(
        "call.txt",
        "# a caller\npress 1\npres 1\npress 2\nat 3s: fly\n",
    );
    let r = p.run(
        &["simulate", "flows/fixture.yaml", "--script", "call.txt"],
        None,
    );
    assert!(!r.ok, "{r}");
    assert!(
        r.stderr.contains("call.txt:3: unknown step 'pres 1'"),
        "{r}"
    );
    assert!(
        r.stderr
            .contains("call.txt:5: unknown step 'fly' in 'at 3s: fly'"),
        "{r}"
    );
    // Nothing ran: no silent caller stood in for the script.
    assert!(!r.stdout.contains("call ended"), "{r}");
}

#[test]
fn a_bad_step_from_piped_input_stops_simulate() {
    let p = Project::new();
    let r = p.run(
        &["simulate", "flows/fixture.yaml"],
        Some("press 1\npres 1\npress 2\n"),
    );
    assert!(!r.ok, "{r}");
    assert!(r.stderr.contains("stdin:2: unknown step 'pres 1'"), "{r}");
    assert!(!r.stdout.contains("call ended"), "{r}");
    // Good input still runs to the end and exits 0.
    let r = p.run(&["simulate", "flows/fixture.yaml"], Some("press 2\n"));
    assert!(r.ok, "{r}");
    assert!(r.stdout.contains("call ended: hotline-hung-up"), "{r}");
}

/// The lines of the call's timeline in `simulate`'s output or `test -v`'s.
fn timeline(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('['))
        .map(str::to_string)
        .collect()
}

#[test]
fn at_2s_press_1_barges_in_in_simulate_exactly_as_in_a_flow_test() {
    let p = Project::new();
    let steps = ["at 2s: press 1", "voice 1s", "press 2"];
    p.write("call.txt", &(steps.join("\n") + "\n"));
    let sim = p.run(
        &["simulate", "flows/fixture.yaml", "--script", "call.txt"],
        None,
    );
    assert!(sim.ok, "{sim}");
    let sim_lines = timeline(&sim.stdout);
    assert!(
        sim_lines.contains(&"[00:02.000] caller:  at 2s: press 1".to_string()),
        "{sim}"
    );
    assert!(
        sim_lines.contains(&"[00:02.000]   → repair".to_string()),
        "{sim}"
    );
    p.write(
        "flows/tests/fixture.yaml",
        &format!(
            "flow: ../fixture.yaml\ntests:\n  - name: barge in\n    caller: [{}]\n    expect:\n      - heard: greeting\n      - {{ heard: repair_menu, at: 2s }}\n      - heard: no_sound_goodbye\n      - hangup\n",
            steps.map(|s| format!("\"{s}\"")).join(", ")
        ),
    );
    let test = p.run(&["test", "-v", "flows/tests"], None);
    assert!(test.ok, "{test}");
    assert_eq!(sim_lines, timeline(&test.stdout), "{sim}\n{test}");
}

// ----- test: broken tests, JUnit, coverage, which tests a path means ------------------

/// Three tests of the fixture flow: one passes, one fails, one has a typo (`caler:`).
const MIXED_TESTS: &str = r#"flow: ../fixture.yaml
tests:
  - name: a caller who presses 2 is told goodbye
    caller: [press 2]
    expect:
      - heard: greeting
      - heard: no_sound_goodbye
      - { hangup: hotline, after: 5s }
  - name: a typo in a key
    caler: [press 1]
    expect:
      - heard: greeting
  - name: a test that expects the wrong prompt
    caller: [press 1, press 1]
    expect:
      - heard: greeting
      - heard: how_can_i_help
      - heard: no_sound_goodbye
      - hangup
"#;

#[test]
fn a_typo_in_one_test_breaks_that_test_and_the_others_run() {
    let p = Project::new();
    p.write("flows/tests/fixture.yaml", MIXED_TESTS);
    let r = p.run(&["test", "flows/tests"], None);
    assert!(!r.ok, "{r}");
    assert!(
        r.stdout
            .contains("ok    flows/tests/fixture.yaml: a caller who presses 2 is told goodbye"),
        "{r}"
    );
    assert!(
        r.stdout
            .contains("BROKEN flows/tests/fixture.yaml:9: a typo in a key"),
        "{r}"
    );
    assert!(
        r.stdout.contains(
            "flows/tests/fixture.yaml:10:5: unknown key 'caler' in a test (did you mean 'caller'?)"
        ),
        "{r}"
    );
    assert!(
        r.stdout
            .contains("FAIL  flows/tests/fixture.yaml:13: a test that expects the wrong prompt"),
        "{r}"
    );
    assert!(r.stdout.contains("1 passed, 1 failed, 1 broken"), "{r}");
}

/// An XML element, read back from the report.
#[derive(Debug, Default)]
struct El {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<El>,
    text: String,
}

impl El {
    fn attr(&self, name: &str) -> &str {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("<{}> has no {name}: {self:?}", self.name))
    }
    fn all(&self, name: &str) -> Vec<&El> {
        self.children.iter().filter(|c| c.name == name).collect()
    }
    fn num(&self, name: &str) -> usize {
        self.attr(name).parse().unwrap()
    }
}

/// Parses XML into elements; a document that is not well-formed (a tag left open, a
/// bad escape) fails the test.
fn parse_xml(xml: &str) -> El {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack = vec![El::default()];
    let element = |e: &quick_xml::events::BytesStart| El {
        name: e.name().as_ref().to_string(),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.unwrap();
                (
                    a.key.as_ref().to_string(),
                    a.normalized_value(quick_xml::XmlVersion::Explicit1_0)
                        .unwrap()
                        .into_owned(),
                )
            })
            .collect(),
        ..El::default()
    };
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => stack.push(element(&e)),
            Event::Empty(e) => stack.last_mut().unwrap().children.push(element(&e)),
            Event::End(_) => {
                let done = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(done);
            }
            Event::Text(t) => stack.last_mut().unwrap().text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                let name = r.xml10_content();
                let c = match name.as_ref() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("unknown entity {other}"),
                };
                stack.last_mut().unwrap().text.push_str(c);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    let mut doc = stack.pop().unwrap();
    assert_eq!(doc.children.len(), 1, "one root element");
    doc.children.pop().unwrap()
}

#[test]
fn junit_xml_has_a_suite_per_file_a_case_per_test_failures_and_errors() {
    let p = Project::new();
    p.write("flows/tests/fixture.yaml", MIXED_TESTS);
    p.write(
        "flows/tests/more.yaml",
        "flow: ../fixture.yaml\ntests:\n  - name: silence <& \"quotes\"\n    expect:\n      - heard: greeting\n      - { heard: how_can_i_help, after: 5s }\n      - heard: greeting\n      - { heard: no_sound_goodbye, after: 5s }\n      - { hangup: hotline, after: 5s }\n",
    );
    let r = p.run(&["test", "flows/tests", "--junit", "out/report.xml"], None);
    assert!(!r.ok, "{r}");
    assert!(
        r.stderr.contains("out/report.xml: cannot write"),
        "a missing folder is said: {r}"
    );
    let r = p.run(&["test", "flows/tests", "--junit", "report.xml"], None);
    assert!(!r.ok, "{r}");
    let xml = std::fs::read_to_string(p.path("report.xml")).unwrap();
    let root = parse_xml(&xml);
    assert_eq!(root.name, "testsuites");
    assert_eq!(
        (root.num("tests"), root.num("failures"), root.num("errors")),
        (4, 1, 1),
        "{xml}"
    );
    let suites = root.all("testsuite");
    let names: Vec<&str> = suites.iter().map(|s| s.attr("name")).collect();
    assert_eq!(
        names,
        ["flows/tests/fixture.yaml", "flows/tests/more.yaml"],
        "{xml}"
    );
    let fixture = suites[0];
    assert_eq!(
        (
            fixture.num("tests"),
            fixture.num("failures"),
            fixture.num("errors")
        ),
        (3, 1, 1)
    );
    let cases = fixture.all("testcase");
    let case_names: Vec<&str> = cases.iter().map(|c| c.attr("name")).collect();
    assert_eq!(
        case_names,
        [
            "a caller who presses 2 is told goodbye",
            "a typo in a key",
            "a test that expects the wrong prompt"
        ]
    );
    for c in &cases {
        assert!(c.attr("time").parse::<f64>().unwrap() >= 0.0);
        assert_eq!(c.attr("file"), "flows/tests/fixture.yaml");
    }
    assert!(cases[0].children.is_empty(), "a pass has no children");
    let error = &cases[1].all("error")[0];
    assert!(
        error.attr("message").contains("did you mean 'caller'"),
        "{xml}"
    );
    assert!(
        error.text.contains("flows/tests/fixture.yaml:10:5"),
        "{xml}"
    );
    let failure = &cases[2].all("failure")[0];
    assert!(failure.attr("message").starts_with("line "), "{xml}");
    // The side-by-side diff, as the terminal shows it.
    assert!(failure.text.contains("expected"), "{xml}");
    assert!(failure.text.contains("actual"), "{xml}");
    assert!(failure.text.contains("✗"), "{xml}");
    assert!(failure.text.contains("full timeline:"), "{xml}");
    let more = suites[1].all("testcase");
    assert_eq!(more[0].attr("name"), "silence <& \"quotes\"", "{xml}");
    assert!(suites[1].attr("time").parse::<f64>().unwrap() >= 0.0);
}

const COV_FLOW: &str = r#"flow: cov
start: greet
on:
  no_input:
    1: { say: how_can_i_help, repeat: true }
    2: { say: no_sound_goodbye, hangup: 5s }
states:
  greet:
    say: greeting
    menu: { "1": account, "2": bye }
    on:
      noise: { say: noise_goodbye, hangup: 5s }
  account:
    say: ask_account
    collect: { into: account, min: 6, max: 10, next: route }
    on:
      hangup: { goto: bye }
  route:
    next:
      - { when: "account == 100234", goto: bye }
      - { goto: greet }
  bye:
    say: no_sound_goodbye
    hangup: 5s
"#;

const COV_TESTS: &str = r#"flow: ../cov.yaml
tests:
  - name: a known account is told goodbye
    caller: [press 1, press 100234#]
    expect:
      - heard: greeting
      - heard: ask_account
      - heard: no_sound_goodbye
      - hangup
  - name: a caller who hangs up at the account question
    caller: [press 1, hangup]
    expect:
      - heard: greeting
      - heard: ask_account
    outcome: caller-hung-up
"#;

#[test]
fn coverage_lists_what_no_test_visited_per_flow() {
    let p = Project::new();
    p.write("flows/cov.yaml", COV_FLOW);
    p.write("flows/tests/cov.yaml", COV_TESTS);
    let r = p.run(&["test", "flows/tests/cov.yaml", "--coverage"], None);
    assert!(r.ok, "{r}");
    // 13 points: 4 states, 2 menu keys, greet's noise, account's hangup, the collect's
    // next, 2 branches, 2 no_input handlers at the top.
    assert!(
        r.stdout
            .contains("coverage flows/cov.yaml: 61% (8 of 13 states and transitions visited)"),
        "{r}"
    );
    let missed: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.contains("not visited"))
        .map(str::trim)
        .collect();
    assert_eq!(
        missed,
        [
            "flows/cov.yaml:5:8: not visited: handler no_input 1 of the flow's on: → repeat",
            "flows/cov.yaml:6:8: not visited: handler no_input 2 of the flow's on: → hang up",
            "flows/cov.yaml:10:27: not visited: menu key 2 of state 'greet' → bye",
            "flows/cov.yaml:12:14: not visited: handler noise of state 'greet' → hang up",
            "flows/cov.yaml:21:17: not visited: next branch 2 of state 'route' → greet",
        ],
        "{r}"
    );
    // A second test file for the same flow adds up with the first.
    p.write(
        "flows/tests/cov2.yaml",
        "flow: ../cov.yaml\ntests:\n  - name: silence\n    expect:\n      - heard: greeting\n      - { heard: how_can_i_help, after: 5s }\n      - heard: greeting\n      - { heard: no_sound_goodbye, after: 5s }\n      - { hangup: hotline, after: 5s }\n",
    );
    let r = p.run(&["test", "flows/tests", "--coverage"], None);
    assert!(r.ok, "{r}");
    assert!(
        r.stdout
            .contains("coverage flows/cov.yaml: 76% (10 of 13 states and transitions visited)"),
        "{r}"
    );
    assert!(
        !r.stdout.contains("coverage flows/fixture.yaml"),
        "a flow no test calls is listed only when named: {r}"
    );
    let r = p.run(&["test", "flows", "--coverage"], None);
    assert!(r.ok, "{r}");
    assert!(
        r.stdout
            .contains("coverage flows/fixture.yaml: 0% (0 of 9 states and transitions visited)"),
        "{r}"
    );
}

#[test]
fn test_on_a_flow_or_a_folder_of_flows_runs_the_tests_that_call_them() {
    let p = Project::new();
    p.write("flows/cov.yaml", COV_FLOW);
    p.write("flows/tests/cov.yaml", COV_TESTS);
    p.write(
        "flows/untested.yaml",
        &FLOW.replace("flow: fixture", "flow: untested"),
    );
    // A test file of the fixture flow elsewhere is not one of `flows/`'s.
    std::fs::create_dir_all(p.path("elsewhere")).unwrap();
    p.write(
        "elsewhere/fixture.yaml",
        "flow: ../flows/fixture.yaml\ntests:\n  - name: elsewhere\n    expect: []\n",
    );
    p.write(
        "flows/tests/fixture.yaml",
        "flow: ../fixture.yaml\ntests:\n  - name: two is goodbye\n    caller: [press 2]\n    expect:\n      - heard: greeting\n      - heard: no_sound_goodbye\n      - hangup\n",
    );
    let ran = |r: &Run| -> Vec<String> {
        r.stdout
            .lines()
            .filter(|l| l.starts_with("ok ") || l.starts_with("FAIL") || l.starts_with("BROKEN"))
            .map(str::to_string)
            .collect()
    };
    // The folder of flows, as `hotline check flows` takes it: flow files are not read
    // as test files.
    let r = p.run(&["test", "flows"], None);
    assert!(r.ok, "{r}");
    assert_eq!(
        ran(&r),
        [
            "ok    flows/tests/cov.yaml: a known account is told goodbye",
            "ok    flows/tests/cov.yaml: a caller who hangs up at the account question",
            "ok    flows/tests/fixture.yaml: two is goodbye",
        ],
        "{r}"
    );
    assert!(
        r.stdout
            .contains("note: no test file in flows/tests calls flows/untested.yaml"),
        "{r}"
    );
    assert!(!r.stderr.contains("unknown key"), "{r}");
    // One flow file: only its tests.
    let r = p.run(&["test", "flows/fixture.yaml"], None);
    assert!(r.ok, "{r}");
    assert_eq!(
        ran(&r),
        ["ok    flows/tests/fixture.yaml: two is goodbye"],
        "{r}"
    );
    // Named twice, run once.
    let r = p.run(
        &["test", "./flows/fixture.yaml", "flows/tests/fixture.yaml"],
        None,
    );
    assert_eq!(ran(&r).len(), 1, "{r}");
    // The tests folder, as before.
    let r = p.run(&["test", "flows/tests"], None);
    assert_eq!(ran(&r).len(), 3, "{r}");
    // A flow no test calls: said, and nothing ran, which is not a pass.
    let r = p.run(&["test", "flows/untested.yaml"], None);
    assert!(!r.ok, "{r}");
    assert!(r.stderr.contains("no flow tests found"), "{r}");
}
