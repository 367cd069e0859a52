#!/usr/bin/env bash
# Records what the real ipset (7.17) and iptables (1.8.9) print for each scenario, in a private
# network namespace (sets are per namespace, so the machine's own stay untouched).
# Usage (as root): tests/tools/record-ipset.sh [SCENARIO.cmds ...]   (default: all of golden/ipset)
# A scenario is one command a line ('#' comments allowed): ipset/iptables/ip6tables lines, or
# printf "LINES" | ipset restore [-!]. The transcript (.out beside it) has "$ COMMAND", then stdout
# and stderr as printed, then "[rc=N]", as record-transcripts.sh writes it. The namespace starts empty.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$here/../Chainwalk.Tests/golden"
[ $# -gt 0 ] || set -- "$dir"/ipset/*.cmds
for f in "$@"; do
  out="${f%.cmds}.out"
  unshare -n bash -c '
    while IFS= read -r line; do
      case "$line" in ""|"#"*) continue;; esac
      echo "\$ $line"
      set +e
      eval "$line" 2>&1
      echo "[rc=$?]"
      set -e
    done < "$1"
  ' _ "$f" > "$out"
  echo "recorded $out"
done
