#!/usr/bin/env bash
# Prints the first ```bash block after the heading that contains TITLE in the guide (markdown text).
# Usage: extract-lab.sh GUIDE "Lab 1: Basic Stateful Firewall"
set -euo pipefail
awk -v title="$2" '
  !found && index($0, title) && /^#/ { found = 1; next }
  found && !inside && /^```bash/ { inside = 1; next }
  inside && /^```/ { exit }
  inside { print }
' "$1"
