#!/usr/bin/env bash
# Records the prompt clips of prompts/catalogue.yaml whose WAV is missing, malformed or
# older than its text (--all: every clip), as 8 kHz 16-bit mono PCM, and stamps each
# with the hash of the text it was made from (prompts/stamps.tsv), which is how
# `hotline check` tells a stale recording. Needs espeak-ng and sox:
#   apt-get install -y --no-install-recommends espeak-ng sox
#
# The voice is cmn-latn-pinyin: Debian 12's espeak-ng 1.51 `cmn` voice spells the
# pinyin of Chinese text with English letters; cmn-latn-pinyin speaks it as Mandarin.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install $tool" >&2; exit 1; }
done
hotline=${HOTLINE:-target/debug/hotline}
[ -x "$hotline" ] || cargo build --quiet --bin hotline
mode=--stale
[ "${1:-}" = "--all" ] && mode=
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$hotline" prompts --dir prompts $mode > "$tmp/plan"
touch prompts/stamps.tsv
n=0
while IFS=$'\t' read -r clip text; do
  espeak-ng -v cmn-latn-pinyin -s 165 -w "$tmp/raw.wav" "$text" 2>/dev/null
  # Telephone band and a little headroom; espeak's own leading and trailing silence
  # trimmed and replaced by 50 ms either side, so that fragments joined into numbers
  # flow like speech instead of stuttering.
  sox "$tmp/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "prompts/$clip.wav" \
      gain -6 highpass 200 lowpass 3400 \
      silence 1 0.01 -45d reverse silence 1 0.01 -45d reverse \
      norm -3 pad 0.05 0.05
  hash=$(printf '%s' "$text" | sha256sum | cut -d' ' -f1)
  awk -F'\t' -v c="$clip" '$1 != c' prompts/stamps.tsv > "$tmp/stamps"
  printf '%s\t%s\n' "$clip" "$hash" >> "$tmp/stamps"
  LC_ALL=C sort "$tmp/stamps" > prompts/stamps.tsv
  n=$((n + 1))
done < "$tmp/plan"
echo "recorded $n clip(s)"
