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
    addrtype() {
      local ipt=iptables fam=AF_INET types="UNSPEC UNICAST LOCAL BROADCAST ANYCAST MULTICAST BLACKHOLE UNREACHABLE PROHIBIT THROW"
      # ip6tables refuses BROADCAST, BLACKHOLE, PROHIBIT and THROW (addrtype_mt_checkentry_v1).
      if [ "$1" = -6 ]; then ipt=ip6tables; fam=AF_INET6; types="UNSPEC UNICAST LOCAL ANYCAST MULTICAST UNREACHABLE"; shift; fi
      $ipt -F OUTPUT
      for t in $types; do
        $ipt -A OUTPUT -d "$1" -p udp --dport 9 -m addrtype --dst-type $t
      done
      if python3 -c "import socket,sys
s = socket.socket(socket.$fam, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
try:
    s.sendto(b\"x\", (sys.argv[1], 9))
except OSError:
    sys.exit(1)" "$1"; then
        $ipt -v -S OUTPUT | awk "/--dst-type/ && \$(NF-1) > 0 { for (i = 1; i < NF; i++) if (\$i == \"--dst-type\") printf \"%s \", \$(i+1) } END { print \"\" }"
      else
        echo unsent
      fi
      $ipt -F OUTPUT
    }
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
