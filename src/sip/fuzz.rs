//! The SIP receive path as one function of the bytes of a datagram or stream, for the
//! fuzzer (fuzz/) and the corpus replay (tests/fuzz_corpus.rs): framing, the guard's
//! look at it, RFC 3261 §8.2 checks, what a new call is read as, and the response
//! built for it. Whatever the bytes, it must return.
use super::build::{self, ResponseSpec};
use super::wire::{self, StartLine};
use std::net::SocketAddr;

pub fn message(data: &[u8]) {
    let src = SocketAddr::from(([192, 0, 2, 1], 5060));
    for stream in [false, true] {
        let mut rest = data;
        // A stream may hold several messages; a few are enough to reach the framing's
        // carry-over paths.
        for _ in 0..4 {
            let Ok(Some((msg, used))) = wire::parse(rest, stream) else {
                break;
            };
            one(&msg, src);
            match rest.get(used..) {
                Some(r) if used > 0 && !r.is_empty() => rest = r,
                _ => break,
            }
        }
    }
}

fn one(msg: &wire::Message, src: SocketAddr) {
    let _ = (msg.call_id(), msg.cseq(), msg.to_tag());
    let _ = (msg.content_type(), msg.body_text());
    if let Some(via) = msg.top_via() {
        let _ = build::response_destination(&via, src);
    }
    let StartLine::Request { method, .. } = &msg.start else {
        // A response, as the UAC reads one from a callee or a trunk.
        super::uac::fuzz_response(msg);
        return;
    };
    let guard = super::guard::Guard::new(super::guard::GuardSettings::default());
    let _ = guard.screen(src.ip(), method, msg.get("User-Agent"), true);
    let code = match super::check::check_request(msg) {
        Ok(()) => {
            let call = super::endpoint::incoming_call(msg, src);
            if !call.offer.trim().is_empty() {
                crate::fuzzing::sdp(call.offer.as_bytes());
            }
            200
        }
        Err(reject) => reject.code,
    };
    let _ = build::response(
        msg,
        src,
        &ResponseSpec {
            code,
            to_tag: Some("fuzz"),
            extra: &[("Retry-After", "5".to_owned())],
            body: None,
            user_agent: "hotline-fuzz",
        },
    );
}
