//! The SIPp reference: SIPp (`sip-tester`) as a UAS answering the same number of calls
//! and streaming a looped PCMU prompt to each (its `rtp_stream` action), called by a
//! SIPp UAC (our client expects hotline's prompts and hang-up, which a SIPp UAS does not
//! give) whose SDP names the same kind of client socket the load client uses. SIPp's
//! CPU per RTP packet is its process's CPU over the window over the datagrams that
//! reached the client socket.
use serde_json::{Value, json};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const UAS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="hotline reference: answer and stream a looped PCMU prompt">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]ref[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]ref[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=ref 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [rtpstream_audio_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=ptime:20
]]></send>
  <recv request="ACK" crlf="true"/>
  <nop><action><exec rtp_stream="PROMPT,-1,0"/></action></nop>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"#;

const UAC: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="hotline reference: a silent caller">
  <send retrans="500"><![CDATA[
INVITE sip:ref@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:load@[local_ip]:[local_port]>;tag=[pid]uac[call_number]
To: <sip:ref@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:load@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=load 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio SINKPORT RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=ptime:20
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:ref@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 1 ACK
Contact: <sip:load@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause/>
  <send retrans="500"><![CDATA[
BYE sip:ref@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 2 BYE
Contact: <sip:load@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"#;

fn counting_sink() -> Result<(u16, Arc<AtomicU64>, Arc<AtomicBool>), String> {
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    super::set_buffers(&sock, 64 << 20);
    let port = sock.local_addr().map_err(|e| e.to_string())?.port();
    let got = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (g, st) = (got.clone(), stop.clone());
    std::thread::spawn(move || super::floor::count_until_stopped(&sock, &st, &g));
    Ok((port, got, stop))
}

fn spawn(args: &[String], dir: &Path, log: &str) -> Result<Child, String> {
    let err = std::fs::File::create(dir.join(log)).map_err(|e| e.to_string())?;
    Command::new("sipp")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start sipp (apt-get install sip-tester): {e}"))
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `calls` concurrent calls ramped at `ramp`/s, then `window` seconds measured.
pub fn run(calls: usize, ramp: f64, window: f64) -> Result<Value, String> {
    let tmp = tempfile::Builder::new()
        .prefix("hotline-sipp-ref-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let dir = tmp.path();
    // Ten seconds of a PCMU prompt, looped: a 400 Hz tone, μ-law coded.
    let prompt: Vec<u8> = (0..80_000)
        .map(|i| {
            let x = (i as f64 * 2.0 * std::f64::consts::PI * 400.0 / 8000.0).sin() * 8000.0;
            hotline::media::g711::ulaw_encode(x as i16)
        })
        .collect();
    std::fs::write(dir.join("prompt.ulaw"), prompt).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("uas.xml"), UAS.replace("PROMPT", "prompt.ulaw"))
        .map_err(|e| e.to_string())?;
    let (sink_port, got, stop) = counting_sink()?;
    std::fs::write(
        dir.join("uac.xml"),
        UAC.replace("SINKPORT", &sink_port.to_string()),
    )
    .map_err(|e| e.to_string())?;
    let uas_port = super::free_port();
    let uac_port = super::free_port();
    let up = calls as f64 / ramp;
    let hold_ms = ((up + window + 10.0) * 1000.0) as u64;
    let uas = Kill(spawn(
        &[
            "-sf".into(),
            "uas.xml".into(),
            "-i".into(),
            "127.0.0.1".into(),
            "-mi".into(),
            "127.0.0.1".into(),
            "-p".into(),
            uas_port.to_string(),
            "-nostdin".into(),
            "-max_socket".into(),
            (calls * 2 + 100).to_string(),
        ],
        dir,
        "uas.log",
    )?);
    std::thread::sleep(Duration::from_millis(500));
    let _uac = Kill(spawn(
        &[
            format!("127.0.0.1:{uas_port}"),
            "-sf".into(),
            "uac.xml".into(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            uac_port.to_string(),
            "-r".into(),
            format!("{}", ramp.round() as u64),
            "-l".into(),
            calls.to_string(),
            "-m".into(),
            calls.to_string(),
            "-d".into(),
            hold_ms.to_string(),
            "-nostdin".into(),
        ],
        dir,
        "uac.log",
    )?);
    let pid = uas.0.id();
    // Every call up and streaming, then the window.
    std::thread::sleep(Duration::from_secs_f64(up + 3.0));
    let c0 = super::procfs::cpu(pid).ok_or("sipp UAS ended early")?;
    let (p0, t0) = (got.load(Ordering::Relaxed), Instant::now());
    let others0 = super::procfs::others(&[pid, std::process::id()]);
    std::thread::sleep(Duration::from_secs_f64(window));
    let c1 = super::procfs::cpu(pid).ok_or("sipp UAS ended during the window")?;
    let (p1, secs) = (got.load(Ordering::Relaxed), t0.elapsed().as_secs_f64());
    let others1 = super::procfs::others(&[pid, std::process::id()]);
    stop.store(true, Ordering::Relaxed);
    let cpu = c1.minus(&c0);
    let pkts = (p1 - p0) as f64;
    let us = |s: f64| s * 1e6 / pkts.max(1.0);
    let rss_kb = super::procfs::status_kb(pid, "VmRSS").unwrap_or(0);
    Ok(json!({
        "calls": calls,
        "window_s": secs,
        "rtp_packets_per_s": pkts / secs,
        "expected_packets_per_s": calls as f64 * 50.0,
        "cpu_cores": cpu.total() / secs,
        "us_per_packet": { "user": us(cpu.user), "sys": us(cpu.sys), "total": us(cpu.total()) },
        "rss_mb": rss_kb as f64 / 1024.0,
        "other_processes_cpu_cores": (others1.0 - others0.0) / secs,
    }))
}
