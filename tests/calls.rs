//! Real calls: `hotline serve` dialled by a real SIP client (PJSIP through
//! tests/callers/pjcall.py) over 127.0.0.1. What the caller heard is checked in the
//! caller's own recording, and what happened in hotline's call record and tickets.
//!
//! These tests measure seconds of real time, so they run one at a time (a lock), each
//! against its own server on its own ports. Needs tests/callers/INSTALL.sh.
mod common;

use common::audio::fixture;
use common::hotline::{Hotline, prompts};
use common::pjcall::{CallReport, PjCall};
use common::wav::{Spurt, describe, talk_joined, talk_spurts};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How far a 5-second mark may be off, as heard by the caller (the figure).
const TOLERANCE: f64 = 0.3;

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spurts closer than 2 s are one prompt: prompts pause at commas, flows pause 5 s.
fn prompts_heard(wav: &Path) -> Vec<Spurt> {
    talk_joined(wav, 2.0)
}

/// Asserts greeting, 5 s, re-prompt, 5 s, farewell, 5 s, BYE, each mark within
/// TOLERANCE, as heard in `wav` and seen in `report`.
fn assert_silent_call_sequence(wav: &Path, report: &CallReport) {
    let heard = prompts_heard(wav);
    assert_eq!(heard.len(), 3, "prompts heard: {}", describe(&heard));
    let bye = report.duration().expect("the call was connected and ended");
    assert!(report.remote_hangup, "hotline must hang up: {report:?}");
    assert!(
        heard[0].start < 0.5,
        "greeting starts at once: {}",
        describe(&heard)
    );
    let gaps = [
        heard[1].start - heard[0].end,
        heard[2].start - heard[1].end,
        bye - heard[2].end,
    ];
    eprintln!("silence before re-prompt, farewell, BYE: {gaps:.3?} s");
    for (i, g) in gaps.iter().enumerate() {
        assert!(
            (g - 5.0).abs() <= TOLERANCE,
            "gap {i} is {g:.3} s, not 5 s ± {TOLERANCE}: {} then BYE at {bye:.3}",
            describe(&heard)
        );
    }
}

#[test]
fn a_silent_caller_hears_greeting_reprompt_farewell_then_bye_on_the_marks() {
    let _l = lock();
    let h = Hotline::cmd().start();
    let wav = h.dir().join("heard.wav");
    let out = PjCall::new(h.target("property"))
        .record(&wav)
        .max_time(90.0)
        .run();
    let report = out.assert_ok().clone();
    assert_silent_call_sequence(&wav, &report);
    let rec = &h.records(1)[0];
    assert_eq!(
        prompts(rec),
        ["greeting", "how_can_i_help", "no_sound_goodbye"]
    );
    assert_eq!(rec["outcome"], "hotline-hung-up");
    assert_eq!(rec["flow"], "property");
}

#[test]
fn a_caller_that_sends_no_rtp_at_all_is_silent() {
    let _l = lock();
    let h = Hotline::cmd().start();
    let wav = h.dir().join("heard.wav");
    let out = PjCall::new(h.target("water"))
        .no_rtp()
        .record(&wav)
        .max_time(90.0)
        .run();
    let report = out.assert_ok().clone();
    assert_eq!(
        report.rtp_tx_packets,
        Some(0),
        "the caller must send nothing"
    );
    assert_silent_call_sequence(&wav, &report);
    let rec = &h.records(1)[0];
    assert_eq!(
        prompts(rec),
        ["water_greeting", "how_can_i_help", "no_sound_goodbye"]
    );
}

#[test]
fn a_quiet_caller_is_asked_to_speak_up_then_to_call_again() {
    let _l = lock();
    let h = Hotline::cmd().start();
    let out = PjCall::new(h.target("property"))
        .play(fixture("speech_quiet.wav"))
        .max_time(120.0)
        .run();
    let report = out.assert_ok();
    assert!(report.remote_hangup);
    let rec = &h.records(1)[0];
    let p = prompts(rec);
    assert!(p.contains(&"louder_please".to_string()), "{p:?}");
    assert_eq!(
        p.last().map(String::as_str),
        Some("too_quiet_goodbye"),
        "{p:?}"
    );
    assert_eq!(rec["outcome"], "hotline-hung-up");
}

#[test]
fn a_noisy_line_is_told_so_and_hung_up_on() {
    let _l = lock();
    let h = Hotline::cmd().start();
    let out = PjCall::new(h.target("property"))
        .play(fixture("white_noise.wav"))
        .max_time(90.0)
        .run();
    assert!(out.assert_ok().remote_hangup);
    let rec = &h.records(1)[0];
    let p = prompts(rec);
    assert_eq!(p.last().map(String::as_str), Some("noise_goodbye"), "{p:?}");
    assert!(
        rec["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "noise")
    );
}

#[test]
fn rfc4733_keys_choose_from_the_menu_and_file_a_ticket_with_the_digits() {
    let _l = lock();
    let h = Hotline::cmd().start();
    // Water line: 2 (no water) during the greeting, then area 4# during the question.
    let out = PjCall::new(h.target("water"))
        .dtmf("2@2,4@6,#@6.5")
        .hangup_after(14.0)
        .max_time(60.0)
        .run();
    out.assert_ok();
    let rec = &h.records(1)[0];
    let keys: Vec<&str> = rec["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "key")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["2", "4", "#"]);
    assert!(
        rec["path"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "outage_unknown")
    );
    let t = h.tickets();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0]["category"], "outage-investigation");
    // `tickets list --json` has the fields as one object, as the webhook's payload.
    assert_eq!(t[0]["fields"]["area"], "4", "{}", t[0]);
    assert_eq!(rec["tickets"].as_array().unwrap().len(), 1);
}

#[test]
fn a_caller_kept_waiting_three_rings_hears_the_apology() {
    let _l = lock();
    let h = Hotline::cmd().max_calls(1).start();
    // The first caller holds the only line for 16 s; the second waits ringing.
    let first = PjCall::new(h.target("property"))
        .hangup_after(16.0)
        .max_time(40.0)
        .spawn();
    std::thread::sleep(Duration::from_millis(800));
    let second = PjCall::new(h.target("property"))
        .hangup_after(22.0)
        .max_time(60.0)
        .run();
    let r2 = second.assert_ok().clone();
    first.join().unwrap().assert_ok();
    let recs = h.records(2);
    let waited = recs
        .iter()
        .find(|r| r["rings"].as_u64().unwrap_or(0) >= 3)
        .unwrap_or_else(|| panic!("no call waited 3 rings: {recs:?}"));
    assert_eq!(prompts(waited)[0], "busy_greeting");
    let other = recs
        .iter()
        .find(|r| r["rings"].as_u64().unwrap_or(0) < 3)
        .unwrap();
    assert_eq!(prompts(other)[0], "greeting");
    assert!(r2.confirmed_at.is_some());
}

#[test]
fn cancel_while_ringing_is_recorded_and_the_line_stays_usable() {
    let _l = lock();
    let h = Hotline::cmd().max_calls(1).start();
    let first = PjCall::new(h.target("property"))
        .hangup_after(8.0)
        .max_time(30.0)
        .spawn();
    std::thread::sleep(Duration::from_millis(800));
    // Gives up after 3 s of ringing: pjcall cancels (exit 3: not answered in time).
    let cancelled = PjCall::new(h.target("property")).max_time(3.0).run();
    assert_eq!(cancelled.exit_code(), Some(3), "{}", cancelled.context());
    first.join().unwrap().assert_ok();
    let recs = h.records(2);
    assert!(recs.iter().any(|r| r["outcome"] == "cancelled"), "{recs:?}");
    // The line is free again.
    PjCall::new(h.target("property"))
        .hangup_after(2.0)
        .max_time(20.0)
        .run()
        .assert_ok();
}

#[test]
fn a_caller_hanging_up_mid_prompt_ends_the_call_cleanly() {
    let _l = lock();
    let h = Hotline::cmd().start();
    let out = PjCall::new(h.target("property"))
        .hangup_after(3.0)
        .max_time(20.0)
        .run();
    assert!(!out.assert_ok().remote_hangup);
    let rec = &h.records(1)[0];
    assert_eq!(rec["outcome"], "caller-hung-up");
    let d = rec["duration_ms"].as_i64().unwrap();
    assert!((2500..5000).contains(&d), "{d}");
}

#[test]
fn a_re_invite_to_hold_and_back_keeps_the_call() {
    let _l = lock();
    let h = Hotline::cmd().start();
    let out = PjCall::new(h.target("property"))
        .reinvite_hold_at(2.0)
        .hangup_after(6.0)
        .max_time(30.0)
        .run();
    let r = out.assert_ok();
    assert!(r.hold_at.is_some() && r.unhold_at.is_some(), "{r:?}");
    assert_eq!(h.records(1)[0]["outcome"], "caller-hung-up");
}

#[test]
fn an_invite_never_acknowledged_is_freed_with_a_bye() {
    let _l = lock();
    // T1 = 50 ms: the 200 is retransmitted, then given up on after 64·T1 = 3.2 s.
    let h = Hotline::cmd().config("sip_t1: 50ms\n").start();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let me = sock.local_addr().unwrap();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\n",
        me.port() + 2
    );
    let invite = format!(
        "INVITE sip:property@127.0.0.1:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKnoack1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:noack@127.0.0.1>;tag=na1\r\nTo: <sip:property@127.0.0.1>\r\nCall-ID: noack-1@test\r\nCSeq: 1 INVITE\r\nContact: <sip:noack@{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len(),
        sip = h.sip
    );
    sock.send_to(invite.as_bytes(), ("127.0.0.1", h.sip))
        .unwrap();
    let started = Instant::now();
    let (mut oks, mut bye) = (0, None);
    let mut buf = [0u8; 4096];
    while bye.is_none() {
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            break;
        };
        let msg = String::from_utf8_lossy(&buf[..n]);
        if msg.starts_with("SIP/2.0 200") {
            oks += 1;
        } else if msg.starts_with("BYE ") {
            bye = Some(started.elapsed());
        }
    }
    let bye = bye.expect("hotline must send BYE for an unacknowledged 200");
    assert!(oks >= 3, "the 200 was sent {oks} times");
    assert!(
        bye >= Duration::from_millis(3000) && bye < Duration::from_secs(6),
        "{bye:?}"
    );
    let rec = &h.records(1)[0];
    assert_eq!(rec["outcome"], "failed", "{rec}");
}

#[test]
fn every_rfc4475_message_to_the_running_server_gets_its_answer_and_calls_go_on() {
    use common::torture::{Expect, TABLE, final_code_blocking};
    let _l = lock();
    let h = Hotline::cmd().config("sip_t1: 50ms\n").start();
    let server: std::net::SocketAddr = format!("127.0.0.1:{}", h.sip).parse().unwrap();
    let mut wrong = Vec::new();
    for (name, expect) in TABLE {
        let got = final_code_blocking(server, name);
        let ok = match expect {
            // The harness of tests/sip_torture.rs turns new calls down with 486; the
            // real server answers them (or refuses them for their own reasons).
            Expect::Final(486) => got.is_some(),
            Expect::Final(code) => got == Some(*code),
            Expect::Dropped => got.is_none(),
        };
        if !ok {
            wrong.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\n{}",
        wrong.join("\n"),
        h.server.output()
    );
    // Still serving: a normal call from a real client.
    PjCall::new(h.target("property"))
        .hangup_after(2.0)
        .max_time(20.0)
        .run()
        .assert_ok();
}

#[test]
fn the_callers_own_words_are_recorded_and_attached_to_the_ticket() {
    let _l = lock();
    let h = Hotline::cmd().start();
    // 9 s of silence, 5 s of Mandarin speech, then silence: the address is spoken
    // after the keys 1 (repairs, during the greeting) and 1 (emergency) were pressed.
    let audio = h.dir().join("caller.wav");
    let speech = common::wav::read_wav(fixture("speech.wav"));
    let mut samples = common::wav::silence(8000, 9.0);
    samples.extend(
        speech
            .samples
            .iter()
            .take(8000 * 5)
            .map(|x| (x * 32767.0) as i16),
    );
    samples.extend(common::wav::silence(8000, 30.0));
    common::wav::write_wav(&audio, 8000, &samples);
    let out = PjCall::new(h.target("property"))
        .play(&audio)
        .play_once()
        .dtmf("1@2,1@4")
        .hangup_after(26.0)
        .max_time(60.0)
        .run();
    out.assert_ok();
    let t = h.tickets();
    assert_eq!(t.len(), 1, "{t:?}\n{}", h.server.output());
    assert_eq!(t[0]["category"], "emergency-repair");
    assert_eq!(t[0]["priority"], "emergency");
    let recs = t[0]["recordings"].as_array().expect("recordings");
    assert_eq!(recs.len(), 1, "{t:?}");
    let path = PathBuf::from(recs[0].as_str().unwrap());
    // Written off the call's task: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // The caller hung up while the ticket number was being read: the call record lists
    // what was played up to then, not the rest of the sentence list.
    let call = &h.records(1)[0];
    let end = call["duration_ms"].as_i64().unwrap();
    let prompts: Vec<(i64, &str)> = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "prompt")
        .map(|e| {
            (
                e["offset_ms"].as_i64().unwrap(),
                e["detail"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        prompts.iter().all(|(at, _)| *at <= end),
        "prompts after the end at {end} ms: {prompts:?}"
    );
    assert!(
        prompts.iter().any(|(_, p)| *p == "emergency_filed")
            && !prompts.iter().any(|(_, p)| *p == "repeat_or_go_on"),
        "{prompts:?}"
    );
    let rec = common::wav::read_wav(&path);
    let spoken = talk_spurts(&path);
    assert!(
        (3.0..=12.0).contains(&rec.duration()) && !spoken.is_empty(),
        "recording of {:.1} s, spurts {}",
        rec.duration(),
        describe(&spoken)
    );
}

#[test]
fn sigterm_ends_calls_with_bye_and_keeps_their_records() {
    let _l = lock();
    let mut h = Hotline::cmd().start();
    let call = PjCall::new(h.target("property")).max_time(40.0).spawn();
    std::thread::sleep(Duration::from_secs(4));
    let status = h.server.stop(Duration::from_secs(15));
    assert!(
        status.success(),
        "hotline exited with {status:?}\n{}",
        h.server.output()
    );
    let report = call.join().unwrap();
    let r = report.assert_ok();
    assert!(r.remote_hangup, "the caller must get a BYE: {r:?}");
    let recs = h.cli(&["calls", "list", "--json"]);
    assert_eq!(recs.len(), 1, "the call's record must survive the stop");
}

#[test]
fn an_invite_without_an_offer_gets_ours_and_the_answer_in_the_ack_is_used() {
    let _l = lock();
    let h = Hotline::cmd().start();
    let sip = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sip.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    rtp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = sip.local_addr().unwrap();
    let head = |method: &str, cseq: u32, to_tag: &str, branch: &str| {
        format!(
            "{method} sip:property@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:late@127.0.0.1>;tag=lo1\r\nTo: <sip:property@127.0.0.1>{to_tag}\r\nCall-ID: late-offer-1@test\r\nCSeq: {cseq} {method}\r\nContact: <sip:late@{me}>\r\n",
            h.sip
        )
    };
    let invite = head("INVITE", 1, "", "z9hG4bKlate1") + "Content-Length: 0\r\n\r\n";
    sip.send_to(invite.as_bytes(), ("127.0.0.1", h.sip))
        .unwrap();
    let mut buf = [0u8; 8192];
    let ok = loop {
        let (n, _) = sip.recv_from(&mut buf).expect("a 200 with an offer");
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if m.starts_with("SIP/2.0 200") {
            break m;
        }
    };
    assert!(ok.contains("m=audio ") && ok.contains("RTP/AVP"), "{ok}");
    let to_tag = ok
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .map(|t| format!(";tag={}", t.trim()))
        .expect("To tag");
    // Answer with PCMA only: hotline must then send PCMA (payload type 8).
    let answer = format!(
        "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n",
        rtp.local_addr().unwrap().port()
    );
    let ack = head("ACK", 1, &to_tag, "z9hG4bKlate2")
        + &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
    sip.send_to(ack.as_bytes(), ("127.0.0.1", h.sip)).unwrap();
    let (n, _) = rtp.recv_from(&mut buf).expect("RTP from hotline");
    assert!(n >= 12 + 160, "{n} bytes");
    assert_eq!(buf[1] & 0x7f, 8, "payload type: PCMA as answered");
    let bye = head("BYE", 2, &to_tag, "z9hG4bKlate3") + "Content-Length: 0\r\n\r\n";
    sip.send_to(bye.as_bytes(), ("127.0.0.1", h.sip)).unwrap();
    let rec = &h.records(1)[0];
    assert_eq!(rec["outcome"], "caller-hung-up", "{rec}");
}
