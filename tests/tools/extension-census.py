#!/usr/bin/env python3
"""Counts the matches and targets used in ../shared/corpus (rule files) and in netfilter's .t files, and says
which ones Chainwalk implements (from `./chainwalk extensions`). Prints a Markdown table for the README."""
import collections, glob, os, re, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "corpus")

def main():
    uses = collections.Counter()
    files = collections.defaultdict(set)
    for path in glob.glob(os.path.join(CORPUS, "**", "*.rules"), recursive=True):
        if "reference-output" in path: continue
        rel = os.path.relpath(path, CORPUS)
        for line in open(path, errors="replace"):
            if not line.startswith(("-A", "-I", "[")): continue
            for m in re.findall(r"(?:^|\s)(?:-m|--match)\s+(\S+)", line):
                uses[("match", m)] += 1; files[("match", m)].add(rel)
            for t in re.findall(r"(?:^|\s)(?:-j|--jump)\s+([A-Z][A-Z0-9_]*)\b", line):
                uses[("target", t)] += 1; files[("target", t)].add(rel)
            # implicit protocol matches: -p tcp --dport without -m tcp
            pm = re.search(r"-p\s+(tcp|udp|icmp|sctp|icmpv6|ipv6-icmp)\s+(?!-m)", line)
            if pm and re.search(r"--(dport|sport|syn|tcp-flags|icmp-type|icmpv6-type)", line) and f"-m {pm.group(1)}" not in line:
                name = "icmp6" if pm.group(1) in ("icmpv6", "ipv6-icmp") else pm.group(1)
                uses[("match", name)] += 1; files[("match", name)].add(rel)
    tfiles = collections.defaultdict(list)
    for path in glob.glob(os.path.join(CORPUS, "netfilter-tests", "extensions", "*.t")):
        base = os.path.basename(path)[:-2]
        m = re.match(r"lib(xt|ipt|ip6t)_(.+)", base)
        if not m: continue
        name = m.group(2)
        if name == "standard": continue  # the core's -j ACCEPT/DROP/... and generic options, not an extension
        kind = "target" if name.isupper() else "match"
        tfiles[(kind, name)].append(os.path.basename(path))
    known = {}
    out = subprocess.run([os.path.join(ROOT, "chainwalk"), "extensions"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name, kind, fam, sup = line.split("\t")
        known.setdefault((kind, name), []).append((fam, sup))
    keys = sorted(set(uses) | set(tfiles), key=lambda k: (k[0], -uses[k], k[1]))
    builtin = {"ACCEPT", "DROP", "RETURN", "QUEUE"}
    print("| extension | kind | uses in corpus | corpus files | .t files | Chainwalk |")
    print("|---|---|---:|---:|---|---|")
    for k in keys:
        kind, name = k
        if kind == "target" and name in builtin: status = "core verdict"
        elif k in known: status = "; ".join(sorted({s if s != "supported" else "yes" for _, s in known[k]}))
        else:
            if kind == "target" and k not in tfiles: continue  # a user chain name, not a target
            status = "**missing**"
        print(f"| {name} | {kind} | {uses[k]} | {len(files[k])} | {', '.join(sorted(tfiles[k]))} | {status} |")

if __name__ == "__main__":
    main()
