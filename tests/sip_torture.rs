//! RFC 4475 torture messages (tests/fixtures/rfc4475, MIT-licensed copies, see the
//! licence file there) sent to a running endpoint over loopback UDP, each checked
//! against the answer the RFC expects; then an ordinary call must still work.
use std::net::SocketAddr;
use std::time::Duration;

use hotline::sip::{NewCall, SipCommand, SipConfig, SipEndpoint};
use regex::bytes::Regex;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// This final status (provisional responses before it are fine).
    Final(u16),
    /// No answer at all: a response we never asked for, or nowhere to route one.
    Dropped,
}
use Expect::{Dropped, Final};

/// The user the harness answers; every other INVITE is turned down with 486.
const SURVIVOR: &str = "survivor";

const TABLE: &[(&str, Expect)] = &[
    // §3.1.1 valid messages: answered, never with 400.
    ("wsinv", Final(481)),   // 3.1.1.1: valid, but To has a tag: no such dialog
    ("intmeth", Final(501)), // 3.1.1.2: unknown (valid) method
    ("esc01", Final(486)),   // 3.1.1.3: a new call; the harness is busy
    ("escnull", Final(405)), // 3.1.1.4: REGISTER; we are no registrar
    ("esc02", Final(501)),   // 3.1.1.5: RE%47IST%45R is not REGISTER
    ("lwsdisp", Final(200)), // 3.1.1.6
    ("longreq", Final(486)), // 3.1.1.7
    ("dblreq", Final(405)),  // 3.1.1.8: the REGISTER; the trailing INVITE is ignored
    ("semiuri", Final(200)), // 3.1.1.9
    ("transports", Final(200)), // 3.1.1.10
    ("mpart01", Final(405)), // 3.1.1.11: MESSAGE
    ("unreason", Dropped),   // 3.1.1.12: a response to nothing of ours
    ("noreason", Dropped),   // 3.1.1.13: a response to nothing of ours
    // §3.1.2 invalid messages: 400 where a response can be routed.
    ("badinv01", Final(400)),   // 3.1.2.1
    ("clerr", Final(400)),      // 3.1.2.2: Content-Length larger than the message
    ("ncl", Final(400)),        // 3.1.2.3: negative Content-Length
    ("scalar02", Final(400)),   // 3.1.2.4
    ("scalarlg", Dropped),      // 3.1.2.5: a response
    ("quotbal", Final(400)),    // 3.1.2.6
    ("ltgtruri", Final(400)),   // 3.1.2.7
    ("lwsruri", Final(400)),    // 3.1.2.8
    ("lwsstart", Final(400)),   // 3.1.2.9
    ("trws", Final(400)),       // 3.1.2.10
    ("escruri", Final(400)),    // 3.1.2.11
    ("baddate", Final(400)),    // 3.1.2.12
    ("regbadct", Final(400)),   // 3.1.2.13
    ("badaspec", Final(400)),   // 3.1.2.14
    ("baddn", Final(400)),      // 3.1.2.15
    ("badvers", Final(505)),    // 3.1.2.16
    ("mismatch01", Final(400)), // 3.1.2.17
    ("mismatch02", Final(400)), // 3.1.2.18
    ("bigcode", Dropped),       // 3.1.2.19: a response with a 10-digit code
    // §3.2 transaction layer.
    ("badbranch", Final(200)), // 3.2.1: accepted (the RFC allows 400 or accepting)
    // §3.3 application layer.
    ("insuf", Final(400)),    // 3.3.1: missing Call-ID/From/To
    ("unkscm", Final(416)),   // 3.3.2
    ("novelsc", Final(416)),  // 3.3.3
    ("unksm2", Final(405)),   // 3.3.4: REGISTER
    ("bext01", Final(420)),   // 3.3.5
    ("invut", Final(415)),    // 3.3.6
    ("regaut01", Final(405)), // 3.3.7: REGISTER
    ("multi01", Final(400)),  // 3.3.8
    ("mcl01", Final(400)),    // 3.3.9
    ("bcast", Dropped),       // 3.3.10: a response
    ("zeromf", Final(200)),   // 3.3.11: Max-Forwards 0 is for proxies; we are the UAS
    ("cparam01", Final(405)), // 3.3.12: REGISTER
    ("cparam02", Final(405)), // 3.3.13: REGISTER
    ("regescrt", Final(405)), // 3.3.14: REGISTER
    ("sdp01", Final(406)),    // 3.3.15
    // §3.4 backward compatibility.
    ("inv2543", Final(486)), // 3.4.1: RFC 2543 INVITE, no branch, no Max-Forwards
    // Not from RFC 4475 (an extra message of the fixture set): no Via, no version.
    ("test", Dropped),
];

/// Moves every address onto loopback. Hosts and IPs in the header section become
/// `127.0.0.1:port` (so responses come back to the test); IPs in a body become
/// `127.0.0.1`, and Content-Length follows, unless the message's point is a wrong
/// Content-Length (then the body is left alone and the mismatch survives).
fn loopback(raw: &[u8], port: u16) -> Vec<u8> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4);
    let (head, body) = raw.split_at(split);
    // `examle.com` is the RFC's own typo in trws's Via.
    let host = Regex::new(
        r"(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?|(?:[A-Za-z0-9-]+\.)*examp?le\.(?:com|net|org|edu)(?::\d+)?",
    )
    .expect("regex");
    let to = format!("127.0.0.1:{port}");
    let head = host.replace_all(head, to.as_bytes()).into_owned();
    let head = String::from_utf8_lossy(&head).into_owned();
    let is_length = |line: &str| {
        line.split_once(':').is_some_and(|(n, _)| {
            let n = n.trim();
            n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l")
        })
    };
    let lengths: Vec<&str> = head.split("\r\n").filter(|l| is_length(l)).collect();
    let declared = match lengths.as_slice() {
        [one] => one
            .split_once(':')
            .and_then(|(_, v)| v.trim().parse::<usize>().ok()),
        _ => None,
    };
    if declared != Some(body.len()) {
        return [head.as_bytes(), body].concat();
    }
    let ip = Regex::new(r"(?:\d{1,3}\.){3}\d{1,3}").expect("regex");
    let body = ip.replace_all(body, &b"127.0.0.1"[..]).into_owned();
    let head: Vec<String> = head
        .split("\r\n")
        .map(|l| match l.split_once(':') {
            Some((name, _)) if is_length(l) => format!("{name}: {}", body.len()),
            _ => l.to_owned(),
        })
        .collect();
    let head = head.join("\r\n").into_bytes();
    [head, body].concat()
}

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
