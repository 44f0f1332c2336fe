#!/usr/bin/env bash
# Runs one fuzz target under AFL++ (cargo-afl, stable Rust) for SECONDS, at the lowest
# CPU priority, seeded from fuzz/corpus/TARGET; prints the figures the README's
# "Hardening" section records (executions, edges found, crashes, hangs).
#
#   scripts/fuzz.sh TARGET SECONDS      TARGET: sip sdp rtp flow catalogue script
#
# Needs cargo-afl (cargo install cargo-afl && cargo afl config --build); CI does not.
# Findings land in fuzz/out/TARGET/default/{crashes,hangs}; each one fixed becomes a
# file in fuzz/corpus/TARGET, which tests/fuzz_corpus.rs replays in cargo test.
set -euo pipefail
targets="sip sdp rtp flow catalogue script"
target=${1:-}
seconds=${2:-}
if [[ -z "$target" || -z "$seconds" || ! " $targets " == *" $target "* ]]; then
    echo "usage: scripts/fuzz.sh TARGET SECONDS   (TARGET: $targets)" >&2
    exit 2
fi
cd "$(dirname "$0")/../fuzz"
if ! cargo afl --version >/dev/null 2>&1; then
    echo "cargo-afl is not installed: cargo install cargo-afl && cargo afl config --build" >&2
    exit 2
fi
nice -n 19 cargo afl build --release --bin "$target" >&2
out="out/$target"
mkdir -p "$out"
# Resume a previous run's queue when there is one ("-"), else start from the corpus.
input="corpus/$target"
[[ -d "$out/default/queue" ]] && input="-"
export AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_AFFINITY=1 AFL_SHUFFLE_QUEUE=1
nice -n 19 cargo afl fuzz -V "$seconds" -t 1000 -i "$input" -o "$out" \
    "target/release/$target" > "$out/fuzz.log" 2>&1 || true
stats="$out/default/fuzzer_stats"
if [[ ! -f "$stats" ]]; then
    echo "afl-fuzz did not start; see fuzz/$out/fuzz.log" >&2
    tail -20 "$out/fuzz.log" >&2
    exit 1
fi
val() { awk -F' *: *' -v k="$1" '$1 == k {print $2}' "$stats"; }
echo "target $target: $(val run_time) s, $(val execs_done) execs ($(val execs_per_sec)/s)," \
     "edges $(val edges_found)/$(val total_edges) ($(val bitmap_cvg)), corpus $(val corpus_count)," \
     "crashes $(val saved_crashes), hangs $(val saved_hangs)"
