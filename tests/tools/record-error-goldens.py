#!/usr/bin/env python3
"""Record what the real iptables 1.8.9 (nf_tables) prints for bad input: stdout, stderr, exit code, and
the iptables-save -c state (comment lines dropped) before and after the command.

Usage (as root): tests/tools/record-error-goldens.py

Every case runs in its own fresh network + mount namespace (unshare -n -m), with an empty /etc/resolv.conf
bind-mounted: a DNS look-up can only aim at 127.0.0.1, whose device is down in the fresh namespace, so no query
leaves and names come from the /etc files only. The set-up commands must succeed.
Writes tests/Chainwalk.Tests/golden/errors/cases.json (read by ErrorGoldenTests.cs). Never touches the
machine's own tables.
"""
import json, os, shlex, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "Chainwalk.Tests", "golden", "errors", "cases.json")

# (name, set-up commands, command, stdin for restore or None)
R = "iptables-restore"

# The labs of the users' guide (../shared/seeds/000_*.txt): what its commands print.
LAB1 = ["iptables -F", "iptables -X", "iptables -P INPUT DROP", "iptables -P FORWARD DROP", "iptables -P OUTPUT ACCEPT",
        "iptables -A INPUT -i lo -j ACCEPT", "iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "iptables -A INPUT -p tcp --dport 22 -j ACCEPT", "iptables -A INPUT -p tcp --dport 80 -j ACCEPT"]
LAB2 = ["iptables -t nat -A POSTROUTING -s 10.0.1.0/24 -o eth0 -j MASQUERADE", "iptables -A FORWARD -i eth1 -o eth0 -j ACCEPT",
        "iptables -A FORWARD -i eth0 -o eth1 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"]
LAB3 = ["iptables -t nat -A PREROUTING -p tcp --dport 443 -j DNAT --to-destination 10.0.1.50:8443",
        "iptables -A FORWARD -p tcp -d 10.0.1.50 --dport 8443 -j ACCEPT",
        "iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"]
LAB4 = ['iptables -I INPUT 1 -j LOG --log-prefix "DEBUG-INPUT: "']
CASES = [
    # --- option parsing
    ("unknown-long-option", [], "iptables -A INPUT --bogus", None),
    ("unknown-short-option", [], "iptables -Y", None),
    ("missing-argument-s", [], "iptables -A INPUT -s", None),
    ("missing-chain-for-A", [], "iptables -A", None),
    ("no-command", [], "iptables -s 1.2.3.4", None),
    ("two-commands", [], "iptables -A INPUT -D INPUT", None),
    ("extra-argument", [], "iptables -A INPUT -j ACCEPT foo", None),
    ("extra-argument-L", [], "iptables -L INPUT 1 more", None),
    ("illegal-option-line-numbers-with-A", [], "iptables -A INPUT --line-numbers -j ACCEPT", None),
    ("list-with-p", [], "iptables -L -p tcp", None),
    ("zero-with-s", [], "iptables -Z -s 1.2.3.4", None),
    ("flush-with-j", [], "iptables -F INPUT -j ACCEPT", None),
    ("bad-table", [], "iptables -t nosuch -L", None),
    ("invalid-rule-number", [], "iptables -I INPUT abc -j ACCEPT", None),
    ("rule-number-zero-R", [], "iptables -R INPUT 0 -j ACCEPT", None),
    ("bad-counters", [], "iptables -A INPUT -c x y -j ACCEPT", None),
    ("missing-argument-j", [], "iptables -A INPUT -j", None),
    ("missing-argument-m", [], "iptables -A INPUT -m", None),
    ("missing-argument-dport", [], "iptables -A INPUT -p tcp --dport", None),
    ("missing-argument-t", [], "iptables -L -t", None),
    ("two-s-flags", [], "iptables -A INPUT -s 1.1.1.1 -s 2.2.2.2 -j ACCEPT", None),
    ("two-i-flags", [], "iptables -A INPUT -i eth0 -i eth1 -j ACCEPT", None),
    ("two-j-flags", [], "iptables -A INPUT -j ACCEPT -j DROP", None),
    ("goto-and-jump", ["iptables -N X"], "iptables -A INPUT -g X -j ACCEPT", None),
    ("syn-without-p", [], "iptables -A INPUT --syn -j ACCEPT", None),
    ("ipv6-flag-in-iptables", [], "iptables -6 -A INPUT -j ACCEPT", None),
    ("ipv4-flag-in-ip6tables", [], "ip6tables -4 -A INPUT -j ACCEPT", None),
    ("insert-number-zero", [], "iptables -I INPUT 0 -j ACCEPT", None),
    ("check-with-number", [], "iptables -C INPUT 1 -j ACCEPT", None),
    ("policy-extra-arg", [], "iptables -P INPUT DROP extra", None),
    ("new-chain-with-rule-opts", [], "iptables -N X -s 1.2.3.4", None),
    ("empty-interface", [], "iptables -A INPUT -i '' -j ACCEPT", None),
    ("bang-after-option-value", [], "iptables -A INPUT -s ! 1.2.3.4 -j ACCEPT", None),
    ("target-name-too-long", [], "iptables -A INPUT -j ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF", None),
    ("S-with-line-numbers", [], "iptables -S --line-numbers", None),
    ("S-with-n", [], "iptables -S -n", None),
    ("S-with-x", ["iptables -A INPUT -j ACCEPT"], "iptables -S INPUT -v -x", None),
    ("L-with-c", [], "iptables -L -c 1 2", None),
    ("L-Z-rule-number", ["iptables -A INPUT -c 5 6 -j ACCEPT"], "iptables -L -Z INPUT 1", None),
    ("L-chain-after-options", ["iptables -A INPUT -j ACCEPT"], "iptables -L -n -v -t filter INPUT 1", None),
    ("L-rule-number-without-chain", [], "iptables -L 1", None),
    # --- addresses, masks, interfaces, protocols, ports
    ("bad-address", [], "iptables -A INPUT -s 1.2.3.400 -j ACCEPT", None),
    ("bad-hostname", [], "iptables -A INPUT -d no-such-host.invalid -j ACCEPT", None),
    ("bad-mask-33", [], "iptables -A INPUT -s 10.0.0.0/33 -j ACCEPT", None),
    ("bad-mask-text", [], "iptables -A INPUT -s 10.0.0.0/abc -j ACCEPT", None),
    ("v6-bad-address-v4", [], "ip6tables -A INPUT -s 1.2.3.4 -j ACCEPT", None),
    ("v6-bad-mask-129", [], "ip6tables -A INPUT -s ::1/129 -j ACCEPT", None),
    ("v6-fragment-option", [], "ip6tables -A INPUT -f -j ACCEPT", None),
    ("interface-too-long", [], "iptables -A INPUT -i abcdefghijklmnopq -j ACCEPT", None),
    ("unknown-protocol", [], "iptables -A INPUT -p nosuchproto -j ACCEPT", None),
    ("multiple-p", [], "iptables -A INPUT -p tcp -p udp -j ACCEPT", None),
    ("bad-port-range", [], "iptables -A INPUT -p tcp --dport 70000 -j ACCEPT", None),
    ("bad-port-name", [], "iptables -A INPUT -p tcp --dport nosuchservice -j ACCEPT", None),
    ("dport-without-p", [], "iptables -A INPUT --dport 80 -j ACCEPT", None),
    ("bang-before-m", [], "iptables -A INPUT ! -m tcp -p tcp -j ACCEPT", None),
    ("bang-with-multiple-sources", [], "iptables -A INPUT ! -s 1.2.3.4,5.6.7.8 -j ACCEPT", None),
    ("double-bang", [], "iptables -A INPUT ! ! -s 1.2.3.4 -j ACCEPT", None),
    ("replace-multiple-sources", ["iptables -A INPUT -j ACCEPT"], "iptables -R INPUT 1 -s 1.1.1.1,2.2.2.2 -j ACCEPT", None),
    ("o-in-INPUT", [], "iptables -A INPUT -o eth0 -j ACCEPT", None),
    ("i-in-OUTPUT", [], "iptables -A OUTPUT -i eth0 -j ACCEPT", None),
    ("i-in-POSTROUTING", [], "iptables -t nat -A POSTROUTING -i eth0 -j ACCEPT", None),
    # --- extensions and targets
    ("unknown-match", [], "iptables -A INPUT -m nosuchmatch -j ACCEPT", None),
    ("unknown-target-chain", [], "iptables -A INPUT -j NOSUCH", None),
    ("unknown-target-lowercase", [], "iptables -A INPUT -j nosuch", None),
    ("goto-missing-chain", [], "iptables -A INPUT -g NOSUCH", None),
    ("jump-to-builtin", [], "iptables -A INPUT -j OUTPUT", None),
    ("nat-jump-DROP", [], "iptables -t nat -A PREROUTING -j DROP", None),
    ("chain-loop-reachable", ["iptables -N A", "iptables -N B", "iptables -A INPUT -j A", "iptables -A A -j B"], "iptables -A B -j A", None),
    ("chain-loop", ["iptables -N A", "iptables -N B", "iptables -A A -j B"], "iptables -A B -j A", None),
    # --- rule commands
    ("append-missing-chain", [], "iptables -A NOSUCH -j ACCEPT", None),
    ("delete-missing-rule", ["iptables -A INPUT -j ACCEPT"], "iptables -D INPUT -j DROP", None),
    ("delete-rule-fresh", [], "iptables -D INPUT -j DROP", None),
    ("delete-number-too-big", ["iptables -A INPUT -j ACCEPT"], "iptables -D INPUT 5", None),
    ("delete-number-fresh", [], "iptables -D INPUT 1", None),
    ("delete-number-empty-chain", ["iptables -P INPUT ACCEPT"], "iptables -D INPUT 1", None),
    ("insert-number-too-big", ["iptables -A INPUT -j ACCEPT"], "iptables -I INPUT 5 -j ACCEPT", None),
    ("insert-number-too-big-fresh", [], "iptables -I INPUT 2 -j ACCEPT", None),
    ("replace-number-too-big", ["iptables -A INPUT -j ACCEPT"], "iptables -R INPUT 3 -j ACCEPT", None),
    ("replace-fresh", [], "iptables -R INPUT 1 -j ACCEPT", None),
    ("check-missing-rule", ["iptables -A INPUT -j ACCEPT"], "iptables -C INPUT -j DROP", None),
    ("check-fresh", [], "iptables -C INPUT -j ACCEPT", None),
    ("zero-number-too-big", ["iptables -A INPUT -j ACCEPT"], "iptables -Z INPUT 5", None),
    ("zero-builtin-fresh", [], "iptables -Z INPUT", None),
    ("flush-missing-chain", [], "iptables -F NOSUCH", None),
    # --- chain commands
    ("delete-builtin-chain", ["iptables -A INPUT -j ACCEPT"], "iptables -X INPUT", None),
    ("delete-builtin-chain-fresh", [], "iptables -X INPUT", None),
    ("delete-chain-in-use", ["iptables -N X", "iptables -A INPUT -j X"], "iptables -X X", None),
    ("delete-chain-not-empty", ["iptables -N X", "iptables -A X -j ACCEPT"], "iptables -X X", None),
    ("delete-missing-chain", [], "iptables -X NOSUCH", None),
    ("delete-all-chains-one-in-use", ["iptables -N X", "iptables -N Y", "iptables -A INPUT -j X"], "iptables -X", None),
    ("new-existing-chain", ["iptables -N X"], "iptables -N X", None),
    ("new-builtin-name", ["iptables -A INPUT -j ACCEPT"], "iptables -N INPUT", None),
    ("new-target-name", [], "iptables -N ACCEPT", None),
    ("new-name-dash", [], "iptables -N -bad", None),
    ("new-name-bang", [], "iptables -N !bad", None),
    ("new-name-too-long", [], "iptables -N abcdefghijklmnopqrstuvwxyz0123456789", None),
    ("new-name-29", [], "iptables -N abcdefghijklmnopqrstuvwxyz012", None),
    ("rename-to-existing", ["iptables -N X", "iptables -N Y"], "iptables -E X Y", None),
    ("rename-missing", [], "iptables -E NOSUCH Y", None),
    ("rename-builtin", ["iptables -A INPUT -j ACCEPT"], "iptables -E INPUT FOO", None),
    ("rename-to-target-name", ["iptables -N X"], "iptables -E X DROP", None),
    ("policy-user-chain", ["iptables -N X"], "iptables -P X DROP", None),
    ("policy-bad", [], "iptables -P INPUT BOGUS", None),
    ("policy-return", [], "iptables -P INPUT RETURN", None),
    ("policy-missing-chain", [], "iptables -P NOSUCH DROP", None),
    ("policy-nat-drop", [], "iptables -t nat -P PREROUTING DROP", None),
    ("policy-missing-target", [], "iptables -P INPUT", None),
    # --- the guide's labs
    ("lab1-L-v-n", LAB1[:-1], LAB1[-1], None),
    ("lab1-list-v-n", LAB1, "iptables -L -v -n", None),
    ("lab1-list-v-n-line-numbers", LAB1, "iptables -L -v -n --line-numbers", None),
    ("lab1-list", LAB1, "iptables -L", None),
    ("lab1-S", LAB1, "iptables -S", None),
    ("lab1-save", LAB1, "iptables-save", None),
    ("lab1-delete-3", LAB1, "iptables -D INPUT 3", None),
    ("lab1-delete-9", LAB1, "iptables -D INPUT 9", None),
    ("lab1-flush", LAB1, "iptables -F", None),
    ("lab2-nat-list", LAB2, "iptables -t nat -L -v -n", None),
    ("lab2-forward-list", LAB2, "iptables -L FORWARD -v", None),
    ("lab3-nat-list", LAB3, "iptables -t nat -L -n --line-numbers", None),
    ("lab3-S", LAB3, "iptables -t nat -S", None),
    ("lab4-insert-log", LAB1, LAB4[0], None),
    ("lab4-list", LAB1 + LAB4, "iptables -L INPUT -n --line-numbers", None),
    ("lab4-delete-1", LAB1 + LAB4, "iptables -D INPUT 1", None),
    ("guide-docker-chain-missing", [], "iptables -t nat -L DOCKER -n", None),
    ("guide-docker-user-missing", [], "iptables -L DOCKER-USER -n", None),
    ("guide-kube-services-missing", [], "iptables -t nat -L KUBE-SERVICES -n", None),
    ("guide-fresh-list", [], "iptables -L -v -n --line-numbers", None),
    ("guide-fresh-nat-list", [], "iptables -t nat -L -v -n", None),
    ("guide-fresh-save", [], "iptables-save", None),
    ("guide-fresh-flush", [], "iptables -F", None),
    # --- which commands create a table (iptables-nft prints only existing tables)
    ("table-L-does-not-create", [], "iptables -t nat -L", None),
    ("table-S-does-not-create", [], "iptables -t nat -S", None),
    ("table-L-chain-does-not-create", [], "iptables -t nat -L PREROUTING", None),
    ("table-F-does-not-create", [], "iptables -t nat -F", None),
    ("table-F-chain-creates", [], "iptables -t nat -F PREROUTING", None),
    ("table-Z-does-not-create", [], "iptables -t nat -Z", None),
    ("table-Z-v-does-not-create", [], "iptables -t mangle -Z -v", None),
    ("table-L-Z-does-not-create", [], "iptables -t mangle -L -Z -v", None),
    ("table-X-does-not-create", [], "iptables -t nat -X", None),
    ("table-N-creates", [], "iptables -t nat -N X", None),
    ("table-P-creates", [], "iptables -t nat -P OUTPUT ACCEPT", None),
    ("table-A-creates", [], "iptables -t raw -A OUTPUT -j ACCEPT", None),
    ("table-I-creates", [], "iptables -t security -I INPUT -j ACCEPT", None),
    ("table-C-does-not-create", [], "iptables -t nat -C OUTPUT -j ACCEPT", None),
    ("table-D-does-not-create", [], "iptables -t nat -D OUTPUT -j ACCEPT", None),
    ("table-v6-N-creates", [], "ip6tables -t nat -N X", None),
    ("table-v6-L-does-not-create", [], "ip6tables -t mangle -L -n -v", None),
    ("table-N-then-X-keeps-table", ["iptables -t nat -N X"], "iptables -t nat -X X", None),
    ("table-F-existing", ["iptables -t nat -N X", "iptables -t nat -A X -j RETURN"], "iptables -t nat -F", None),
    ("table-Z-v-existing", ["iptables -N X", "iptables -A INPUT -j X"], "iptables -Z -v", None),
    ("table-restore-empty-does-not-create", [], R, "*nat\nCOMMIT\n"),
    ("table-restore-T-other", [], "iptables-restore -T filter", "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT DROP [0:0]\nCOMMIT\n"),
    ("table-restore-noflush-keeps", ["iptables -A INPUT -j ACCEPT"], "iptables-restore -n", "*filter\n-A INPUT -j DROP\nCOMMIT\n"),
    # --- counters given with -c
    ("counters-A-c", [], "iptables -A INPUT -c 7 700 -j DROP", None),
    ("counters-R-c", ["iptables -A INPUT -j ACCEPT"], "iptables -R INPUT 1 -c 3 4 -j DROP", None),
    ("counters-P-c-ignored", [], "iptables -P INPUT DROP -c 5 6", None),
    ("counters-v6-A-c-ignored", [], "ip6tables -A INPUT -c 7 700 -j DROP", None),
    ("counters-v6-restore-c-rule-ignored", [], "ip6tables-restore -c",
     "*filter\n:INPUT ACCEPT [1:2]\n[5:500] -A INPUT -s ::1/128 -j ACCEPT\nCOMMIT\n"),
    ("counters-restore-c", [], "iptables-restore -c", "*filter\n:INPUT ACCEPT [1:2]\n[5:500] -A INPUT -s 1.2.3.4 -j ACCEPT\nCOMMIT\n"),
    # --- iptables-save
    ("save-bad-table", [], "iptables-save -t nosuch", None),
    # --- iptables-restore
    ("restore-bad-table", [], R, "*nosuch\nCOMMIT\n"),
    ("restore-missing-commit", [], R, "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n"),
    ("restore-bad-rule-line-3", [], R, "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT --bogus\nCOMMIT\n"),
    ("restore-bad-rule-line-5", ["iptables -A INPUT -j ACCEPT"], R,
     "# comment\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.1 -j ACCEPT\n-A INPUT -s 10.0.0.0/40 -j ACCEPT\nCOMMIT\n"),
    ("restore-unknown-chain", [], R, "*filter\n-A NOSUCH -j ACCEPT\nCOMMIT\n"),
    ("restore-jump-undeclared", [], R, "*filter\n-A INPUT -j NOSUCH\nCOMMIT\n"),
    ("restore-t-inside", [], R, "*filter\n-t nat -A INPUT -j ACCEPT\nCOMMIT\n"),
    ("restore-rule-before-table", [], R, "-A INPUT -j ACCEPT\nCOMMIT\n"),
    ("restore-commit-without-table", [], R, "COMMIT\n"),
    ("restore-bad-policy", [], R, "*filter\n:INPUT BOGUS [0:0]\nCOMMIT\n"),
    ("restore-policy-on-user-chain", [], R, "*filter\n:X DROP [0:0]\nCOMMIT\n"),
    ("restore-chain-line-no-policy", [], R, "*filter\n:INPUT\nCOMMIT\n"),
    ("restore-nat-drop-rule", [], R, "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DROP\nCOMMIT\n"),
    ("restore-nat-drop-policy", [], R, "*nat\n:POSTROUTING DROP [0:0]\nCOMMIT\n"),
    ("restore-second-table-bad", ["iptables -A INPUT -j ACCEPT"], R,
     "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j DROP\nCOMMIT\n*nat\n-A NOSUCH -j ACCEPT\nCOMMIT\n"),
    ("restore-two-tables-no-commit", [], R, "*filter\n*nat\nCOMMIT\n"),
    ("restore-w-inside", [], R, "*filter\n-w -A INPUT -j ACCEPT\nCOMMIT\n"),
    ("restore-empty-input", [], R, ""),
    ("restore-only-comments", [], R, "# nothing\n\n"),
    ("restore-commit-no-newline", [], R, "*filter\n-A INPUT -j ACCEPT\nCOMMIT"),
    ("restore-policy-counters-bad", [], "iptables-restore -c", "*filter\n:INPUT ACCEPT [x:y]\nCOMMIT\n"),
    ("restore-T-missing-arg", [], "iptables-restore -T", ""),
    ("restore-loop", [], R, "*filter\n:A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A A -j B\n-A B -j A\nCOMMIT\n"),
    ("restore-loop-closed-early", [], R, "*filter\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\n-A INPUT -s 1.2.3.4 -j ACCEPT\n-A INPUT -j A\nCOMMIT\n"),
    ("restore-unreachable-loop", [], R, "*filter\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\nCOMMIT\n"),
    ("restore-unterminated-quote", [], R, "*filter\n-A INPUT -m comment --comment \"abc -j ACCEPT\nCOMMIT\n"),
    ("restore-bad-counters", [], "iptables-restore -c", "*filter\n[a:b] -A INPUT -j ACCEPT\nCOMMIT\n"),
    ("restore-unknown-option", [], "iptables-restore --bogus", ""),
    ("restore-delete-builtin", [], R, "*filter\n-X INPUT\nCOMMIT\n"),
    ("restore-v6-with-v4-address", [], "ip6tables-restore", "*filter\n-A INPUT -s 1.2.3.4 -j ACCEPT\nCOMMIT\n"),
    ("restore-noflush-existing-chain", ["iptables -N X"], "iptables-restore -n", "*filter\n:X - [0:0]\n-N X\nCOMMIT\n"),
]

INNER = r'''
import json, subprocess, sys
spec = json.load(sys.stdin)
subprocess.run(["mount", "--bind", spec["resolv"], "/etc/resolv.conf"], check=True)
def save(fam):
    tool = "ip6tables-save" if fam == 6 else "iptables-save"
    out = subprocess.run([tool, "-c"], capture_output=True, text=True).stdout
    return "".join(l + "\n" for l in out.split("\n") if l and not l.startswith("#"))
for s in spec["setup"]:
    p = subprocess.run(s, capture_output=True, text=True)
    if p.returncode != 0:
        print(json.dumps({"setup_failed": s, "stderr": p.stderr})); sys.exit(0)
fam = spec["family"]
before = save(fam)
p = subprocess.run(spec["cmd"], input=spec["stdin"] if spec["stdin"] is not None else "", capture_output=True, text=True)
print(json.dumps({"exit": p.returncode, "stdout": p.stdout, "stderr": p.stderr, "before": before, "after": save(fam)}))
'''


def main():
    if os.geteuid() != 0:
        sys.exit("needs root (unshare -n -m)")
    resolv = "/tmp/cw-errors-resolv.conf"
    with open(resolv, "w") as f:
        f.write("")
    names = set()
    out = []
    for name, setup, cmd, stdin in CASES:
        assert name not in names, name
        names.add(name)
        argv = shlex.split(cmd)
        fam = 6 if argv[0].startswith("ip6") else 4
        spec = {"resolv": resolv, "setup": [shlex.split(s) for s in setup], "cmd": argv, "stdin": stdin, "family": fam}
        p = subprocess.run(["unshare", "-n", "-m", "python3", "-c", INNER], input=json.dumps(spec), capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"{name}: {p.stderr}")
        r = json.loads(p.stdout)
        if "setup_failed" in r:
            sys.exit(f"{name}: set-up failed: {r}")
        stdout = r["stdout"]
        if argv[0].endswith("-save"):
            # Drop the "# Generated by ... on DATE" / "# Completed on DATE" lines: the recording stays stable.
            stdout = "".join(l + "\n" for l in stdout.split("\n") if l and not l.startswith("# "))
        out.append({"name": name, "setup": spec["setup"], "cmd": argv, "stdin": stdin, "exit": r["exit"],
                    "stdout": stdout, "stderr": r["stderr"], "before": r["before"], "after": r["after"]})
        flag = "" if r["exit"] != 0 else "   (exit 0)"
        changed = "   (state changed)" if r["before"] != r["after"] else ""
        print(f"{name}: {r['exit']} {r['stderr'].splitlines()[0] if r['stderr'] else ''}{flag}{changed}")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"{len(out)} cases -> {OUT}")


if __name__ == "__main__":
    main()
