//! RFC 4475 torture messages (tests/fixtures/rfc4475, MIT-licensed copies, see the
//! licence file there) sent to a running endpoint over loopback UDP, each checked
//! against the answer the RFC expects; then an ordinary call must still work.
use std::net::SocketAddr;
use std::time::Duration;

use hotline::sip::{NewCall, SipCommand, SipConfig, SipEndpoint};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

mod common;
use Expect::{Dropped, Final};
use common::torture::{Expect, SURVIVOR, TABLE, loopback};

async fn harness() -> (SipEndpoint, CancellationToken) {
    let cancel = CancellationToken::new();
    let cfg = SipConfig {
        udp: "127.0.0.1:0".parse().expect("addr"),
        t1: Duration::from_millis(20),
        t2: Duration::from_millis(160),
        ..SipConfig::default()
    };
    let (ep, rx) = SipEndpoint::start(cfg, cancel.clone())
        .await
        .expect("start");
    tokio::spawn(handle_calls(rx));
    (ep, cancel)
}

/// Answers the survivor call and turns every other one down, so that each torture
/// INVITE gets a final response.
async fn handle_calls(mut rx: mpsc::Receiver<NewCall>) {
    while let Some(mut call) = rx.recv().await {
        let answer = call.call.user == SURVIVOR;
        tokio::spawn(async move {
            let cmd = if answer {
                SipCommand::Answer {
                    sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n".to_owned(),
                }
            } else {
                SipCommand::Reject {
                    code: 486,
                    retry_after: None,
                }
            };
            let _ = call.commands.send(cmd).await;
            while call.events.recv().await.is_some() {}
        });
    }
}

/// Sends one message and returns the first final response's code, if any comes.
async fn final_code(server: SocketAddr, name: &str) -> Option<u16> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = sock.local_addr().expect("addr").port();
    let path = format!(
        "{}/tests/fixtures/rfc4475/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    let raw = std::fs::read(&path).expect("fixture");
    sock.send_to(&loopback(&raw, port), server)
        .await
        .expect("send");
    let mut buf = vec![0u8; 65_536];
    for _ in 0..10 {
        let (n, _) = timeout(Duration::from_millis(500), sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        let code = std::str::from_utf8(buf.get(8..11)?)
            .ok()?
            .parse::<u16>()
            .ok()?;
        let _ = n;
        if code >= 200 {
            return Some(code);
        }
    }
    None
}

#[tokio::test]
async fn rfc4475_messages_get_the_answers_the_rfc_expects() {
    let (ep, cancel) = harness().await;
    let server = ep.local_addr();
    let mut wrong = Vec::new();
    for (name, expect) in TABLE {
        let got = match final_code(server, name).await {
            Some(code) => Final(code),
            None => Dropped,
        };
        if got != *expect {
            wrong.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(ep.stats().malformed_dropped >= 1);
    assert!(ep.stats().stray_responses >= 4);
    survivor_call(server).await;
    cancel.cancel();
}

#[test]
fn every_fixture_is_in_the_table() {
    let dir = format!("{}/tests/fixtures/rfc4475", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "dat") {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            assert!(
                TABLE.iter().any(|(n, _)| *n == stem),
                "{stem} has no expectation"
            );
        }
    }
}

#[test]
fn loopback_keeps_a_wrong_content_length_wrong() {
    let raw = b"INVITE sip:u@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1\r\nl: 99\r\n\r\nc=IN IP4 192.0.2.1\r\n";
    let out = String::from_utf8(loopback(raw, 5000)).expect("text");
    assert!(
        out.contains("UDP 127.0.0.1:5000\r\nl: 99\r\n\r\nc=IN IP4 192.0.2.1\r\n"),
        "{out}"
    );
    let raw =
        b"OPTIONS sip:u@example.com SIP/2.0\r\nContent-Length: 21\r\n\r\nc=IN IP4 192.0.2.10\r\n";
    let out = String::from_utf8(loopback(raw, 5000)).expect("text");
    assert!(
        out.ends_with("Content-Length: 20\r\n\r\nc=IN IP4 127.0.0.1\r\n"),
        "{out}"
    );
}

/// A plain INVITE/ACK/BYE call after the torture: the endpoint is still whole.
async fn survivor_call(server: SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let me = sock.local_addr().expect("addr");
    let common = |method: &str, branch: &str, cseq: u32, to_tag: &str| {
        format!(
            "{method} sip:{SURVIVOR}@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1@{me}>;tag=s1\r\nTo: <sip:{SURVIVOR}@{server}>{to_tag}\r\nCall-ID: survivor@test\r\nCSeq: {cseq} {method}\r\nContact: <sip:1@{me}>\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let recv_final = || async {
        let mut buf = vec![0u8; 65_536];
        for _ in 0..10 {
            let (n, _) = timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
                .await
                .expect("answer in time")
                .expect("recv");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("SIP/2.0 1") {
                return text;
            }
        }
        panic!("no final response");
    };
    let send = |text: String| {
        let sock = &sock;
        async move { sock.send_to(text.as_bytes(), server).await.expect("send") }
    };
    send(common("INVITE", "z9hG4bKs1", 1, "")).await;
    let ok = recv_final().await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let tag = ok
        .split("\r\n")
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .expect("To tag")
        .to_owned();
    let to_tag = format!(";tag={tag}");
    send(common("ACK", "z9hG4bKs2", 1, &to_tag)).await;
    send(common("BYE", "z9hG4bKs3", 2, &to_tag)).await;
    let bye_ok = recv_final().await;
    assert!(
        bye_ok.starts_with("SIP/2.0 200") && bye_ok.contains("CSeq: 2 BYE"),
        "{bye_ok}"
    );
}
