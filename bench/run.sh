#!/usr/bin/env bash
# The speed benchmarks of issue 6, one entry point: prints a table and writes bench/results/latest.json
# (fields documented in bench/README.md). Usage: bench/run.sh [--quick]
#   --quick  fewer repetitions and at most 200k trace headers per ClassBench set (the 100k sets included).
# Needs root for the real iptables figures (a throw-away network namespace, never the host's own tables).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
quick=""
[ "${1:-}" = "--quick" ] && quick="--quick"
cache="${CW_BENCH_CACHE:-/tmp/chainwalk-bench}"
mkdir -p "$cache" bench/results
results="bench/results/latest.json"
parts="$cache/parts"
rm -rf "$parts"; mkdir -p "$parts"

echo "== building (Release)" >&2
dotnet build bench/Chainwalk.Bench/Chainwalk.Bench.csproj -c Release -v q --nologo >/dev/null
./chainwalk --version >/dev/null 2>&1 || true

echo "== Chainwalk figures (one process, one thread)" >&2
# One core: the process is pinned to CPU 0.
taskset -c 0 dotnet bench/Chainwalk.Bench/bin/Release/net10.0/Chainwalk.Bench.dll --speed $quick \
  --cache "$cache" --out "$parts/speed.json"

# ---------------------------------------------------------------- iptables-restore of 100k rules
rules100k="$cache/acl1_100k.rules"
timeit() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>"$cache/timeit.err"; local rc=$?; e=$(date +%s.%N); [ $rc -eq 0 ] && python3 -c "print(round($e-$s,3))" || echo "null"; }
reps=3; [ -n "$quick" ] && reps=1
best() { # best of $reps runs of a command (each after a flush where needed)
  local b=null t i
  for i in $(seq "$reps"); do
    t=$("$@")
    if [ "$t" != null ] && { [ "$b" = null ] || python3 -c "import sys; sys.exit(0 if $t < $b else 1)"; }; then b=$t; fi
  done
  echo "$b"
}
cwhost=$(mktemp -d /tmp/cw-bench-host-XXXXXX)
cw_restore() { rm -rf "$cwhost"/*; timeit taskset -c 0 ./chainwalk --host "$cwhost" iptables-restore "$rules100k"; }
cw_s=$(best cw_restore)
rm -rf "$cwhost"
ns="cwbench-$$"
legacy_s=null; nft_s=null; legacy_reason=""; nft_reason=""
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && ip netns add "$ns" 2>/dev/null; then
  trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
  leg() { timeit taskset -c 0 ip netns exec "$ns" iptables-legacy-restore "$rules100k"; }
  nft() { timeit taskset -c 0 ip netns exec "$ns" iptables-nft-restore "$rules100k"; }
  if command -v iptables-legacy-restore >/dev/null; then
    legacy_s=$(best leg)
    [ "$legacy_s" = null ] && legacy_reason="iptables-legacy-restore failed: $(head -c 200 "$cache/timeit.err" | tr '\n"' '  ')"
    ip netns exec "$ns" iptables-legacy -F FORWARD 2>/dev/null || true
  else legacy_reason="iptables-legacy-restore not installed"; fi
  if command -v iptables-nft-restore >/dev/null; then
    nft_s=$(best nft)
    [ "$nft_s" = null ] && nft_reason="iptables-nft-restore failed: $(head -c 200 "$cache/timeit.err" | tr '\n"' '  ')"
  else nft_reason="iptables-nft-restore not installed"; fi
  ip netns del "$ns"; trap - EXIT
else
  legacy_reason="no network namespace (needs root and ip)"; nft_reason="$legacy_reason"
fi
cat > "$parts/restore.json" <<J
{"chainwalk_s": $cw_s, "legacy_s": $legacy_s, "nft_s": $nft_s,
 "legacy_reason": "$legacy_reason", "nft_reason": "$nft_reason", "repetitions": $reps,
 "note": "wall time, best of the repetitions, of loading ClassBench acl1_100k (99,788 rules) from a file: chainwalk = the CLI (process start, parse, save the host's state); legacy/nft = the real tools in a throw-away network namespace"}
J

# ---------------------------------------------------------------- DPDK rte_acl
bench/rte_acl/run.sh $quick "$cache" > "$parts/rte_acl.json" 2>"$cache/rte_acl.log" || \
  echo "{\"reason\": \"rte_acl harness failed: $(tail -c 300 "$cache/rte_acl.log" | tr '\n"\\' '   ')\"}" > "$parts/rte_acl.json"

# ---------------------------------------------------------------- merge + table
python3 - "$parts" "$results" <<'PY'
import json, os, sys, platform, datetime
parts, out = sys.argv[1], sys.argv[2]
r = json.load(open(os.path.join(parts, 'speed.json')))
restore = json.load(open(os.path.join(parts, 'restore.json')))
inproc = r.pop('restore_100k_inproc', {})
restore['chainwalk_inproc_s'] = inproc.get('chainwalk_inproc_s')
for k in ('legacy', 'nft'):
    if not restore.get(k + '_reason'): restore.pop(k + '_reason', None)
r['restore_100k'] = restore
acl = json.load(open(os.path.join(parts, 'rte_acl.json')))
for name, c in r['classbench'].items():
    a = acl.get('sets', {}).get(name)
    if a:
        c['rte_acl_mpps'] = a.get('best_mpps'); c['rte_acl_scalar_mpps'] = a.get('scalar_mpps')
        c['rte_acl_best_alg'] = a.get('best_alg'); c['rte_acl_build_s'] = a.get('build_s')
        if a.get('reason'): c['rte_acl_reason'] = a['reason']
    else:
        c['rte_acl_reason'] = acl.get('reason', 'not measured')
cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
flags = next((l.split(':', 1)[1].split() for l in open('/proc/cpuinfo') if l.startswith('flags')), [])
r['machine'] = {'cpu': cpu, 'cores': os.cpu_count(), 'avx2': 'avx2' in flags, 'avx512f': 'avx512f' in flags,
                'kernel': platform.release(), 'pinned_to_one_core': True}
r['date'] = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
json.dump(r, open(out, 'w'), indent=2)
def f(x, d=2):
    return 'null' if x is None else (f'{x:.{d}f}' if isinstance(x, float) else str(x))
print(f"machine: {cpu}, {os.cpu_count()} cores (benchmarks pinned to one)")
print(f"{'ClassBench':<11}{'rules':>8}{'Mpps':>8}{'linear':>9}{'x':>7}{'build s':>9}{'B/rule':>8}{'rte_acl':>9}{'scalar':>8}")
for n, c in r['classbench'].items():
    print(f"{n:<11}{c['rules']:>8}{f(c['mpps']):>8}{f(c['linear_mpps'],4):>9}{f(c['speedup'],0):>7}{f(c['build_s'],3):>9}{f(c['bytes_per_rule'],0):>8}{f(c['rte_acl_mpps']):>9}{f(c['rte_acl_scalar_mpps']):>8}")
rs = r['restore_100k']
print(f"restore 100k rules: chainwalk CLI {f(rs['chainwalk_s'],3)} s (in process {f(rs['chainwalk_inproc_s'],3)} s), iptables-legacy-restore {f(rs['legacy_s'],3)} s, iptables-nft-restore {f(rs['nft_s'],3)} s")
u = r['update_us']
print(f"one-rule update on {u['rules']} rules: -A {f(u['append'],1)} us, -D {f(u['delete'],1)} us")
print(f"{'kube svcs':<10}{'rules':>8}{'load s':>8}{'nat walk Mpps':>15}{'linear':>8}{'est. Mpps':>10}{'B/rule':>8}")
for n, k in r['kube'].items():
    print(f"{n:<10}{k['rules']:>8}{f(k['load_s'],2):>8}{f(k['new_nat_walk_mpps']):>15}{f(k['new_nat_walk_linear_mpps'],3):>8}{f(k['established_mpps']):>10}{f(k['bytes_per_rule'],0):>8}")
print(f"conntrack: {f(r['conntrack']['bytes_per_entry'],0)} bytes per entry")
print(f"written: {out}")
PY
