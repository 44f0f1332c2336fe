#!/usr/bin/env bash
# Installs the real SIP clients that the integration tests dial hotline with
# (tests/callers/pjcall.py, SIPp), the audio tools that make caller audio, and what
# the operators' tests run against hotline: Prometheus and promtool (Debian's
# `prometheus`) and headless Chromium for the status page (tests/ops.rs), and Kamailio
# for the farm (tests/farm.rs).
# For a fresh Debian 12 machine, as root; idempotent and quiet. Called from .ci/run.
set -euo pipefail

need_apt=0
for cmd in sipp sox espeak-ng prometheus promtool chromium kamailio; do
    command -v "$cmd" >/dev/null 2>&1 || need_apt=1
done
# A Chinese font, so that the status page's screenshot shows the prompts' text.
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need_apt=1
if [ "$need_apt" = 1 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # sip-tester = SIPp 3.6 (/usr/bin/sipp); kamailio 5.6 is the farm's proxy
    # (tests/farm.rs runs its own on a free port, never the packaged service's 5060)
    apt-get install -y -qq --no-install-recommends sip-tester sox espeak-ng \
        prometheus chromium fonts-wqy-microhei kamailio >/dev/null
fi

# PJSIP 2.15 for Python: the wheel carries the library (no compiler needed).
if ! python3 -c 'import pjsua2' >/dev/null 2>&1; then
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore 'pjsua2-python==2.15.1.post1'
fi
