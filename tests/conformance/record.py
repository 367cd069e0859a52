#!/usr/bin/python3
"""Records kernel conformance cases for Chainwalk's engine.

For a seed and N cases: random filter + mangle rule sets (no conntrack) and packets aimed at them,
run through the real kernel in throw-away network namespaces, recording per packet what reached the
receiver, what came back to the sender, and `iptables-save -c` after the packet. One JSON file per case.

Topology (all namespaces are created here and deleted on exit):
    sender  s0 10.1.0.2/24  <-veth->  eth0 10.1.0.1/24  [fw]  eth1 10.2.0.1/24  <-veth->  r0 10.2.0.2/24  receiver
fw forwards (ip_forward=1), knows its neighbours statically (no ARP), has IPv6 off and no ICMP rate limit.
A `security` table `-A INPUT -j DROP` in fw (priority 50, after filter) tells locally delivered packets
apart and keeps fw's own stack from answering them (no RST / port unreachable / echo reply from sockets).
Sender and receiver drop everything in raw PREROUTING so their stacks never answer; AF_PACKET sockets
still see the frames.

Usage: record.py --out DIR [--cases N] [--seed S] [--packets P]   (root only)
"""
import argparse
import ipaddress
import ctypes
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import time

from scapy.all import IP, TCP, UDP, ICMP, Raw  # noqa: E402  (python3-scapy)

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
PREFIX = f"cwk-{os.getpid()}-"
NS = {"s": PREFIX + "snd", "fw": PREFIX + "fw", "r": PREFIX + "rcv"}
MAC = {"s0": "02:00:00:00:01:02", "eth0": "02:00:00:00:01:01", "eth1": "02:00:00:00:02:01", "r0": "02:00:00:00:02:02"}
SENDERS = [f"10.1.0.{i}" for i in range(2, 8)]
RECEIVERS = [f"10.2.0.{i}" for i in range(2, 8)]
LOCALS = ["10.1.0.1", "10.2.0.1"]

# The network as Chainwalk's `ip` / `sysctl` verbs rebuild it (the fw namespace only).
HOST_COMMANDS = [
    "ip link add eth0 type veth peer name eth0p",
    "ip link add eth1 type veth peer name eth1p",
    f"ip link set eth0 address {MAC['eth0']}",
    f"ip link set eth1 address {MAC['eth1']}",
    "ip addr add 10.1.0.1/24 dev eth0",
    "ip addr add 10.2.0.1/24 dev eth1",
    "ip link set eth0p up",
    "ip link set eth1p up",
    "ip link set eth0 up",
    "ip link set eth1 up",
    "sysctl -w net.ipv4.ip_forward=1",
    "sysctl -w net.ipv4.conf.all.rp_filter=0",
    "sysctl -w net.ipv4.icmp_ratelimit=0",
    "sysctl -w net.ipv4.conf.all.send_redirects=0",
]


def sh(cmd, ns=None, check=True, inp=None):
    argv = cmd if isinstance(cmd, list) else cmd.split()
    if ns:
        argv = ["nsenter", f"--net=/run/netns/{ns}"] + argv
    r = subprocess.run(argv, input=inp, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    return r


_libc = ctypes.CDLL(None, use_errno=True)


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns " + path)
    finally:
        os.close(fd)


def packet_socket(ns, dev):
    """An AF_PACKET socket bound to dev inside ns (the socket keeps its namespace)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        setns(f"/run/netns/{ns}")
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((dev, 0))
        s.setblocking(False)
        return s
    finally:
        _libc.setns(home, CLONE_NEWNET)
        os.close(home)


def setup():
    for n in NS.values():
        sh(f"ip netns add {n}")
    fw, s, r = NS["fw"], NS["s"], NS["r"]
    sh(f"ip link add eth0 netns {fw} type veth peer name s0 netns {s}")
    sh(f"ip link add eth1 netns {fw} type veth peer name r0 netns {r}")
    for ns in NS.values():
        sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1", ns)
        sh("sysctl -qw net.ipv6.conf.default.disable_ipv6=1", ns)
        sh("ip link set lo up", ns)
    for ns, dev, addr in ((fw, "eth0", "10.1.0.1/24"), (fw, "eth1", "10.2.0.1/24"), (s, "s0", "10.1.0.2/24"), (r, "r0", "10.2.0.2/24")):
        sh(f"ip link set {dev} address {MAC[dev]}", ns)
        sh(f"ip addr add {addr} dev {dev}", ns)
        sh(f"ip link set {dev} up", ns)
    for a in SENDERS:
        sh(f"ip neigh replace {a} lladdr {MAC['s0']} nud permanent dev eth0", fw)
    for a in RECEIVERS:
        sh(f"ip neigh replace {a} lladdr {MAC['r0']} nud permanent dev eth1", fw)
    for k in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
              "net.ipv4.conf.eth0.rp_filter=0", "net.ipv4.conf.eth1.rp_filter=0", "net.ipv4.icmp_ratelimit=0",
              "net.ipv4.icmp_msgs_per_sec=100000", "net.ipv4.conf.all.send_redirects=0"):
        sh(f"sysctl -qw {k}", fw)
    # No transmit checksum offload on fw: what it sends (REJECT resets) carries the full checksum, as on a wire.
    for dev in ("eth0", "eth1"):
        sh(f"ethtool -K {dev} tx off", fw, check=False)
    for ns in (s, r):
        sh("iptables -t raw -A PREROUTING -j DROP", ns)
    time.sleep(0.05)


def cleanup():
    for n in NS.values():
        subprocess.run(["ip", "netns", "del", n], capture_output=True)


# ---------------------------------------------------------------------------------------------- rule sets

PREFIXES = ["10.1.0.0/24", "10.1.0.2", "10.1.0.4/31", "10.2.0.0/24", "10.2.0.3", "10.2.0.0/30", "10.0.0.0/8",
            "192.168.0.0/16", "10.1.0.1", "10.2.0.1", "0.0.0.0/1"]
PORTS = [22, 53, 80, 123, 443, 1000, 8080]
REJECTS = ["icmp-port-unreachable", "icmp-host-unreachable", "icmp-net-unreachable", "icmp-admin-prohibited",
           "icmp-net-prohibited", "icmp-host-prohibited", "icmp-proto-unreachable"]
ICMP_TYPES = ["echo-request", "echo-reply", "destination-unreachable", "8/0", "3/3", "time-exceeded", "any", "timestamp-request"]
HOOK_CHAINS = {"filter": ["INPUT", "FORWARD", "OUTPUT"], "mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]}
# Hooks where -i / -o are valid (iptables refuses them elsewhere in base chains).
NO_IN = {"OUTPUT", "POSTROUTING"}
NO_OUT = {"PREROUTING", "INPUT"}


def neg(rng, p=0.2):
    return "! " if rng.random() < p else ""


def gen_match(rng, hook_set, parts, proto, core=False):
    """Appends one random condition to parts; returns the protocol chosen (if any)."""
    if core:
        k = rng.choice(["s", "d", "i", "o", "p"])
    else:
        k = rng.choice(["s", "d", "s", "d", "i", "o", "p", "p", "p", "mark", "length", "ttl", "tos", "iprange", "comment"])
    # One of each option per rule (iptables refuses "multiple -d flags").
    used = " ".join(parts).split()
    if ("-" + k) in used or ("-m" in used and k in used):
        return proto
    if k == "s":
        parts.append(f"{neg(rng)}-s {rng.choice(PREFIXES)}")
    elif k == "d":
        parts.append(f"{neg(rng)}-d {rng.choice(PREFIXES)}")
    elif k == "i" and not (hook_set & NO_IN):
        parts.append(f"{neg(rng)}-i {rng.choice(['eth0', 'eth1', 'eth+', 'lo', 'e+'])}")
    elif k == "o" and not (hook_set & NO_OUT):
        parts.append(f"{neg(rng)}-o {rng.choice(['eth0', 'eth1', 'eth+', 'lo'])}")
    elif k == "p" and proto is None:
        proto = rng.choice(["tcp", "udp", "icmp"])
        parts.append(f"{'! ' if core and rng.random() < 0.2 else ''}-p {proto}")
        if core:
            return None
        if proto == "tcp":
            for _ in range(rng.randint(0, 2)):
                c = rng.choice(["dport", "sport", "flags", "syn", "mport", "range"])
                if c == "dport":
                    parts.append(f"{neg(rng)}--dport {rng.choice(PORTS)}")
                elif c == "sport":
                    parts.append(f"{neg(rng)}--sport {rng.choice(PORTS)}")
                elif c == "range":
                    a = rng.choice([0, 20, 80, 1000])
                    parts.append(f"{neg(rng)}--dport {a}:{a + rng.choice([5, 100, 1000])}")
                elif c == "flags":
                    parts.append(f"{neg(rng)}--tcp-flags {rng.choice(['SYN,ACK,FIN,RST', 'ALL', 'SYN,ACK', 'FIN,SYN,RST,PSH,ACK,URG', 'NONE', 'ACK'])} "
                                 f"{rng.choice(['SYN', 'ACK', 'SYN,ACK', 'NONE', 'RST', 'FIN,ACK', 'ALL'])}")
                elif c == "syn":
                    parts.append(f"{neg(rng)}--syn")
                else:
                    ps = ",".join(str(p) for p in rng.sample(PORTS, rng.randint(1, 3)))
                    parts.append(f"-m multiport {neg(rng)}--{rng.choice(['dports', 'sports', 'ports'])} {ps}")
        elif proto == "udp":
            c = rng.choice(["dport", "sport", "mport", "none"])
            if c == "dport":
                parts.append(f"{neg(rng)}--dport {rng.choice(PORTS)}")
            elif c == "sport":
                parts.append(f"{neg(rng)}--sport {rng.choice(PORTS)}:{rng.choice([2000, 65535])}")
            elif c == "mport":
                ps = ",".join(str(p) for p in rng.sample(PORTS, rng.randint(1, 3)))
                parts.append(f"-m multiport {neg(rng)}--{rng.choice(['dports', 'sports', 'ports'])} {ps}")
        else:
            if rng.random() < 0.7:
                parts.append(f"{neg(rng)}--icmp-type {rng.choice(ICMP_TYPES)}")
    elif k == "mark":
        parts.append(f"-m mark {neg(rng)}--mark {rng.choice(['0x1', '0x2', '0x1/0x1', '0x0', '0x10/0xf0', '0x3'])}")
    elif k == "length":
        a = rng.choice([0, 20, 28, 40, 60, 100])
        parts.append(f"-m length {neg(rng)}--length {a}:{a + rng.choice([10, 40, 100, 1000])}")
    elif k == "ttl":
        parts.append(f"-m ttl {rng.choice(['--ttl-eq 64', '--ttl-lt 10', '--ttl-gt 30', '--ttl-eq 63', '! --ttl-eq 1', '--ttl-lt 64'])}")
    elif k == "tos":
        parts.append(f"-m tos {neg(rng)}--tos {rng.choice(['0x10', '0x08/0x0c', '0x00/0xff', '0x04', '0xb8/0xfc', 'Minimize-Delay'])}")
    elif k == "iprange":
        a, b = rng.randint(2, 5), rng.randint(5, 8)
        side = rng.choice([("src", "10.1.0"), ("dst", "10.2.0"), ("dst", "10.1.0")])
        parts.append(f"-m iprange {neg(rng)}--{side[0]}-range {side[1]}.{a}-{side[1]}.{b}")
    elif k == "comment":
        parts.append(f"-m comment --comment \"c{rng.randint(0, 99)}\"")
    return proto


def gen_target(rng, table, chain, user_chains, idx, proto, hook_set, core=False):
    later = user_chains[idx + 1:] if idx >= 0 else user_chains
    r = rng.random()
    if later and r < 0.22:
        return f"{'-g' if rng.random() < 0.3 else '-j'} {rng.choice(later)}"
    if idx >= 0 and r < 0.3:
        return "-j RETURN"
    if core:
        c = rng.choice(["ACCEPT", "DROP", "none", "none"] if table == "filter" else ["ACCEPT", "none", "none", "DROP"])
        return "" if c == "none" else f"-j {c}"
    if table == "filter":
        c = rng.choice(["ACCEPT", "DROP", "REJECT", "REJECT", "none", "ACCEPT"])
        if c == "REJECT":
            w = "tcp-reset" if proto == "tcp" and rng.random() < 0.5 else rng.choice(REJECTS)
            return f"-j REJECT --reject-with {w}" if rng.random() < 0.85 else "-j REJECT"
        return "" if c == "none" else f"-j {c}"
    c = rng.choice(["MARK", "MARK", "TTL", "TOS", "DSCP", "ACCEPT", "none", "DROP"])
    if c == "MARK":
        return rng.choice(["-j MARK --set-mark 0x1", "-j MARK --set-xmark 0x2/0x3", "-j MARK --or-mark 0x10",
                           "-j MARK --and-mark 0x1", "-j MARK --set-mark 0x3/0xff", "-j MARK --xor-mark 0x1"])
    if c == "TTL":
        return rng.choice(["-j TTL --ttl-set 64", "-j TTL --ttl-dec 1", "-j TTL --ttl-inc 2", "-j TTL --ttl-set 1", "-j TTL --ttl-dec 5"])
    if c == "TOS":
        return rng.choice(["-j TOS --set-tos 0x10", "-j TOS --set-tos 0x08/0x0c", "-j TOS --and-tos 0x0f", "-j TOS --or-tos 0x04",
                           "-j TOS --xor-tos 0x02", "-j TOS --set-tos Maximize-Throughput"])
    if c == "DSCP":
        return rng.choice(["-j DSCP --set-dscp 0x2e", "-j DSCP --set-dscp 10", "-j DSCP --set-dscp-class AF21", "-j DSCP --set-dscp-class CS1"])
    return "" if c == "none" else f"-j {c}"


def gen_ruleset(rng, core=False):
    """A restore file for mangle and filter; core: only what needs no extension (addresses, interfaces,
    protocol, jumps, goto, RETURN, policies, counting rules), so the engine's walker is compared alone."""
    lines = []
    for table, hooks in (("mangle", HOOK_CHAINS["mangle"]), ("filter", HOOK_CHAINS["filter"])):
        nuser = rng.randint(0, 3 if table == "filter" else 2)
        prefix = "M" if table == "mangle" else "F"
        users = [f"{prefix}{i}" for i in range(nuser)]
        # Which hooks reach each user chain: -i/-o restrictions follow them.
        body = {c: [] for c in hooks + users}
        reach = {u: set() for u in users}
        lines.append(f"*{table}")
        for h in hooks:
            pol = "ACCEPT" if table == "mangle" or h == "OUTPUT" or rng.random() < 0.75 else "DROP"
            lines.append(f":{h} {pol} [0:0]")
        for u in users:
            lines.append(f":{u} - [0:0]")
        for chain in hooks + users:
            idx = users.index(chain) if chain in users else -1
            hook_set = {chain} if idx < 0 else reach[chain]
            if not hook_set and idx >= 0:
                hook_set = set(hooks)
            n = rng.randint(0, 6 if idx < 0 else 4)
            if table == "filter" and chain == "OUTPUT":
                n = rng.randint(0, 2)
            for _ in range(n):
                parts, proto = [], None
                for _ in range(rng.choice([0, 1, 1, 2, 2, 3])):
                    proto = gen_match(rng, hook_set, parts, proto, core)
                t = gen_target(rng, table, chain, users, idx, proto, hook_set, core)
                # An unconditional verdict early in a chain hides everything after it: make most conditional.
                while not parts and t.split()[:2] in (["-j", "ACCEPT"], ["-j", "DROP"], ["-j", "REJECT"]) and rng.random() < 0.8:
                    proto = gen_match(rng, hook_set, parts, proto, core)
                if len(t.split()) == 2 and t.split()[1] in reach:
                    reach[t.split()[1]] |= hook_set
                body[chain].append(" ".join(["-A", chain] + parts + ([t] if t else [])))
        for chain in hooks + users:
            lines += body[chain]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def load_ruleset(text):
    full = text + "*security\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -j DROP\nCOMMIT\n"
    r = sh(["iptables-restore"], NS["fw"], check=False, inp=full)
    return r.returncode == 0, r.stderr.strip()


# ---------------------------------------------------------------------------------------------- packets

ICMP_BY_NAME = {"echo-request": (8, 0), "8/0": (8, 0), "echo-reply": (0, 0), "destination-unreachable": (3, 3), "3/3": (3, 3),
                "time-exceeded": (11, 0), "timestamp-request": (13, 0)}
TOS_BY_NAME = {"Minimize-Delay": 0x10}


def aim(rng, rules):
    """Packet field hints that satisfy the positive conditions of one random rule (empty: a random packet)."""
    lines = [l for l in rules.splitlines() if l.startswith("-A ") and len(l.split()) > 2]
    lines += [l for l in lines if "-j REJECT" in l] * 2  # replies are the rarest outcome: aim at them more
    if not lines or rng.random() < 0.4:
        return {}
    w = rng.choice(lines).split()
    h = {}
    for i in range(2, len(w) - 1):
        if w[i - 1] == "!":
            continue
        o, v = w[i], w[i + 1]
        if o == "-s":
            c = [a for a in SENDERS if ipaddress.ip_address(a) in ipaddress.ip_network(v, strict=False)]
            if c:
                h["src"] = rng.choice(c)
        elif o == "-d":
            c = [a for a in LOCALS + RECEIVERS if ipaddress.ip_address(a) in ipaddress.ip_network(v, strict=False)]
            if c:
                h["dst"] = rng.choice(c)
        elif o == "-p":
            h["proto"] = v
        elif o in ("--dport", "--sport"):
            a, _, b = v.partition(":")
            h[o[2:]] = rng.randint(min(int(a), int(b)), max(int(a), int(b))) if b else int(a)
        elif o in ("--dports", "--sports", "--ports"):
            h["dport" if o != "--sports" else "sport"] = int(rng.choice(v.split(",")))
        elif o == "--syn":
            h["flags"] = "S"
        elif o == "--icmp-type" and v in ICMP_BY_NAME:
            h["icmp"] = ICMP_BY_NAME[v]
        elif o == "--ttl-eq":
            h["ttl"] = int(v)
        elif o == "--ttl-lt":
            h["ttl"] = max(1, int(v) - 1)
        elif o == "--ttl-gt":
            h["ttl"] = int(v) + 1
        elif o == "--tos":
            h["tos"] = TOS_BY_NAME.get(v) or int(v.split("/")[0], 16)
        elif o == "--length":
            a, _, b = v.partition(":")
            h["length"] = rng.randint(int(a), max(int(a), min(int(b or a), 300)))
        elif o in ("--src-range", "--dst-range"):
            a, b = v.split("-")
            c = [x for x in (SENDERS if o == "--src-range" else LOCALS + RECEIVERS)
                 if ipaddress.ip_address(a) <= ipaddress.ip_address(x) <= ipaddress.ip_address(b)]
            if c:
                h["src" if o == "--src-range" else "dst"] = rng.choice(c)
    return h


def gen_packet(rng, rules=""):
    h = aim(rng, rules)
    src = h.get("src") or rng.choice(SENDERS)
    dst = h.get("dst") or rng.choice(LOCALS + RECEIVERS + RECEIVERS)
    ttl = h.get("ttl") or rng.choice([64, 64, 64, 1, 2, 10, 30, 128, 255, 63])
    tos = h.get("tos", rng.choice([0, 0, 0, 0x10, 0x08, 0x04, 0xb8, 0x02, 0x28]))
    ip = IP(src=src, dst=dst, ttl=ttl, tos=tos, id=rng.randint(1, 65535), flags=rng.choice(["DF", "", "DF"]))
    proto = h.get("proto") if h.get("proto") in ("tcp", "udp", "icmp") else rng.choice(["tcp", "tcp", "udp", "udp", "icmp"])
    size = rng.choice([0, 0, 8, 20, 60, 150])
    if proto == "tcp":
        flags = h.get("flags") or rng.choice(["S", "S", "SA", "A", "PA", "R", "F", "FA", "FPU", "RA", ""])
        l4 = TCP(sport=h.get("sport") or rng.choice(PORTS + [40000, 1024, 60000]), dport=h.get("dport") or rng.choice(PORTS + [2222, 5000]),
                 flags=flags, seq=rng.randint(0, 2**32 - 1), ack=rng.randint(0, 2**32 - 1) if "A" in flags else 0, window=1024)
        head = 40
    elif proto == "udp":
        l4 = UDP(sport=h.get("sport") or rng.choice(PORTS + [40000, 5353]), dport=h.get("dport") or rng.choice(PORTS + [9999]))
        head = 28
    else:
        t = h.get("icmp") or rng.choice([(8, 0), (8, 0), (0, 0), (13, 0), (3, 3), (11, 0)])
        # Timestamps given: scapy would put the clock into a timestamp request.
        l4 = ICMP(type=t[0], code=t[1], id=rng.randint(0, 65535), seq=rng.randint(0, 100),
                  ts_ori=rng.randint(0, 2**31), ts_rx=rng.randint(0, 2**31), ts_tx=rng.randint(0, 2**31))
        head = 40 if t[0] == 13 else 28
        if t[0] in (3, 11):
            size = 28
    if "length" in h and h["length"] >= head:
        size = h["length"] - head
    payload = Raw(bytes(rng.randint(0, 255) for _ in range(size)))
    if proto == "icmp" and t[0] in (3, 11):
        payload = Raw((bytes(IP(src=dst, dst=src, ttl=50) / UDP(sport=53, dport=40000)) + bytes(size))[:max(size, 28)])
    return bytes(ip / l4 / payload)


def eth(dst, src, ip):
    return bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", "")) + b"\x08\x00" + ip


def drain(sock):
    """IPv4 packets the socket received (not the ones it sent)."""
    got = []
    while True:
        try:
            data, addr = sock.recvfrom(65535)
        except BlockingIOError:
            return got
        if addr[2] == PACKET_OUTGOING or data[12:14] != b"\x08\x00":
            continue
        ip = data[14:]
        tot = int.from_bytes(ip[2:4], "big")
        got.append(ip[:tot])


def save_counters():
    text = sh(["iptables-save", "-c"], NS["fw"]).stdout
    keep, tables, cur = [], {}, None
    for line in text.splitlines():
        if line.startswith("*"):
            cur = line[1:]
            tables[cur] = []
        if cur is not None:
            tables[cur].append(line)
        if line == "COMMIT":
            cur = None
    local = next((l.split("]")[0] for l in tables.get("security", []) if l.startswith("[") and "-A INPUT -j DROP" in l), "")
    for t in ("mangle", "filter"):
        keep += tables.get(t, [])
    return "\n".join(keep) + "\n", local, tables.get("security", [])


def reject_deltas(before, after, length):
    """The --reject-with of the REJECT rules the packet itself (length bytes) met between two save texts.

    A packet the host generated (a REJECT reply, an ICMP time exceeded) can meet a REJECT rule in OUTPUT
    too; it is never as long as the packet it answers (ICMP errors add 28 bytes, a RST is 40 bytes and
    answers only TCP packets, which a REJECT rule rejected already), so the byte counter tells them apart.
    """
    out = []
    b, a = before.splitlines(), after.splitlines()
    if len(a) != len(b):
        return out
    for x, y in zip(b, a):
        if x != y and y.startswith("[") and " -j REJECT" in y:
            (p0, b0), (p1, b1) = (map(int, l[1:l.index("]")].split(":")) for l in (x, y))
            dp, db = p1 - p0, b1 - b0
            if db != length and not (dp >= 2 and db > length):
                continue
            w = y.split("--reject-with ")[1].split()[0] if "--reject-with" in y else "icmp-port-unreachable"
            out.append(w)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--cases", type=int, default=150)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--packets", type=int, default=8)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        setup()
        snd = packet_socket(NS["s"], "s0")
        rcv = packet_socket(NS["r"], "r0")
        # A packet the sender transmits is delivered into fw by the veth at once; fw's answers are
        # queued on the peers' backlogs. Wait until nothing arrives for QUIET seconds (at least MIN).
        for case in range(args.cases):
            rng = random.Random(args.seed * 100003 + case)
            for attempt in range(20):
                # Every fifth case uses no extension at all.
                rules = gen_ruleset(rng, core=case % 5 == 4)
                ok, err = load_ruleset(rules)
                if ok:
                    break
            else:
                raise RuntimeError("no loadable ruleset: " + err)
            drain(snd), drain(rcv)
            before, seen_local, _ = save_counters()
            packets = []
            for p in range(args.packets):
                ip = gen_packet(rng, rules)
                snd.send(eth(MAC["eth0"], MAC["s0"], ip))
                outs = []
                deadline = time.monotonic() + 0.5
                quiet_until = time.monotonic() + 0.03
                while time.monotonic() < deadline:
                    r, _, _ = select.select([snd, rcv], [], [], max(0.0, quiet_until - time.monotonic()))
                    if not r:
                        break
                    for s in r:
                        for pkt in drain(s):
                            outs.append({"interface": "eth0" if s is snd else "eth1", "hex": pkt.hex()})
                    quiet_until = time.monotonic() + 0.03
                after, sec, _ = save_counters()
                local, seen_local = sec != seen_local, sec
                forwarded = any(o["interface"] == "eth1" for o in outs)
                rej = reject_deltas(before, after, len(ip))
                if local:
                    fate = "delivered-local"
                elif forwarded:
                    fate = "forwarded:eth1"
                elif rej:
                    fate = "rejected:" + (rej[0] if len(set(rej)) == 1 else "?")
                else:
                    fate = "dropped"
                packets.append({"in": "eth0", "sourceMac": MAC["s0"], "destinationMac": MAC["eth0"], "hex": ip.hex(),
                                "fate": fate, "outputs": outs, "counters": after})
                before = after
            doc = {
                "seed": args.seed, "case": case, "kernel": os.uname().release,
                "iptables": sh(["iptables", "-V"]).stdout.strip(),
                "host": HOST_COMMANDS,
                "neighbours": {"eth0": {a: MAC["s0"] for a in SENDERS}, "eth1": {a: MAC["r0"] for a in RECEIVERS}},
                "rules": rules, "packets": packets,
            }
            with open(os.path.join(args.out, f"case-{args.seed:04d}-{case:04d}.json"), "w") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
        print(f"recorded {args.cases} cases into {args.out}")
    finally:
        cleanup()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        print(f"record.py: interrupted ({e}); namespaces deleted", file=sys.stderr)
        sys.exit(130)
