//! The SIP endpoint against a hand-written UAC over loopback UDP: every exchange the
//! call layer relies on, with short timers so retransmission tests stay fast.
use std::net::SocketAddr;
use std::time::Duration;

use hotline::sip::{NewCall, SipCommand, SipConfig, SipEndpoint, SipEvent};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(3);
const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
const ANSWER: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n";

async fn endpoint(t1_ms: u64) -> (SipEndpoint, mpsc::Receiver<NewCall>, CancellationToken) {
    let cancel = CancellationToken::new();
    let cfg = SipConfig {
        udp: "127.0.0.1:0".parse().expect("addr"),
        t1: Duration::from_millis(t1_ms),
        t2: Duration::from_millis(t1_ms * 8),
        ..SipConfig::default()
    };
    let (ep, rx) = SipEndpoint::start(cfg, cancel.clone())
        .await
        .expect("endpoint starts");
    (ep, rx, cancel)
}

struct Uac {
    sock: UdpSocket,
    me: SocketAddr,
    server: SocketAddr,
}

impl Uac {
    async fn new(server: SocketAddr) -> Uac {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let me = sock.local_addr().expect("addr");
        Uac { sock, me, server }
    }

    async fn send(&self, text: &str) {
        self.sock
            .send_to(text.as_bytes(), self.server)
            .await
            .expect("send");
    }

    async fn recv(&self, within: Duration) -> Option<String> {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = timeout(within, self.sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// The next message whose first line starts with `start`, skipping others.
    async fn expect(&self, start: &str) -> String {
        for _ in 0..20 {
            match self.recv(WAIT).await {
                Some(m) if m.starts_with(start) => return m,
                Some(_) => continue,
                None => break,
            }
        }
        panic!("no message starting with {start:?}");
    }

    fn contact(&self) -> String {
        format!(
            "<sip:uac@{};ob>;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000001>\"",
            self.me
        )
    }

    fn invite(
        &self,
        call_id: &str,
        branch: &str,
        cseq: u32,
        to_tag: Option<&str>,
        body: &str,
    ) -> String {
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        format!(
            "INVITE sip:water@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@{me}>;tag=uac1\r\nTo: <sip:water@{srv}>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: {contact}\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{body}",
            srv = self.server,
            me = self.me,
            contact = self.contact(),
            len = body.len()
        )
    }

    fn in_dialog(
        &self,
        method: &str,
        call_id: &str,
        to_tag: &str,
        cseq: u32,
        extra: &str,
        body: &str,
    ) -> String {
        format!(
            "{method} sip:hotline@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{method}{cseq};rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@{me}>;tag=uac1\r\nTo: <sip:water@{srv}>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: {len}\r\n\r\n{body}",
            srv = self.server,
            me = self.me,
            len = body.len()
        )
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n")
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        })
        .map(|(_, v)| v.trim())
}

fn to_tag(msg: &str) -> String {
    header(msg, "To")
        .and_then(|t| t.split(";tag=").nth(1))
        .map(|t| t.split(';').next().unwrap_or(t).to_owned())
        .expect("To tag")
}

async fn next_call(rx: &mut mpsc::Receiver<NewCall>) -> NewCall {
    timeout(WAIT, rx.recv())
        .await
        .expect("call in time")
        .expect("a call")
}

async fn next_event(call: &mut NewCall) -> SipEvent {
    timeout(WAIT, call.events.recv())
        .await
        .expect("event in time")
        .expect("an event")
}

/// INVITE → 100, Ringing → 180, Answer → 200, ACK → Acked. Returns the To tag.
async fn answered_call(
    uac: &Uac,
    rx: &mut mpsc::Receiver<NewCall>,
    call_id: &str,
) -> (NewCall, String) {
    uac.send(&uac.invite(call_id, "z9hG4bKinv1", 1, None, OFFER))
        .await;
    let trying = uac.expect("SIP/2.0 100").await;
    assert!(
        trying.contains(&format!("rport={}", uac.me.port())),
        "{trying}"
    );
    let mut call = next_call(rx).await;
    assert_eq!(call.call.user, "water");
    assert_eq!(call.call.caller, "1001");
    assert!(call.call.offer.contains("m=audio 40000"));
    call.commands.send(SipCommand::Ringing).await.expect("cmd");
    uac.expect("SIP/2.0 180").await;
    call.commands
        .send(SipCommand::Answer {
            sdp: ANSWER.to_owned(),
        })
        .await
        .expect("cmd");
    let ok = uac.expect("SIP/2.0 200").await;
    assert_eq!(header(&ok, "Content-Type"), Some("application/sdp"));
    assert!(ok.ends_with(ANSWER), "{ok}");
    let contact = header(&ok, "Contact").expect("Contact");
    assert!(contact.contains(&uac.server.to_string()), "{contact}");
    assert!(
        ok.contains("\r\nCall-ID: ") && ok.contains("\r\nCSeq: 1 INVITE"),
        "{ok}"
    );
    let tag = to_tag(&ok);
    uac.send(&uac.in_dialog("ACK", call_id, &tag, 1, "", ""))
        .await;
    assert!(matches!(
        next_event(&mut call).await,
        SipEvent::Acked { sdp: None }
    ));
    (call, tag)
}

#[tokio::test]
async fn call_answered_then_caller_hangs_up() {
    let (ep, mut rx, cancel) = endpoint(50).await;
    let uac = Uac::new(ep.local_addr()).await;
    let (mut call, tag) = answered_call(&uac, &mut rx, "c1@test").await;
    uac.send(&uac.in_dialog("BYE", "c1@test", &tag, 2, "", ""))
        .await;
    let ok = uac.expect("SIP/2.0 200").await;
    assert!(ok.contains("CSeq: 2 BYE"), "{ok}");
    assert!(matches!(
        next_event(&mut call).await,
        SipEvent::Hangup { cancelled: false }
    ));
    cancel.cancel();
}

#[tokio::test]
async fn hangup_from_the_call_sends_bye_to_the_contact_uri() {
    let (ep, mut rx, cancel) = endpoint(50).await;
    let uac = Uac::new(ep.local_addr()).await;
    let (call, _tag) = answered_call(&uac, &mut rx, "c2@test").await;
    call.commands.send(SipCommand::Hangup).await.expect("cmd");
    let bye = uac.expect("BYE ").await;
    let first = bye.lines().next().unwrap_or_default();
    assert_eq!(first, format!("BYE sip:uac@{};ob SIP/2.0", uac.me));
    assert_eq!(header(&bye, "CSeq"), Some("1 BYE"));
    assert!(
        header(&bye, "To").is_some_and(|t| t.contains("tag=uac1")),
        "{bye}"
    );
    let reply = bye.as_str();
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: c2@test\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        header(reply, "Via").unwrap_or_default(),
        header(reply, "From").unwrap_or_default(),
        header(reply, "To").unwrap_or_default()
    );
    uac.send(&ok).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(ep.stats().calls_active, 0);
    cancel.cancel();
}

#[tokio::test]
async fn cancel_while_ringing_gives_487_and_a_cancelled_hangup() {
    let (ep, mut rx, cancel) = endpoint(50).await;
    let uac = Uac::new(ep.local_addr()).await;
    // Compact header forms throughout (RFC 3261 §7.3.3).
    let invite = format!(
        "INVITE sip:water@{srv} SIP/2.0\r\nv: SIP/2.0/UDP {me};branch=z9hG4bKc3;rport\r\nf: <sip:1001@{me}>;tag=a\r\nt: <sip:water@{srv}>\r\ni: c3@test\r\nCSeq: 1 INVITE\r\nm: <sip:uac@{me}>\r\nc: application/sdp\r\nl: {len}\r\n\r\n{OFFER}",
        srv = uac.server,
        me = uac.me,
        len = OFFER.len()
    );
    uac.send(&invite).await;
    let trying = uac.expect("SIP/2.0 100").await;
    assert!(trying.contains("\r\nCall-ID: c3@test\r\n"), "{trying}");
    let mut call = next_call(&mut rx).await;
    call.commands.send(SipCommand::Ringing).await.expect("cmd");
    uac.expect("SIP/2.0 180").await;
    let cancel_req = format!(
        "CANCEL sip:water@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKc3;rport\r\nFrom: <sip:1001@{me}>;tag=a\r\nTo: <sip:water@{srv}>\r\nCall-ID: c3@test\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        srv = uac.server,
        me = uac.me
    );
    uac.send(&cancel_req).await;
    let mut got = (false, false);
    for _ in 0..6 {
        let Some(m) = uac.recv(WAIT).await else { break };
        got.0 |= m.starts_with("SIP/2.0 200") && m.contains("CSeq: 1 CANCEL");
        got.1 |= m.starts_with("SIP/2.0 487") && m.contains("CSeq: 1 INVITE");
        if got == (true, true) {
            break;
        }
    }
    assert_eq!(got, (true, true));
    assert!(matches!(
        next_event(&mut call).await,
        SipEvent::Hangup { cancelled: true }
    ));
    cancel.cancel();
}

#[tokio::test]
async fn out_of_dialog_requests_and_garbage() {
    let (ep, _rx, cancel) = endpoint(50).await;
    let uac = Uac::new(ep.local_addr()).await;
    let req = |method: &str, extra: &str, call_id: &str, to_tag: &str| {
        format!(
            "{method} sip:water@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id};rport\r\nFrom: <sip:1@{me}>;tag=x\r\nTo: <sip:water@{srv}>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: 7 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n",
            srv = uac.server,
            me = uac.me
        )
    };
    uac.send(&req("OPTIONS", "", "o1", "")).await;
    let ok = uac.expect("SIP/2.0").await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(header(&ok, "Allow").is_some_and(|a| a.contains("INVITE") && a.contains("BYE")));
    assert!(header(&ok, "Accept").is_some());
    uac.send(&req("FROB", "", "o2", "")).await;
    assert!(uac.expect("SIP/2.0").await.starts_with("SIP/2.0 501"));
    uac.send(&req("OPTIONS", "Require: foo\r\n", "o3", ""))
        .await;
    let bad_ext = uac.expect("SIP/2.0").await;
    assert!(bad_ext.starts_with("SIP/2.0 420"), "{bad_ext}");
    assert_eq!(header(&bad_ext, "Unsupported"), Some("foo"));
    uac.send(&req("BYE", "", "nosuchcall", ";tag=zz")).await;
    assert!(uac.expect("SIP/2.0").await.starts_with("SIP/2.0 481"));
    uac.send(&req("INFO", "", "nosuchcall2", ";tag=zz")).await;
    assert!(uac.expect("SIP/2.0").await.starts_with("SIP/2.0 481"));
    let before = ep.stats().malformed_dropped;
    uac.sock
        .send_to(b"\x00\x01garbage\xff\r\n\r\n", uac.server)
        .await
        .expect("send");
    uac.send("INVITE sip:x SIP/2.0\r\n\r\n").await; // no Via: nowhere to answer
    assert!(uac.recv(Duration::from_millis(200)).await.is_none());
    uac.send(&req("OPTIONS", "", "o4", "")).await;
    assert!(uac.expect("SIP/2.0").await.starts_with("SIP/2.0 200"));
    assert!(ep.stats().malformed_dropped >= before + 2);
    uac.send(&req("OPTIONS", "", "o5", "").replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"))
        .await;
    assert!(uac.expect("SIP/2.0").await.starts_with("SIP/2.0 505"));
    let stats = ep.stats();
    assert!(
        stats.responses_with(200) >= 2 && stats.responses_with(481) == 2,
        "{stats:?}"
    );
    cancel.cancel();
}

#[tokio::test]
async fn a_hangup_before_the_ack_waits_for_it_to_send_the_bye() {
    let (ep, mut rx, cancel) = endpoint(50).await;
    let uac = Uac::new(ep.local_addr()).await;
    uac.send(&uac.invite("c9@test", "z9hG4bKc9", 1, None, OFFER))
        .await;
    uac.expect("SIP/2.0 100").await;
    let call = next_call(&mut rx).await;
    call.commands
        .send(SipCommand::Answer {
            sdp: ANSWER.to_owned(),
        })
        .await
        .expect("cmd");
    let ok = uac.expect("SIP/2.0 200").await;
    call.commands.send(SipCommand::Hangup).await.expect("cmd");
    // RFC 3261 §15: the 200 is retransmitted, but no BYE goes before the ACK.
    let mut seen = Vec::new();
    while let Some(m) = uac.recv(Duration::from_millis(400)).await {
        seen.push(m.lines().next().unwrap_or_default().to_owned());
    }
    assert!(!seen.iter().any(|l| l.starts_with("BYE")), "{seen:?}");
    assert!(
        seen.iter().any(|l| l.starts_with("SIP/2.0 200")),
        "{seen:?}"
    );
    uac.send(&uac.in_dialog("ACK", "c9@test", &to_tag(&ok), 1, "", ""))
        .await;
    let bye = uac.expect("BYE ").await;
    assert_eq!(header(&bye, "CSeq"), Some("1 BYE"));
    cancel.cancel();
}

#[tokio::test]
async fn unacknowledged_200_is_retransmitted_then_bye_and_ack_timeout() {
    let (ep, mut rx, cancel) = endpoint(20).await;
    let uac = Uac::new(ep.local_addr()).await;
    uac.send(&uac.invite("c5@test", "z9hG4bKc5", 1, None, OFFER))
        .await;
    uac.expect("SIP/2.0 100").await;
    let mut call = next_call(&mut rx).await;
    call.commands
        .send(SipCommand::Answer {
            sdp: ANSWER.to_owned(),
        })
        .await
        .expect("cmd");
    let (mut oks, mut bye) = (0, None);
    while let Some(m) = uac.recv(Duration::from_secs(3)).await {
        if m.starts_with("SIP/2.0 200") {
            oks += 1;
        } else if m.starts_with("BYE ") {
            bye = Some(m);
            break;
        }
    }
    // 64·T1 = 1.28 s with T1 = 20 ms and T2 = 160 ms: 20, 40, 80, 160, 160, ... ms.
    assert!(oks >= 5, "only {oks} copies of the 200");
    assert!(bye.is_some(), "no BYE after the ACK timeout");
    assert!(matches!(next_event(&mut call).await, SipEvent::AckTimeout));
    assert_eq!(ep.stats().ack_timeouts, 1);
    cancel.cancel();
}

#[tokio::test]
async fn dtmf_reinvite_and_refer_in_one_call() {
    let (ep, mut rx, cancel) = endpoint(50).await;
    let uac = Uac::new(ep.local_addr()).await;
    let (mut call, tag) = answered_call(&uac, &mut rx, "c6@test").await;

    let relay = "Content-Type: application/dtmf-relay\r\n";
    uac.send(&uac.in_dialog(
        "INFO",
        "c6@test",
        &tag,
        2,
        relay,
        "Signal=5\r\nDuration=160\r\n",
    ))
    .await;
    assert!(uac.expect("SIP/2.0").await.starts_with("SIP/2.0 200"));
    assert!(matches!(next_event(&mut call).await, SipEvent::Dtmf('5')));
    uac.send(&uac.in_dialog(
        "INFO",
        "c6@test",
        &tag,
        3,
        "Content-Type: application/dtmf\r\n",
        "#",
    ))
    .await;
    assert!(uac.expect("SIP/2.0").await.starts_with("SIP/2.0 200"));
    assert!(matches!(next_event(&mut call).await, SipEvent::Dtmf('#')));

    let hold = OFFER.replace("a=rtpmap", "a=sendonly\r\na=rtpmap");
    uac.send(&uac.invite("c6@test", "z9hG4bKre1", 4, Some(&tag), &hold))
        .await;
    let SipEvent::Reinvite { offer } = next_event(&mut call).await else {
        panic!("expected a Reinvite");
    };
    assert!(offer.contains("a=sendonly"));
    let held = ANSWER.replace(
        "m=audio 30000 RTP/AVP 0\r\n",
        "m=audio 30000 RTP/AVP 0\r\na=recvonly\r\n",
    );
    call.commands
        .send(SipCommand::Reoffer {
            result: Ok(held.clone()),
        })
        .await
        .expect("cmd");
    let ok = uac.expect("SIP/2.0 200").await;
    assert!(ok.contains("CSeq: 4 INVITE") && ok.ends_with(&held), "{ok}");
    uac.send(&uac.in_dialog("ACK", "c6@test", &tag, 4, "", ""))
        .await;

    call.commands
        .send(SipCommand::Refer {
            target: "sip:agent@127.0.0.1:5099".to_owned(),
        })
        .await
        .expect("cmd");
    let refer = uac.expect("REFER ").await;
    assert_eq!(
        header(&refer, "Refer-To"),
        Some("<sip:agent@127.0.0.1:5099>")
    );
    assert_eq!(header(&refer, "CSeq"), Some("1 REFER"));
    let accepted = format!(
        "SIP/2.0 202 Accepted\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: c6@test\r\nCSeq: 1 REFER\r\nContent-Length: 0\r\n\r\n",
        header(&refer, "Via").unwrap_or_default(),
        header(&refer, "From").unwrap_or_default(),
        header(&refer, "To").unwrap_or_default()
    );
    uac.send(&accepted).await;
    let frag = "SIP/2.0 200 OK\r\n";
    let notify_headers = "Event: refer\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: message/sipfrag;version=2.0\r\n";
    uac.send(&uac.in_dialog("NOTIFY", "c6@test", &tag, 5, notify_headers, frag))
        .await;
    let ok = uac.expect("SIP/2.0").await;
    assert!(
        ok.starts_with("SIP/2.0 200") && ok.contains("CSeq: 5 NOTIFY"),
        "{ok}"
    );
    assert!(matches!(
        next_event(&mut call).await,
        SipEvent::TransferDone { ok: true }
    ));

    call.commands
        .send(SipCommand::Refer {
            target: "sip:nobody@127.0.0.1:5099".to_owned(),
        })
        .await
        .expect("cmd");
    let refer = uac.expect("REFER ").await;
    assert_eq!(header(&refer, "CSeq"), Some("2 REFER"));
    let refused = format!(
        "SIP/2.0 603 Decline\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: c6@test\r\nCSeq: 2 REFER\r\nContent-Length: 0\r\n\r\n",
        header(&refer, "Via").unwrap_or_default(),
        header(&refer, "From").unwrap_or_default(),
        header(&refer, "To").unwrap_or_default()
    );
    uac.send(&refused).await;
    assert!(matches!(
        next_event(&mut call).await,
        SipEvent::TransferDone { ok: false }
    ));

    ep.shutdown().await;
    let bye = uac.expect("BYE ").await;
    assert_eq!(header(&bye, "CSeq"), Some("3 BYE"));
    cancel.cancel();
}

#[tokio::test]
async fn options_over_tcp_split_across_writes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cancel = CancellationToken::new();
    let cfg = SipConfig {
        udp: "127.0.0.1:0".parse().expect("addr"),
        tcp: Some("127.0.0.1:0".parse().expect("addr")),
        ..SipConfig::default()
    };
    let (ep, _rx) = SipEndpoint::start(cfg, cancel.clone())
        .await
        .expect("start");
    let server = ep.tcp_addr().expect("tcp bound");
    let mut stream = tokio::net::TcpStream::connect(server)
        .await
        .expect("connect");
    let me = stream.local_addr().expect("addr");
    let req = format!(
        "OPTIONS sip:water@{server} SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bKt1\r\nFrom: <sip:1@{me}>;tag=t\r\nTo: <sip:water@{server}>\r\nCall-ID: tcp1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let (a, b) = req.split_at(40);
    stream.write_all(a.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.write_all(b.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = timeout(WAIT, stream.read(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("SIP/2.0 200"), "{text}");
    assert!(text.contains("Call-ID: tcp1"), "{text}");
    cancel.cancel();
}

/// RFC 3261 §17.2.1: a 100 Trying only for an INVITE that would hear nothing else for
/// 200 ms. An INVITE answered at once hears its 200 alone; one the call layer keeps
/// waiting hears 100 on its own (once); a retransmission that comes before any answer
/// is told 100 at once, and no second 100 follows.
#[tokio::test]
async fn an_invite_answered_at_once_hears_its_200_alone_and_a_waiting_one_hears_100() {
    let (ep, mut rx, cancel) = endpoint(500).await;
    let uac = Uac::new(ep.local_addr()).await;
    uac.send(&uac.invite("fast@test", "z9hG4bKfast", 1, None, OFFER))
        .await;
    let fast = next_call(&mut rx).await;
    fast.commands
        .send(SipCommand::Answer {
            sdp: ANSWER.to_owned(),
        })
        .await
        .expect("cmd");
    let first = uac.recv(WAIT).await.expect("an answer");
    assert!(first.starts_with("SIP/2.0 200"), "{first}");

    // Each case its own caller: the first's 200 goes on being retransmitted (no ACK).
    let uac = Uac::new(ep.local_addr()).await;
    let sent = tokio::time::Instant::now();
    uac.send(&uac.invite("slow@test", "z9hG4bKslow", 1, None, OFFER))
        .await;
    let _slow = next_call(&mut rx).await;
    let trying = uac.recv(WAIT).await.expect("a 100");
    assert!(trying.starts_with("SIP/2.0 100"), "{trying}");
    assert!(trying.contains("Call-ID: slow@test"), "{trying}");
    assert!(
        sent.elapsed() >= Duration::from_millis(90),
        "the 100 waits for an answer that may come first: {:?}",
        sent.elapsed()
    );
    assert_eq!(
        uac.recv(Duration::from_millis(300)).await,
        None,
        "one 100, nothing more while the call layer waits"
    );

    let uac = Uac::new(ep.local_addr()).await;
    let again = uac.invite("again@test", "z9hG4bKagain", 1, None, OFFER);
    uac.send(&again).await;
    let _again = next_call(&mut rx).await;
    uac.send(&again).await;
    let trying = uac.recv(WAIT).await.expect("a 100");
    assert!(
        trying.starts_with("SIP/2.0 100") && trying.contains("Call-ID: again@test"),
        "{trying}"
    );
    assert_eq!(
        uac.recv(Duration::from_millis(300)).await,
        None,
        "the retransmission's 100 stands for the one that was due"
    );
    cancel.cancel();
}
