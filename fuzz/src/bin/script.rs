//! `scripts/fuzz.sh script SECONDS`: hotline::fuzzing::script under AFL++.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        hotline::fuzzing::script(data);
    });
}
