//! The outage API (W-OUTAGE) against a real `hotline serve`: a dispatcher publishes an
//! outage, real PJSIP callers to the water line hear it at once, and after it is
//! withdrawn the next caller hears the apology and files an outage-investigation
//! ticket. Every row of the bad-input table, and nothing half-written. Three hotlines
//! sharing one lookups directory all announce an outage published on any one of them.
mod common;

use common::hotline::{Hotline, prompts};
use common::pjcall::{CallReport, PjCall};
use common::wav::{describe, talk_joined};
use common::{HttpAnswer, http_send, repo_path};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "dispatch-token";
/// What a caller from area 4 hears for a burst main until 23:30.
const AREA_4_BURST: &str = "是的，由於主管道爆裂造成北區停水，預計二十三時三十分來水。給您生活帶來不便非常抱歉，我們會盡快恢復供水。";

/// A copy of the repository's lookups, with an outage in area 5 that ended in 2020.
fn lookups() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(repo_path("data")).unwrap().flatten() {
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let mut o = std::fs::read_to_string(dir.path().join("outages.yaml")).unwrap();
    o.push_str("\"5\":\n  area: area_5\n  reason: reason_maintenance\n  until: \"08:00\"\n  ends_at: \"2020-01-01T00:00:00Z\"\n");
    std::fs::write(dir.path().join("outages.yaml"), o).unwrap();
    dir
}

fn start(lookups: &tempfile::TempDir) -> Hotline {
    Hotline::cmd()
        .lookups(lookups.path())
        .env("HOTLINE_OPS_TOKEN", TOKEN)
        .start()
}

fn call(h: &Hotline, method: &str, path: &str, body: &str) -> HttpAnswer {
    http_send(
        h.http,
        method,
        path,
        &[
            ("Authorization", &format!("Bearer {TOKEN}")),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

fn json_of(a: &HttpAnswer) -> Value {
    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{e}: {a:?}"))
}

fn listed(h: &Hotline) -> Vec<Value> {
    let a = call(h, "GET", "/outages", "");
    assert_eq!(a.status, 200, "{a:?}");
    json_of(&a).as_array().unwrap().clone()
}

#[test]
fn bad_input_gets_a_clear_answer_and_nothing_is_written() {
    let dir = lookups();
    let h = start(&dir);
    let file = dir.path().join("outages.yaml");
    let before = std::fs::read(&file).unwrap();
    let cases: [(&str, u16, &str); 9] = [
        ("{\"area\": \"4\", ", 400, "malformed JSON"),
        ("[1, 2]", 400, "JSON object"),
        (
            r#"{"area": 4, "reason": "reason_burst", "until": "23:30"}"#,
            400,
            "'area'",
        ),
        (r#"{"area": "4", "until": "23:30"}"#, 400, "'reason'"),
        (
            r#"{"area": "4", "reason": "reason_burst", "until": 2330}"#,
            400,
            "'until'",
        ),
        (
            r#"{"area": "9", "reason": "reason_burst", "until": "23:30"}"#,
            422,
            "known_areas",
        ),
        (
            r#"{"area": "4", "reason": "reason_aliens", "until": "23:30"}"#,
            422,
            "known_reasons",
        ),
        (
            r#"{"area": "4", "reason": "reason_burst", "until": "25:99"}"#,
            422,
            "25:99",
        ),
        (
            r#"{"area": "4", "reason": "reason_burst", "until": "2020-01-01T00:00:00Z"}"#,
            422,
            "passed",
        ),
    ];
    for (body, status, says) in cases {
        let a = call(&h, "POST", "/outages", body);
        assert_eq!(a.status, status, "{body}: {a:?}");
        assert!(a.body.contains(says), "{body}: {a:?}");
    }
    let a = json_of(&call(&h, "POST", "/outages", cases[5].0));
    let areas: Vec<&str> = a["known_areas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(areas, ["1", "2", "3", "4", "5"]);
    let a = json_of(&call(&h, "POST", "/outages", cases[6].0));
    let reasons = a["known_reasons"].to_string();
    assert!(
        reasons.contains("reason_burst") && reasons.contains("reason_pipe_repair"),
        "{reasons}"
    );
    // Over 64 KiB: refused before it is read whole.
    let big = format!(
        r#"{{"area": "4", "reason": "reason_burst", "until": "23:30", "pad": "{}"}}"#,
        "x".repeat(65 * 1024)
    );
    assert_eq!(call(&h, "POST", "/outages", &big).status, 413);
    assert_eq!(call(&h, "DELETE", "/outages/nosuch", "").status, 404);
    assert_eq!(std::fs::read(&file).unwrap(), before, "nothing was written");

    // Publishing the same area twice replaces the first, and says so.
    let ok = r#"{"area": "4", "reason": "reason_burst", "until": "23:30"}"#;
    let first = call(&h, "POST", "/outages", ok);
    assert_eq!(first.status, 201, "{first:?}");
    let first = json_of(&first);
    assert!(first.get("replaced").is_none(), "{first}");
    let second = call(
        &h,
        "POST",
        "/outages",
        r#"{"area": "4", "reason": "reason_pipe_repair", "until": "22:15"}"#,
    );
    assert_eq!(second.status, 201, "{second:?}");
    let second = json_of(&second);
    assert_eq!(second["replaced"]["id"], first["id"], "{second}");
    assert!(
        second["note"].as_str().unwrap().contains("replaces"),
        "{second}"
    );
    let list = listed(&h);
    let area4: Vec<&Value> = list.iter().filter(|o| o["area"] == "4").collect();
    assert_eq!(area4.len(), 1, "{list:?}");
    assert_eq!(area4[0]["id"], second["id"]);
    assert_eq!(area4[0]["state"], "in force");
    // The outage that ended in 2020 is listed as ended.
    let area5: Vec<&Value> = list.iter().filter(|o| o["area"] == "5").collect();
    assert_eq!(area5[0]["state"], "ended", "{list:?}");
    // The file is still one the lookups load.
    hotline::data::load_file(&file).unwrap();
}

#[test]
fn a_published_outage_is_heard_at_once_and_a_withdrawn_one_is_investigated() {
    let dir = lookups();
    let h = start(&dir);
    let a = call(
        &h,
        "POST",
        "/outages",
        r#"{"area": "4", "reason": "reason_burst", "until": "23:30"}"#,
    );
    assert_eq!(a.status, 201, "{a:?}");
    let published = json_of(&a);
    assert_eq!(published["area"], "4");
    assert_eq!(published["reason"], "reason_burst");
    assert_eq!(published["until"], "23:30");
    assert_eq!(published["text"], AREA_4_BURST, "{published}");
    let seconds = published["seconds"].as_f64().unwrap();
    assert!(seconds > 5.0, "{published}");
    let id = published["id"].as_str().unwrap().to_string();
    let text = std::fs::read_to_string(dir.path().join("outages.yaml")).unwrap();
    assert!(text.contains(&id), "written to the lookups: {text}");

    // At once: no wait for the reload watcher. 2 (no water), then area 4#.
    let heard = tempfile::tempdir().unwrap();
    let wav = heard.path().join("heard.wav");
    let caller = |n: usize| {
        let out = PjCall::new(h.target("water"))
            .dtmf("2@2,4@6,#@6.5")
            .hangup_after(9.0 + seconds)
            .record(&wav)
            .max_time(60.0)
            .run();
        let report = out.assert_ok().clone();
        (h.records(n)[n - 1].clone(), report)
    };
    let (rec, report) = caller(1);
    let p = prompts(&rec);
    assert!(p.iter().any(|s| s == "outage_known"), "{p:?}");
    assert!(!p.iter().any(|s| s == "outage_unknown"), "{p:?}");
    assert_announced(&rec, &report, &wav, seconds);
    assert!(h.tickets().is_empty());

    // Withdrawn: the next caller from area 4 hears the apology and files a ticket.
    assert_eq!(
        call(&h, "DELETE", &format!("/outages/{id}"), "").status,
        204
    );
    assert!(!listed(&h).iter().any(|o| o["area"] == "4"));
    let (rec, _) = caller(2);
    let p = prompts(&rec);
    assert!(p.iter().any(|s| s == "outage_unknown"), "{p:?}");
    assert!(!p.iter().any(|s| s == "outage_known"), "{p:?}");
    let t = h.tickets();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0]["category"], "outage-investigation");
    assert_eq!(t[0]["fields"]["area"], "4");
}

/// `hotline outages add|list|end` against the running server.
#[test]
fn the_cli_publishes_lists_and_withdraws() {
    let dir = lookups();
    let h = start(&dir);
    let server = format!("http://127.0.0.1:{}", h.http);
    let cli = |args: &[&str], token: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"));
        c.arg("outages").args(args).args(["--server", &server]);
        c.env_remove("HOTLINE_OPS_TOKEN");
        if let Some(t) = token {
            c.env("HOTLINE_OPS_TOKEN", t);
        }
        let out = c.output().expect("hotline runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = cli(&["list"], None);
    assert!(
        !ok && err.contains("401") && err.contains("HOTLINE_OPS_TOKEN"),
        "{err}"
    );
    let (ok, out, err) = cli(&["add", "4", "reason_burst", "23:30"], Some(TOKEN));
    assert!(ok, "{err}");
    assert!(out.contains(AREA_4_BURST), "{out}");
    let (ok, err_out, err) = cli(&["add", "9", "reason_burst", "23:30"], Some(TOKEN));
    assert!(
        !ok && err.contains("422") && err.contains("known_areas"),
        "{err_out}{err}"
    );
    let (ok, out, err) = cli(&["list", "--json"], Some(TOKEN));
    assert!(ok, "{err}");
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    let id = list
        .iter()
        .find(|o| o["area"] == "4")
        .and_then(|o| o["id"].as_str())
        .unwrap()
        .to_string();
    let (ok, out, err) = cli(&["list"], Some(TOKEN));
    assert!(
        ok && out.contains(&id) && out.contains("in force"),
        "{out}{err}"
    );
    let (ok, out, err) = cli(&["end", &id], Some(TOKEN));
    assert!(ok && out.contains("withdrawn"), "{out}{err}");
    assert!(!listed(&h).iter().any(|o| o["area"] == "4"));
    let (ok, _, err) = cli(&["end", &id], Some(TOKEN));
    assert!(!ok && err.contains("404"), "{err}");
}

/// The caller heard the announcement for as long as the publisher was told it plays:
/// talk is under way when the record says `outage_known` started and goes on, pauses
/// between phrases aside, for at least `seconds` (the apology and goodbye of an
/// unknown outage are over, and the call with them, well before that).
fn assert_announced(rec: &Value, report: &CallReport, wav: &Path, seconds: f64) {
    let started = rec["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "prompt" && e["detail"] == "outage_known")
        .and_then(|e| e["offset_ms"].as_i64())
        .expect("outage_known in the record") as f64
        / 1000.0;
    // The record counts from the answer, the recording from when it was hooked up.
    let shift = match (report.confirmed_at, report.record_started_at) {
        (Some(c), Some(r)) => c - r,
        _ => 0.0,
    };
    let at = started + shift;
    // A phrase's pause is under a second; the prompt after it follows at once.
    let talk = talk_joined(wav, 1.0);
    // The prompt it cut (the caller keyed over ask_area) may run into it: what counts
    // is talk without a pause from its start to its announced end.
    let heard = talk
        .iter()
        .find(|s| s.end > at + 0.5)
        .unwrap_or_else(|| panic!("no talk after {at:.2} s: {}", describe(&talk)));
    assert!(
        heard.start <= at + 0.6 && heard.end >= at + seconds - 0.3,
        "announcement of {seconds:.2} s from {at:.2} s, heard {}",
        describe(&talk)
    );
}

/// Issue 9's farm promise: hotlines that share a lookups directory all hear an outage
/// within 2 s of its publication on any one of them, and a withdrawal likewise; the
/// file is the only channel between them (their watchers reload it).
#[test]
fn three_hotlines_sharing_the_lookups_all_announce_a_published_outage() {
    let dir = lookups();
    let farm: Vec<Hotline> = (0..3).map(|_| start(&dir)).collect();
    let generation = |h: &Hotline| -> u64 {
        let a = call(h, "GET", "/reload", "");
        assert_eq!(a.status, 200, "{a:?}");
        json_of(&a)["generation"].as_u64().unwrap()
    };
    // Each reloaded the others' files: the watcher's reload is how a farm hears.
    let seen_by_others = |from: usize, what: &str, body: &str, method: &str, path: &str| {
        let before: Vec<u64> = farm.iter().map(generation).collect();
        let t0 = Instant::now();
        let a = call(&farm[from], method, path, body);
        assert!(a.status == 201 || a.status == 204, "{what}: {a:?}");
        for (i, h) in farm.iter().enumerate().filter(|(i, _)| *i != from) {
            while generation(h) == before[i] {
                assert!(
                    t0.elapsed() < Duration::from_secs(2),
                    "{what} on hotline {from} not seen by hotline {i} within 2 s\n{}",
                    h.server.output()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!(
                "{what} on hotline {from} seen by hotline {i} after {:?}",
                t0.elapsed()
            );
        }
        a
    };
    // Let the watchers take in the lock file the first publish creates, so that the
    // generations compared below move only for the change under test.
    std::fs::write(dir.path().join(".outages.lock"), "").unwrap();
    std::thread::sleep(Duration::from_secs(3));

    let a = seen_by_others(
        1,
        "publish",
        r#"{"area": "4", "reason": "reason_burst", "until": "23:30"}"#,
        "POST",
        "/outages",
    );
    let published = json_of(&a);
    let seconds = published["seconds"].as_f64().unwrap();
    let id = published["id"].as_str().unwrap().to_string();
    // Callers of the two hotlines that did not publish it hear it, at the same time.
    // (Recordings go elsewhere: a file growing in the lookups would be a change.)
    let heard = tempfile::tempdir().unwrap();
    let calls: Vec<_> = [0, 2]
        .iter()
        .map(|&i| {
            let wav = heard.path().join(format!("heard-{i}.wav"));
            let job = PjCall::new(farm[i].target("water"))
                .dtmf("2@2,4@6,#@6.5")
                .hangup_after(9.0 + seconds)
                .record(&wav)
                .max_time(60.0)
                .spawn();
            (i, wav, job)
        })
        .collect();
    for (i, wav, job) in calls {
        let out = job.join().unwrap();
        let report = out.assert_ok().clone();
        let rec = farm[i].records(1)[0].clone();
        let p = prompts(&rec);
        assert!(p.iter().any(|s| s == "outage_known"), "hotline {i}: {p:?}");
        assert_announced(&rec, &report, &wav, seconds);
    }

    // Withdrawn on a third hotline: the one that published it stops announcing it.
    seen_by_others(2, "withdraw", "", "DELETE", &format!("/outages/{id}"));
    PjCall::new(farm[1].target("water"))
        .dtmf("2@2,4@6,#@6.5")
        .hangup_after(12.0)
        .max_time(60.0)
        .run()
        .assert_ok();
    let p = prompts(&farm[1].records(1)[0]);
    assert!(p.iter().any(|s| s == "outage_unknown"), "{p:?}");
    assert!(!p.iter().any(|s| s == "outage_known"), "{p:?}");

    // Dispatchers publishing on every hotline at once: none of them is lost.
    std::thread::scope(|s| {
        for area in 1..=5 {
            let h = &farm[area % 3];
            s.spawn(move || {
                let body =
                    format!(r#"{{"area": "{area}", "reason": "reason_burst", "until": "23:30"}}"#);
                let a = call(h, "POST", "/outages", &body);
                assert_eq!(a.status, 201, "{a:?}");
            });
        }
    });
    let areas: Vec<String> = listed(&farm[0])
        .iter()
        .filter(|o| o["state"] == "in force")
        .map(|o| o["area"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(areas, ["1", "2", "3", "4", "5"], "all five published");
}
