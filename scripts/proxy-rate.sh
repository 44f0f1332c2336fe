#!/usr/bin/env bash
# The farm proxy's capacity (README "Beyond one machine"): SIPp callers through
# deploy/kamailio to three SIPp answerers on 127.0.0.2-4, standing in for hotline
# instances so that only the proxy is measured. Loopback only, bounded in time.
#   scripts/proxy-rate.sh [RATE calls/s] [SECONDS] [full]
# `full`: the first instance answers every INVITE 486 at once (every line busy), so a
# third of the calls take the failover hop to the next one.
set -euo pipefail
rate="${1:-500}"; secs="${2:-10}"; mode="${3:-}"
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d -t proxy-rate.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
cat > "$work/busy.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="every line busy">
  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 486 Busy Here
[last_Via:]
[last_From:]
[last_To:];tag=[pid]busy[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <recv request="ACK"/>
</scenario>
XML
# A caller that follows Record-Route (SIPp's built-in uac does not).
cat > "$work/uac.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="call through the proxy">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]c[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]c[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
[routes]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]c[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
[routes]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
XML
# An answerer that keeps the proxy in the dialog (SIPp's built-in uas drops
# Record-Route from its 200).
cat > "$work/uas.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="answers, waits for BYE">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]a[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:hotline@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
XML
port=5090
: > "$work/dispatcher.list"
for i in 2 3 4; do
    scen=(-sf "$work/uas.xml")
    if [ "$mode" = full ] && [ "$i" = 2 ]; then scen=(-sf "$work/busy.xml"); fi
    (cd "$work" && exec sipp "${scen[@]}" -i "127.0.0.$i" -p "$port" -nostdin -bg \
        -timeout "$((secs + 30))s" >/dev/null 2>&1) || true
    echo "1 sip:127.0.0.$i:$port 8 0" >> "$work/dispatcher.list"
done
sleep 1
pids+=($(pgrep -f "sipp .*-p $port" || true))
"$here/deploy/kamailio/run.sh" --listen udp:127.0.0.1:5088 --list "$work/dispatcher.list" \
    --rundir "$work/kam" -- -A PING_S=0 -A NO_ANSWER_MS=5000 2>"$work/kamailio.log" &
pids+=($!)
sleep 3
kam_ticks() { awk '{t+=$14+$15} END {print t}' $(pgrep -f "kamailio -DD" | sed 's|.*|/proc/&/stat|'); }
t0=$(kam_ticks)
(cd "$work" && sipp -sf uac.xml -s property 127.0.0.1:5088 -i 127.0.0.1 -p 5087 -nostdin \
    -r "$rate" -m "$((rate * secs))" -l 5000 -timeout "$((secs + 30))s" \
    -trace_stat -fd 1 -stf stats.csv -trace_err >/dev/null 2>&1) || true
t1=$(kam_ticks)
hz=$(getconf CLK_TCK)
stats="$work/stats.csv"
python3 - "$stats" "$t0" "$t1" "$hz" "$secs" "$rate" <<'PY'
import csv, sys
path, t0, t1, hz, secs, rate = sys.argv[1:]
rows = list(csv.reader(open(path), delimiter=';'))
head, last = rows[0], rows[-1]
get = lambda k: last[head.index(k)]
print(f"offered {rate} calls/s for {secs} s")
print("calls: successful", get("SuccessfulCall(C)"), "failed", get("FailedCall(C)"))
print("response time 1 (INVITE -> 200, ms, avg):", get("ResponseTime1(C)"))
cpu = (int(t1) - int(t0)) / int(hz)
print(f"kamailio CPU: {cpu:.2f} s over the run = {cpu / int(secs):.2f} cores")
PY
