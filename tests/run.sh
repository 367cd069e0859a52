#!/usr/bin/env bash
# Builds the solution and runs every test; the last line is "N passed, N failed".
# Tests read the shared corpus from ../shared (beside the repository).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
dotnet build Chainwalk.slnx -c Debug -v q --nologo >"$log" 2>&1
if [ $? -ne 0 ]; then
  grep -E "error" "$log" | sort -u | head -50
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi
rm -f tests/Chainwalk.Tests/TestResults/netfilter-tfiles.txt tests/Chainwalk.Tests/TestResults/conformance.txt
dotnet test tests/Chainwalk.Tests/Chainwalk.Tests.csproj -c Debug --no-build --nologo \
  --logger "console;verbosity=minimal" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# The figures the suites write for the log (netfilter .t agreement, kernel conformance).
for f in tests/Chainwalk.Tests/TestResults/netfilter-tfiles.txt; do
  [ -f "$f" ] && head -1 "$f"
done
# The recorded kernel cases: per area, per kind, and the figure.
[ -f tests/Chainwalk.Tests/TestResults/conformance.txt ] && grep -E "^(kernel conformance|  (packets|fate|outputs|counters|save-text|conntrack|log|nat-pick|covers:|kind) |conformance:)" tests/Chainwalk.Tests/TestResults/conformance.txt
passed=$(grep -oE "Passed: +[0-9]+" "$log" | tail -1 | grep -oE "[0-9]+" || echo 0)
failed=$(grep -oE "Failed: +[0-9]+" "$log" | tail -1 | grep -oE "[0-9]+" || echo 0)
[ -n "$passed" ] || passed=0
[ -n "$failed" ] || failed=0
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
# The live kernel sample (tests/conformance/run.sh): as root with iptables, conntrack and python3-scapy,
# CHAINWALK_LIVE_CASES (default 500) fresh cases are recorded from this kernel in throw-away namespaces
# and compared; CHAINWALK_LIVE=0 turns it off, CHAINWALK_LIVE_SEED picks another sample (default 11).
if [ "${CHAINWALK_LIVE:-1}" != 0 ] && [ "$(id -u)" = 0 ] && command -v iptables-restore >/dev/null \
   && command -v ip6tables-restore >/dev/null && command -v conntrack >/dev/null && command -v ip >/dev/null \
   && /usr/bin/python3 -c "import scapy" 2>/dev/null; then
  echo "live kernel conformance sample:"
  start=$(date +%s)
  tests/conformance/run.sh --cases "${CHAINWALK_LIVE_CASES:-500}" --seed "${CHAINWALK_LIVE_SEED:-11}" --no-build
  lrc=$?
  echo "live sample took $(( $(date +%s) - start )) s"
  if [ "$lrc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); rc=1; fi
else
  echo "live kernel conformance sample skipped (needs root, iptables, ip6tables, conntrack, python3-scapy)"
fi
echo "$passed passed, $failed failed"
exit "$rc"
