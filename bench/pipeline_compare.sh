#!/usr/bin/env bash
# The pipeline figures (issue 6 kube/conntrack parts, issue 7 replay speed) of this tree and of a base commit,
# measured side by side in one run on one core: bench/pipeline_compare.sh [--base REF] [--quick] [--packets N]
#   --base REF   the commit to compare with (default: the merge base with main); its files are exported to the cache
#                directory (git archive) and its library is built with this
#                tree's harness (bench/Chainwalk.Bench), so both sides are measured by the same code
#   --quick      20k flows per kube figure instead of 100k
#   --packets N  packets in the replay capture (default 1,000,000)
# Prints one JSON object {"base": {...}, "new": {...}} (kube 1k/10k/30k, conntrack, replay wall seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
base=""; quick=""; packets=1000000
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base="$2"; shift 2 ;;
    --quick) quick="--quick"; shift ;;
    --packets) packets="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$base" ] || base=$(git merge-base HEAD main)
cache="${CW_BENCH_CACHE:-/tmp/chainwalk-bench}/pipeline"
mkdir -p "$cache"
d="$root"; CW_CORPUS=""
while [ "$d" != / ]; do d=$(dirname "$d"); [ -d "$d/shared/corpus" ] && { CW_CORPUS="$d/shared/corpus"; break; }; done
export CW_CORPUS

# The base tree: REF's files (git archive: nothing is registered in the repository) with this tree's harness in it.
basetree="$cache/base-$(git rev-parse --short "$base")"
if [ ! -d "$basetree" ]; then mkdir -p "$basetree" && git archive "$base" | tar -x -C "$basetree"; fi
rm -rf "$basetree/bench/Chainwalk.Bench"
cp -r bench/Chainwalk.Bench "$basetree/bench/"
rm -rf "$basetree/bench/Chainwalk.Bench/bin" "$basetree/bench/Chainwalk.Bench/obj"

echo "== building (Release): this tree and $base" >&2
dotnet build bench/Chainwalk.Bench/Chainwalk.Bench.csproj -c Release -v q --nologo >/dev/null
dotnet build "$basetree/bench/Chainwalk.Bench/Chainwalk.Bench.csproj" -c Release -v q --nologo >/dev/null
./chainwalk --version >/dev/null
"$basetree/chainwalk" --version >/dev/null

capture="$cache/replay-$packets.pcap"
if [ ! -f "$capture" ]; then
  dotnet bench/Chainwalk.Bench/bin/Release/net10.0/Chainwalk.Bench.dll --speed --only replay-capture --capture "$capture" --packets "$packets" >&2
fi

# Replay: the CLI end to end (bench/replay_bench.sh: process start, load the host, read the capture, every packet,
# summary), best of 3.
replay() { bench/replay_bench.sh "$1" "$capture" 3; }

harness() { # TREE NAME
  local tree="$1" out="$cache/$2.json"
  taskset -c 0 dotnet "$tree/bench/Chainwalk.Bench/bin/Release/net10.0/Chainwalk.Bench.dll" --speed $quick --only pipeline --out "$out" >&2
  cat "$out"
}

echo "== $base (base)" >&2
b_h=$(harness "$basetree" base); b_r=$(replay "$basetree")
echo "== this tree ($(git rev-parse --short HEAD)$(git diff --quiet || echo +changes))" >&2
n_h=$(harness "$root" new); n_r=$(replay "$root")
python3 - "$base" "$b_h" "$b_r" "$n_h" "$n_r" <<'PY'
import json, sys
base, bh, br, nh, nr = sys.argv[1], *map(json.loads, sys.argv[2:])
bh["replay"] = br; nh["replay"] = nr
print(json.dumps({"base_commit": base, "base": bh, "new": nh}, indent=2))
PY
