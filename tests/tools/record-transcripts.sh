#!/usr/bin/env bash
# Records what the real ip (iproute2) and sysctl (procps) print for each scenario, in a private
# network namespace (net.* sysctls are per namespace, so the machine's own stay untouched).
# Usage (as root): tests/tools/record-transcripts.sh [SCENARIO.cmds ...]
#   (default: all of golden/ip and golden/sysctl)
# A scenario is one `ip …` or `sysctl …` command a line ('#' comments allowed, "double quotes" group). The transcript (.out beside it) has
# "$ COMMAND", then stdout and stderr as printed, then "[rc=N]". The namespace starts like a fresh
# Chainwalk host: lo up. After a link goes up or an IPv6 address is added the recorder waits for
# duplicate address detection to finish, since Chainwalk shows the state after it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$here/../Chainwalk.Tests/golden"
[ $# -gt 0 ] || set -- "$dir"/ip/*.cmds "$dir"/sysctl/*.cmds
for f in "$@"; do
  out="${f%.cmds}.out"
  unshare -n bash -c '
    ip link set lo up
    while IFS= read -r line; do
      case "$line" in ""|"#"*) continue;; esac
      echo "\$ $line"
      set +e
      eval "$line" 2>&1
      echo "[rc=$?]"
      set -e
      case "$line" in
        *" up"*|*" up"|*"addr add "*:*|*"a add "*:*) sleep 2.5;;
      esac
    done < "$1"
  ' _ "$f" > "$out"
  echo "recorded $out"
done
