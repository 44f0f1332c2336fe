//! A designer edits the flows while hotline serves: a flow that loads goes into service
//! for new calls; a broken one is refused with file:line:col and the flows already
//! serving go on. Real calls (PJSIP over 127.0.0.1) check which flow answered.
mod common;

use common::hotline::{Hotline, prompts};
use common::pjcall::PjCall;
use common::repo_path;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const HELLO: &str = "flow: hello
description: one prompt, then goodbye
start: bye
states:
  bye:
    say: thanks_goodbye
    hangup: 1s
";

/// The same flow with a transition to a state that does not exist (line 7).
const HELLO_BROKEN: &str = "flow: hello
description: one prompt, then goodbye
start: bye
states:
  bye:
    say: thanks_goodbye
    next: nowhere
";

/// The repaired flow says something else, so that a call tells which one served it.
const HELLO_AGAIN: &str = "flow: hello
description: another prompt, then goodbye
start: bye
states:
  bye:
    say: callback_thanks
    hangup: 1s
";

trait Reload {
    fn call(&self, user: &str, n: usize) -> (String, Vec<String>);
    fn generation(&self) -> u64;
    fn wait_generation(&self, g: u64);
}

impl Reload for Hotline {
    /// Calls sip:USER; the flow that ran the n-th call and the prompts it played.
    fn call(&self, user: &str, n: usize) -> (String, Vec<String>) {
        PjCall::new(self.target(user))
            .no_rtp()
            .hangup_after(4.0)
            .max_time(10.0)
            .run();
        let rec = &self.records(n)[n - 1];
        (rec["flow"].as_str().unwrap().to_string(), prompts(rec))
    }

    fn generation(&self) -> u64 {
        let (_, body) = self.http("GET", "/reload");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["generation"].as_u64().unwrap()
    }

    fn wait_generation(&self, g: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.generation() < g {
            assert!(
                Instant::now() < deadline,
                "flows not reloaded to generation {g}\n{}",
                self.server.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The shipped flows, without their tests, in a directory the test may change.
fn copy_flows(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(repo_path("flows")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
    // The shared pieces the flows include.
    std::fs::create_dir_all(to.join("common")).unwrap();
    for e in std::fs::read_dir(repo_path("flows/common")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join("common").join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn an_edited_flow_serves_new_calls_and_a_broken_one_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    copy_flows(&flows);
    let h = Hotline::cmd()
        .flows(&flows)
        .config("reload_poll: 100ms\n")
        .start();
    assert_eq!(h.generation(), 1);

    // No flow is called hello yet: the default flow answers.
    let (flow, _) = h.call("hello", 1);
    assert_eq!(flow, "property");

    // A new flow file is picked up by the watcher, with no signal and no restart.
    std::fs::write(flows.join("hello.yaml"), HELLO).unwrap();
    h.wait_generation(2);
    let (flow, prompts) = h.call("hello", 2);
    assert_eq!(
        (flow.as_str(), prompts),
        ("hello", vec!["thanks_goodbye".into()])
    );

    // A broken edit is refused with its position; hello as it was goes on serving.
    std::fs::write(flows.join("hello.yaml"), HELLO_BROKEN).unwrap();
    let line = h
        .server
        .wait_for_line("hello.yaml:7:11:", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no error naming hello.yaml:7:11\n{}", h.server.output()));
    assert!(line.contains("nowhere"), "{line}");
    assert!(
        h.server
            .wait_for_line("flows already serving go on", Duration::from_secs(5))
            .is_some()
    );
    let (status, body) = h.http("POST", "/reload");
    assert_eq!(status, 422, "{body}");
    let st: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st["generation"], 2, "{body}");
    let errors = st["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e
            .as_str()
            .unwrap()
            .contains("hello.yaml:7:11: there is no state 'nowhere'")),
        "{body}"
    );
    let (_, health) = h.http("GET", "/healthz");
    assert!(health.contains("flows_reload_failing 1"), "{health}");
    let (flow, prompts) = h.call("hello", 3);
    assert_eq!(
        (flow.as_str(), prompts),
        ("hello", vec!["thanks_goodbye".into()])
    );

    // Repaired: the new version serves and the failure is cleared.
    std::fs::write(flows.join("hello.yaml"), HELLO_AGAIN).unwrap();
    h.wait_generation(3);
    let (flow, prompts) = h.call("hello", 4);
    assert_eq!(
        (flow.as_str(), prompts),
        ("hello", vec!["callback_thanks".into()])
    );
    let (_, health) = h.http("GET", "/healthz");
    assert!(
        health.contains("flows_generation 3") && health.contains("flows_reload_failing 0"),
        "{health}"
    );
}

#[test]
fn sighup_reloads_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    copy_flows(&flows);
    // Watching off: only the signal (or POST /reload) loads.
    let h = Hotline::cmd()
        .flows(&flows)
        .config("reload_poll: 0s\n")
        .start();
    std::fs::write(flows.join("hello.yaml"), HELLO).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(h.generation(), 1, "not watching, yet reloaded");
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &h.server.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    h.wait_generation(2);
    let (flow, _) = h.call("hello", 1);
    assert_eq!(flow, "hello");
}
