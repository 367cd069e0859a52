#!/usr/bin/env python3
"""Record golden `iptables -L` / `-S` outputs from the real iptables 1.8.9 (nf_tables).

Usage (as root): tests/tools/record-list-goldens.py [CASE ...]

For every case below, loads the rule set with the real iptables-restore (plus the prerequisites that
../shared/corpus/SOURCES.md describes) in a private network + mount namespace, then records, for every
table present, `TOOL -t T -L` with all 16 combinations of -v -n -x --line-numbers, plus a few extra
commands (-S, -S CHAIN, -L CHAIN, -L CHAIN N, -S CHAIN N ...).

Output: tests/Chainwalk.Tests/golden/list/<case>/
  manifest.tsv   one line per setting or command, tab separated:
                   source <corpus-relative path, or @name for golden/list-inputs/name>
                   family 4|6
                   load plain|ufw|counters
                   cmd <file> <exit code> <argv after the tool name, space separated>
  <file>         stdout of the command; <file>.err holds stderr when it is not empty.

File names of the 16 combinations: <table>.<flags>.txt, flags = letters of v n x L (L = --line-numbers)
in that order, or "plain" for none.

Inside the namespace /etc/resolv.conf is replaced by an empty file, so a DNS look-up can only go to 127.0.0.1,
and the loopback device of the fresh namespace is down: no query leaves, and -L without -n resolves names from
/etc/hosts, /etc/networks, /etc/services, /etc/protocols only, with the machine's own nsswitch.conf. (A files-only
nsswitch.conf is no substitute: with "hosts: files" glibc stops returning /etc/networks names, e.g. link-local.)
/etc/group gets the groups java and ftp (gid 60000) that the Istio owner-groups files need. Never touches the
machine's tables.
"""
import os, re, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def find_corpus():
    d = os.path.dirname(ROOT)
    while d != os.path.dirname(d):
        if os.path.isdir(os.path.join(d, "shared", "corpus")):
            return os.path.join(d, "shared", "corpus")
        d = os.path.dirname(d)
    return os.path.normpath(os.path.join(ROOT, "..", "shared", "corpus"))


CORPUS = find_corpus()
GOLDEN = os.path.join(ROOT, "tests", "Chainwalk.Tests", "golden")
OUT = os.path.join(GOLDEN, "list")
INPUTS = os.path.join(GOLDEN, "list-inputs")

# (case name, source, extra commands as (file, argv) lists)
CASES = [
    ("k8s-calico-node", "k8s/kube-proxy-calico-node-2019.rules", [
        ("S.txt", "-S"),
        ("S-KUBE-SERVICES.txt", "-S KUBE-SERVICES"),
        ("L-KUBE-FORWARD.txt", "-L KUBE-FORWARD"),
        ("L-KUBE-FORWARD-2.txt", "-L KUBE-FORWARD 2"),
        ("L-KUBE-FORWARD-2-vn.txt", "-v -n -L KUBE-FORWARD 2"),
        ("L-KUBE-FORWARD-2-line.txt", "--line-numbers -L KUBE-FORWARD 2"),
        ("L-KUBE-FORWARD-9.txt", "-L KUBE-FORWARD 9"),
        ("S-KUBE-FORWARD-1.txt", "-S KUBE-FORWARD 1"),
        ("S-KUBE-FORWARD-1-v.txt", "-v -S KUBE-FORWARD 1"),
        ("S-KUBE-FORWARD-9.txt", "-S KUBE-FORWARD 9"),
        ("nat.S-KUBE-SERVICES.txt", "-t nat -S KUBE-SERVICES"),
        ("nat.L-KUBE-SERVICES-n.txt", "-t nat -n -L KUBE-SERVICES"),
        ("L-NOSUCH.txt", "-L NOSUCH"),
        ("S-NOSUCH.txt", "-S NOSUCH"),
        ("L-INPUT-0.txt", "-L INPUT 0"),
    ]),
    ("k8s-kube-1.0-userspace", "k8s/kube-1.0-userspace-proxy-node-2015.rules", []),
    ("k8s-multi-networkpolicy", "k8s/multi-networkpolicy-test-line2298.rules", []),
    ("docker-moby-usernet-portmap", "docker/moby-iptablesdoc-usernet-portmap.rules", [
        ("S.txt", "-S"),
        ("nat.S.txt", "-t nat -S"),
        ("nat.S-DOCKER.txt", "-t nat -S DOCKER"),
        ("nat.L-DOCKER.txt", "-t nat -L DOCKER"),
        ("nat.L-DOCKER-1.txt", "-t nat -L DOCKER 1"),
        ("nat.S-DOCKER-2.txt", "-t nat -S DOCKER 2"),
        ("L-DOCKER-USER-vx.txt", "-L DOCKER-USER -v -x"),
    ]),
    ("docker-moby-portmap-lo", "docker/moby-iptablesdoc-usernet-portmap-lo.rules", []),
    ("docker-1.12-topos4.1", "docker/docker-1.12-topos4.1-2016.rules", []),
    ("ufw-conf-before", "other/ufw-0.37-conf-before.rules", []),
    ("ufw-server2", "other/ufw-server2-2015.rules", [
        ("S-ufw-user-input.txt", "-S ufw-user-input"),
        ("L-ufw-user-input-3.txt", "-L ufw-user-input 3"),
    ]),
    ("ufw-user-limit-log", "other/ufw-0.37-user-rules-limit-log.rules", []),
    ("firewalld-restore", "other/firewalld-restore-completed.rules", []),
    ("firewalld-fedora27", "other/fedora27-firewalld-iptables.rules", []),
    ("large-bpf-complexity", "other/bpf-iptables-rule-complexity-all.rules", []),
    ("large-medium-company", "other/medium-sized-company-2016.rules", []),
    ("netfilter-save-filter", "other/netfilter-test-ipt-save-filter.rules", []),
    ("netfilter-ipt-restore", "other/netfilter-test-ipt-restore.rules", []),
    ("neutron-l3-agent", "other/neutron-iptables-manager-l3-agent.rules", []),
    ("home-router", "other/home-router-ipv4-2015.rules", []),
    ("tailscale-v4", "other/tailscale/tailscale-router-addr-routes-subnet-routes-with-netfilter.v4.rules", []),
    ("istio-owner-groups", "other/istio/istio-capture-outbound-owner-groups.v4.rules", []),
    ("openvpn-forum", "other/openvpn-eu-forum-2011.rules", []),
    ("v6-firewalld-fedora27", "ipv6/fedora27-firewalld-ip6tables.rules", []),
    ("v6-synology", "ipv6/synology-ds414-ip6tables-2016.rules", [
        ("S.txt", "-S"),
        ("S-INPUT.txt", "-S INPUT"),
        ("L-INPUT-2.txt", "-L INPUT 2"),
        ("S-INPUT-2.txt", "-S INPUT 2"),
    ]),
    ("v6-ufw-conf-before6", "ipv6/ufw-0.37-conf-before6.rules", []),
    ("v6-semantics-parser-test", "ipv6/iptables-semantics-parser-test-ip6tables.rules", []),
    ("v6-moby-nat", "ipv6/moby-iptabler-hp0_int0_icc1_masq1_snat0_gwm-nat_bindlh0.v6.rules", []),
    ("v6-tailscale", "ipv6/tailscale/tailscale-router-addr-routes-subnet-routes-with-netfilter.v6.rules", []),
    ("v6-netfilter-restore", "ipv6/netfilter-test-ip6t-restore.rules", []),
    ("core", "@core.rules", [
        ("S.txt", "-S"),
        ("S-v.txt", "-S -v"),
        ("raw.S-v.txt", "-t raw -S -v"),
        ("L-x-2.txt", "-L x 2"),
        ("L-x-2-v.txt", "-L x 2 -v"),
        ("L-empty.txt", "-L empty"),
        ("S-empty.txt", "-S empty"),
        ("L-FORWARD-vn.txt", "-L FORWARD -v -n"),
    ]),
    ("core6", "@core6.rules", [
        ("S.txt", "-S"),
        ("S-v.txt", "-S -v"),
        ("L-INPUT-3-vn.txt", "-L INPUT 3 -v -n"),
        ("S-INPUT-6.txt", "-S INPUT 6"),
        ("L-v6chain-vx.txt", "-L v6chain -v -x"),
        ("mangle.S.txt", "-t mangle -S"),
    ]),
    ("counters", "@counters.rules", [
        ("S.txt", "-S"),
        ("S-v.txt", "-S -v"),
        ("S-INPUT-v.txt", "-v -S INPUT"),
        ("L-INPUT-5-v.txt", "-v -L INPUT 5"),
        ("L-INPUT-5-vx.txt", "-v -x -L INPUT 5"),
        ("nat.S-v.txt", "-t nat -S -v"),
        ("L-LOGDROP.txt", "-L LOGDROP"),
        ("L-LOGDROP-vnxL.txt", "-L LOGDROP -v -n -x --line-numbers"),
        ("L-unused-v.txt", "-v -L unused"),
        ("L-LOGDROP-1.txt", "-L LOGDROP 1"),
        ("L-INPUT-3-L.txt", "-L INPUT 3 --line-numbers"),
        ("L-INPUT-6-vnxL.txt", "-L INPUT 6 -v -n -x --line-numbers"),
        ("L-FORWARD-1-v.txt", "-L FORWARD 1 -v"),
        ("L-INPUT-99.txt", "-L INPUT 99"),
        ("S-INPUT-99.txt", "-S INPUT 99"),
        ("L-INPUT-0.txt", "-L INPUT 0"),
        ("S-INPUT-0.txt", "-S INPUT 0"),
        ("S-INPUT-3.txt", "-S INPUT 3"),
        ("S-LOGDROP.txt", "-S LOGDROP"),
        ("S-unused.txt", "-S unused"),
        ("L-NOSUCH.txt", "-L NOSUCH"),
        ("S-NOSUCH.txt", "-S NOSUCH"),
        ("L-NOSUCH-1.txt", "-L NOSUCH 1"),
        ("nat.L-DNATCHAIN-1-vxL.txt", "-t nat -L DNATCHAIN 1 -v -x --line-numbers"),
        ("nat.L-PREROUTING-v.txt", "-t nat -L PREROUTING -v"),
        ("nat.S-POSTROUTING.txt", "-t nat -S POSTROUTING"),
        ("raw.L.txt", "-t raw -L"),
        ("raw.S.txt", "-t raw -S"),
        ("raw.L-NOSUCH.txt", "-t raw -L NOSUCH"),
        ("mangle.L-INPUT-v.txt", "-t mangle -L INPUT -v"),
        ("L-Z-INPUT-v.txt", "-L INPUT -Z -v"),
    ]),
]

TABLE_FLAGS = [(v, n, x, l) for v in (0, 1) for n in (0, 1) for x in (0, 1) for l in (0, 1)]


def flag_name(v, n, x, l):
    s = ("v" if v else "") + ("n" if n else "") + ("x" if x else "") + ("L" if l else "")
    return s or "plain"


def flag_args(v, n, x, l):
    return (["-v"] if v else []) + (["-n"] if n else []) + (["-x"] if x else []) + (["--line-numbers"] if l else [])


def source_path(src):
    return os.path.join(INPUTS, src[1:]) if src.startswith("@") else os.path.join(CORPUS, src)


def family_of(src):
    return 6 if src.startswith("ipv6/") or src.endswith("6.rules") and src.startswith("@") else 4


def load_kind(src):
    if src.startswith("@"):
        return "counters"  # hand-written inputs carry counters: restored with -c
    if os.path.basename(src).startswith("ufw-0.37-conf"):
        return "ufw"
    return "plain"


def ufw_missing_chains(text):
    """The ufw* chains a conf fragment jumps to (or appends to) without declaring them, per table."""
    table, declared, needed = None, set(), []
    for line in text.split("\n"):
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":") and table:
            declared.add((table, line[1:].split(" ")[0]))
        elif table:
            f = line.split()
            for i in range(len(f) - 1):
                if f[i] in ("-j", "-g", "-A", "-I") and f[i + 1].startswith("ufw"):
                    needed.append((table, f[i + 1]))
    out = []
    for t, c in needed:
        if (t, c) not in declared and (t, c) not in out:
            out.append((t, c))
    return out


INNER = r'''
set -u
mount --bind "$ETCDIR/resolv.conf" /etc/resolv.conf
mount --bind "$ETCDIR/group" /etc/group
sh "$WORK/prereq.sh" || exit 90
eval "$RESTORE" < "$SRC" || exit 91
sh "$WORK/cmds.sh"
'''


def record(name, src, extra):
    path = source_path(src)
    fam = family_of(src)
    tool = "ip6tables" if fam == 6 else "iptables"
    kind = load_kind(src)
    text = open(path).read()
    work = tempfile.mkdtemp(prefix="cw-list-")
    etc = os.path.join(work, "etc")
    os.makedirs(etc)
    with open(os.path.join(etc, "resolv.conf"), "w") as f:
        f.write("")
    group = open("/etc/group").read()
    if "\njava:" not in group:
        group += "java:x:60000:\n"
    if "\nftp:" not in group and not group.startswith("ftp:"):
        group += "ftp:x:60000:\n"
    with open(os.path.join(etc, "group"), "w") as f:
        f.write(group)
    prereq = []
    if kind == "ufw":
        for t, c in ufw_missing_chains(text):
            prereq.append(f"{tool} -t {t} -N {c}")
    with open(os.path.join(work, "prereq.sh"), "w") as f:
        f.write("set -e\n" + "\n".join(prereq) + "\n")
    restore = f"{tool}-restore" + (" -n" if kind == "ufw" else "") + (" -c" if kind == "counters" else "")

    # Which tables are present after loading: ask the real tool in a first pass.
    env = dict(os.environ, ETCDIR=etc, WORK=work, SRC=path, RESTORE=restore)
    with open(os.path.join(work, "cmds.sh"), "w") as f:
        f.write(f"{tool}-save\n")
    p = subprocess.run(["unshare", "-n", "-m", "sh", "-c", INNER], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{name}: load failed (rc {p.returncode}): {p.stderr}")
    tables = re.findall(r"^\*(\S+)$", p.stdout, re.M)

    cmds = []
    for t in tables:
        for fl in TABLE_FLAGS:
            cmds.append((f"{t}.{flag_name(*fl)}.txt", " ".join(["-t", t, "-L"] + flag_args(*fl))))
    cmds += extra
    outdir = os.path.join(work, "out")
    os.makedirs(outdir)
    with open(os.path.join(work, "cmds.sh"), "w") as f:
        for i, (fn, args) in enumerate(cmds):
            f.write(f'{tool} {args} > "{outdir}/{i}.out" 2> "{outdir}/{i}.err"; echo $? > "{outdir}/{i}.rc"\n')
    p = subprocess.run(["unshare", "-n", "-m", "sh", "-c", INNER], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{name}: run failed (rc {p.returncode}): {p.stderr}")

    dest = os.path.join(OUT, name)
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    manifest = [f"source\t{src}", f"family\t{fam}", f"load\t{kind}"]
    for i, (fn, args) in enumerate(cmds):
        out = open(os.path.join(outdir, f"{i}.out"), "rb").read()
        err = open(os.path.join(outdir, f"{i}.err"), "rb").read()
        rc = open(os.path.join(outdir, f"{i}.rc")).read().strip()
        open(os.path.join(dest, fn), "wb").write(out)
        if err:
            open(os.path.join(dest, fn + ".err"), "wb").write(err)
        manifest.append(f"cmd\t{fn}\t{rc}\t{args}")
    with open(os.path.join(dest, "manifest.tsv"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    shutil.rmtree(work)
    print(f"{name}: {len(tables)} tables, {len(cmds)} commands")


def main():
    if os.geteuid() != 0:
        sys.exit("needs root (unshare -n -m)")
    only = set(sys.argv[1:])
    for name, src, extra in CASES:
        if only and name not in only:
            continue
        record(name, src, extra)


if __name__ == "__main__":
    main()
