//! The entry points the fuzzer drives (fuzz/, `scripts/fuzz.sh TARGET SECONDS`) and
//! `cargo test` replays (tests/fuzz_corpus.rs replays every committed corpus file):
//! each takes arbitrary bytes and must return, whatever they hold. Not an API.
use crate::flow::{self, Catalogue, Diags};
use crate::media::dtmf::{DtmfDetector, TelephoneEvent};
use crate::media::rtp::{self, RtpPacket};
use std::path::Path;
use std::sync::OnceLock;

/// One target: bytes in, nothing out.
pub type Target = fn(&[u8]);

/// The targets, by the name `scripts/fuzz.sh` and the corpus directories use.
pub const TARGETS: [(&str, Target); 6] = [
    ("sip", sip),
    ("sdp", sdp),
    ("rtp", rtp),
    ("flow", flow),
    ("catalogue", catalogue),
    ("script", script),
];

/// A SIP datagram or stream: framing, the guard, the §8.2 checks, the call it would
/// start, the response.
pub fn sip(data: &[u8]) {
    crate::sip::fuzz::message(data);
}

/// An SDP offer: parsed and answered.
pub fn sdp(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(offer) = crate::sip::sdp::parse(&text) {
        let _ = offer.to_string();
        let prefs = crate::sip::sdp::Prefs::new(1, 1);
        let ip = std::net::IpAddr::from([192, 0, 2, 1]);
        if let Ok(a) = crate::sip::sdp::negotiate(&offer, ip, 20000, &prefs) {
            let _ = a.sdp.to_string();
        }
    }
}

/// An RTP datagram: the packet, and its payload as RFC 4733 events fed to a detector
/// (twice, as a retransmission would be).
pub fn rtp(data: &[u8]) {
    let _ = rtp::is_rtcp(data);
    if let Ok(p) = RtpPacket::parse(data) {
        let _ = (p.csrc_count(), p.csrcs().count());
        let _ = TelephoneEvent::parse(p.payload);
        let mut d = DtmfDetector::new();
        let _ = d.on_packet(p.ssrc, p.timestamp, p.payload);
        let _ = d.on_packet(p.ssrc, p.timestamp, p.payload);
        let _ = d.flush();
    }
    let mut d = DtmfDetector::new();
    let _ = d.on_packet(1, 0, data);
    let _ = d.flush();
}

/// The shipped catalogue, for checking fuzzed flows against.
fn shipped_catalogue() -> Option<&'static Catalogue> {
    static CAT: OnceLock<Option<Catalogue>> = OnceLock::new();
    CAT.get_or_init(|| {
        let text = include_str!("../prompts/catalogue.yaml");
        let file = Path::new("prompts/catalogue.yaml");
        Catalogue::parse(text, file, Path::new("prompts"), &mut Diags::new(file))
    })
    .as_ref()
}

/// A flow file: loaded, checked against the shipped catalogue, drawn.
pub fn flow(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("fuzz.yaml");
    let mut d = Diags::new(path);
    if let Some(f) = flow::load::load_str(&text, path, &mut d) {
        flow::check::check(&f, shipped_catalogue(), None, &mut d);
        let _ = crate::designer::graph::render(&f, crate::designer::graph::Format::Mermaid);
    }
    let _ = d.into_sorted();
}

/// A prompt catalogue.
pub fn catalogue(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("catalogue.yaml");
    let mut d = Diags::new(path);
    let _ = Catalogue::parse(&text, path, Path::new("prompts"), &mut d);
}

/// A flow test's caller script (and the test file around it).
pub fn script(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::designer::script::parse_script(&text);
    let path = Path::new("fuzz.test.yaml");
    let mut d = Diags::new(path);
    let _ = crate::designer::flowtest::parse_str(&text, path, &mut d);
}
