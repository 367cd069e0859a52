#!/usr/bin/env python3
"""iptables-restore of a 100k-rule file (called by bench/run.sh): the Chainwalk CLI into a fresh host
directory, and the real iptables-legacy-restore / iptables-nft-restore inside a throw-away network namespace
(never the host's own tables). Each is timed REPS times: wall seconds and CPU seconds (user+sys of the
process and its children, which includes the kernel's work done in its system calls); the best of each is kept.
Prints one JSON object. Usage: restore_bench.py RULES REPS CHAINWALK [BASELINE]
BASELINE (optional): another Chainwalk CLI (e.g. a build of an older commit), timed the same way in the same run
(chainwalk_baseline_s / chainwalk_baseline_cpu_s), for old-vs-new figures."""
import json, os, resource, shutil, subprocess, sys, tempfile, time

rules, reps, cw = sys.argv[1], int(sys.argv[2]), sys.argv[3]
baseline = sys.argv[4] if len(sys.argv) > 4 else None

def timed(argv, before=None):
    best_wall = best_cpu = None
    err = None
    for _ in range(reps):
        if before: before()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        with open(rules) as f:
            p = subprocess.run(argv, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        if p.returncode != 0:
            err = p.stderr.decode(errors='replace')[:300]
            continue
        best_wall = wall if best_wall is None else min(best_wall, wall)
        best_cpu = cpu if best_cpu is None else min(best_cpu, cpu)
    return best_wall, best_cpu, err

out = {"repetitions": reps, "rules_file": os.path.basename(rules)}
host = tempfile.mkdtemp(prefix="cw-bench-host-")
def fresh():
    shutil.rmtree(host, ignore_errors=True); os.makedirs(host)
for key, cli in (("chainwalk", cw), ("chainwalk_baseline", baseline)):
    if cli is None: continue
    w, c, e = timed(["taskset", "-c", "0", cli, "--host", host, "iptables-restore"], fresh)
    out[key + "_s"], out[key + "_cpu_s"] = w, c
    if e: out[key + "_reason"] = e
shutil.rmtree(host, ignore_errors=True)

ns = "cwbench-%d" % os.getpid()
if os.geteuid() != 0 or shutil.which("ip") is None or subprocess.run(["ip", "netns", "add", ns]).returncode != 0:
    for k in ("legacy", "nft"):
        out[k + "_s"] = None; out[k + "_reason"] = "no network namespace (needs root and iproute2)"
else:
    try:
        for k, tool in (("legacy", "iptables-legacy-restore"), ("nft", "iptables-nft-restore")):
            if shutil.which(tool) is None:
                out[k + "_s"] = None; out[k + "_reason"] = tool + " is not installed"; continue
            # Each repetition replaces the namespace's filter table (restore without --noflush flushes it first).
            w, c, e = timed(["taskset", "-c", "0", "ip", "netns", "exec", ns, tool])
            out[k + "_s"], out[k + "_cpu_s"] = w, c
            if e or w is None: out[k + "_reason"] = "failed: " + (e or "?")
    finally:
        subprocess.run(["ip", "netns", "del", ns])
for k in list(out):
    if isinstance(out[k], float): out[k] = round(out[k], 3)
print(json.dumps(out))
