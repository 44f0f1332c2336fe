#!/usr/bin/env bash
# Call set-up rate (issue 11): SIPp's built-in UAC (`-sn uac`: INVITE, ACK, each call held
# 1 s, BYE) against a fresh `hotline serve` on 127.0.0.1, at RATE calls a second for
# SECONDS. Prints SIPp's counts, hotline's CPU, and a last line for machines:
#   RESULT offered=2500 rate=2500 calls=25000 failures=0 retransmissions=0 hotline_cores=0.9 sipp_drops=0 hotline_ms_per_call=0.43
# `rate` is the calls set up and torn down without failure per second offered.
#
#   bash benches/setup-rate.sh [RATE] [SECONDS]        # default 2500 10
#   PERF=1 bash benches/setup-rate.sh 2500 10          # also perf record hotline (perf.data in the kept dir)
# Needs sipp (sip-tester) and a release build (HOTLINE_BIN, default target/release/hotline).
set -euo pipefail
RATE=${1:-2500}
SECS=${2:-10}
repo=$(cd "$(dirname "$0")/.." && pwd)
BIN=${HOTLINE_BIN:-$repo/target/release/hotline}
[ -x "$BIN" ] || { echo "setup-rate: no $BIN (cargo build --release)" >&2; exit 1; }
command -v sipp >/dev/null || { echo "setup-rate: no sipp (apt-get install sip-tester)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/hotline-setup-rate.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [ -n "${KEEP:-}${PERF:-}" ] && echo "setup-rate: kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SIP=$(port); HTTP=$(port); UAC=$(port)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cat >"$tmp/hotline.yaml" <<EOF
flows: $repo/flows
prompts: $repo/prompts
lookups: $repo/data
# SIPp is one source carrying every call, as a trunk does: exempt from the per-source
# limits, which would otherwise drop most INVITEs and leave SIPp retransmitting.
sip_limits: {exempt: [127.0.0.0/8]}
${SETUP_RATE_CONFIG:-}
EOF
# Every call held 1 s: RATE calls up at once, and the ones ending.
max=$((RATE * 3 + 100))
RUST_LOG=warn "$BIN" serve --config "$tmp/hotline.yaml" --sip "127.0.0.1:$SIP" \
  --http "127.0.0.1:$HTTP" --data "$tmp/var" --max-calls "$max" 2>"$tmp/hotline.log" &
pid=$!
for _ in $(seq 100); do grep -q "answering SIP" "$tmp/hotline.log" && break; sleep 0.1; done
grep -q "answering SIP" "$tmp/hotline.log" || { cat "$tmp/hotline.log" >&2; exit 1; }
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
if [ -n "${PERF:-}" ]; then
  perf record -g -F 499 -o "$tmp/perf.data" -p "$pid" >/dev/null 2>&1 &
  perfpid=$!
fi
# SIPp's own SIP socket drops (the kernel's count for its port in /proc/net/udp): a
# response dropped there is retransmitted by SIPp and counted as a retransmission, but
# hotline sent it in time. SIPp's default buffer (-buff_size 65535) overflowed at
# 2,500 calls a second (7,231 drops in one run); asked for 4 MiB (net.core.rmem_max
# caps it), and what it still drops is printed.
uac_hex=$(printf '%04X' "$UAC")
sipp_drops() {
  awk -v p=":$uac_hex" 'NR > 1 && substr($2, length($2) - 4) == p { print $NF }' /proc/net/udp
}
echo 0 >"$tmp/sipp.drops"
c0=$(cpu); t0=$(date +%s.%N)
(cd "$tmp" && sipp -sn uac "127.0.0.1:$SIP" -i 127.0.0.1 -p "$UAC" -r "$RATE" \
  -m $((RATE * SECS)) -d 1000 -nostdin -trace_stat -stf stats.csv -fd 1 \
  -buff_size 4194304 -timeout $((SECS + 40))s >/dev/null 2>"$tmp/sipp.err") &
sipp_pid=$!
while kill -0 "$sipp_pid" 2>/dev/null; do
  d=$(sipp_drops); [ -n "$d" ] && echo "$d" >"$tmp/sipp.drops"
  sleep 0.2
done
wait "$sipp_pid" || true
c1=$(cpu); t1=$(date +%s.%N)
[ -n "${PERF:-}" ] && kill -INT "$perfpid" && wait "$perfpid" || true
# What the media threads and the overload signal said (503s come from there).
curl -s "http://127.0.0.1:$HTTP/healthz" | grep -E '^(media_|rtp_send_errors)' | tr '\n' ' ' >&2 || true
echo >&2
[ -s "$tmp/stats.csv" ] || { echo "setup-rate: sipp left no statistics" >&2; cat "$tmp/sipp.err" >&2; exit 1; }
python3 - "$tmp/stats.csv" "$RATE" "$SECS" "$c0" "$c1" "$t0" "$t1" "$ticks" "$(cat "$tmp/sipp.drops")" <<'EOF'
import sys
path, rate, secs, c0, c1, t0, t1, hz, sipp_drops = sys.argv[1:]
rows = [l.rstrip(";\n").split(";") for l in open(path) if l.strip()]
head, last = rows[0], rows[-1]
v = dict(zip(head, last))
def g(k):
    try:
        return int(float(v.get(k, "0") or 0))
    except ValueError:
        return 0
ok, failed, retrans = g("SuccessfulCall(C)"), g("FailedCall(C)"), g("Retransmissions(C)")
outgoing = g("OutgoingCall(C)")
wall = float(t1) - float(t0)
cores = (float(c1) - float(c0)) / float(hz) / wall
# CPU a call, its second of RTP included: the yardstick for the SIP, flow and record
# work a call costs (at a low rate it is dearer: each message wakes hotline anew).
ms_per_call = (float(c1) - float(c0)) / float(hz) * 1000 / max(outgoing, 1)
print(f"offered {rate}/s for {secs} s: {outgoing} calls, {ok} successful, {failed} failed, {retrans} retransmissions; hotline {cores:.2} cores over {wall:.1f} s, {ms_per_call:.2f} ms of CPU a call; SIPp's socket dropped {sipp_drops}")
print(f"RESULT offered={rate} rate={ok / float(secs):.0f} calls={outgoing} failures={failed + max(0, outgoing - ok - failed)} retransmissions={retrans} hotline_cores={cores:.2} sipp_drops={sipp_drops} hotline_ms_per_call={ms_per_call:.2f}")
EOF
