//! `scripts/fuzz.sh flow SECONDS`: hotline::fuzzing::flow under AFL++.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        hotline::fuzzing::flow(data);
    });
}
