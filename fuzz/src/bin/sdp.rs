//! `scripts/fuzz.sh sdp SECONDS`: hotline::fuzzing::sdp under AFL++.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        hotline::fuzzing::sdp(data);
    });
}
