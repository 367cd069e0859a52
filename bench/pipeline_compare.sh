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

# Replay: the CLI end to end (process start, load the host, read the capture, every packet, summary), best of 3.
replay() { # TREE
  local tree="$1" host
  host=$(mktemp -d "$cache/host-XXXXXX")
  for c in "ip link add eth0 type dummy" "ip link set eth0 up" "ip addr add 10.9.0.1/24 dev eth0"; do
    "$tree/chainwalk" --host "$host" $c >/dev/null
  done
  "$tree/chainwalk" --host "$host" iptables-restore "$root/examples/lab1-server.rules" >/dev/null
  # Best of 3 by wall time, with the CPU seconds (user+sys) of that run beside (the machine is shared).
  python3 - "$tree/chainwalk" "$host" "$capture" "$packets" <<'PY'
import json, os, re, resource, subprocess, sys, time
cli, host, capture, packets = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
best = None
for rep in range(3):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(["taskset", "-c", "0", cli, "--host", host, "replay", capture, "-i", "eth0", "--local-from", "10.9.0.1", "--dry-run"],
                         capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if best is None or wall < best[0]: best = (wall, cpu, out)
wall, cpu, out = best
fates = dict((m.group(1), int(m.group(2))) for m in re.finditer(r"^  (\S+)\s+(\d+)$", out, re.M))
print(json.dumps({"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "packets": packets,
                  "packets_per_s": round(packets / wall), "packets_per_cpu_s": round(packets / cpu), "fates": fates}))
PY
  rm -rf "$host"
}

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
