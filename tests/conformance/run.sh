#!/usr/bin/env bash
# Kernel conformance: replays recorded kernel cases through Chainwalk's engine and compares fate,
# outputs and counters (tests/Chainwalk.Tests/Conformance/RecordedKernelCases.cs).
#   run.sh [--cases N] [--seed S] [--kinds K1,K2] [--jobs J] [--recorded] [--compare DIR] [--no-build]
# As root (with iptables, ip6tables, conntrack, ip and python3-scapy) it first records N fresh cases from
# the running kernel into a temporary directory (record.py, throw-away namespaces cwk-PID-*) and compares
# those; otherwise, or with --recorded, it compares the committed cases in tests/conformance/recorded. --compare DIR
# compares the cases in DIR (e.g. the part of a long recording made so far: record.py --out DIR ...).
# The last line is "conformance: A/B cases agree".
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cases=500 seed=11 live=auto kinds="" build=yes jobs=2 given=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cases) cases="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --kinds) kinds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --recorded) live=no; shift ;;
    --compare) live=no; given="$(cd "$2" && pwd)" || exit 2; shift 2 ;;
    --no-build) build=no; shift ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
tmp=""
cleanup() { [ -n "$tmp" ] && rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
dir=""
if [ "$live" = auto ] && [ "$(id -u)" = 0 ] && command -v iptables-restore >/dev/null && command -v ip >/dev/null \
   && command -v ip6tables-restore >/dev/null && command -v conntrack >/dev/null \
   && /usr/bin/python3 -c "import scapy" 2>/dev/null; then
  tmp="$(mktemp -d /tmp/cwk-conformance.XXXXXX)"
  echo "recording $cases cases (seed $seed, $jobs recorders) from the kernel $(uname -r) ..."
  # Each recorder builds its own namespaces (cwk-PID-*) and deletes them itself; should one be killed hard,
  # the traps here do. The recorders split the case numbers, so the cases are those of one recorder.
  pids=()
  per=$(( (cases + jobs - 1) / jobs ))
  for ((j = 0; j < jobs; j++)); do
    first=$((j * per)); n=$(( cases - first < per ? cases - first : per ))
    [ "$n" -gt 0 ] || break
    /usr/bin/python3 "$here/record.py" --out "$tmp" --cases "$n" --first "$first" --seed "$seed" ${kinds:+--kinds "$kinds"} &
    pids+=($!)
  done
  delns() { for p in "${pids[@]}"; do for n in $(ip netns list | awk "/^cwk-$p-/{print \$1}"); do ip netns del "$n"; done; done; }
  # Interrupted: ask the recorders to stop (they delete their namespaces), give them 5 s, then kill them and
  # delete what they left.
  stop() {
    kill -TERM "${pids[@]}" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      alive=0
      for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.5
    done
    kill -KILL "${pids[@]}" 2>/dev/null
    wait "${pids[@]}" 2>/dev/null
    delns
  }
  trap 'stop; exit 130' INT TERM
  recrc=0
  for p in "${pids[@]}"; do wait "$p" || recrc=1; done
  trap 'exit 130' INT TERM
  delns
  if [ "$recrc" -ne 0 ]; then
    echo "recording failed"
    echo "conformance: 0/0 cases agree"
    exit 1
  fi
  dir="$tmp"
elif [ -n "$given" ]; then
  echo "comparing the cases in $given"
  dir="$given"
else
  echo "comparing the recorded cases in tests/conformance/recorded"
fi
cd "$root"
log="$(mktemp)"
trap 'cleanup; rm -f "$log"' EXIT
if [ "$build" = yes ] && ! dotnet build tests/Chainwalk.Tests/Chainwalk.Tests.csproj -c Debug -v q --nologo >"$log" 2>&1; then
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
