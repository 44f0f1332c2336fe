//! `scripts/fuzz.sh catalogue SECONDS`: hotline::fuzzing::catalogue under AFL++.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        hotline::fuzzing::catalogue(data);
    });
}
