#!/bin/sh
# Records what the real nfacct 1.0.2 and iptables 1.8.9 print for golden/nfacct/commands.txt, in a private network
# namespace (never the machine's own objects). Output: golden/nfacct/transcript.txt, one block per command:
# "$ COMMAND", the merged stdout/stderr, "[rc N]".
set -e
dir="$(cd "$(dirname "$0")/../Chainwalk.Tests/golden/nfacct" && pwd)"
unshare -n sh -c '
while IFS= read -r line; do
  echo "\$ $line"
  set +e
  $line 2>&1
  echo "[rc $?]"
done < "$1"' sh "$dir/commands.txt" > "$dir/transcript.txt"
