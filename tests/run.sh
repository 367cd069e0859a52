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
[ -f tests/Chainwalk.Tests/TestResults/conformance.txt ] && head -1 tests/Chainwalk.Tests/TestResults/conformance.txt
passed=$(grep -oE "Passed: +[0-9]+" "$log" | tail -1 | grep -oE "[0-9]+" || echo 0)
failed=$(grep -oE "Failed: +[0-9]+" "$log" | tail -1 | grep -oE "[0-9]+" || echo 0)
[ -n "$passed" ] || passed=0
[ -n "$failed" ] || failed=0
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
exit "$rc"
