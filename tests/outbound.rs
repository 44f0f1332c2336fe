//! Outbound calls (issue 10) against real user agents, each on a loopback address of
//! its own: a PJSIP callee who takes the W-CALLBACK survey, SIPp callees that are
//! busy, never answer, answer just as hotline CANCELs, or challenge with a digest; the bad-input table; a calling
//! window that opens and a deadline that lapses (a clock set through the settings);
//! and a `kill -9` while a job is dialing.
//!
//! One hotline serves the callees' tests at once (they do not touch each other's
//! jobs); the window and crash tests have their own.
mod common;

use common::hotline::Hotline;
use common::ports::free_udp_port;
use common::server::{Ready, Server, ServerCmd};
use common::{HttpAnswer, http_send, repo_path};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "outbound-test-token";
const SECRET: &str = "outbound-webhook-secret";

/// The ticket system: records every POST (headers and body) and answers 200.
/// A request's lower-case headers and its body.
type Got = Vec<(Vec<(String, String)>, String)>;

struct Receiver {
    port: u16,
    got: Arc<Mutex<Got>>,
}

impl Receiver {
    fn start() -> Receiver {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let g = g.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().expect("clone"));
                    let mut headers = Vec::new();
                    let mut line = String::new();
                    let _ = r.read_line(&mut line);
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                        }
                    }
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0u8; len];
                    let _ = r.read_exact(&mut body);
                    g.lock()
                        .unwrap()
                        .push((headers, String::from_utf8_lossy(&body).into_owned()));
                    let mut s = s;
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        Receiver { port, got }
    }

    /// Signed bodies received so far, checked against the webhook secret.
    fn bodies(&self) -> Vec<Value> {
        let got = self.got.lock().unwrap().clone();
        got.iter()
            .map(|(h, body)| {
                let get = |n: &str| {
                    h.iter()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let ts = get("x-hotline-timestamp");
                let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                mac.update(format!("{ts}.{body}").as_bytes());
                let want: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                assert_eq!(
                    get("x-hotline-signature"),
                    format!("sha256={want}"),
                    "{body}"
                );
                assert!(!get("idempotency-key").is_empty());
                serde_json::from_str(body).expect("JSON body")
            })
            .collect()
    }
}

fn api(h: &Hotline, method: &str, path: &str, body: &str) -> HttpAnswer {
    let auth = format!("Bearer {TOKEN}");
    http_send(
        h.http,
        method,
        path,
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

fn create(h: &Hotline, body: Value) -> String {
    let a = api(h, "POST", "/outbound", &body.to_string());
    assert_eq!(a.status, 201, "{}\n{}", a.body, h.server.output());
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["status"], "scheduled");
    assert!(v["next_attempt_at"].is_string(), "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn job(h: &Hotline, id: &str) -> Value {
    let a = api(h, "GET", &format!("/outbound/{id}"), "");
    assert_eq!(a.status, 200, "{}", a.body);
    serde_json::from_str(&a.body).unwrap()
}

/// Waits until the job's status is one of `want`.
fn wait_status(h: &Hotline, id: &str, want: &[&str], timeout: Duration) -> Value {
    let end = Instant::now() + timeout;
    loop {
        let j = job(h, id);
        if want.iter().any(|w| j["status"] == *w) {
            return j;
        }
        assert!(
            Instant::now() < end,
            "job {id} still {} after {timeout:?}: {j}\n{}",
            j["status"],
            h.server.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// SIPp as a callee, and the directory its scenario was written to (removed with it,
/// so that a test run leaves nothing behind in /tmp).
struct Uas {
    server: Server,
    _dir: tempfile::TempDir,
}

/// SIPp as a callee on `ip:port`, for `calls` calls; `[$pass]` in the scenario is
/// replaced by `password`.
fn sipp(scenario: &str, ip: &str, port: u16, calls: u32, password: &str) -> Uas {
    common::tools::require_tool("sipp");
    let text = std::fs::read_to_string(repo_path(&format!("tests/callers/{scenario}")))
        .expect("scenario")
        .replace("[$pass]", password);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(scenario);
    std::fs::write(&file, text).expect("scenario written");
    let server = ServerCmd::new("sipp")
        .arg("-sf")
        .arg(&file)
        .args(["-i", ip, "-mi", ip, "-nostdin", "-timeout_error"])
        .args([
            "-p",
            &port.to_string(),
            "-mp",
            &(free_udp_port()).to_string(),
        ])
        .args(["-m", &calls.to_string(), "-timeout", "90s"])
        .current_dir(dir.path())
        .ready(Ready::After(Duration::from_millis(800)))
        .start();
    Uas { server, _dir: dir }
}

fn sipp_done(mut uas: Uas, what: &str) {
    let st = uas.server.wait_exit(Duration::from_secs(30));
    assert!(
        st.is_some_and(|s| s.success()),
        "SIPp ({what}) did not run its scenario through: {st:?}\n{}",
        uas.server.output()
    );
}

fn outcomes(j: &Value) -> Vec<(String, Value)> {
    j["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["outcome"].as_str().unwrap_or("-").to_string(),
                a["sip_code"].clone(),
            )
        })
        .collect()
}

#[test]
fn outbound_calls_to_real_user_agents() {
    let hook = Receiver::start();
    let h = Hotline::cmd()
        .env("HOTLINE_OPS_TOKEN", TOKEN)
        .config(&format!(
            "webhook:\n  url: http://127.0.0.1:{}/hook\n  secret: {SECRET}\n  poll: 200ms\n\
             outbound:\n  window: {{ start: \"00:00\", end: \"24:00\" }}\n  poll: 200ms\n  \
             trunk: {{ username: hotline, password: secret }}\n",
            hook.port
        ))
        .start();
    let h = &h;
    std::thread::scope(|s| {
        s.spawn(|| survey(h, &hook));
        s.spawn(|| busy(h));
        s.spawn(|| answered_by_another_branch(h));
        s.spawn(|| redirected(h));
        s.spawn(|| no_answer(h));
        s.spawn(|| answered_as_we_cancel(h));
        s.spawn(|| answered_twice_by_a_fork(h));
        s.spawn(|| digest(h, "secret", "127.0.0.24"));
        s.spawn(|| digest(h, "not-the-password", "127.0.0.25"));
        s.spawn(|| bad_input(h));
    });
}

/// W-CALLBACK and P-SURVEY with a real PJSIP callee: it answers, hears the call-back
/// intro, presses 1 (convenient) and then 2 (satisfied), and hangs up after thanks.
fn survey(h: &Hotline, hook: &Receiver) {
    let port = free_udp_port();
    let heard = h.dir().join("survey-heard.wav");
    let callee = ServerCmd::new(common::tools::python())
        .arg(common::pjcall::script())
        .args([
            "--answer",
            "--bind",
            "127.0.0.21",
            "--local-port",
            &port.to_string(),
        ])
        .args(["--rtp-port", &free_udp_port().to_string()])
        .args([
            "--dtmf",
            "1@12,2@18",
            "--hangup-after",
            "24",
            "--max-time",
            "60",
        ])
        .arg("--record")
        .arg(&heard)
        .ready(Ready::StderrContains("pjcall: listening".into()))
        .start();
    let id = create(
        h,
        json!({
            "to": format!("sip:13912345678@127.0.0.21:{port}"),
            "flow": "callback",
            "ticket_id": "10000042",
            "idempotency_key": "survey-1",
        }),
    );
    // The same key again is the same job.
    let again = api(
        h,
        "POST",
        "/outbound",
        &json!({"to": "sip:x@127.0.0.99", "flow": "callback", "idempotency_key": "survey-1"})
            .to_string(),
    );
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.body.contains(&id), "{}", again.body);
    let j = wait_status(h, &id, &["completed", "failed"], Duration::from_secs(70));
    let mut callee = callee;
    let _ = callee.wait_exit(Duration::from_secs(10));
    assert_eq!(j["status"], "completed", "{j}\n{}", callee.output());
    let a = &j["attempts"][0];
    assert_eq!(a["outcome"], "answered", "{j}");
    assert_eq!(a["sip_code"], 200);
    for k in ["n", "call_id", "started_at", "answered_at", "ended_at"] {
        assert!(!a[k].is_null(), "attempt lacks {k}: {j}");
    }
    assert_eq!(j["result"]["rating"], "2", "{j}");
    // The call record is the inbound call's: the callback flow's path and prompts.
    let rec = h
        .cli(&["calls", "list", "--json"])
        .into_iter()
        .find(|r| r["call_id"] == a["call_id"])
        .unwrap_or_default();
    let prompts = common::hotline::prompts(&rec);
    assert!(
        prompts.iter().any(|p| p.starts_with("callback_intro"))
            && prompts.iter().any(|p| p.starts_with("survey_question")),
        "{rec}"
    );
    // The ticket system gets the survey ticket and the signed outbound events.
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let bodies = hook.bodies();
        let mine: Vec<&Value> = bodies
            .iter()
            .filter(|b| b["type"] == "outbound" && b["job_id"] == id.as_str())
            .collect();
        let survey_ticket = bodies.iter().any(|b| {
            b["category"] == "survey"
                && b["fields"]["rating"] == "2"
                && b["fields"]["ticket"] == "10000042"
        });
        let final_event = mine.iter().find(|b| b["event"] == "job");
        if let Some(f) =
            final_event.filter(|_| survey_ticket && mine.iter().any(|b| b["event"] == "attempt"))
        {
            assert_eq!(f["status"], "completed");
            assert_eq!(f["result"]["rating"], "2");
            break;
        }
        assert!(Instant::now() < end, "events not delivered: {bodies:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, metrics) = h.http("GET", "/metrics");
    assert!(
        metrics.contains("hotline_survey_ratings_total{flow=\"callback\",rating=\"2\"} 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("survey"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A callee that is busy: retried after retry_after, failed after max_attempts.
fn busy(h: &Hotline) {
    let port = free_udp_port();
    let uas = sipp("sipp_uas_busy.xml", "127.0.0.22", port, 2, "");
    let id = create(
        h,
        json!({"to": format!("sip:busy@127.0.0.22:{port}"), "flow": "callback",
               "max_attempts": 2, "retry_after": "2s"}),
    );
    let j = wait_status(h, &id, &["failed", "completed"], Duration::from_secs(30));
    assert_eq!(j["status"], "failed", "{j}");
    let o = outcomes(&j);
    assert_eq!(
        o,
        vec![("busy".into(), json!(486)), ("busy".into(), json!(486))],
        "{j}"
    );
    let a = j["attempts"].as_array().unwrap();
    let t = |a: &Value, k: &str| {
        a[k].as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond()
    };
    assert!(
        t(&a[1], "started_at") - t(&a[0], "ended_at") >= 1900,
        "retried before retry_after: {j}"
    );
    sipp_done(uas, "busy");
}

/// A SIPp callee on `ip` playing `scenario` to one INVITE of a job with one attempt,
/// which must end busy (486): what came before the 486 was no answer.
fn ends_busy(h: &Hotline, scenario: &str, ip: &str, what: &str) {
    let port = free_udp_port();
    let uas = sipp(scenario, ip, port, 1, "");
    let id = create(
        h,
        json!({"to": format!("sip:callee@{ip}:{port}"), "flow": "callback",
               "max_attempts": 1}),
    );
    let j = wait_status(h, &id, &["failed", "completed"], Duration::from_secs(30));
    assert_eq!(j["status"], "failed", "{what}: {j}");
    assert_eq!(
        outcomes(&j),
        vec![("busy".into(), json!(486))],
        "{what}: {j}"
    );
    sipp_done(uas, what);
}

/// A 200 whose top Via carries a branch hotline never sent, then the callee's 486: the
/// 200 answers none of hotline's transactions (RFC 3261 §17.1.3, matched by branch, not
/// by the CSeq it copies), the 486 ends the attempt as busy.
fn answered_by_another_branch(h: &Hotline) {
    ends_busy(
        h,
        "sipp_uas_forged.xml",
        "127.0.0.29",
        "a 200 of another branch, then busy",
    );
}

/// A 302 with two Contacts: the one with the higher q is tried first (it answers 404),
/// then the other (486): RFC 3261 §8.1.3.4. The attempt ends as busy.
fn redirected(h: &Hotline) {
    ends_busy(
        h,
        "sipp_uas_redirect.xml",
        "127.0.0.30",
        "a redirection to two Contacts",
    );
}

/// Nobody picks up: hotline CANCELs at ring_timeout, SIPp answers 487.
fn no_answer(h: &Hotline) {
    let port = free_udp_port();
    let uas = sipp("sipp_uas_ring.xml", "127.0.0.23", port, 1, "");
    let id = create(
        h,
        json!({"to": format!("sip:nobody@127.0.0.23:{port}"), "flow": "callback",
               "max_attempts": 1, "ring_timeout": "2s"}),
    );
    let j = wait_status(h, &id, &["failed", "completed"], Duration::from_secs(30));
    assert_eq!(j["status"], "failed", "{j}");
    assert_eq!(outcomes(&j), vec![("no-answer".into(), json!(487))], "{j}");
    sipp_done(uas, "no answer");
}

/// The callee picks up as hotline gives up ringing: its 200 crosses the CANCEL, and
/// hotline ACKs it and ends that call with a BYE (RFC 3261 §9.1), which SIPp awaits.
fn answered_as_we_cancel(h: &Hotline) {
    let port = free_udp_port();
    let uas = sipp("sipp_uas_cross.xml", "127.0.0.26", port, 1, "");
    let id = create(
        h,
        json!({"to": format!("sip:late@127.0.0.26:{port}"), "flow": "callback",
               "max_attempts": 1, "ring_timeout": "2s"}),
    );
    let j = wait_status(h, &id, &["failed", "completed"], Duration::from_secs(30));
    assert_eq!(j["status"], "failed", "{j}");
    assert_eq!(outcomes(&j), vec![("no-answer".into(), json!(200))], "{j}");
    sipp_done(uas, "a 200 crossing the CANCEL");
}

/// Two phones behind a forking proxy both answer (RFC 3261 §13.2.2.4): the first 200 is
/// the call, which runs its flow; the second phone's dialog gets its own ACK (its To
/// tag, its Contact) and a BYE, which SIPp checks, instead of the first dialog's ACK
/// again while that phone resent its 200 for 32 s, answered and silent.
fn answered_twice_by_a_fork(h: &Hotline) {
    let port = free_udp_port();
    let uas = sipp("sipp_uas_fork.xml", "127.0.0.27", port, 1, "");
    let id = create(
        h,
        json!({"to": format!("sip:resident@127.0.0.27:{port}"), "flow": "callback",
               "max_attempts": 1}),
    );
    let j = wait_status(h, &id, &["failed", "completed"], Duration::from_secs(60));
    assert_eq!(j["status"], "completed", "{j}");
    assert_eq!(outcomes(&j), vec![("answered".into(), json!(200))], "{j}");
    sipp_done(uas, "a forked INVITE answered twice");
}

/// A trunk that challenges: the right password gets through, a wrong one is rejected.
fn digest(h: &Hotline, password: &str, ip: &str) {
    let port = free_udp_port();
    let uas = sipp("sipp_uas_auth.xml", ip, port, 1, password);
    let id = create(
        h,
        json!({"to": format!("sip:trunk@{ip}:{port}"), "flow": "callback", "max_attempts": 1}),
    );
    let j = wait_status(h, &id, &["failed", "completed"], Duration::from_secs(40));
    if password == "secret" {
        assert_eq!(j["status"], "completed", "{j}");
        assert_eq!(outcomes(&j), vec![("answered".into(), json!(200))], "{j}");
    } else {
        assert_eq!(j["status"], "failed", "{j}");
        assert_eq!(outcomes(&j), vec![("rejected".into(), json!(401))], "{j}");
    }
    sipp_done(uas, "digest");
}

fn bad_input(h: &Hotline) {
    let rows: [(&str, u16); 8] = [
        ("{\"to\": ", 400),
        (r#"{"to": 5, "flow": "callback"}"#, 400),
        (
            r#"{"to": "mailto:someone@example.org", "flow": "callback"}"#,
            422,
        ),
        (r#"{"to": "call me", "flow": "callback"}"#, 422),
        (r#"{"to": "sip:1@127.0.0.99", "flow": "no_such_flow"}"#, 422),
        (
            r#"{"to": "sip:1@127.0.0.99", "flow": "callback", "window": {"start": "21:00", "end": "08:00"}}"#,
            422,
        ),
        (
            r#"{"to": "sip:1@127.0.0.99", "flow": "callback", "not_before": "2026-12-03T10:00:00+08:00", "deadline": "2026-12-03T09:00:00+08:00"}"#,
            422,
        ),
        (
            r#"{"to": "sip:1@127.0.0.99", "flow": "callback", "retry_after": "soon"}"#,
            422,
        ),
    ];
    let before = api(h, "GET", "/outbound", "").body;
    for (body, want) in rows {
        let a = api(h, "POST", "/outbound", body);
        assert_eq!(a.status, want, "{body} -> {}", a.body);
        let v: Value = serde_json::from_str(&a.body).unwrap();
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{}",
            a.body
        );
    }
    // Nothing was stored by a refused body (other tests' jobs may have been added).
    let after: Value = serde_json::from_str(&api(h, "GET", "/outbound", "").body).unwrap();
    assert!(
        !after.to_string().contains("127.0.0.99"),
        "{after} (before: {before})"
    );
    // Without the token: 401, as every state-changing route.
    let a = http_send(h.http, "POST", "/outbound", &[], b"{}");
    assert_eq!(a.status, 401);
    assert_eq!(api(h, "GET", "/outbound/nope", "").status, 404);
    assert_eq!(api(h, "GET", "/outbound?status=bogus", "").status, 400);
}

/// A clock that reads 20:59:50 local at start: a job for 21:00-22:00 waits, then is
/// dialled once the window opens; a job that cannot be made before its deadline
/// expires, loudly.
#[test]
fn windows_and_deadlines() {
    let port = free_udp_port();
    let uas = sipp("sipp_uas_bye.xml", "127.0.0.26", port, 1, "");
    let h = Hotline::cmd()
        .env("HOTLINE_OPS_TOKEN", TOKEN)
        .config("outbound:\n  clock_start: \"2026-12-02T20:59:50+08:00\"\n  poll: 200ms\n")
        .start();
    let id = create(
        &h,
        json!({"to": format!("sip:evening@127.0.0.26:{port}"), "flow": "callback",
               "window": {"start": "21:00", "end": "22:00"}}),
    );
    let j = job(&h, &id);
    assert_eq!(j["next_attempt_at"], "2026-12-02T13:00:00.000Z", "{j}");
    std::thread::sleep(Duration::from_secs(2));
    let j = job(&h, &id);
    assert_eq!(j["status"], "scheduled", "dialled outside its window: {j}");
    assert_eq!(j["attempts"].as_array().unwrap().len(), 0);
    let j = wait_status(&h, &id, &["completed", "failed"], Duration::from_secs(30));
    assert_eq!(outcomes(&j)[0].0, "answered", "{j}");
    let started = j["attempts"][0]["started_at"].as_str().unwrap().to_string();
    assert!(started.as_str() >= "2026-12-02T13:00:00", "{j}");
    sipp_done(uas, "window");

    // Its window opens at 22:00, after its deadline: expired, never dialled.
    let late = create(
        &h,
        json!({"to": "sip:late@127.0.0.27:5999", "flow": "callback",
               "window": {"start": "22:00", "end": "23:00"},
               "deadline": "2026-12-02T21:30:00+08:00"}),
    );
    let j = wait_status(&h, &late, &["expired"], Duration::from_secs(10));
    assert_eq!(j["attempts"].as_array().unwrap().len(), 0, "{j}");
    assert!(j["reason"].as_str().unwrap().contains("deadline"), "{j}");
    assert!(
        h.server
            .wait_for_line("has to go to a person", Duration::from_secs(5))
            .is_some(),
        "{}",
        h.server.output()
    );
}

/// `kill -9` while a job is dialing: after the restart the attempt counts as made
/// (failed), the job is not dialled again at once, and never twice at once.
#[test]
fn a_crash_while_dialing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let uas = sipp("sipp_uas_ring.xml", "127.0.0.28", port, 2, "");
    let config = "outbound:\n  window: { start: \"00:00\", end: \"24:00\" }\n  poll: 200ms\n";
    let mut h = Hotline::cmd()
        .env("HOTLINE_OPS_TOKEN", TOKEN)
        .config(config)
        .dir(dir.path())
        .start();
    let id = create(
        &h,
        json!({"to": format!("sip:crash@127.0.0.28:{port}"), "flow": "callback",
               "max_attempts": 2, "retry_after": "3s", "ring_timeout": "6s"}),
    );
    wait_status(&h, &id, &["dialing"], Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) on the server this test started.
    unsafe { libc::kill(h.server.pid() as i32, libc::SIGKILL) };
    let _ = h.server.wait_exit(Duration::from_secs(5));
    drop(h);
    let h = Hotline::cmd()
        .env("HOTLINE_OPS_TOKEN", TOKEN)
        .config(config)
        .dir(dir.path())
        .start();
    let restarted = Instant::now();
    // The restarted server settles the attempt the crash left open.
    let end = Instant::now() + Duration::from_secs(10);
    let j = loop {
        let j = job(&h, &id);
        if !j["attempts"][0]["outcome"].is_null() || Instant::now() > end {
            break j;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let a = j["attempts"].as_array().unwrap();
    assert_eq!(a[0]["outcome"], "failed", "{j}");
    assert!(!a[0]["ended_at"].is_null(), "{j}");
    assert_eq!(j["status"], "scheduled", "{j}");
    let j = wait_status(&h, &id, &["failed", "completed"], Duration::from_secs(60));
    let a = j["attempts"].as_array().unwrap();
    assert_eq!(a.len(), 2, "{j}");
    assert!(
        restarted.elapsed() >= Duration::from_secs(2),
        "dialled again at once after the restart: {j}"
    );
    assert_eq!(a[1]["outcome"], "no-answer", "{j}");
    assert!(
        a[1]["started_at"].as_str() > a[0]["ended_at"].as_str(),
        "{j}"
    );
    // SIPp's first call was cut off by the crash (no CANCEL ever came): it is only
    // stopped, not judged.
    drop(uas);
}
