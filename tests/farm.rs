//! A farm (issue 12): Kamailio (`deploy/kamailio/`, run by its `run.sh`) on 127.0.0.1
//! in front of hotline instances on 127.0.0.2, .3 and .4, each with its own data
//! directory and one shared lookups directory, dialled by real PJSIP callers and
//! SIPp through the proxy. Three farms, each test one: the main one (spread, hang-ups
//! both ways, shared outages, ticket identity, a killed instance and its restart), a
//! drain, and a full farm. Kamailio comes from `tests/callers/INSTALL.sh`.
mod common;

#[path = "tickets/receiver.rs"]
mod receiver;

use common::hotline::{Hotline, prompts};
use common::pjcall::{CallOutcome, PjCall};
use common::ports::{free_tcp_port, free_udp_port};
use common::server::{Ready, Server, ServerCmd};
use common::tools::{require_tool, run_with_timeout};
use common::{HttpAnswer, http_send, repo_path};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const TOKEN: &str = "farm-token";
const IPS: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];

/// A copy of a repository directory, so that a test may write into it.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The repository's flows, and `intake`: a call that files a ticket as soon as it is
/// answered and hangs up, so that SIPp (which presses no keys) files one.
fn flows(dir: &Path) -> PathBuf {
    let flows = dir.join("flows");
    copy_dir(&repo_path("flows"), &flows);
    std::fs::write(
        flows.join("intake.yaml"),
        "flow: intake
description: files a repair ticket at once (tests/farm.rs)
start: file
states:
  file:
    ticket:
      category: repair
      fields: { caller: \"{caller}\" }
    next: bye
    on: { fault: { goto: bye } }
  bye:
    say: thanks_goodbye
    hangup: 1s
",
    )
    .unwrap();
    flows
}

/// One SIPp call to `intake` on `h` whose INVITE carries `call_id`, From's tag
/// `farm-same-invite` and the Via branch `branch`; it waits for hotline's BYE.
fn same_invite(h: &Hotline, call_id: &str, branch: &str) {
    let mut cmd = std::process::Command::new("sipp");
    cmd.arg("-sf")
        .arg(repo_path("tests/callers/sipp_uac_same_invite.xml"))
        .args(["-s", "intake", &format!("{}:{}", h.ip, h.sip)])
        .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &free_udp_port().to_string()])
        .args(["-m", "1", "-cid_str", call_id])
        .args(["-key", "invite_branch", branch])
        .args(["-nostdin", "-timeout", "20s", "-timeout_error"])
        .current_dir(std::env::temp_dir());
    let f = run_with_timeout(&mut cmd, Duration::from_secs(30));
    assert!(
        f.success(),
        "sipp to {}:{}: {}{}",
        h.ip,
        h.sip,
        f.stdout,
        f.stderr
    );
}

/// One farm: the shared lookups and flows, and each instance's directory and ports.
struct Farm {
    dir: tempfile::TempDir,
    instances: Vec<Option<Hotline>>,
    ports: Vec<(u16, u16)>,
    extra_config: String,
    args: Vec<String>,
    kamailio: Option<Server>,
    proxy_port: u16,
}

impl Farm {
    fn start(n: usize, config: &str, args: &[&str]) -> Farm {
        require_tool("kamailio");
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo_path("data"), &dir.path().join("lookups"));
        flows(dir.path());
        let mut farm = Farm {
            dir,
            instances: Vec::new(),
            ports: (0..n).map(|_| (free_udp_port(), free_tcp_port())).collect(),
            extra_config: config.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            kamailio: None,
            proxy_port: free_udp_port(),
        };
        // The instances start side by side: each loads its flows and prompts.
        let started: Vec<Hotline> = thread::scope(|s| {
            let farm = &farm;
            let hs: Vec<_> = (0..n).map(|i| s.spawn(move || farm.instance(i))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        farm.instances = started.into_iter().map(Some).collect();
        farm.start_kamailio();
        farm
    }

    fn instance(&self, i: usize) -> Hotline {
        let (sip, http) = self.ports[i];
        let own = self.dir.path().join(format!("instance-{}", i + 1));
        std::fs::create_dir_all(&own).unwrap();
        let mut cmd = Hotline::cmd()
            .dir(&own)
            .ip(IPS[i])
            .ports(sip, http)
            .flows(self.dir.path().join("flows"))
            .lookups(self.dir.path().join("lookups"))
            .env("HOTLINE_OPS_TOKEN", TOKEN)
            .config(&self.extra_config);
        for a in &self.args {
            cmd = cmd.arg(a.clone());
        }
        cmd.start()
    }

    fn start_kamailio(&mut self) {
        let list = self.dir.path().join("dispatcher.list");
        let lines: String = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, (sip, _))| format!("1 sip:{}:{sip} 8 0\n", IPS[i]))
            .collect();
        std::fs::write(&list, lines).unwrap();
        let k = ServerCmd::new("bash")
            .arg(repo_path("deploy/kamailio/run.sh"))
            .args(["--listen", &format!("udp:127.0.0.1:{}", self.proxy_port)])
            .arg("--list")
            .arg(&list)
            .arg("--rundir")
            .arg(self.dir.path().join("kamailio"))
            .ready(Ready::UdpBound(self.proxy_port))
            .timeout(Duration::from_secs(20))
            .start();
        self.kamailio = Some(k);
        // Every instance answers its first probe (one a second) before calls come.
        thread::sleep(Duration::from_millis(2500));
    }

    fn h(&self, i: usize) -> &Hotline {
        self.instances[i].as_ref().expect("instance running")
    }

    fn target(&self, user: &str) -> String {
        format!("sip:{user}@127.0.0.1:{}", self.proxy_port)
    }

    fn kamailio_lines(&self, needle: &str) -> usize {
        self.kamailio.as_ref().map_or(0, |k| {
            k.output().lines().filter(|l| l.contains(needle)).count()
        })
    }

    /// The instances (by index) whose records hold this call.
    fn answered_by(&self, call_id: &str) -> Vec<usize> {
        (0..self.instances.len())
            .filter(|&i| {
                self.instances[i]
                    .as_ref()
                    .is_some_and(|h| record(h, call_id).is_some())
            })
            .collect()
    }

    /// Waits until each call's record is written somewhere; where each one is.
    fn placed(&self, call_ids: &[String]) -> Vec<usize> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let at: Vec<Vec<usize>> = call_ids.iter().map(|c| self.answered_by(c)).collect();
            if at.iter().all(|a| !a.is_empty()) {
                for (c, a) in call_ids.iter().zip(&at) {
                    assert_eq!(a.len(), 1, "{c} recorded at instances {a:?}");
                }
                return at.into_iter().map(|a| a[0]).collect();
            }
            assert!(Instant::now() < deadline, "records missing: {at:?}");
            thread::sleep(Duration::from_millis(300));
        }
    }

    fn post(&self, i: usize, path: &str, body: &str) -> HttpAnswer {
        http_send(
            self.h(i).http,
            "POST",
            path,
            &[
                ("Authorization", &format!("Bearer {TOKEN}")),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    }
}

fn record(h: &Hotline, call_id: &str) -> Option<Value> {
    h.cli(&["calls", "list", "--json"])
        .into_iter()
        .find(|r| r["call_id"] == call_id)
}

/// A figure from `/metrics` without labels (0 when absent).
fn metric(h: &Hotline, name: &str) -> f64 {
    let (_, body) = h.http("GET", "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn call_id(o: &CallOutcome) -> String {
    o.report()
        .call_id
        .clone()
        .unwrap_or_else(|| panic!("no Call-ID\n{}", o.context()))
}

/// `n` short calls to the property line through the proxy, `at_once` at a time; the
/// caller hangs up each one.
fn short_calls(farm: &Farm, n: usize, at_once: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut left = n;
    while left > 0 {
        let batch: Vec<_> = (0..left.min(at_once))
            .map(|k| {
                thread::sleep(Duration::from_millis(if k == 0 { 0 } else { 150 }));
                PjCall::new(farm.target("property"))
                    .no_rtp()
                    .hangup_after(1.5)
                    .max_time(20.0)
                    .spawn()
            })
            .collect();
        for c in batch {
            let o = c.join().unwrap();
            let r = o.assert_ok();
            assert!(!r.remote_hangup, "the caller hung up\n{}", o.context());
            ids.push(call_id(&o));
        }
        left -= left.min(at_once);
    }
    ids
}

/// Spread, hang-ups both ways, a shared outage, ticket identity, then a killed
/// instance: new calls go to the others, it comes back and delivers what it had
/// pending.
#[test]
fn a_farm_spreads_calls_survives_a_killed_instance_and_shares_outages_and_ticket_keys() {
    require_tool("sipp");
    // Tickets stay pending until the ticket system comes up (after the kill).
    let hook_port = receiver::unused_port();
    let config = format!(
        "webhook:\n  url: http://127.0.0.1:{hook_port}/hook\n  secret: farm\n  retry_initial: 500ms\n  retry_max: 1s\n"
    );
    let mut farm = Farm::start(3, &config, &[]);

    // A shared outage, published on instance 2: callers of every instance hear it.
    let a = farm.post(
        1,
        "/outages",
        r#"{"area": "4", "reason": "reason_burst", "until": "23:30"}"#,
    );
    assert_eq!(a.status, 201, "{a:?}");
    let seconds = serde_json::from_str::<Value>(&a.body).unwrap()["seconds"]
        .as_f64()
        .unwrap();
    // The others read the shared lookups within their reload poll (1 s).
    thread::sleep(Duration::from_secs(2));

    // A silent caller: hotline hangs up (P-SIL), its BYE crosses the proxy.
    let silent = PjCall::new(farm.target("property"))
        .no_rtp()
        .max_time(60.0)
        .spawn();
    // Three water callers from area 4 at once: round robin gives each instance one.
    let outage_callers: Vec<_> = (0..3)
        .map(|k| {
            // Spaced, and before the spread's calls, so that round robin is not
            // interleaved with them.
            thread::sleep(Duration::from_millis(if k == 0 { 300 } else { 400 }));
            PjCall::new(farm.target("water"))
                .dtmf("2@2,4@6,#@6.5")
                .hangup_after(9.0 + seconds)
                .max_time(60.0)
                .spawn()
        })
        .collect();

    thread::sleep(Duration::from_millis(1500));
    // Spread: 30 calls, each hung up by the caller, answered 10 ± 2 per instance.
    let spread = short_calls(&farm, 30, 5);
    let at = farm.placed(&spread);
    let per: Vec<usize> = (0..3)
        .map(|i| at.iter().filter(|&&a| a == i).count())
        .collect();
    assert!(
        per.iter().all(|&n| (8..=12).contains(&n)),
        "30 calls answered {per:?}"
    );
    for (c, &i) in spread.iter().zip(&at).take(3) {
        let r = record(farm.h(i), c).unwrap();
        assert_eq!(r["outcome"], "caller-hung-up", "{r}");
    }

    let silent = silent.join().unwrap();
    let r = silent.report();
    assert!(
        r.remote_hangup,
        "hotline's BYE reached the caller\n{}",
        silent.context()
    );
    let sid = call_id(&silent);
    let s_at = farm.placed(std::slice::from_ref(&sid))[0];
    let s_rec = record(farm.h(s_at), &sid).unwrap();
    assert_eq!(s_rec["outcome"], "hotline-hung-up", "{s_rec}");

    let mut outage_at = Vec::new();
    for c in outage_callers {
        let o = c.join().unwrap();
        o.assert_ok();
        let id = call_id(&o);
        let i = farm.placed(std::slice::from_ref(&id))[0];
        let p = prompts(&record(farm.h(i), &id).unwrap());
        assert!(
            p.iter().any(|s| s == "outage_known"),
            "instance {} did not tell of the outage: {p:?}",
            i + 1
        );
        outage_at.push(i);
    }
    assert!(
        outage_at.contains(&2),
        "no outage caller reached instance 3: {outage_at:?}"
    );

    // Ticket identity: the same INVITE (Call-ID, From tag, the caller's Via branch)
    // delivered to instances 1 and 3, as a slow instance's failover would, files
    // tickets with one key.
    for i in [0, 2] {
        same_invite(
            farm.h(i),
            "farm-same-invite-1@127.0.0.1",
            "z9hG4bK-farm-same-invite-1",
        );
    }
    let key_of = |i: usize| -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let t = farm.h(i).tickets();
            if let Some(t) = t
                .iter()
                .find(|t| t["call_id"] == "farm-same-invite-1@127.0.0.1")
            {
                return t["idempotency_key"].as_str().unwrap().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no ticket at instance {}: {t:?}",
                i + 1
            );
            thread::sleep(Duration::from_millis(200));
        }
    };
    let key = key_of(0);
    assert_eq!(key, key_of(2), "the same call filed under two keys");

    // kill -9 instance 3 during calls.
    let long: Vec<_> = (0..3)
        .map(|_| {
            thread::sleep(Duration::from_millis(150));
            PjCall::new(farm.target("property"))
                .no_rtp()
                .hangup_after(6.0)
                .max_time(20.0)
                .spawn()
        })
        .collect();
    thread::sleep(Duration::from_secs(2));
    let killed = farm.instances[2].take().unwrap();
    let pid = killed.server.pid();
    // SAFETY: kill(2) on the instance this test started.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    let killed_at = Instant::now();
    // At once: a call sent to the dead instance is failed over; every one is answered.
    let first = short_calls(&farm, 3, 3);
    // After 3 s the proxy sends nothing more to it.
    thread::sleep(Duration::from_secs(3).saturating_sub(killed_at.elapsed()));
    let timeouts_before = farm.kamailio_lines("did not answer");
    let later = short_calls(&farm, 4, 2);
    assert_eq!(
        farm.kamailio_lines("did not answer"),
        timeouts_before,
        "a call went to the killed instance 3 s after the kill\n{}",
        farm.kamailio.as_ref().unwrap().output()
    );
    let all: Vec<String> = first.iter().chain(&later).cloned().collect();
    let at = farm.placed(&all);
    assert!(at.iter().all(|&i| i < 2), "{at:?}");
    for c in long {
        c.join().unwrap();
    }
    drop(killed);

    // The ticket system comes up; instance 3 restarts on its own data, is back in
    // rotation within 3 s, and delivers the ticket it had pending.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rx = rt.block_on(receiver::Receiver::start(
        hook_port,
        Arc::new(|_: &receiver::Req, _| receiver::Reply::status(200)),
    ));
    farm.instances[2] = Some(farm.instance(2));
    thread::sleep(Duration::from_secs(3));
    let back = short_calls(&farm, 3, 3);
    let at = farm.placed(&back);
    assert!(at.contains(&2), "instance 3 not back in rotation: {at:?}");
    let got = rt.block_on(rx.wait_for(2, Duration::from_secs(20)));
    let same: Vec<_> = got.iter().filter(|r| r.key() == key).collect();
    assert_eq!(
        same.len(),
        2,
        "instances 1 and 3 each deliver the ticket under one key: {:?}",
        got.iter().map(|r| r.key()).collect::<Vec<_>>()
    );
    let t3 = farm.h(2).tickets();
    assert_eq!(t3.len(), 1, "{t3:?}");
    assert_eq!(t3[0]["delivery"], "delivered", "{t3:?}");
}

/// A drained instance gets no new calls, finishes its call, and exits 0; the other is
/// drained by SIGUSR1.
#[test]
fn a_drained_instance_finishes_its_call_and_exits() {
    let mut farm = Farm::start(2, "", &["--exit-when-drained"]);
    let call = PjCall::new(farm.target("property"))
        .no_rtp()
        .hangup_after(8.0)
        .max_time(30.0)
        .spawn();
    // Which instance answered it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let busy = loop {
        let found = (0..2).find(|&i| metric(farm.h(i), "hotline_calls_active") == 1.0);
        if let Some(i) = found {
            break i;
        }
        assert!(Instant::now() < deadline, "the call was not answered");
        thread::sleep(Duration::from_millis(200));
    };
    // The operator's way: `hotline drain`, then `hotline drain --wait` until it is over.
    let url = format!("http://127.0.0.1:{}", farm.h(busy).http);
    let drain = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"));
        c.arg("drain")
            .args(args)
            .args(["--server", &url])
            .env("HOTLINE_OPS_TOKEN", TOKEN);
        c
    };
    let a = drain(&["--json"]).output().expect("hotline drain runs");
    assert!(a.status.success(), "{a:?}");
    let v: Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(v["draining"], true, "{v}");
    let waiter = drain(&["--wait"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hotline drain --wait runs");
    let status = http_send(
        farm.h(busy).http,
        "GET",
        "/status",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        b"",
    );
    let s: Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(s["farm"]["draining"], true, "{s}");
    assert_eq!(s["farm"]["calls_left"], 1, "{s}");
    assert_eq!(metric(farm.h(busy), "hotline_draining"), 1.0);
    // Within a probe the proxy stops sending it calls; every new call is answered.
    thread::sleep(Duration::from_millis(1500));
    let ids = short_calls(&farm, 4, 2);
    let other = 1 - busy;
    assert!(farm.placed(&ids).iter().all(|&i| i == other));

    let o = call.join().unwrap();
    let r = o.assert_ok();
    assert!(!r.remote_hangup, "the drain cut the call\n{}", o.context());
    assert!(r.duration().unwrap() > 7.0, "{r:?}");
    let h = farm.instances[busy].as_mut().unwrap();
    let st = h.server.wait_exit(Duration::from_secs(10));
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", h.server.output());
    let w = waiter
        .wait_with_output()
        .expect("hotline drain --wait ends");
    let said = String::from_utf8_lossy(&w.stdout);
    assert!(w.status.success(), "{w:?}");
    assert!(said.contains(": 1 calls left"), "{said}");
    let last = said.lines().last().unwrap_or_default();
    assert!(
        last.contains(": 0 calls left") || last.contains("server is gone"),
        "{said}"
    );

    // SIGUSR1 drains the other one; with no call it exits at once.
    let h = farm.instances[other].as_mut().unwrap();
    // SAFETY: kill(2) on the instance this test started.
    unsafe {
        libc::kill(h.server.pid() as libc::pid_t, libc::SIGUSR1);
    }
    let st = h.server.wait_exit(Duration::from_secs(10));
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", h.server.output());
}

/// With one line each and every line busy, a 4th caller waits ringing and, answered
/// after three rings, hears the apology (P-RING) as on one machine.
#[test]
fn a_full_farm_queues_the_next_caller_and_apologises() {
    let farm = Farm::start(3, "", &["--max-calls", "1"]);
    let busy: Vec<_> = (0..3)
        .map(|_| {
            thread::sleep(Duration::from_millis(300));
            PjCall::new(farm.target("property"))
                .no_rtp()
                .hangup_after(13.0)
                .max_time(30.0)
                .spawn()
        })
        .collect();
    thread::sleep(Duration::from_secs(1));
    let fourth = PjCall::new(farm.target("property"))
        .no_rtp()
        .hangup_after(2.0)
        .max_time(45.0)
        .run();
    fourth.assert_ok();
    let ids: Vec<String> = busy
        .into_iter()
        .map(|c| call_id(&c.join().unwrap().assert_ok_owned()))
        .collect();
    let at = farm.placed(&ids);
    let mut sorted = at.clone();
    sorted.sort();
    assert_eq!(sorted, [0, 1, 2], "one call per instance: {at:?}");
    let id4 = call_id(&fourth);
    let i = farm.placed(std::slice::from_ref(&id4))[0];
    let rec = record(farm.h(i), &id4).unwrap();
    assert!(rec["rings"].as_u64().unwrap() >= 3, "{rec}");
    let p = prompts(&rec);
    assert_eq!(
        p.first().map(String::as_str),
        Some("busy_greeting"),
        "{p:?}"
    );
    // It went round the farm, refused at once by each full instance, before queueing.
    let refused: f64 = (0..3)
        .map(|i| metric(farm.h(i), "hotline_farm_refused_full_total"))
        .sum();
    assert!(refused >= 3.0, "full instances refused {refused} INVITEs");
}

trait Owned {
    fn assert_ok_owned(self) -> CallOutcome;
}

impl Owned for CallOutcome {
    fn assert_ok_owned(self) -> CallOutcome {
        self.assert_ok();
        self
    }
}

/// A phone that resets its counters on a reboot sends a later call with an earlier
/// call's Call-ID and From tag, but an INVITE of its own (its own Via branch): each
/// call's ticket is filed, under its own key. Keyed by the Call-ID and the tag alone,
/// the store kept the first ticket and the second caller's request was lost while
/// they heard it filed.
#[test]
fn a_later_call_reusing_call_id_and_tag_files_its_own_ticket() {
    require_tool("sipp");
    let dir = tempfile::tempdir().unwrap();
    let h = Hotline::cmd().flows(flows(dir.path())).start();
    const CALL_ID: &str = "reused-after-reboot@127.0.0.1";
    same_invite(&h, CALL_ID, "z9hG4bK-before-reboot");
    // The first call's dialog lingers 2 s after hotline's BYE; a phone takes longer
    // than that to reboot.
    thread::sleep(Duration::from_secs(3));
    same_invite(&h, CALL_ID, "z9hG4bK-after-reboot");
    let deadline = Instant::now() + Duration::from_secs(10);
    let keys = loop {
        let keys: Vec<String> = h
            .tickets()
            .iter()
            .filter(|t| t["call_id"] == CALL_ID)
            .map(|t| t["idempotency_key"].as_str().unwrap_or_default().to_owned())
            .collect();
        if keys.len() >= 2 || Instant::now() > deadline {
            break keys;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        keys.len(),
        2,
        "tickets of the two calls: {keys:?}\n{}",
        h.server.output()
    );
    assert_ne!(keys[0], keys[1]);
}
