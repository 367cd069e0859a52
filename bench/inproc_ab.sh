#!/usr/bin/env bash
# Old against new newloop (or any --speed harness part printing "round N: X Mpps") in one process, alternating:
#   bench/inproc_ab.sh BASE_BENCH_DIR NEW_BENCH_DIR TIMES [harness arguments]
# e.g. bench/inproc_ab.sh /tmp/base/bench/Chainwalk.Bench/bin/Release/net10.0 bench/Chainwalk.Bench/bin/Release/net10.0 16 \
#        --speed --quick --only newloop --services 1000 --rounds 8
# Prints per call the median of rounds 1.. (round 0 warms up), then the ratio new/base per pair: its median, quartiles and
# how many pairs new read higher. Which side runs first shows on this VM: run both orders (swap the folders).
set -euo pipefail
cd "$(dirname "$0")/.."
a="$1"; b="$2"; times="$3"; shift 3
dotnet build bench/InprocAb/InprocAb.csproj -c Release -v q --nologo >/dev/null
d="$(pwd)"; CW_CORPUS=""
while [ "$d" != / ]; do d=$(dirname "$d"); [ -d "$d/shared/corpus" ] && { CW_CORPUS="$d/shared/corpus"; break; }; done
export CW_CORPUS
taskset -c 0 dotnet bench/InprocAb/bin/Release/net10.0/InprocAb.dll "$a" "$b" "$times" -- "$@" 2>&1 | python3 -c '
import sys, re, statistics
side = None; v = []; med = {"A": [], "B": []}
def out():
    if side and v:
        m = statistics.median(v); med[side[0]].append(m)
        print(side, "median %.3f" % m, v, flush=True)
for l in sys.stdin:
    if l.startswith("== "):
        out(); side = l[3:].strip(); v = []; continue
    m = re.search(r"round ([0-9]+): ([0-9.]+) Mpps", l)
    if m and int(m.group(1)) > 0: v.append(float(m.group(2)))
out()
r = sorted(y / x for x, y in zip(med["A"], med["B"]))
if r: print("B/A per pair: median %.3f, quartiles %.3f %.3f, B higher in %d/%d" % (statistics.median(r), r[len(r)//4], r[3*len(r)//4], sum(x > 1 for x in r), len(r)))
'
