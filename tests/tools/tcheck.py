#!/usr/bin/env python3
"""Compare Chainwalk with the real iptables 1.8.9 on netfilter .t test files, line by line.

Usage: tests/tools/tcheck.py FILE.t [FILE.t ...] [--tool iptables|ip6tables] [--only-diff]

For every rule line and every chain of the file (and each tool the file name implies: libipt_ -> iptables,
libip6t_ -> ip6tables, libxt_ -> both), runs `TOOL -t TABLE -A CHAIN RULE` in a private network namespace
with the real tool and on a throw-away Chainwalk host, then compares the exit code, the first stderr line and
the saved `-A CHAIN ...` line. Needs root (unshare -n). Never touches the machine's own tables.
"""
import os, shlex, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CW = os.path.join(ROOT, "chainwalk")

def tools_for(name, forced):
    if forced: return [forced]
    if name.startswith("libipt_"): return ["iptables"]
    if name.startswith("libip6t_"): return ["ip6tables"]
    if name.startswith("libxt_"): return ["iptables", "ip6tables"]
    return ["iptables"]

def parse_t(path):
    chains, table, out = ["INPUT"], "filter", []
    for no, raw in enumerate(open(path), 1):
        line = raw.rstrip("\n")
        if not line or line.startswith("#"): continue
        if line.startswith(":"): chains = line[1:].split(","); continue
        if line.startswith("*"): table = line[1:]; continue
        if line[0] in "@%": out.append((no, "cmd", line[1:], None, None, table, chains)); continue
        f = line.split(";")
        out.append((no, "rule", f[0], f[1] if len(f) > 1 else "", f[2] if len(f) > 2 else "", table, chains))
    return out

REAL_SCRIPT = r'''
import shlex, subprocess, sys, json
cases = json.load(sys.stdin)
res = []
for tool, table, chain, rule, pre in cases:
    for c in pre: subprocess.run(c, shell=True, capture_output=True)
    p = subprocess.run([tool, "-t", table, "-A", chain] + shlex.split(rule), capture_output=True, text=True)
    saved = ""
    if p.returncode == 0:
        s = subprocess.run([tool + "-save", "-t", table], capture_output=True, text=True).stdout
        lines = [l for l in s.splitlines() if l.startswith("-A " + chain + " ") or l == "-A " + chain]
        saved = lines[-1] if lines else "(none)"
        subprocess.run([tool, "-t", table, "-F", chain], capture_output=True)
    res.append([p.returncode, (p.stderr.strip().splitlines() or [""])[0], saved])
print(json.dumps(res))
'''

def run_real(cases):
    import json
    p = subprocess.run(["unshare", "-n", "python3", "-c", REAL_SCRIPT], input=json.dumps(cases), capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("real run failed: " + p.stderr)
    return json.loads(p.stdout)

def run_cw(cases):
    res = []
    host = tempfile.mkdtemp(prefix="tcheck-")
    for tool, table, chain, rule, pre in cases:
        p = subprocess.run([CW, "--host", host, tool, "-t", table, "-A", chain] + shlex.split(rule), capture_output=True, text=True)
        saved = ""
        if p.returncode == 0:
            s = subprocess.run([CW, "--host", host, tool + "-save", "-t", table], capture_output=True, text=True).stdout
            lines = [l for l in s.splitlines() if l.startswith("-A " + chain + " ") or l == "-A " + chain]
            saved = lines[-1] if lines else "(none)"
            subprocess.run([CW, "--host", host, tool, "-t", table, "-F", chain], capture_output=True)
        res.append([p.returncode, (p.stderr.strip().splitlines() or [""])[0], saved])
    return res

def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    forced = None
    if "--tool" in sys.argv: forced = sys.argv[sys.argv.index("--tool") + 1]; args.remove(forced)
    only_diff = "--only-diff" in sys.argv
    subprocess.run([CW, "--version"], capture_output=True)  # build once
    total = same = 0
    for path in args:
        name = os.path.basename(path)
        for tool in tools_for(name, forced):
            cases, meta, pre = [], [], []
            for no, kind, rule, saved, result, table, chains in parse_t(path):
                if kind == "cmd":
                    cmd = rule
                    if cmd.startswith("iptables"): cmd = tool + cmd[len("iptables"):]
                    pre.append(cmd); continue
                for chain in chains:
                    cases.append([tool, table, chain, rule, pre]); pre = []
                    meta.append((no, chain, rule, saved, result))
            real, cw = run_real(cases), run_cw(cases)
            for (no, chain, rule, saved, result), r, c in zip(meta, real, cw):
                total += 1
                ok = (r[0] == 0) == (c[0] == 0) and r[2] == c[2] and (r[0] == 0 or r[1] == c[1])
                same += ok
                if ok and only_diff: continue
                tag = "SAME" if ok else "DIFF"
                print(f"{tag} {name}:{no} [{tool} {chain}] {rule}")
                if not ok:
                    print(f"   real: rc={r[0]} err={r[1]!r} saved={r[2]!r}")
                    print(f"   cw  : rc={c[0]} err={c[1]!r} saved={c[2]!r}")
    print(f"{same}/{total} agree")

if __name__ == "__main__":
    main()
