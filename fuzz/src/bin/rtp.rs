//! `scripts/fuzz.sh rtp SECONDS`: hotline::fuzzing::rtp under AFL++.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        hotline::fuzzing::rtp(data);
    });
}
