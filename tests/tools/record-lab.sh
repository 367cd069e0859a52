#!/usr/bin/env bash
# Runs a lab script from the guide with the real iptables in a private network namespace and records
# what it prints, and what `iptables -L -v -n` prints after it, as the golden file the lab test uses.
# Usage (as root): tests/tools/record-lab.sh "Lab 1: Basic Stateful Firewall" lab1-basic-stateful
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
guide="$(ls "$here"/../../../shared/seeds/000_*.txt | head -n 1)"
out="$here/../Chainwalk.Tests/golden/labs/$2.out"
mkdir -p "$(dirname "$out")"
script="$(mktemp)"
trap 'rm -f "$script"' EXIT
"$here/extract-lab.sh" "$guide" "$1" > "$script"
unshare -n bash -c '
  ip link set lo up
  echo "# script output"
  bash -e "$1"
  echo "# rc=$?"
  echo "# iptables -L -v -n"
  iptables -L -v -n
' _ "$script" > "$out" 2>&1
echo "recorded $out"
