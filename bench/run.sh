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
# The shared corpus: ../shared beside the repository, or the nearest ancestor's shared/ (worktrees live deeper).
d="$root"; CW_CORPUS=""
while [ "$d" != / ]; do d=$(dirname "$d"); [ -d "$d/shared/corpus" ] && { CW_CORPUS="$d/shared/corpus"; break; }; done
export CW_CORPUS
mkdir -p "$cache" bench/results
results="bench/results/latest.json"
parts="$cache/parts"
rm -rf "$parts"; mkdir -p "$parts"

echo "== building (Release)" >&2
dotnet build bench/Chainwalk.Bench/Chainwalk.Bench.csproj -c Release -v q --nologo >/dev/null
./chainwalk --help >/dev/null 2>&1 || true   # builds the CLI once (Release) so its build is not timed

echo "== DPDK rte_acl" >&2
bench/rte_acl/run.sh $quick "$cache" > "$parts/rte_acl.json" 2>"$cache/rte_acl.log" || \
  echo "{\"reason\": \"rte_acl harness failed: $(tail -c 300 "$cache/rte_acl.log" | tr '\n"\\' '   ')\"}" > "$parts/rte_acl.json"

echo "== Chainwalk figures (one process, one thread)" >&2
# One core: the process is pinned to CPU 0.
taskset -c 0 dotnet bench/Chainwalk.Bench/bin/Release/net10.0/Chainwalk.Bench.dll --speed $quick \
  --cache "$cache" --out "$parts/speed.json"

# ---------------------------------------------------------------- iptables-restore of 100k rules
rules100k="$cache/acl1_100k.rules"
reps=3   # best of three in --quick too: one cold run moved the CLI figure by a third
echo "== iptables-restore of 100k rules: Chainwalk CLI, iptables-legacy-restore, iptables-nft-restore (netns)" >&2
# CW_BASELINE_CLI: another Chainwalk CLI (e.g. a build of an older commit) timed in the same run, for old-vs-new figures.
python3 bench/restore_bench.py "$rules100k" "$reps" "$root/chainwalk" ${CW_BASELINE_CLI:-} > "$parts/restore.json"

# ---------------------------------------------------------------- replay of a capture (issue 7)
capture="$cache/replay-1000000.pcap"
echo "== chainwalk replay of a 1M-packet capture (CLI end to end, CPU 0)" >&2
[ -f "$capture" ] || dotnet bench/Chainwalk.Bench/bin/Release/net10.0/Chainwalk.Bench.dll --speed --only replay-capture \
  --capture "$capture" --packets 1000000 >&2
bench/replay_bench.sh "$root" "$capture" "$reps" > "$parts/replay.json" 2>"$cache/replay.log" || \
  echo "{\"reason\": \"replay failed: $(tail -c 300 "$cache/replay.log" | tr '\n"\\' '   ')\"}" > "$parts/replay.json"

# ---------------------------------------------------------------- merge + table
python3 - "$parts" "$results" <<'PY'
import json, os, sys, platform, datetime
parts, out = sys.argv[1], sys.argv[2]
r = json.load(open(os.path.join(parts, 'speed.json')))
restore = json.load(open(os.path.join(parts, 'restore.json')))
inproc = r.pop('restore_100k_inproc', {})
restore['chainwalk_inproc_s'] = inproc.get('chainwalk_inproc_s')
restore['ruleset_bytes_per_rule'] = inproc.get('ruleset_bytes_per_rule')
restore['note'] = ('best of the repetitions, wall and CPU (user+sys incl. the kernel work of its system calls) seconds, '
    'of loading ClassBench acl1_100k from a file: chainwalk_s = the CLI (process start, parse, validate, save the host state); '
    'chainwalk_inproc_s = parse + build the rule objects in process (thread CPU); legacy/nft = the real tools in a throw-away network namespace')
r['restore_100k'] = restore
r['replay'] = json.load(open(os.path.join(parts, 'replay.json')))
r['replay']['note'] = ('chainwalk replay FILE -i eth0 --local-from 10.9.0.1 --dry-run on CPU 0, Lab 1 server host, generated capture of TCP connections; best of the repetitions by wall time, process start included')
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
                'kernel': platform.release(), 'pinned_to_one_core': True,
                'load_average_at_end': os.getloadavg()[0],
                'note': 'shared machine: throughput is per CPU-second of the benchmark thread (CLOCK_THREAD_CPUTIME_ID) on both sides (Chainwalk and rte_acl); *_wall figures beside'}
r['date'] = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
json.dump(r, open(out, 'w'), indent=2)
def f(x, d=2):
    return 'null' if x is None else (f'{x:.{d}f}' if isinstance(x, float) else str(x))
print(f"machine: {cpu}, {os.cpu_count()} cores (benchmarks pinned to one)")
print("ClassBench: key Mpps = header tuples classified with counters (the rte_acl-comparable figure), packets = whole packets through filter/FORWARD; B/rule = rule objects, index = the compiled form")
print(f"{'ClassBench':<11}{'rules':>8}{'key Mpps':>9}{'packets':>8}{'linear':>9}{'build s':>9}{'B/rule':>7}{'index':>6}{'rte_acl':>9}{'scalar':>8}{'key/rte':>8}")
for n, c in r['classbench'].items():
    ratio = c['key_mpps'] / c['rte_acl_mpps'] if c.get('key_mpps') and c.get('rte_acl_mpps') else None
    print(f"{n:<11}{c['rules']:>8}{f(c.get('key_mpps')):>9}{f(c['mpps']):>8}{f(c['linear_mpps'],4):>9}{f(c['build_s'],3):>9}{f(c.get('ruleset_bytes_per_rule'),0):>7}{f(c['bytes_per_rule'],0):>6}{f(c['rte_acl_mpps']):>9}{f(c['rte_acl_scalar_mpps']):>8}{f(ratio):>8}")
rs = r['restore_100k']
if rs.get('chainwalk_baseline_s') is not None:
    print(f"restore 100k rules, baseline CLI (wall / CPU s): {f(rs.get('chainwalk_baseline_s'),3)} / {f(rs.get('chainwalk_baseline_cpu_s'),3)}")
print(f"restore 100k rules (wall / CPU s): chainwalk CLI {f(rs.get('chainwalk_s'),3)} / {f(rs.get('chainwalk_cpu_s'),3)} (in process {f(rs.get('chainwalk_inproc_s'),3)}), "
      f"iptables-legacy-restore {f(rs.get('legacy_s'),3)} / {f(rs.get('legacy_cpu_s'),3)}, iptables-nft-restore {f(rs.get('nft_s'),3)} / {f(rs.get('nft_cpu_s'),3)}")
u = r['update_us']
print(f"one-rule update on {u['rules']} rules: -A {f(u['append'],1)} us, -D {f(u['delete'],1)} us, -I {f(u.get('insert'),1)} us, -R {f(u.get('replace_edit_only'),1)} us (edit only)")
print(f"{'kube svcs':<10}{'rules':>8}{'load s':>8}{'new Mpps':>9}{'nat walk Mpps':>15}{'linear':>8}{'est. Mpps':>10}{'B/rule':>8}")
for n, k in r['kube'].items():
    print(f"{n:<10}{k['rules']:>8}{f(k['load_s'],2):>8}{f(k.get('new_mpps')):>9}{f(k['new_nat_walk_mpps']):>15}{f(k['new_nat_walk_linear_mpps'],3):>8}{f(k['established_mpps']):>10}{f(k.get('ruleset_bytes_per_rule'),0):>8}")
print(f"conntrack: {f(r['conntrack']['bytes_per_entry'],0)} bytes per entry")
rp = r['replay']
print(f"replay of {rp.get('packets')} packets, CLI end to end: {f(rp.get('wall_s'),3)} s wall / {f(rp.get('cpu_s'),3)} CPU-s = {f((rp.get('packets_per_s') or 0) / 1e6)} M packets/s" if rp.get('wall_s') else f"replay: null ({rp.get('reason')})")
print(f"written: {out}")
PY
