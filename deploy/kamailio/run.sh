#!/usr/bin/env bash
# Runs the farm's Kamailio in the foreground, without root, on any address:
#   deploy/kamailio/run.sh --listen udp:127.0.0.1:5070 --list ./dispatcher.list [--rundir DIR] [--check]
# Logs go to stderr. --check only checks the configuration (kamailio -c).
# Other options after `--` go to kamailio as they are (e.g. -A NO_ANSWER_MS=2000).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
listen="udp:127.0.0.1:5070"
list="$here/dispatcher.list"
rundir=""
check=0
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --listen) listen="$2"; shift 2 ;;
        --list) list="$2"; shift 2 ;;
        --rundir) rundir="$2"; shift 2 ;;
        --check) check=1; shift ;;
        --) shift; extra=("$@"); break ;;
        *) echo "run.sh: unknown option $1 (see the head of this file)" >&2; exit 2 ;;
    esac
done
case "$list" in /*) ;; *) list="$PWD/$list" ;; esac
[ -r "$list" ] || { echo "run.sh: cannot read the instance list $list" >&2; exit 2; }
if [ -z "$rundir" ]; then
    rundir="$(mktemp -d -t hotline-kamailio.XXXXXX)"
fi
mkdir -p "$rundir"
# Kamailio's shared memory holds every transaction until its wait timer ends (5 s
# after the final reply): 64 MB ran out at ~600 calls/s in the rate test; 256 MB did not.
args=(-f "$here/kamailio.cfg" -Y "$rundir" -P "$rundir/kamailio.pid" -m 256 -M 8
      -A "LISTEN=$listen" -A "DS_LIST=\"$list\"" "${extra[@]}")
if [ "$check" = 1 ]; then
    exec kamailio -c "${args[@]}"
fi
exec kamailio -DD -E "${args[@]}"
