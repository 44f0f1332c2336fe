//! `scripts/fuzz.sh sip SECONDS`: hotline::fuzzing::sip under AFL++.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        hotline::fuzzing::sip(data);
    });
}
