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
