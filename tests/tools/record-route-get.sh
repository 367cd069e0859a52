#!/usr/bin/env bash
# Records the real kernel's routing decisions for the RouteLookup tests, in a private network
# namespace (nothing of the machine's own network is touched; no packet is sent).
# Usage (as root): tests/tools/record-route-get.sh [SCENARIO.cmds ...]
#   (default: all of golden/routing)
# A scenario is a list of commands, one a line ('#' comments allowed). Lines starting with "? " are
# queries (ip route get, ip -6 route get): the transcript (.out beside it) has "$ COMMAND", what ip
# printed (stdout and stderr), then "[rc=N]". Other lines build the host (ip …, sysctl -w …); their
# output is not kept, only a failure is reported. The namespace starts like a fresh Chainwalk host
# (lo up); before the first query after setup the recorder waits for IPv6 duplicate address
# detection to finish, since Chainwalk shows the state after it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$here/../Chainwalk.Tests/golden/routing"
[ $# -gt 0 ] || set -- "$dir"/*.cmds
for f in "$@"; do
  out="${f%.cmds}.out"
  unshare -n bash -c '
    ip link set lo up
    dirty=0
    while IFS= read -r line; do
      case "$line" in ""|"#"*) continue;; esac
      case "$line" in
        "? "*)
          q="${line#\? }"
          if [ $dirty = 1 ]; then sleep 2.5; dirty=0; fi
          echo "\$ $q"
          set +e
          eval "$q" 2>&1
          echo "[rc=$?]"
          set -e
          ;;
        *)
          if ! eval "$line" >/dev/null 2>&1; then echo "setup failed: $line" >&2; exit 1; fi
          dirty=1
          ;;
      esac
    done < "$1"
  ' _ "$f" > "$out"
  echo "recorded $out"
done
