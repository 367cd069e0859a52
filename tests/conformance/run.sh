#!/usr/bin/env bash
# Kernel conformance: replays recorded kernel cases through Chainwalk's engine and compares fate,
# outputs and counters (tests/Chainwalk.Tests/Conformance/RecordedKernelCases.cs).
#   run.sh [--cases N] [--seed S] [--recorded]
# As root (with iptables, ip and python3-scapy) it first records N fresh cases from the running kernel
# into a temporary directory (record.py, throw-away namespaces) and compares those; otherwise, or with
# --recorded, it compares the committed cases in tests/conformance/recorded.
# The last line is "conformance: A/B cases agree".
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cases=150 seed=1 live=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --cases) cases="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --recorded) live=no; shift ;;
    -h|--help) sed -n 2,8p "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
tmp=""
cleanup() { [ -n "$tmp" ] && rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
dir=""
if [ "$live" = auto ] && [ "$(id -u)" = 0 ] && command -v iptables-restore >/dev/null && command -v ip >/dev/null \
   && /usr/bin/python3 -c "import scapy" 2>/dev/null; then
  tmp="$(mktemp -d /tmp/cwk-conformance.XXXXXX)"
  echo "recording $cases cases (seed $seed) from the kernel $(uname -r) ..."
  # record.py deletes its namespaces (cwk-PID-*) itself; should it be killed hard, the trap does.
  /usr/bin/python3 "$here/record.py" --out "$tmp" --cases "$cases" --seed "$seed" &
  recpid=$!
  trap 'kill -TERM $recpid 2>/dev/null; wait $recpid 2>/dev/null; for n in $(ip netns list | awk "/^cwk-$recpid-/{print \$1}"); do ip netns del "$n"; done; exit 130' INT TERM
  wait $recpid
  recrc=$?
  trap 'exit 130' INT TERM
  for n in $(ip netns list | awk "/^cwk-$recpid-/{print \$1}"); do ip netns del "$n"; done
  if [ "$recrc" -ne 0 ]; then
    echo "recording failed"
    echo "conformance: 0/0 cases agree"
    exit 1
  fi
  dir="$tmp"
else
  echo "comparing the recorded cases in tests/conformance/recorded"
fi
cd "$root"
log="$(mktemp)"
trap 'cleanup; rm -f "$log"' EXIT
if ! dotnet build tests/Chainwalk.Tests/Chainwalk.Tests.csproj -c Debug -v q --nologo >"$log" 2>&1; then
  grep -E "error" "$log" | sort -u | head -30
  echo "build failed"
  echo "conformance: 0/0 cases agree"
  exit 1
fi
summary="tests/Chainwalk.Tests/TestResults/conformance.txt"
rm -f "$summary"
CHAINWALK_CONFORMANCE_DIR="$dir" dotnet test tests/Chainwalk.Tests/Chainwalk.Tests.csproj -c Debug --no-build --nologo \
  --filter "FullyQualifiedName~Chainwalk.Tests.Conformance" --logger "console;verbosity=minimal" >"$log" 2>&1
rc=$?
grep -E "^\s+(Failed|Passed|Skipped)!|Failed |error" "$log" | head -40
echo "differences: tests/Chainwalk.Tests/TestResults/conformance-differences.txt"
if [ -f "$summary" ]; then
  cat "$summary"
else
  tail -20 "$log"
  echo "conformance: 0/0 cases agree"
  rc=1
fi
exit "$rc"
