#!/usr/bin/env bash
# DPDK rte_acl on the ClassBench sets (called by bench/run.sh): builds acl_bench.c against Debian's
# libdpdk-dev when present and prints {"sets": {name: {best_mpps, best_alg, scalar_mpps, build_s}}} or {"reason": …}.
# Usage: bench/rte_acl/run.sh [--quick] CACHE_DIR
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
quick=""; [ "${1:-}" = "--quick" ] && { quick=1; shift; }
cache="$1"
corpus="${CW_CORPUS:?CW_CORPUS (the shared corpus) is set by bench/run.sh}/classbench"
if ! pkg-config --exists libdpdk 2>/dev/null; then
  echo '{"reason": "libdpdk-dev is not installed (apt-get install libdpdk-dev)"}'; exit 0
fi
bin="$cache/acl_bench"
cc -O3 -march=native -o "$bin" "$here/acl_bench.c" $(pkg-config --cflags --libs libdpdk) >&2 || { echo '{"reason": "acl_bench.c did not compile"}'; exit 0; }
mkdir -p "$cache/cb"
[ -f "$cache/cb/acl1_10k" ] || tar xzf "$corpus/classbench-1k-10k.tgz" -C "$cache/cb"
[ -f "$cache/cb/acl1_100k" ] || tar xzf "$corpus/classbench-100k.tgz" -C "$cache/cb"
max=100000000; reps=3
[ -n "$quick" ] && { max=200000; reps=2; }
echo -n '{"sets": {'
sep=""
for size in 10k 100k; do
  for fam in acl1 fw1 ipc1; do
    f=$(ls "$cache/cb" | grep -E "^${fam}_[0-9]+k$" | while read -r x; do case "$size:$x" in 10k:*_10k|100k:*_100k) echo "$x";; esac; done | head -1)
    [ -n "$f" ] || f="${fam}_${size}"
    out=$(taskset -c 0 "$bin" "$cache/cb/$f" "$cache/cb/${f}_trace" "$max" "$reps" 2>>"$cache/rte_acl.stderr" | tail -1)
    [ -n "$out" ] || out='{"reason": "acl_bench failed"}'
    echo "rte_acl ${fam}_$size: $out" >&2
    echo -n "$sep\"${fam}_$size\": $(python3 -c '
import json, sys
o = json.loads(sys.argv[1])
a = o.get("algs", {})
simd = {k: v for k, v in a.items() if k != "scalar"}
best = max(simd, key=simd.get) if simd else None
print(json.dumps({"best_mpps": simd.get(best) if best else None, "best_alg": best, "scalar_mpps": a.get("scalar"),
  "build_s": o.get("build_s"), "headers": o.get("headers"), "sample_wrong": o.get("sample_wrong"), "all": a, "reason": o.get("reason")}))' "$out")"
    sep=", "
  done
done
echo '}}'
