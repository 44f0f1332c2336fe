//! Proves the caller harness in `tests/common` against things that exist
//! today: a real UAS (SIPp) dialled by a real PJSIP caller (pjcall.py) over
//! 127.0.0.1, the talk-spurt analysis on synthetic audio, and the server
//! guard on small processes. Missing tools fail these tests with a message
//! to run `tests/callers/INSTALL.sh`.

mod common;

use std::time::Duration;

use common::audio::fixture;
use common::pjcall::PjCall;
use common::ports::{free_tcp_port, free_udp_port, free_udp_range};
use common::server::{Ready, ServerCmd};
use common::sipp::{UasScenario, uas};
use common::wav::{
    SpurtParams, assert_near, describe, read_wav, silence, talk_spurts, talk_spurts_with, tone,
    write_wav,
};

#[test]
fn spurts_of_a_synthetic_recording() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.wav");
    let mut s = tone(8000, 440.0, 1.0, 0.5);
    s.extend(silence(8000, 5.0));
    s.extend(tone(8000, 1000.0, 2.0, 0.5));
    write_wav(&path, 8000, &s);

    let spurts = talk_spurts(&path);
    assert_eq!(spurts.len(), 2, "spurts: {}", describe(&spurts));
    assert_near(spurts[0].start, 0.0, 0.04, "first spurt start");
    assert_near(spurts[0].end, 1.0, 0.04, "first spurt end");
    assert_near(spurts[1].start, 6.0, 0.04, "second spurt start");
    assert_near(spurts[1].end, 8.0, 0.04, "second spurt end");
    // "the next prompt starts 5 s after the greeting ended"
    assert_near(spurts[1].start - spurts[0].end, 5.0, 0.3, "gap");
}

#[test]
fn short_pauses_stay_inside_a_spurt() {
    let mut s = tone(8000, 440.0, 0.5, 0.3);
    s.extend(silence(8000, 0.3)); // shorter than the 400 ms hangover
    s.extend(tone(8000, 440.0, 0.5, 0.3));
    s.extend(silence(8000, 0.5)); // longer
    s.extend(tone(8000, 440.0, 0.2, 0.3));
    s.extend(silence(8000, 1.0));
    let audio = common::wav::Audio {
        rate: 8000,
        samples: s.iter().map(|&x| f32::from(x) / 32768.0).collect(),
    };
    let spurts = talk_spurts_with(&audio, SpurtParams::default());
    assert_eq!(spurts.len(), 2, "spurts: {}", describe(&spurts));
    assert_near(spurts[0].end, 1.3, 0.04, "merged spurt end");
    assert_near(spurts[1].start, 1.8, 0.04, "second spurt start");
    // A quiet tone below the threshold is no talk.
    let quiet = common::wav::Audio {
        rate: 8000,
        samples: tone(8000, 440.0, 1.0, 0.001)
            .iter()
            .map(|&x| f32::from(x) / 32768.0)
            .collect(),
    };
    assert!(talk_spurts_with(&quiet, SpurtParams::default()).is_empty());
}

/// The brief's case: SIPp's own `uas` answers, pjcall.py plays speech and
/// hangs up after 3 s; SIPp sees the whole call through.
#[test]
fn pjcall_calls_sipp_builtin_uas() {
    let sip = free_udp_port();
    let (media, _) = free_udp_range(4);
    let mut sipp = uas(UasScenario::Builtin, sip, media, 1, Duration::from_secs(30));
    let out = PjCall::new(format!("sip:service@127.0.0.1:{sip}"))
        .play(fixture("speech.wav"))
        .hangup_after(3.0)
        .max_time(15.0)
        .run();
    let rep = out.assert_ok();
    assert_eq!(rep.last_status, Some(200), "{}", out.context());
    assert!(!rep.remote_hangup, "the caller hung up, not SIPp");
    let dur = rep.duration().expect("call duration");
    assert_near(dur, 3.0, 0.3, "call length");
    let tx = rep.rtp_tx_packets.unwrap_or(0);
    assert!(
        tx >= 130,
        "caller sent {tx} RTP packets in 3 s, want ~150\n{}",
        out.context()
    );
    let st = sipp
        .wait_exit(Duration::from_secs(10))
        .expect("SIPp ends after its one call");
    assert!(
        st.success(),
        "SIPp exit {st}: the call did not follow its scenario\n{}",
        sipp.output()
    );
}

/// Echo UAS: what the caller plays comes back, so the recording holds the
/// speech; DTMF and a hold/unhold re-INVITE go through.
#[test]
fn pjcall_records_echo_sends_dtmf_and_holds() {
    let sip = free_udp_port();
    let (media, _) = free_udp_range(4);
    let mut sipp = uas(UasScenario::Echo, sip, media, 1, Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("heard.wav");
    let out = PjCall::new(format!("sip:service@127.0.0.1:{sip}"))
        .play(fixture("speech.wav"))
        .dtmf("1@0.5,#@1.0")
        .reinvite_hold_at(1.5)
        .hangup_after(4.0)
        .record(&rec)
        .max_time(15.0)
        .run();
    let rep = out.assert_ok();
    let keys: Vec<&str> = rep.dtmf_sent.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["1", "#"], "{}", out.context());
    assert_near(rep.dtmf_sent[0].1, 0.5, 0.1, "DTMF 1 time");
    assert!(
        rep.hold_at.is_some() && rep.unhold_at.is_some(),
        "{}",
        out.context()
    );
    assert!(rep.rtp_rx_packets.unwrap_or(0) > 100, "{}", out.context());

    let audio = read_wav(&rec);
    assert_eq!(audio.rate, 8000);
    assert_near(audio.duration(), 4.0, 0.3, "recording length");
    let spurts = talk_spurts(&rec);
    assert!(!spurts.is_empty(), "the echoed speech was not heard");
    assert!(
        spurts[0].start < 1.0,
        "echo heard late: {}",
        describe(&spurts)
    );
    let st = sipp
        .wait_exit(Duration::from_secs(10))
        .expect("SIPp ends after its one call");
    assert!(st.success(), "SIPp exit {st}\n{}", sipp.output());
}

/// The far end hangs up: pjcall.py notices the BYE. The caller offers
/// recvonly, so it sends no RTP at all.
#[test]
fn pjcall_sees_the_servers_bye_and_can_send_no_rtp() {
    let sip = free_udp_port();
    let (media, _) = free_udp_range(4);
    let mut sipp = uas(UasScenario::HangsUp, sip, media, 1, Duration::from_secs(30));
    let out = PjCall::new(format!("sip:service@127.0.0.1:{sip}"))
        .no_rtp()
        .max_time(15.0)
        .run();
    let rep = out.assert_ok();
    assert!(
        rep.remote_hangup,
        "BYE from SIPp not seen\n{}",
        out.context()
    );
    assert_near(rep.duration().unwrap(), 2.0, 0.5, "call length");
    assert_eq!(
        rep.rtp_tx_packets,
        Some(0),
        "a recvonly caller sent RTP\n{}",
        out.context()
    );
    let st = sipp
        .wait_exit(Duration::from_secs(10))
        .expect("SIPp ends after its one call");
    assert!(st.success(), "SIPp exit {st}\n{}", sipp.output());
}

/// Digital silence is still sent as RTP (VAD off).
#[test]
fn pjcall_sends_silence_as_rtp() {
    let sip = free_udp_port();
    let (media, _) = free_udp_range(4);
    let _sipp = uas(UasScenario::Echo, sip, media, 1, Duration::from_secs(30));
    let out = PjCall::new(format!("sip:service@127.0.0.1:{sip}"))
        .hangup_after(2.0)
        .max_time(15.0)
        .run();
    let rep = out.assert_ok();
    let tx = rep.rtp_tx_packets.unwrap_or(0);
    assert!(
        tx >= 80,
        "silent caller sent {tx} RTP packets in 2 s, want ~100\n{}",
        out.context()
    );
}

/// Nobody answers: a bounded failure with exit code 3, not a hang.
#[test]
fn pjcall_gives_up_at_max_time() {
    let port = free_udp_port();
    let out = PjCall::new(format!("sip:nobody@127.0.0.1:{port}"))
        .max_time(2.0)
        .run();
    assert_eq!(out.exit_code(), Some(3), "{}", out.context());
    let rep = out.report();
    assert!(rep.confirmed_at.is_none());
    assert!(
        rep.error.as_deref().unwrap_or("").contains("max-time"),
        "{}",
        out.context()
    );
}

#[test]
fn server_guard_waits_for_stderr_and_kills_on_drop() {
    let mut server = ServerCmd::new("sh")
        .args([
            "-c",
            "echo starting; sleep 0.3; echo 'listening now' >&2; exec sleep 60",
        ])
        .ready(Ready::StderrContains("listening".into()))
        .timeout(Duration::from_secs(10))
        .start();
    assert!(server.output().contains("starting"));
    assert!(server.is_running());
    let pid = server.pid() as libc::pid_t;
    drop(server);
    // SAFETY: signal 0 only asks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "process {pid} outlived its guard");
}

#[test]
fn server_guard_waits_for_a_tcp_port() {
    let port = free_tcp_port();
    let script = format!(
        "import socket,time\ntime.sleep(0.3)\ns=socket.socket()\ns.bind(('127.0.0.1',{port}))\ns.listen()\ntime.sleep(60)"
    );
    let mut server = ServerCmd::new(common::tools::python())
        .args(["-c", &script])
        .ready(Ready::TcpPort(port))
        .timeout(Duration::from_secs(10))
        .start();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let st = server.stop(Duration::from_secs(2));
    assert!(!st.success());
}

#[test]
#[should_panic(expected = "not ready")]
fn server_guard_fails_when_the_process_exits_early() {
    let _server = ServerCmd::new("sh")
        .args(["-c", "echo boom >&2; exit 7"])
        .ready(Ready::TcpPort(free_tcp_port()))
        .timeout(Duration::from_secs(5))
        .start();
}
