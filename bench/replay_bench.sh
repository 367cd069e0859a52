#!/usr/bin/env bash
# Issue 7's replay figure: `chainwalk replay` of a capture end to end (process start, host load, capture read, every
# packet, summary), on CPU 0, best of REPS by wall time with that run's CPU seconds (user+sys) beside.
# Usage: bench/replay_bench.sh TREE CAPTURE [REPS]   (TREE: a Chainwalk checkout whose ./chainwalk is timed)
# The host is the Lab 1 server (examples/lab1-server.rules on eth0, 10.9.0.1/24); the capture comes from
# `Chainwalk.Bench --speed --only replay-capture`. Prints one JSON object.
set -euo pipefail
tree="$1" capture="$2" reps="${3:-3}"
host=$(mktemp -d)
trap 'rm -rf "$host"' EXIT
for c in "ip link add eth0 type dummy" "ip link set eth0 up" "ip addr add 10.9.0.1/24 dev eth0"; do
  "$tree/chainwalk" --host "$host" $c >/dev/null
done
"$tree/chainwalk" --host "$host" iptables-restore "$(dirname "$0")/../examples/lab1-server.rules" >/dev/null
python3 - "$tree/chainwalk" "$host" "$capture" "$reps" <<'PY'
import json, re, resource, subprocess, sys, time
cli, host, capture, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
best = None
for rep in range(reps):
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
packets = sum(fates.values())
print(json.dumps({"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "packets": packets,
                  "packets_per_s": round(packets / wall), "packets_per_cpu_s": round(packets / cpu), "fates": fates}))
PY
