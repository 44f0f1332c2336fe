//! A caller put through to a person, with real user agents on both sides (issue 10's
//! transfer test). A PJSIP caller dials a flow that transfers it; hotline sends REFER;
//! the caller's phone calls the agent, a second PJSIP user agent that answers; hotline
//! hears the NOTIFY's 200, ends its own leg, and the call record says `transferred` to
//! that agent. When the agent is busy (a SIPp callee answering 486), the NOTIFY says so,
//! the flow's `fault` branch apologises, and the caller is not left in silence.
mod common;

use common::hotline::{Hotline, prompts};
use common::pjcall::PjCall;
use common::ports::free_udp_port;
use common::repo_path;
use common::server::{Ready, ServerCmd};
use common::wav::talk_spurts;
use std::path::Path;
use std::time::Duration;

/// A flow that puts the caller through to `agent` at once.
fn transfer_flow(name: &str, agent: &str) -> String {
    format!(
        "flow: {name}\n\
         description: straight to a person (tests/transfer.rs)\n\
         vars:\n  agent: {agent}\n\
         start: to_agent\n\
         states:\n\
         \x20 to_agent:\n\
         \x20   say: transferring\n\
         \x20   transfer: \"{{agent}}\"\n\
         \x20   on:\n\
         \x20     fault: {{ say: transfer_failed, goto: end_call }}\n\
         \x20 end_call:\n\
         \x20   hangup: 0s\n"
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

#[test]
fn a_caller_is_put_through_to_an_agent_or_hears_why_not() {
    let flows = tempfile::tempdir().expect("temp dir");
    copy_dir(&repo_path("flows"), flows.path());
    let agent_port = free_udp_port();
    let agent_uri = format!("sip:agent@127.0.0.32:{agent_port}");
    let busy_port = free_udp_port();
    let busy_uri = format!("sip:agent@127.0.0.33:{busy_port}");
    std::fs::write(
        flows.path().join("xfer.yaml"),
        transfer_flow("xfer", &agent_uri),
    )
    .expect("flow written");
    std::fs::write(
        flows.path().join("xfer_busy.yaml"),
        transfer_flow("xfer_busy", &busy_uri),
    )
    .expect("flow written");
    let h = Hotline::cmd().flows(flows.path()).start();
    let h = &h;
    std::thread::scope(|s| {
        s.spawn(|| put_through(h, agent_port, &agent_uri));
        s.spawn(|| agent_busy(h, busy_port, &busy_uri));
    });
}

/// The agent answers: the caller ends up talking to the agent, hotline's leg ends.
fn put_through(h: &Hotline, agent_port: u16, agent_uri: &str) {
    let heard = h.dir().join("agent-heard.wav");
    let mut agent = ServerCmd::new(common::tools::python())
        .arg(common::pjcall::script())
        .args(["--answer", "--bind", "127.0.0.32"])
        .args(["--local-port", &agent_port.to_string()])
        .args(["--rtp-port", &free_udp_port().to_string()])
        .args([
            "--answer-after",
            "0.3",
            "--hangup-after",
            "4",
            "--max-time",
            "40",
        ])
        .arg("--record")
        .arg(&heard)
        .ready(Ready::StderrContains("pjcall: listening".into()))
        .start();
    let out = PjCall::new(h.target("xfer"))
        .play(common::audio::fixture("speech.wav"))
        .follow_refer()
        .max_time(40.0)
        .run();
    let st = agent.wait_exit(Duration::from_secs(20));
    let rep = out.assert_ok();
    let why = format!("{rep:?}\nagent:\n{}", agent.output());
    assert!(st.is_some_and(|s| s.success()), "agent: {st:?}\n{why}");
    assert_eq!(
        rep.refer_to.as_deref().map(|r| r.contains(agent_uri)),
        Some(true),
        "{why}"
    );
    let confirmed = rep.transfer_confirmed_at.expect("the agent answered");
    // hotline lets go of the caller only once the transfer is known to have worked
    // (RFC 3515: the NOTIFY's sipfrag 200), and before the agent's call ends.
    let released = rep.disconnected_at.expect("hotline's leg ended");
    assert!(rep.remote_hangup, "hotline sent the BYE: {why}");
    assert!(
        released >= confirmed,
        "BYE before the agent answered: {why}"
    );
    let ended = rep
        .transfer_disconnected_at
        .expect("the agent's call ended");
    assert!(released < ended, "{why}");
    assert!(rep.transfer_remote_hangup, "the agent hung up: {why}");
    // The agent heard the caller: the media runs between the two of them now.
    let spoke: f64 = talk_spurts(&heard).iter().map(|s| s.end - s.start).sum();
    assert!(
        spoke > 1.0,
        "the agent heard {spoke:.2} s of the caller: {why}"
    );

    let rec = record_of(h, rep.call_id.as_deref().unwrap_or_default());
    assert_eq!(rec["outcome"], "transferred", "{rec}");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(agent_uri),
        "{rec}"
    );
    assert!(prompts(&rec).iter().any(|p| p == "transferring"), "{rec}");
}

/// The agent is busy: the caller hears that nobody can be reached, then hotline ends
/// the call; the record says hotline hung up, not that it transferred.
fn agent_busy(h: &Hotline, port: u16, busy_uri: &str) {
    common::tools::require_tool("sipp");
    let scenario = repo_path("tests/callers/sipp_uas_busy.xml");
    let mut sipp = ServerCmd::new("sipp")
        .arg("-sf")
        .arg(&scenario)
        .args(["-i", "127.0.0.33", "-mi", "127.0.0.33", "-nostdin"])
        .args(["-p", &port.to_string(), "-mp", &free_udp_port().to_string()])
        .args(["-m", "1", "-timeout", "60s"])
        .current_dir(std::env::temp_dir())
        .ready(Ready::After(Duration::from_millis(800)))
        .start();
    let out = PjCall::new(h.target("xfer_busy"))
        .follow_refer()
        .max_time(40.0)
        .run();
    let st = sipp.wait_exit(Duration::from_secs(20));
    let rep = out.assert_ok();
    let why = format!("{rep:?}\nSIPp:\n{}", sipp.output());
    assert!(st.is_some_and(|s| s.success()), "SIPp: {st:?}\n{why}");
    assert_eq!(
        rep.refer_to.as_deref().map(|r| r.contains(busy_uri)),
        Some(true),
        "{why}"
    );
    assert_eq!(rep.transfer_status, Some(486), "{why}");
    assert!(rep.transfer_confirmed_at.is_none(), "{why}");
    assert!(rep.remote_hangup, "hotline ended the call: {why}");

    let rec = record_of(h, rep.call_id.as_deref().unwrap_or_default());
    assert_ne!(rec["outcome"], "transferred", "{rec}");
    let heard = prompts(&rec);
    let failed_at = heard.iter().position(|p| p == "transfer_failed");
    assert!(
        failed_at.is_some_and(|i| heard[..i].iter().any(|p| p == "transferring")),
        "{rec}"
    );
}

/// The record of the call with this Call-ID, once written.
fn record_of(h: &Hotline, call_id: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = h
            .cli(&["calls", "list", "--json"])
            .into_iter()
            .find(|r| r["call_id"] == call_id)
        {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no record of {call_id}\n{}",
            h.server.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
