#!/usr/bin/python3
"""Records kernel conformance cases for Chainwalk's engine.

For a seed and N cases: random rule sets and packets aimed at them, run through the real kernel in
throw-away network namespaces, recording per packet what reached the receiver, what came back to the
sender, `iptables-save -c` after the packet and, for stateful cases, `conntrack -L`. One JSON file per case.

Case kinds (case number modulo 20 picks one, see KIND_CYCLE; --kinds restricts them):
  basic      IPv4 filter + mangle, single packets from the sender (every other one: no extension at all)
  stateful   IPv4 filter + mangle + raw with state/conntrack/connmark/CONNMARK/CT --notrack and
             multi-packet flows: TCP (handshake, data, FIN or RST), UDP, ICMP echo, ICMP errors quoting
             an earlier packet; the other side's packets are built from what the kernel emitted
  v6         the same single-packet generator for ip6tables (icmp6, hl/HL)
  v6-stateful  stateful flows over IPv6
  scenario   a hand-written or corpus rule set (SCENARIOS: the guide's Lab 1, Docker's filter chains, a few
             corpus files with their interfaces renamed to eth0/eth1) and flows aimed at its rules
  local      IPv4 flows whose one end is fw itself: packets sent from a raw socket inside fw (OUTPUT,
             POSTROUTING) and packets delivered to fw (INPUT)
  statistic  IPv4 rule sets with one `-m statistic --mode random` rule (plus nth rules): the kernel's
             draw is read from its counter and must be one the engine allows (see README)
  nat, v6-nat  stateful rule sets plus a nat table (gen_nat_rules: DNAT, REDIRECT, MASQUERADE, SNAT, NETMAP, port
             ranges, --random, --random-fully) and flows, some of which repeat an earlier flow's ports from another
             client (a source NAT clash); the kernel's random port picks are read back from conntrack -L

Topology (all namespaces are created here and deleted on exit):
    sender  s0 10.1.0.2/24 fd01::2/64 <-veth-> eth0 10.1.0.1/24 fd01::1/64 [fw] eth1 10.2.0.1/24 fd02::1/64 <-veth-> r0 receiver
fw forwards both families, knows its neighbours statically (no ARP/ND), has no ICMP rate limit and no
automatic IPv6 flow labels. A `security` table `-A INPUT -j DROP` in fw (priority 50, after filter)
tells locally delivered packets apart and keeps fw's own stack from answering them; the replay loads the
same table. Sender and receiver never answer (IPv4: raw PREROUTING DROP; IPv6 off); AF_PACKET sockets
still see the frames. fw's own MLD/ND chatter is ignored (and waited out after setup).

Usage: record.py --out DIR [--cases N] [--first K] [--seed S] [--packets P] [--kinds k1,k2]   (root only)
"""
import argparse
import ipaddress
import ctypes
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import time

from scapy.all import IP, TCP, UDP, ICMP, Raw, IPv6, ICMPv6EchoRequest, ICMPv6EchoReply, ICMPv6DestUnreach, ICMPv6TimeExceeded  # noqa: E402
from scapy.all import IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop  # noqa: E402
from scapy.layers.inet6 import ICMPv6Unknown  # noqa: E402

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
PREFIX = f"cwk-{os.getpid()}-"
NS = {"s": PREFIX + "snd", "fw": PREFIX + "fw", "r": PREFIX + "rcv"}
MAC = {"s0": "02:00:00:00:01:02", "eth0": "02:00:00:00:01:01", "eth1": "02:00:00:00:02:01", "r0": "02:00:00:00:02:02"}
SENDERS = [f"10.1.0.{i}" for i in range(2, 8)]
RECEIVERS = [f"10.2.0.{i}" for i in range(2, 8)]
LOCALS = ["10.1.0.1", "10.2.0.1"]
SENDERS6 = [f"fd01::{i}" for i in range(2, 8)]
RECEIVERS6 = [f"fd02::{i}" for i in range(2, 8)]
LOCALS6 = ["fd01::1", "fd02::1"]

KIND_CYCLE = ["basic", "stateful", "v6", "local", "nat", "basic", "v6-stateful", "statistic", "stateful", "v6",
              "scenario", "nat", "v6-stateful", "local", "basic", "v6-nat", "v6", "stateful", "v6-stateful", "scenario"]
NAT_KINDS = ("nat", "v6-nat")
ALL_KINDS = sorted(set(KIND_CYCLE))

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
    "sysctl -w net.ipv4.conf.eth0.send_redirects=0",
    "sysctl -w net.ipv4.conf.eth1.send_redirects=0",
    "ip route add default via 10.2.0.2 dev eth1",
]
HOST_COMMANDS6 = [
    "ip -6 addr add fd01::1/64 dev eth0 nodad",
    "ip -6 addr add fd02::1/64 dev eth1 nodad",
    "sysctl -w net.ipv6.conf.all.forwarding=1",
    "ip -6 route add default via fd02::2 dev eth1",
    # As on fw: no ICMPv6 rate limit (Chainwalk models icmpv6_xrlim_allow's per-peer bucket, 1000 ms by default;
    # without this a case sending more than its burst of errors to one peer differed: seed 91 case 0198).
    "sysctl -w net.ipv6.icmp.ratelimit=0",
]
# fw also runs with net.ipv6.auto_flowlabels=0: Chainwalk has no automatic flow labels (a hash with a per-boot key).
SECURITY = "*security\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -j DROP\nCOMMIT\n"


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


def in_namespace(ns, make):
    """Runs make() with this thread inside ns (sockets keep the namespace they were made in)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        setns(f"/run/netns/{ns}")
        return make()
    finally:
        _libc.setns(home, CLONE_NEWNET)
        os.close(home)


def packet_socket(ns, dev):
    """An AF_PACKET socket bound to dev inside ns."""
    def make():
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((dev, 0))
        s.setblocking(False)
        return s
    return in_namespace(ns, make)


def raw_sockets(ns):
    """IPv4 and IPv6 raw sockets inside ns that send whole IP packets (IP_HDRINCL; IPPROTO_RAW on IPv6)."""
    def make():
        s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        return s4, s6
    return in_namespace(ns, make)


def setup():
    for n in NS.values():
        sh(f"ip netns add {n}")
    fw, s, r = NS["fw"], NS["s"], NS["r"]
    sh(f"ip link add eth0 netns {fw} type veth peer name s0 netns {s}")
    sh(f"ip link add eth1 netns {fw} type veth peer name r0 netns {r}")
    for ns in (s, r):
        sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1", ns)
        sh("sysctl -qw net.ipv6.conf.default.disable_ipv6=1", ns)
    for k in ("all", "default", "eth0", "eth1"):
        for v in ("accept_dad=0", "addr_gen_mode=1", "router_solicitations=0", "accept_ra=0"):
            sh(f"sysctl -qw net.ipv6.conf.{k}.{v}", fw, check=False)
    for ns in NS.values():
        sh("ip link set lo up", ns)
    for ns, dev, addr in ((fw, "eth0", "10.1.0.1/24"), (fw, "eth1", "10.2.0.1/24"), (s, "s0", "10.1.0.2/24"), (r, "r0", "10.2.0.2/24")):
        sh(f"ip link set {dev} address {MAC[dev]}", ns)
        sh(f"ip addr add {addr} dev {dev}", ns)
    sh("ip -6 addr add fd01::1/64 dev eth0 nodad", fw)
    sh("ip -6 addr add fd02::1/64 dev eth1 nodad", fw)
    for ns, dev in ((fw, "eth0"), (fw, "eth1"), (s, "s0"), (r, "r0")):
        sh(f"ip link set {dev} up", ns)
    # Anything else is reached through the receiver (corpus rule sets aim at arbitrary addresses).
    sh("ip route add default via 10.2.0.2 dev eth1", fw)
    sh("ip -6 route add default via fd02::2 dev eth1", fw)
    for a in SENDERS:
        sh(f"ip neigh replace {a} lladdr {MAC['s0']} nud permanent dev eth0", fw)
    for a in RECEIVERS:
        sh(f"ip neigh replace {a} lladdr {MAC['r0']} nud permanent dev eth1", fw)
    for a in SENDERS6:
        sh(f"ip -6 neigh replace {a} lladdr {MAC['s0']} nud permanent dev eth0", fw)
    for a in RECEIVERS6:
        sh(f"ip -6 neigh replace {a} lladdr {MAC['r0']} nud permanent dev eth1", fw)
    for k in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
              "net.ipv4.conf.eth0.rp_filter=0", "net.ipv4.conf.eth1.rp_filter=0", "net.ipv4.icmp_ratelimit=0",
              "net.ipv4.icmp_msgs_per_sec=100000", "net.ipv4.conf.all.send_redirects=0",
              # No ICMP redirects: the kernel limits them per source host (inet_peer), a state that outlives a
              # case; IN_DEV_TX_REDIRECTS ORs conf.all and the device's, so both are off.
              "net.ipv4.conf.default.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0", "net.ipv4.conf.eth1.send_redirects=0",
              "net.ipv6.conf.all.forwarding=1", "net.ipv6.icmp.ratelimit=0", "net.ipv6.auto_flowlabels=0"):
        sh(f"sysctl -qw {k}", fw)
    # No transmit checksum offload on fw: what it sends (REJECT resets) carries the full checksum, as on a wire.
    for dev in ("eth0", "eth1"):
        sh(f"ethtool -K {dev} tx off", fw, check=False)
    for ns in (s, r):
        sh("iptables -t raw -A PREROUTING -j DROP", ns)


def cleanup():
    for n in NS.values():
        subprocess.run(["ip", "netns", "del", n], capture_output=True)


# ---------------------------------------------------------------------------------------------- rule sets

PREFIXES = ["10.1.0.0/24", "10.1.0.2", "10.1.0.4/31", "10.2.0.0/24", "10.2.0.3", "10.2.0.0/30", "10.0.0.0/8",
            "192.168.0.0/16", "10.1.0.1", "10.2.0.1", "0.0.0.0/1"]
PREFIXES6 = ["fd01::/64", "fd01::2", "fd01::4/127", "fd02::/64", "fd02::3", "fd02::/126", "fd00::/8",
             "2001:db8::/32", "fd01::1", "fd02::1", "::/1"]
PORTS = [22, 53, 80, 123, 443, 1000, 8080]
REJECTS = ["icmp-port-unreachable", "icmp-host-unreachable", "icmp-net-unreachable", "icmp-admin-prohibited",
           "icmp-net-prohibited", "icmp-host-prohibited", "icmp-proto-unreachable"]
REJECTS6 = ["icmp6-no-route", "icmp6-adm-prohibited", "icmp6-addr-unreachable", "icmp6-port-unreachable"]
ICMP_TYPES = ["echo-request", "echo-reply", "destination-unreachable", "8/0", "3/3", "time-exceeded", "any", "timestamp-request"]
ICMP6_TYPES = ["echo-request", "echo-reply", "destination-unreachable", "128/0", "1/4", "time-exceeded", "port-unreachable"]
HOOK_CHAINS = {"filter": ["INPUT", "FORWARD", "OUTPUT"], "mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
               "raw": ["PREROUTING", "OUTPUT"]}
# Hooks where -i / -o are valid (iptables refuses them elsewhere in base chains).
NO_IN = {"OUTPUT", "POSTROUTING"}
NO_OUT = {"PREROUTING", "INPUT"}
STATES = ["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", "ESTABLISHED,RELATED", "NEW,ESTABLISHED", "INVALID,UNTRACKED"]
STATUSES = ["ASSURED", "SEEN_REPLY", "CONFIRMED", "EXPECTED", "NONE", "ASSURED,SEEN_REPLY"]


class Fam:
    """What the generator needs to know of a family."""

    def __init__(self, v):
        self.v = v
        self.ipt = "iptables" if v == 4 else "ip6tables"
        self.senders = SENDERS if v == 4 else SENDERS6
        self.receivers = RECEIVERS if v == 4 else RECEIVERS6
        self.locals = LOCALS if v == 4 else LOCALS6
        self.prefixes = PREFIXES if v == 4 else PREFIXES6
        self.icmp = "icmp" if v == 4 else "icmpv6"
        self.icmp_opt = "--icmp-type" if v == 4 else "--icmpv6-type"
        self.icmp_types = ICMP_TYPES if v == 4 else ICMP6_TYPES
        self.rejects = REJECTS if v == 4 else REJECTS6
        self.default_reject = "icmp-port-unreachable" if v == 4 else "icmp6-port-unreachable"

    def addr(self, side, i):
        return (self.senders if side == "s" else self.receivers)[i]


F4, F6 = Fam(4), Fam(6)


def neg(rng, p=0.2):
    return "! " if rng.random() < p else ""


def gen_state_match(rng, f, parts):
    k = rng.choice(["state", "ctstate", "ctstate", "ctstatus", "ctdir", "ctproto", "ctorig", "connmark", "ctport"])
    used = " ".join(parts)
    if ("-m state" in used and k == "state") or ("-m conntrack" in used and k.startswith("ct")) or ("-m connmark" in used and k == "connmark"):
        return
    if k == "state":
        parts.append(f"-m state {neg(rng, 0.15)}--state {rng.choice(STATES)}")
    elif k == "ctstate":
        parts.append(f"-m conntrack {neg(rng, 0.15)}--ctstate {rng.choice(STATES + ['NEW,RELATED', 'DNAT', 'SNAT'])}")
    elif k == "ctstatus":
        parts.append(f"-m conntrack {neg(rng)}--ctstatus {rng.choice(STATUSES)}")
    elif k == "ctdir":
        parts.append(f"-m conntrack --ctdir {rng.choice(['ORIGINAL', 'REPLY'])}")
    elif k == "ctproto":
        parts.append(f"-m conntrack {neg(rng)}--ctproto {rng.choice(['tcp', 'udp', f.icmp if f.v == 4 else 'ipv6-icmp'])}")
    elif k == "ctorig":
        parts.append(f"-m conntrack {neg(rng)}--{rng.choice(['ctorigsrc', 'ctorigdst', 'ctreplsrc', 'ctrepldst'])} {rng.choice(f.prefixes)}")
    elif k == "ctport":
        parts.append(f"-m conntrack {neg(rng)}--ctorigdstport {rng.choice(PORTS)}")
    else:
        parts.append(f"-m connmark {neg(rng)}--mark {rng.choice(['0x1', '0x2/0x3', '0x0', '0x10/0xf0', '0x3'])}")


def gen_match(rng, hook_set, parts, proto, core=False, f=F4, stateful=False):
    """Appends one random condition to parts; returns the protocol chosen (if any)."""
    if core:
        k = rng.choice(["s", "d", "i", "o", "p"])
    else:
        k = rng.choice(["s", "d", "s", "d", "i", "o", "p", "p", "p", "mark", "length", "ttl", "tos", "iprange", "comment"]
                       + (["st"] * 6 if stateful else []))
    # One of each option per rule (iptables refuses "multiple -d flags").
    used = " ".join(parts).split()
    if ("-" + k) in used or ("-m" in used and k in used):
        return proto
    if k == "st":
        gen_state_match(rng, f, parts)
    elif k == "s":
        parts.append(f"{neg(rng)}-s {rng.choice(f.prefixes)}")
    elif k == "d":
        parts.append(f"{neg(rng)}-d {rng.choice(f.prefixes)}")
    elif k == "i" and not (hook_set & NO_IN):
        parts.append(f"{neg(rng)}-i {rng.choice(['eth0', 'eth1', 'eth+', 'lo', 'e+'])}")
    elif k == "o" and not (hook_set & NO_OUT):
        parts.append(f"{neg(rng)}-o {rng.choice(['eth0', 'eth1', 'eth+', 'lo'])}")
    elif k == "p" and proto is None:
        proto = rng.choice(["tcp", "udp", f.icmp])
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
                parts.append(f"{neg(rng)}{f.icmp_opt} {rng.choice(f.icmp_types)}")
    elif k == "mark":
        parts.append(f"-m mark {neg(rng)}--mark {rng.choice(['0x1', '0x2', '0x1/0x1', '0x0', '0x10/0xf0', '0x3'])}")
    elif k == "length":
        a = rng.choice([0, 20, 28, 40, 60, 100])
        parts.append(f"-m length {neg(rng)}--length {a}:{a + rng.choice([10, 40, 100, 1000])}")
    elif k == "ttl":
        if f.v == 4:
            parts.append(f"-m ttl {rng.choice(['--ttl-eq 64', '--ttl-lt 10', '--ttl-gt 30', '--ttl-eq 63', '! --ttl-eq 1', '--ttl-lt 64'])}")
        else:
            parts.append(f"-m hl {rng.choice(['--hl-eq 64', '--hl-lt 10', '--hl-gt 30', '--hl-eq 63', '! --hl-eq 1', '--hl-lt 64'])}")
    elif k == "tos":
        parts.append(f"-m tos {neg(rng)}--tos {rng.choice(['0x10', '0x08/0x0c', '0x00/0xff', '0x04', '0xb8/0xfc', 'Minimize-Delay'])}")
    elif k == "iprange":
        a, b = rng.randint(2, 5), rng.randint(5, 8)
        if f.v == 4:
            side = rng.choice([("src", "10.1.0."), ("dst", "10.2.0."), ("dst", "10.1.0.")])
        else:
            side = rng.choice([("src", "fd01::"), ("dst", "fd02::"), ("dst", "fd01::")])
        parts.append(f"-m iprange {neg(rng)}--{side[0]}-range {side[1]}{a}-{side[1]}{b}")
    elif k == "comment":
        if f.v == 6 and rng.random() < 0.5:
            parts.append(f"-m ipv6header {neg(rng)}--header {rng.choice(['dst', 'hop-by-hop', 'hop,dst', 'tcp', 'udp', 'ipv6-icmp'])}"
                         f"{rng.choice(['', ' --soft'])}")
        else:
            parts.append(f"-m comment --comment \"c{rng.randint(0, 99)}\"")
    return proto


CONNMARKS = ["-j CONNMARK --set-mark 0x1", "-j CONNMARK --set-xmark 0x2/0x3", "-j CONNMARK --save-mark",
             "-j CONNMARK --restore-mark", "-j CONNMARK --set-mark 0x10/0xf0", "-j CONNMARK --and-mark 0x1",
             "-j CONNMARK --save-mark --mask 0xff", "-j CONNMARK --or-mark 0x4"]


LOG_IDS = iter(range(1, 10**9))


def gen_log(rng):
    """A LOG target with a prefix unique in the rule set ("L<n>: "): the kernel's LOG lines cannot be read from a
    namespace (nf_log_syslog writes for the initial one only, unless the host-wide nf_log_all_netns is set), so the
    replay compares which LOG rules fired for each packet, by their counters against the engine's lines' prefixes."""
    opts = "".join(o for o in (" --log-level " + rng.choice(["4", "6", "7", "warning"]), " --log-tcp-sequence", " --log-tcp-options",
                               " --log-ip-options", " --log-uid") if rng.random() < 0.25)
    return f'-j LOG --log-prefix "L{next(LOG_IDS)}: "{opts}'


def gen_target(rng, table, chain, user_chains, idx, proto, hook_set, core=False, f=F4, stateful=False):
    later = user_chains[idx + 1:] if idx >= 0 else user_chains
    r = rng.random()
    if later and r < 0.22:
        return f"{'-g' if rng.random() < 0.3 else '-j'} {rng.choice(later)}"
    if idx >= 0 and r < 0.3:
        return "-j RETURN"
    if core:
        c = rng.choice(["ACCEPT", "DROP", "none", "none"] if table == "filter" else ["ACCEPT", "none", "none", "DROP"])
        return "" if c == "none" else f"-j {c}"
    if table == "raw":
        c = rng.choice(["NOTRACK", "NOTRACK", "MARK", "ACCEPT", "none", "CONNMARK"])
        if c == "NOTRACK":
            return "-j CT --notrack" if rng.random() < 0.8 else "-j NOTRACK"
        if c == "MARK":
            return rng.choice(["-j MARK --set-mark 0x1", "-j MARK --set-xmark 0x2/0x3", "-j MARK --or-mark 0x10"])
        if c == "CONNMARK":
            return rng.choice(CONNMARKS)
        return "" if c == "none" else f"-j {c}"
    if table == "filter":
        c = rng.choice(["ACCEPT", "DROP", "REJECT", "REJECT", "none", "ACCEPT", "LOG"] + (["CONNMARK"] if stateful else []))
        if c == "CONNMARK":
            return rng.choice(CONNMARKS)
        if c == "LOG":
            return gen_log(rng)
        if c == "REJECT":
            w = "tcp-reset" if proto == "tcp" and rng.random() < 0.5 else rng.choice(f.rejects)
            return f"-j REJECT --reject-with {w}" if rng.random() < 0.85 else "-j REJECT"
        return "" if c == "none" else f"-j {c}"
    c = rng.choice(["MARK", "MARK", "TTL", "TOS", "DSCP", "ACCEPT", "none", "DROP", "LOG"] + (["CONNMARK"] * 3 if stateful else []))
    if c == "CONNMARK":
        return rng.choice(CONNMARKS)
    if c == "LOG":
        return gen_log(rng)
    if c == "MARK":
        return rng.choice(["-j MARK --set-mark 0x1", "-j MARK --set-xmark 0x2/0x3", "-j MARK --or-mark 0x10",
                           "-j MARK --and-mark 0x1", "-j MARK --set-mark 0x3/0xff", "-j MARK --xor-mark 0x1"])
    if c == "TTL":
        if f.v == 6:
            return rng.choice(["-j HL --hl-set 64", "-j HL --hl-dec 1", "-j HL --hl-inc 2", "-j HL --hl-set 1", "-j HL --hl-dec 5"])
        return rng.choice(["-j TTL --ttl-set 64", "-j TTL --ttl-dec 1", "-j TTL --ttl-inc 2", "-j TTL --ttl-set 1", "-j TTL --ttl-dec 5"])
    if c == "TOS":
        return rng.choice(["-j TOS --set-tos 0x10", "-j TOS --set-tos 0x08/0x0c", "-j TOS --and-tos 0x0f", "-j TOS --or-tos 0x04",
                           "-j TOS --xor-tos 0x02", "-j TOS --set-tos Maximize-Throughput"])
    if c == "DSCP":
        return rng.choice(["-j DSCP --set-dscp 0x2e", "-j DSCP --set-dscp 10", "-j DSCP --set-dscp-class AF21", "-j DSCP --set-dscp-class CS1"])
    return "" if c == "none" else f"-j {c}"


# The classic stateful preamble a real firewall starts FORWARD / INPUT with.
STATEFUL_HEADS = [
    ["-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT", "-m conntrack --ctstate INVALID -j DROP"],
    ["-m state --state RELATED,ESTABLISHED -j ACCEPT"],
    ["-m conntrack --ctstate INVALID -j DROP", "-m conntrack --ctstate ESTABLISHED -j ACCEPT"],
    ["-p tcp -m conntrack --ctstate NEW -m tcp ! --syn -j DROP", "-m state --state ESTABLISHED,RELATED -j ACCEPT"],
    ["-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "-p tcp -m tcp --dport 80 -m conntrack --ctstate NEW -j ACCEPT",
     "-p udp -m conntrack --ctstate NEW -j ACCEPT"],
]


def gen_ruleset(rng, core=False, f=F4, stateful=False, statistic=False):
    """A restore file for (raw,) mangle and filter; core: only what needs no extension (addresses, interfaces,
    protocol, jumps, goto, RETURN, policies, counting rules), so the engine's walker is compared alone.
    stateful: conntrack matches and targets, a raw table, often a classic stateful preamble.
    statistic: one `-m statistic --mode random` rule (last match of its rule, in a chain no generated packet
    passes) and maybe an nth rule."""
    lines = []
    tables = (["raw"] if stateful and rng.random() < 0.6 else []) + ["mangle", "filter"]
    stat_chain = rng.choice(["FORWARD", "INPUT"]) if statistic else None
    for table in tables:
        hooks = HOOK_CHAINS[table]
        nuser = 0 if table == "raw" else rng.randint(0, 3 if table == "filter" else 2)
        prefix = "M" if table == "mangle" else "F"
        users = [f"{prefix}{i}" for i in range(nuser)]
        body = {c: [] for c in hooks + users}
        reach = {u: set() for u in users}
        lines.append(f"*{table}")
        for h in hooks:
            pol = "ACCEPT" if table != "filter" or h == "OUTPUT" or rng.random() < 0.75 else "DROP"
            lines.append(f":{h} {pol} [0:0]")
        for u in users:
            lines.append(f":{u} - [0:0]")
        for chain in hooks + users:
            idx = users.index(chain) if chain in users else -1
            hook_set = {chain} if idx < 0 else reach[chain]
            if not hook_set and idx >= 0:
                hook_set = set(hooks)
            if stateful and table == "filter" and chain in ("FORWARD", "INPUT") and rng.random() < 0.6:
                body[chain] += [f"-A {chain} {r}" for r in rng.choice(STATEFUL_HEADS)]
            if table == "filter" and chain == stat_chain:
                p = rng.choice(["0.25", "0.5", "0.75", "0.33333"])
                body[chain].append(f"-A {chain} {rng.choice(['', '-p tcp ', '-s ' + rng.choice(f.prefixes) + ' '])}"
                                   f"-m statistic --mode random --probability {p} {rng.choice(['-j DROP', '-j ACCEPT', '-j REJECT', ''])}".replace("  ", " ").rstrip())
                if rng.random() < 0.5:
                    body[chain].append(f"-A {chain} -m statistic --mode nth --every {rng.randint(2, 4)} --packet {rng.randint(0, 1)} "
                                       f"{rng.choice(['-j DROP', '-j ACCEPT', ''])}".rstrip())
            n = rng.randint(0, 6 if idx < 0 else 4)
            if table in ("filter", "raw") and chain == "OUTPUT":
                n = rng.randint(0, 2)
            for _ in range(n):
                parts, proto = [], None
                for _ in range(rng.choice([0, 1, 1, 2, 2, 3])):
                    proto = gen_match(rng, hook_set, parts, proto, core, f, stateful)
                t = gen_target(rng, table, chain, users, idx, proto, hook_set, core, f, stateful)
                # An unconditional verdict early in a chain hides everything after it: make most conditional.
                while not parts and t.split()[:2] in (["-j", "ACCEPT"], ["-j", "DROP"], ["-j", "REJECT"], ["-j", "CT"], ["-j", "NOTRACK"]) \
                        and rng.random() < 0.8:
                    proto = gen_match(rng, hook_set, parts, proto, core, f, stateful)
                if len(t.split()) == 2 and t.split()[1] in reach:
                    reach[t.split()[1]] |= hook_set
                body[chain].append(" ".join(["-A", chain] + parts + ([t] if t else [])))
        for chain in hooks + users:
            lines += body[chain]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


# Hand-written and corpus rule sets (paths: the repository, or ../shared/corpus beside it). Interfaces are
# renamed so the rules meet fw's eth0 (sender side) and eth1 (receiver side): `ifaces` names them, else the
# first two non-wildcard names the rules use become eth0 and eth1. `addrs` rewrites address prefixes. Only
# raw, mangle and filter are kept (nat waits for Chainwalk's NAT); a set the kernel refuses is not used.
SCENARIOS = [
    {"name": "lab1-server", "file": "examples/lab1-server.rules"},
    {"name": "docker-bridge", "file": "corpus/docker/moby-iptabler-hp0_int0_icc1_masq1_snat0_gwm-nat_bindlh0.v4.rules",
     "ifaces": {"br-dummy": "eth1"}, "addrs": {"192.168.0.": "10.2.0."}},
    {"name": "docker-icc0", "file": "corpus/docker/moby-iptabler-hp0_int0_icc0_masq1_snat0_gwm-nat_bindlh1.v4.rules",
     "ifaces": {"br-dummy": "eth1"}, "addrs": {"192.168.0.": "10.2.0."}},
    {"name": "docker-1.12", "file": "corpus/docker/docker-1.12-topos1-2016.rules",
     "ifaces": {"docker0": "eth1"}, "addrs": {"172.17.0.": "10.2.0."}},
    {"name": "home-router", "file": "corpus/other/home-router-ipv4-2015.rules"},
    {"name": "fedora27-firewalld", "file": "corpus/other/fedora27-firewalld-iptables.rules"},
    {"name": "gopherproxy", "file": "corpus/other/gopherproxy-meulie-net-2015.rules"},
    {"name": "synology6", "file": "corpus/ipv6/synology-ds414-ip6tables-2016.rules", "family": 6},
    {"name": "fedora27-firewalld6", "file": "corpus/ipv6/fedora27-firewalld-ip6tables.rules", "family": 6},
    # Hand-written scenarios of issue 5 (tests/conformance/scenarios/), with the flows they are about (`flows`:
    # sides client/server, destination, port, protocol; picked for most flows, the rest aimed at a random rule).
    {"name": "kube-proxy", "file": "tests/conformance/scenarios/kube-proxy.rules", "nat": True, "ifaces": {},
     "flows": [{"sides": ("s", "r"), "dst": "172.30.0.41", "dport": 80, "proto": "tcp"},
               {"sides": ("s", "r"), "dst": "172.30.0.42", "dport": 80, "proto": "tcp"},
               {"sides": ("s", "r"), "dst": "10.1.0.1", "dport": 30080, "proto": "tcp"},
               {"sides": ("s", "r"), "dst": "172.30.0.10", "dport": 53, "proto": "udp"},
               {"sides": ("s", "r"), "dst": "172.30.0.44", "dport": 80, "proto": "tcp"},
               {"sides": ("s", "r"), "dst": "172.30.0.44", "dport": 80, "proto": "tcp"},
               {"sides": ("s", "r"), "dst": "5.6.7.8", "dport": 80, "proto": "tcp"},
               {"sides": ("s", "r"), "dst": "5.6.7.8", "dport": 80, "proto": "tcp", "src": "10.1.0.4"},
               {"sides": ("s", "r"), "dst": "172.30.0.46", "dport": 80, "proto": "tcp"},
               {"sides": ("r", "s"), "dst": "172.30.0.41", "dport": 80, "proto": "tcp"},
               {"sides": ("r", "s"), "dst": "172.30.0.10", "dport": 53, "proto": "udp"},
               {"sides": ("fw", "r"), "dst": "172.30.0.42", "dport": 80, "proto": "tcp"}]},
    {"name": "kube-calico-2019", "file": "corpus/k8s/kube-proxy-calico-node-2019.rules", "nat": True,
     "ifaces": {"docker0": "eth1"}, "addrs": {"10.128.0.183": "10.2.0.4"},
     "flows": [{"sides": ("s", "r"), "dst": "10.96.0.1", "dport": 443, "proto": "tcp"},
               {"sides": ("s", "r"), "dst": "10.96.0.10", "dport": 53, "proto": "udp"},
               {"sides": ("s", "r"), "dst": "10.96.0.10", "dport": 9153, "proto": "tcp"},
               {"sides": ("fw", "r"), "dst": "10.96.0.1", "dport": 443, "proto": "tcp"}]},
    {"name": "kube-1.0-2015", "file": "corpus/k8s/kube-1.0-userspace-proxy-node-2015.rules", "nat": True,
     "ifaces": {"cbr0": "eth1"}, "addrs": {"10.246.1.": "10.2.0.", "10.0.2.15": "10.2.0.6"},
     "flows": [{"sides": ("s", "r"), "dst": "10.247.0.10", "dport": 53, "proto": "udp"},
               {"sides": ("s", "r"), "dst": "10.247.0.10", "dport": 53, "proto": "tcp"},
               {"sides": ("s", "r"), "dst": "10.247.0.1", "dport": 443, "proto": "tcp"},
               {"sides": ("r", "s"), "proto": "tcp"}]},
    {"name": "docker-portmap", "file": "corpus/docker/moby-iptablesdoc-usernet-portmap.rules", "nat": True,
     "ifaces": {"bridge1": "eth1"}, "addrs": {"192.0.2.": "10.2.0."},
     "flows": [{"sides": ("s", "r"), "dst": "10.1.0.1", "dport": 8080, "proto": "tcp"},
               {"sides": ("s", "r"), "dst": "10.1.0.1", "dport": 8080, "proto": "tcp"},
               {"sides": ("s", "r"), "dst": "10.1.0.1", "dport": 8081, "proto": "tcp"},
               {"sides": ("s", "r"), "dst": "10.2.0.2", "dport": 80, "proto": "tcp"},
               {"sides": ("r", "s"), "proto": "udp"}, {"sides": ("r", "s"), "proto": "tcp"}, {"sides": ("r", "s"), "proto": "icmp"}]},
    {"name": "lab2-3-nat-gateway", "file": "examples/nat-gateway.rules", "nat": True,
     "addrs": {"10.0.1.0/24": "10.2.0.0/24", "10.0.1.50": "10.2.0.5"},
     "flows": [{"sides": ("s", "r"), "dst": "10.1.0.1", "dport": 443, "proto": "tcp"},
               {"sides": ("r", "s"), "proto": "tcp"}, {"sides": ("r", "s"), "proto": "udp"}, {"sides": ("r", "s"), "proto": "icmp"},
               {"sides": ("s", "r"), "proto": "tcp"}]},
    {"name": "reject", "file": "tests/conformance/scenarios/reject.rules", "ifaces": {},
     "flows": [{"sides": ("s", "r"), "dport": p, "proto": pr} for p in (1000, 1001, 1002, 1003, 1004) for pr in ("tcp", "udp")]
              + [{"sides": ("s", "r"), "proto": "icmp"}, {"sides": ("r", "s"), "proto": "icmp"},
                 {"sides": ("s", "fw"), "dport": 22, "proto": "tcp"}, {"sides": ("s", "fw"), "dport": 53, "proto": "udp"},
                 {"sides": ("s", "fw"), "dport": 80, "proto": "tcp"}, {"sides": ("r", "fw"), "proto": "icmp"},
                 {"sides": ("fw", "r"), "dport": 2000, "proto": "tcp"}, {"sides": ("fw", "r"), "dport": 2000, "proto": "udp"},
                 {"sides": ("fw", "s"), "dport": 2001, "proto": "tcp"}, {"sides": ("fw", "r"), "proto": "icmp"}]},
    {"name": "reject6", "file": "tests/conformance/scenarios/reject6.rules", "family": 6, "ifaces": {},
     "flows": [{"sides": ("s", "r"), "dport": p, "proto": pr} for p in (1000, 1001, 1002, 1003) for pr in ("tcp", "udp")]
              + [{"sides": ("s", "r"), "proto": "icmp"}, {"sides": ("r", "s"), "proto": "icmp"},
                 {"sides": ("s", "fw"), "dport": 22, "proto": "tcp"}, {"sides": ("s", "fw"), "dport": 53, "proto": "udp"},
                 {"sides": ("r", "fw"), "proto": "icmp"},
                 {"sides": ("fw", "r"), "dport": 2000, "proto": "tcp"}, {"sides": ("fw", "r"), "dport": 2000, "proto": "udp"},
                 {"sides": ("fw", "s"), "dport": 2001, "proto": "tcp"}]},
    {"name": "invalid", "file": "tests/conformance/scenarios/invalid.rules", "ifaces": {}, "invalid": True,
     "flows": [{"sides": ("s", "r"), "proto": "tcp"}, {"sides": ("s", "r"), "proto": "udp"}, {"sides": ("s", "fw"), "dport": 22, "proto": "tcp"}]},
    {"name": "invalid6", "file": "tests/conformance/scenarios/invalid6.rules", "family": 6, "ifaces": {}, "invalid": True,
     "flows": [{"sides": ("s", "r"), "proto": "tcp"}, {"sides": ("s", "r"), "proto": "udp"}, {"sides": ("s", "fw"), "dport": 22, "proto": "tcp"}]},
]


def find_source(rel):
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    if not rel.startswith("corpus/"):
        return os.path.join(repo, rel)
    d = repo
    while d != "/":
        cand = os.path.join(d, "shared", rel)
        if os.path.exists(cand):
            return cand
        d = os.path.dirname(d)
    cand = os.path.join("/work/shared", rel)
    return cand if os.path.exists(cand) else None


def scenario_rules(sc):
    """The scenario's restore text as fw loads it (renamed interfaces, rewritten addresses), or None."""
    path = find_source(sc["file"])
    if not path:
        return None
    lines, keep = [], False
    for line in open(path, encoding="utf-8", errors="replace").read().splitlines():
        line = line.rstrip()
        if line.startswith("*"):
            keep = line[1:] in ("raw", "mangle", "filter") + (("nat",) if sc.get("nat") else ())
        if keep and line and not line.startswith("#"):
            lines.append(line)
        if line == "COMMIT":
            keep = False
    text = "\n".join(lines) + "\n"
    names = sc.get("ifaces")
    if names is None:
        names, seen = {}, []
        for w in re.findall(r"-[io] (\S+)", text):
            if w != "lo" and "+" not in w and w not in seen:
                seen.append(w)
        for w, e in zip(seen, ["eth0", "eth1"]):
            names[w] = e
    text = re.sub(r"(-[io]) (\S+)", lambda m: f"{m.group(1)} {names.get(m.group(2), m.group(2))}", text)
    for a, b in sc.get("addrs", {}).items():
        text = text.replace(a, b)
    # Counters start from zero here; chain lines get explicit [0:0] (the replay restores with counters, and
    # iptables-restore -c refuses a chain line without them).
    text = re.sub(r"^\[\d+:\d+\] ", "", text, flags=re.M)
    text = re.sub(r"^(:\S+ \S+)(?: \[\d+:\d+\])?$", r"\1 [0:0]", text, flags=re.M)
    return text


def gen_nat_rules(rng, f=F4):
    """A nat table for the stateful generator: DNAT (with ports, port ranges, --random), REDIRECT, MASQUERADE
    (--to-ports, --random, --random-fully), SNAT (one address, port ranges, --random, --random-fully), NETMAP.
    Where the kernel picks a port at random (a range, --random*, a clash) the replay takes its pick, after checking
    that Chainwalk allows it (RecordedKernelCases.KernelNatPicks)."""
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
    r, s = rng.choice(f.receivers), rng.choice(f.senders)
    br = (lambda a: f"[{a}]") if f.v == 6 else (lambda a: a)
    lo = rng.choice([2000, 3000, 40000])
    ports = f"{lo}-{lo + rng.choice([0, 3, 100, 1000])}"
    rnd = lambda: rng.choice(["", "", "", " --random", " --random-fully"])  # noqa: E731
    net = "fd02::/64" if f.v == 6 else "10.2.0.0/24"
    lines += rng.sample([
        f"-A PREROUTING -i eth0 -p tcp --dport {rng.choice(PORTS)} -j DNAT --to-destination {br(r)}:{rng.choice(PORTS)}",
        f"-A PREROUTING -i eth0 -p udp --dport {rng.choice(PORTS)} -j DNAT --to-destination {r}",
        f"-A PREROUTING -i eth0 -p tcp -d {rng.choice(f.locals)} -j DNAT --to-destination {br(r)}:{rng.choice([1000, 8080])}-{rng.choice([1002, 8090])}"
        f"{rng.choice(['', ' --random'])}",
        f"-A PREROUTING -p tcp --dport {rng.choice(PORTS)} -j REDIRECT --to-ports {rng.choice(PORTS)}",
        f"-A PREROUTING -i eth1 -p udp -j REDIRECT --to-ports {ports}{rng.choice(['', ' --random'])}",
        "-A POSTROUTING -o eth1 -j MASQUERADE" + rnd(),
        f"-A POSTROUTING -o eth1 -p {rng.choice(['tcp', 'udp'])} -j MASQUERADE --to-ports {ports}" + rnd(),
        f"-A POSTROUTING -s {rng.choice(f.prefixes)} -o eth1 -j SNAT --to-source {f.locals[1]}" + rnd(),
        f"-A POSTROUTING -o eth0 -p udp -j SNAT --to-source {br(f.locals[0])}:{rng.choice([2000, 3000])}-{rng.choice([3000, 4000])}" + rnd(),
        f"-A POSTROUTING -o eth1 -p {rng.choice(['tcp', 'udp', f.icmp])} -j SNAT --to-source {f.locals[1]}" + rnd(),
        f"-A POSTROUTING -o eth1 -p tcp -j SNAT --to-source {br(f.locals[1])}:{ports}" + rnd(),
        f"-A PREROUTING -i eth1 -d {net} -j NETMAP --to {'fd01::/64' if f.v == 6 else '10.1.0.0/24'}",
        f"-A OUTPUT -p tcp --dport {rng.choice(PORTS)} -j DNAT --to-destination {br(rng.choice(f.receivers + f.senders))}:{rng.choice(PORTS)}",
        f"-A OUTPUT -p udp -d {rng.choice(f.receivers)} -j DNAT --to-destination {rng.choice(f.senders)}",
        f"-A OUTPUT -p {rng.choice(['tcp', 'udp'])} -j REDIRECT --to-ports {rng.choice(PORTS)}",
    ], rng.randint(1, 3))
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


EMPTY = {"raw": "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
         "mangle": "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                   ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n",
         "filter": "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"}


def load_ruleset(text, f=F4):
    """Loads text (+ the harness' security table) into fw for family f; every other table of both families
    is emptied, so nothing of an earlier case (rules, conntrack users) survives."""
    pad = "".join(v for k, v in EMPTY.items() if f"*{k}\n" not in text)
    # A nat table is not emptied but deleted (iptables-nft keeps an emptied table's base chains, and registered nat
    # hooks turn conntrack and null bindings on): a case without NAT must not inherit an earlier case's nat table.
    for fam in ("ip", "ip6"):
        if fam != ("ip" if f.v == 4 else "ip6") or "*nat\n" not in text:
            sh(["nft", "delete", "table", fam, "nat"], NS["fw"], check=False)
    r = sh([f.ipt + "-restore"], NS["fw"], check=False, inp=pad + text + SECURITY)
    if r.returncode != 0:
        return False, r.stderr.strip()
    o = F6 if f.v == 4 else F4
    sh([o.ipt + "-restore"], NS["fw"], inp="".join(EMPTY.values()) + SECURITY)
    return True, ""


# ---------------------------------------------------------------------------------------------- packets

ICMP_BY_NAME = {"echo-request": (8, 0), "8/0": (8, 0), "echo-reply": (0, 0), "destination-unreachable": (3, 3), "3/3": (3, 3),
                "time-exceeded": (11, 0), "timestamp-request": (13, 0)}
ICMP6_BY_NAME = {"echo-request": (128, 0), "128/0": (128, 0), "echo-reply": (129, 0), "destination-unreachable": (1, 4),
                 "1/4": (1, 4), "port-unreachable": (1, 4), "time-exceeded": (3, 0)}
TOS_BY_NAME = {"Minimize-Delay": 0x10}


def in_net(a, v):
    return ipaddress.ip_address(a) in ipaddress.ip_network(v, strict=False)


def pick_in(rng, net, f):
    """A usable host address inside net (for rules written for other networks), or None."""
    n = ipaddress.ip_network(net, strict=False)
    if n.num_addresses == 1:
        a = n.network_address
    else:
        a = n.network_address + rng.randint(1, min(n.num_addresses - 2, 65535))
    if a.is_multicast or a.is_loopback or a.is_unspecified or a.is_link_local or str(a).endswith(".255"):
        return None
    s = str(a)
    # A neighbour fw does not know statically would need ARP/ND: use a known one on that link instead.
    for link, known in ((("10.1.0.0/24", "fd01::/64"), f.senders), (("10.2.0.0/24", "fd02::/64"), f.receivers)):
        if any(a.version == ipaddress.ip_network(x).version and a in ipaddress.ip_network(x) for x in link) and s not in known + f.locals:
            return rng.choice(known)
    return s


def aim(rng, rules, f=F4, free=False):
    """Packet field hints that satisfy the positive conditions of one random rule (empty: a random packet).
    free: addresses may lie anywhere inside the rule's prefixes (corpus rule sets), and -i picks the side."""
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
            c = [a for a in f.senders if in_net(a, v)]
            if c:
                h["src"] = rng.choice(c)
            elif free and (a := pick_in(rng, v, f)):
                h["src"] = a
        elif o == "-d":
            c = [a for a in f.locals + f.receivers if in_net(a, v)]
            if c:
                h["dst"] = rng.choice(c)
            elif free and (a := pick_in(rng, v, f)):
                h["dst"] = a
        elif o == "-i" and free and v in ("eth0", "eth1"):
            h["side"] = "s" if v == "eth0" else "r"
        elif o == "-p":
            h["proto"] = "icmp" if v in ("icmp", "icmpv6") else v
        elif o in ("--dport", "--sport", "--ctorigdstport"):
            a, _, b = v.partition(":")
            h["dport" if o == "--ctorigdstport" else o[2:]] = rng.randint(min(int(a), int(b)), max(int(a), int(b))) if b else int(a)
        elif o in ("--dports", "--sports", "--ports"):
            # A multiport item may be a range (a:b, in corpus rule sets): any port inside it.
            a, _, b = rng.choice(v.split(",")).partition(":")
            h["dport" if o != "--sports" else "sport"] = rng.randint(min(int(a), int(b)), max(int(a), int(b))) if b else int(a)
        elif o == "--syn":
            h["flags"] = "S"
        elif o in ("--icmp-type", "--icmpv6-type") and v in (ICMP_BY_NAME if f.v == 4 else ICMP6_BY_NAME):
            h["icmp"] = (ICMP_BY_NAME if f.v == 4 else ICMP6_BY_NAME)[v]
        elif o in ("--ttl-eq", "--hl-eq"):
            h["ttl"] = int(v)
        elif o in ("--ttl-lt", "--hl-lt"):
            h["ttl"] = max(1, int(v) - 1)
        elif o in ("--ttl-gt", "--hl-gt"):
            h["ttl"] = int(v) + 1
        elif o == "--tos":
            h["tos"] = TOS_BY_NAME.get(v) or int(v.split("/")[0], 16)
        elif o == "--length":
            a, _, b = v.partition(":")
            h["length"] = rng.randint(int(a), max(int(a), min(int(b or a), 300)))
        elif o in ("--src-range", "--dst-range"):
            a, b = v.split("-")
            c = [x for x in (f.senders if o == "--src-range" else f.locals + f.receivers)
                 if ipaddress.ip_address(a) <= ipaddress.ip_address(x) <= ipaddress.ip_address(b)]
            if c:
                h["src" if o == "--src-range" else "dst"] = rng.choice(c)
    return h


def ip_header(f, src, dst, ttl, tos, rng):
    if f.v == 4:
        return IP(src=src, dst=dst, ttl=ttl, tos=tos, id=rng.randint(1, 65535), flags=rng.choice(["DF", "", "DF"]))
    return IPv6(src=src, dst=dst, hlim=ttl, tc=tos, fl=rng.choice([0, 0, rng.randint(1, 0xFFFFF)]))


def icmp_error(f, src, dst, quoted, kind=None):
    """An ICMP(v6) error from src to dst quoting the packet bytes `quoted`."""
    if f.v == 4:
        t, c = kind or (3, 3)
        return bytes(IP(src=src, dst=dst, ttl=64, id=7) / ICMP(type=t, code=c) / Raw(quoted[:28 + 64]))
    t, c = kind or (1, 4)
    l4 = ICMPv6DestUnreach(code=c) if t == 1 else ICMPv6TimeExceeded(code=c)
    return bytes(IPv6(src=src, dst=dst, hlim=64) / l4 / Raw(quoted[:1232]))


INVALID_KINDS = ["synfin", "null", "rst", "fin", "synack", "xmas", "tcpsum", "udpsum", "udplen", "icmperr", "icmpsum",
                 "icmptype", "tcpshort"]


def bad_checksum(ip, at):
    """IP packet bytes with the transport checksum (at bytes into the transport header: TCP 16, UDP 6, ICMP 2) made
    wrong, never zero (0 means "none" for UDP over IPv4)."""
    b = bytearray(ip)
    off = (b[0] & 0x0F) * 4 if b[0] >> 4 == 4 else 40
    good = int.from_bytes(b[off + at:off + at + 2], "big")
    b[off + at:off + at + 2] = ((good ^ 0x5A5A) or 0x1234).to_bytes(2, "big")
    return bytes(b)


def invalid_packet(rng, f, k=None):
    """A packet conntrack takes for INVALID (or that a stack would refuse): malformed, a bad checksum, or a TCP
    packet that opens no connection, from the sender to a receiver (or fw)."""
    src, dst = rng.choice(f.senders), rng.choice(f.receivers + f.receivers + f.locals)
    ip = ip_header(f, src, dst, 64, 0, rng)
    sp, dp = rng.choice([40000 + rng.randint(0, 999), 1024, 60000]), rng.choice(PORTS)
    k = k or rng.choice(INVALID_KINDS)
    seq, ack = rng.randint(0, 2**32 - 1), rng.randint(0, 2**32 - 1)
    if k in ("synfin", "null", "rst", "fin", "synack", "xmas"):
        flags = {"synfin": "SF", "null": "", "rst": "R", "fin": "F", "synack": "SA", "xmas": "FPU"}[k]
        return bytes(ip / TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=ack if "A" in flags else 0, window=512))
    if k == "tcpsum":
        return bad_checksum(bytes(ip / TCP(sport=sp, dport=dp, flags="S", seq=seq, window=512)), 16)
    if k == "tcpshort":
        return bytes(ip / TCP(sport=sp, dport=dp, flags="S", seq=seq, window=512, dataofs=4))
    if k == "udpsum":
        return bad_checksum(bytes(ip / UDP(sport=sp, dport=dp) / Raw(b"chainwalk")), 6)
    if k == "udplen":
        return bytes(ip / UDP(sport=sp, dport=dp, len=rng.choice([4, 60])) / Raw(b"chainwalk"))
    if k == "icmperr":
        inner = ip_header(f, dst, src, 50, 0, rng) / UDP(sport=dp, dport=sp) / Raw(b"x" * 8)
        return icmp_error(f, dst, src, bytes(inner), (3, 3) if f.v == 4 else (1, 4))
    if k == "icmpsum":
        l4 = ICMP(type=8, id=rng.randint(0, 65535), seq=1) if f.v == 4 else ICMPv6EchoRequest(id=rng.randint(0, 65535), seq=1)
        return bad_checksum(bytes(ip / l4 / Raw(b"chainwalk")), 2)
    # An ICMP type conntrack does not know (IPv4: above NR_ICMP_TYPES; ICMPv6: an unknown informational type).
    if f.v == 4:
        return bytes(ip / ICMP(type=rng.choice([42, 19, 30]), code=0) / Raw(b"chainwalk"))
    return bytes(ip / ICMPv6Unknown(type=rng.choice([200, 150]), code=0, msgbody=b"chainwalk"))


def gen_packet(rng, rules="", f=F4):
    h = aim(rng, rules, f)
    src = h.get("src") or rng.choice(f.senders)
    dst = h.get("dst") or rng.choice(f.locals + f.receivers + f.receivers)
    ttl = h.get("ttl") or rng.choice([64, 64, 64, 1, 2, 10, 30, 128, 255, 63])
    tos = h.get("tos", rng.choice([0, 0, 0, 0x10, 0x08, 0x04, 0xb8, 0x02, 0x28]))
    ip = ip_header(f, src, dst, ttl, tos, rng)
    proto = h.get("proto") if h.get("proto") in ("tcp", "udp", "icmp") else rng.choice(["tcp", "tcp", "udp", "udp", "icmp"])
    size = rng.choice([0, 0, 8, 20, 60, 150])
    hl = 20 if f.v == 4 else 40
    t = None
    if proto == "tcp":
        flags = h.get("flags") or rng.choice(["S", "S", "SA", "A", "PA", "R", "F", "FA", "FPU", "RA", ""])
        l4 = TCP(sport=h.get("sport") or rng.choice(PORTS + [40000, 1024, 60000]), dport=h.get("dport") or rng.choice(PORTS + [2222, 5000]),
                 flags=flags, seq=rng.randint(0, 2**32 - 1), ack=rng.randint(0, 2**32 - 1) if "A" in flags else 0, window=1024)
        head = hl + 20
    elif proto == "udp":
        l4 = UDP(sport=h.get("sport") or rng.choice(PORTS + [40000, 5353]), dport=h.get("dport") or rng.choice(PORTS + [9999]))
        head = hl + 8
    elif f.v == 4:
        t = h.get("icmp") or rng.choice([(8, 0), (8, 0), (0, 0), (13, 0), (3, 3), (11, 0)])
        # Timestamps given: scapy would put the clock into a timestamp request.
        l4 = ICMP(type=t[0], code=t[1], id=rng.randint(0, 65535), seq=rng.randint(0, 100),
                  ts_ori=rng.randint(0, 2**31), ts_rx=rng.randint(0, 2**31), ts_tx=rng.randint(0, 2**31))
        head = 40 if t[0] == 13 else 28
        if t[0] in (3, 11):
            size = 28
    else:
        t = h.get("icmp") or rng.choice([(128, 0), (128, 0), (129, 0), (1, 4), (3, 0), (1, 0)])
        if t[0] in (128, 129):
            l4 = (ICMPv6EchoRequest if t[0] == 128 else ICMPv6EchoReply)(id=rng.randint(0, 65535), seq=rng.randint(0, 100))
        else:
            l4 = ICMPv6DestUnreach(code=t[1]) if t[0] == 1 else ICMPv6TimeExceeded(code=t[1])
        head = 48
    if "length" in h and h["length"] >= head:
        size = h["length"] - head
    if f.v == 6 and rng.random() < 0.2:
        # Simple extension headers before the transport header: hop-by-hop and/or destination options (padding only).
        ip = ip / rng.choice([IPv6ExtHdrDestOpt(), IPv6ExtHdrHopByHop(), IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()])
    payload = Raw(bytes(rng.randint(0, 255) for _ in range(size)))
    if proto == "icmp" and t is not None and t[0] in ((3, 11) if f.v == 4 else (1, 3)):
        inner = ip_header(f, dst, src, 50, 0, rng) / UDP(sport=53, dport=40000)
        q = bytes(inner) + bytes(size)
        return bytes(ip / l4 / Raw(q[:max(size, 28)] if f.v == 4 else q))
    return bytes(ip / l4 / payload)


def eth(dst, src, ip):
    kind = b"\x08\x00" if ip[0] >> 4 == 4 else b"\x86\xdd"
    return bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", "")) + kind + ip


def chatter6(ip):
    """fw's own IPv6 link chatter (MLD reports, router/neighbour discovery), not a result of a test packet."""
    nh, off = ip[6], 40
    if nh == 0 and len(ip) >= 48:  # hop-by-hop (MLD carries router alert)
        nh, off = ip[40], 40 + (ip[41] + 1) * 8
    return nh == 58 and len(ip) > off and 130 <= ip[off] <= 143


def drain(sock):
    """IP packets the socket received (not the ones it sent)."""
    got = []
    while True:
        try:
            data, addr = sock.recvfrom(65535)
        except BlockingIOError:
            return got
        if addr[2] == PACKET_OUTGOING:
            continue
        ip = data[14:]
        if data[12:14] == b"\x08\x00":
            got.append(ip[:int.from_bytes(ip[2:4], "big")])
        elif data[12:14] == b"\x86\xdd" and len(ip) >= 40 and not chatter6(ip):
            got.append(ip[:40 + int.from_bytes(ip[4:6], "big")])


def save_counters(f=F4):
    """The save text of every table but security, and the counters of security's INPUT DROP (local delivery)."""
    text = sh([f.ipt + "-save", "-c"], NS["fw"]).stdout
    keep, tables, cur = [], {}, None
    for line in text.splitlines():
        if line.startswith("*"):
            cur = line[1:]
            tables[cur] = []
        if cur is not None:
            tables[cur].append(line)
        if line == "COMMIT":
            cur = None
    for t in ("raw", "mangle", "filter", "nat"):
        keep += tables.get(t, [])
    # The harness' INPUT DROP rule's counters: they move when a packet is delivered locally.
    local = next((l.split("]")[0] for l in tables.get("security", []) if l.startswith("[") and "-A INPUT -j DROP" in l), "")
    return "\n".join(keep) + "\n", local


def delivered(before, after, length):
    """Whether the security INPUT DROP counters ("[p:b") moved by the packet itself, not only by something fw
    generated and sent to itself (an ICMP error about a packet with one of fw's addresses as its source)."""
    if before == after:
        return False
    (p0, b0), (p1, b1) = (map(int, x.lstrip("[").split(":")) for x in (before or "[0:0", after))
    dp, db = p1 - p0, b1 - b0
    return (dp == 1 and db == length) or (dp >= 2 and db >= length)


def conntrack_list(f=F4):
    r = sh(["conntrack", "-L", "-f", "ipv4" if f.v == 4 else "ipv6"], NS["fw"], check=False)
    return sorted(l.strip() for l in r.stdout.splitlines() if l.strip())


def reject_deltas(before, after, length, f=F4):
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
            w = y.split("--reject-with ")[1].split()[0] if "--reject-with" in y else f.default_reject
            out.append(w)
    return out


# ---------------------------------------------------------------------------------------------- flows

IFACE_OF = {"s": "eth0", "r": "eth1"}


class Rig:
    """Sends packets into fw from the sender (eth0), the receiver (eth1) or fw itself (a raw socket) and
    records what the kernel did with each."""

    def __init__(self, f):
        self.f = f
        self.snd = packet_socket(NS["s"], "s0")
        self.rcv = packet_socket(NS["r"], "r0")
        self.raw4, self.raw6 = raw_sockets(NS["fw"])
        self.packets = []
        self.t0 = time.monotonic()
        self.track = False
        self.nat = False

    def start(self, track, nat=False):
        drain(self.snd), drain(self.rcv)
        self.before, self.sec = save_counters(self.f)
        self.packets = []
        self.track = track
        self.nat = nat
        self.t0 = time.monotonic()

    def send(self, side, ip):
        """Sends ip from side ('s', 'r' or 'fw'); returns the packet's record (with its outputs)."""
        at = round(time.monotonic() - self.t0, 3)
        if side == "s":
            self.snd.send(eth(MAC["eth0"], MAC["s0"], ip))
        elif side == "r":
            self.rcv.send(eth(MAC["eth1"], MAC["r0"], ip))
        else:
            try:
                if ip[0] >> 4 == 4:
                    self.raw4.sendto(ip, (socket.inet_ntop(socket.AF_INET, ip[16:20]), 0))
                else:
                    self.raw6.sendto(ip, (socket.inet_ntop(socket.AF_INET6, ip[24:40]), 0, 0, 0))
            except OSError:
                pass  # EPERM: netfilter dropped it in OUTPUT
        outs = []
        deadline = time.monotonic() + 0.5
        quiet_until = time.monotonic() + 0.03
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.snd, self.rcv], [], [], max(0.0, quiet_until - time.monotonic()))
            if not r:
                break
            for s in r:
                for pkt in drain(s):
                    outs.append({"interface": "eth0" if s is self.snd else "eth1", "hex": pkt.hex()})
            quiet_until = time.monotonic() + 0.03
        after, sec = save_counters(self.f)
        listing = conntrack_list(self.f) if self.track else None
        local, self.sec = delivered(self.sec, sec, len(ip)), sec
        rej = reject_deltas(self.before, after, len(ip), self.f)
        inn = IFACE_OF.get(side)
        # The packet itself left by the interface where an output carries its source address (what fw
        # generates, REJECT replies and ICMP errors, comes from one of fw's addresses or the packet's
        # destination). NAT would change that: the nat kind will need the conntrack entry's tuples here.
        src = ip[12:16].hex() if ip[0] >> 4 == 4 else ip[8:24].hex()
        mine = [o["interface"] for o in outs if (o["hex"][24:32] if o["hex"][0] == "4" else o["hex"][16:48]) == src]
        if not mine and self.nat:
            # SNAT/MASQUERADE changed the source: the packet is the output carrying the addresses its connection
            # translates it to (conntrack -L after it); without a listed connection, what left by another interface.
            # Without one (the packet was not confirmed, or it is an ICMP error RELATED to a connection): what left by
            # another interface, unless the packet met a REJECT rule or the output is an ICMP error fw sent itself.
            want = translated(ip, listing or [])
            if want:
                mine = [o["interface"] for o in outs if endpoints(bytes.fromhex(o["hex"]))[:2] == want]
            elif not rej:
                # fw sends no ICMP error about an ICMP error: then an error leaving is the packet itself.
                err_in = icmp_error_type(ip)
                mine = [o["interface"] for o in outs if o["interface"] != inn and (err_in or not own_icmp_error(bytes.fromhex(o["hex"]), self.f))
                        and inn is not None]
        if inn is None:
            fate = "sent:" + mine[0] if mine else None
        else:
            fate = "delivered-local" if local else "forwarded:" + mine[0] if mine else None
        if fate is None:
            fate = "rejected:" + (rej[0] if len(set(rej)) == 1 else "?") if rej else "dropped"
        rec = {"in": inn, "at": at, "hex": ip.hex(), "fate": fate, "outputs": outs, "counters": after}
        if inn is not None:
            rec["sourceMac"] = MAC["s0" if side == "s" else "r0"]
            rec["destinationMac"] = MAC[inn]
        if self.track:
            rec["conntrack"] = listing
        self.packets.append(rec)
        self.before = after
        return rec


def icmp_error_type(ip):
    """Whether ip is an ICMP or ICMPv6 error message (no extension headers before it)."""
    if ip[0] >> 4 == 4:
        off = (ip[0] & 0x0F) * 4
        return ip[9] == 1 and len(ip) > off and ip[off] in (3, 4, 5, 11, 12)
    return ip[6] == 58 and len(ip) > 40 and ip[40] < 128


def own_icmp_error(ip, f):
    """Whether ip is an ICMP(v6) error sent from one of fw's addresses (REJECT, time exceeded, unreachable)."""
    src = socket.inet_ntop(socket.AF_INET, ip[12:16]) if ip[0] >> 4 == 4 else socket.inet_ntop(socket.AF_INET6, ip[8:24])
    return icmp_error_type(ip) and src in f.locals


def translated(ip, listing):
    """(src, dst) the packet ip carries after NAT, from the conntrack -L line of its connection (either direction),
    or None when no listed connection holds it."""
    src, dst, sp, dp = endpoints(ip)
    for line in listing:
        tuples, cur = [], None
        for w in line.split():
            k, _, v = w.partition("=")
            if k == "src":
                cur = {}
                tuples.append(cur)
            if cur is not None and k in ("src", "dst", "sport", "dport", "id"):
                cur[k] = v
        if len(tuples) < 2:
            continue
        o, r = tuples[0], tuples[1]

        def same(t):
            if (t.get("src"), t.get("dst")) != (str(src), str(dst)):
                return False
            if "id" in t:
                return t["id"] == str(sp)
            return (t.get("sport"), t.get("dport")) == (str(sp), str(dp))
        if same(o):
            return r["dst"], r["src"]
        if same(r):
            return o["dst"], o["src"]
    return None


def endpoints(ipb):
    """(src, dst, sport-or-id, dport) of IP packet bytes."""
    pkt = IP(ipb) if ipb[0] >> 4 == 4 else IPv6(ipb)
    l4 = pkt.payload
    while l4 is not None and l4.name.startswith("IPv6 Extension"):
        l4 = l4.payload
    sp = getattr(l4, "sport", None) if hasattr(l4, "sport") else getattr(l4, "id", None)
    dp = getattr(l4, "dport", None) if hasattr(l4, "dport") else getattr(l4, "id", None)
    return pkt.src, pkt.dst, sp, dp


def run_flow(rig, rng, f, rules, sides, h=None, again=None):
    """One TCP, UDP or ICMP echo flow between a client and a server side; the answering side's packets
    are built from the last packet of the other side as the kernel delivered it (addresses and ports
    after whatever fw did), so they are real replies to it. again: the shape an earlier flow returned; this
    flow then uses its protocol, server, ports (ICMP id) from another client address, so that source NAT to
    one address meets a clash. Returns this flow's shape."""
    cs, ss = sides
    h = aim(rng, rules, f) if h is None else h
    proto = h.get("proto") if h.get("proto") in ("tcp", "udp", "icmp") else rng.choice(["tcp", "tcp", "tcp", "udp", "udp", "icmp"])

    def addr(side, other):
        if side == "fw":
            return f.locals[1] if other == "r" else f.locals[0] if other == "s" else rng.choice(f.locals)
        return rng.choice(f.senders if side == "s" else f.receivers)
    caddr = h.get("src") if cs != "fw" and h.get("src") else addr(cs, ss)
    saddr = h.get("dst") if h.get("dst") and (ss != "fw" or h["dst"] in f.locals) else addr(ss, cs)
    if ss == "fw" and rng.random() < 0.3:
        saddr = rng.choice(f.locals)
    cport = rng.choice([40000 + rng.randint(0, 999), 1024, 60000, 53, 80])
    sport = h.get("dport") or rng.choice(PORTS + [2222, 5000])
    ttl = rng.choice([64, 64, 64, 64, 2, 1]) if rng.random() < 0.3 else 64
    if again:
        proto, saddr, cport, sport = again["proto"], again["saddr"], again["cport"], again["sport"]
        others = [a for a in (f.senders if cs == "s" else f.receivers) if a != again["caddr"]]
        if cs in ("s", "r") and others:
            caddr = rng.choice(others)
    shape = {"proto": proto, "sides": sides, "caddr": caddr, "saddr": saddr, "cport": cport, "sport": sport}
    # view[x]: (src, dst, sport, dport) of the next packet x sends, as x would address it
    view = {"c": (caddr, saddr, cport, sport), "s": (saddr, caddr, sport, cport)}
    last = {}  # last[x]: the last packet x received (or, if it never arrived, was sent to x): ICMP errors quote it
    seq = {"c": rng.randint(0, 2**32 - 1), "s": rng.randint(0, 2**32 - 1)}
    side_of = {"c": cs, "s": ss}

    def observe(who, sent, rec):
        """Updates the other side's view from where the packet arrived."""
        other = "s" if who == "c" else "c"
        oside = side_of[other]
        if oside == "fw":
            seen = sent if rec["fate"] == "delivered-local" else None
        else:
            seen = next((bytes.fromhex(o["hex"]) for o in reversed(rec["outputs"]) if o["interface"] == IFACE_OF[oside]), None)
        if seen is not None:
            src, dst, sp, dp = endpoints(seen)
            view[other] = (dst, src, dp, sp)
            last[other] = seen
        elif other not in last:
            last[other] = sent

    def send(who, build):
        src, dst, sp, dp = view[who]
        ip = bytes(ip_header(f, src, dst, ttl if who == "c" else 64, 0, rng) / build(sp, dp))
        rec = rig.send(side_of[who], ip)
        observe(who, ip, rec)

    def tcp(who, flags, n=0, bad=False):
        other = "s" if who == "c" else "c"
        s0 = seq[who] + (1000000 if bad else 0)
        ack = seq[other] if "A" in flags else 0
        send(who, lambda sp, dp: TCP(sport=sp, dport=dp, flags=flags, seq=s0 % 2**32, ack=ack % 2**32, window=64240)
             / Raw(bytes(rng.randint(0, 255) for _ in range(n))))
        if not bad:
            seq[who] += n + (1 if ("S" in flags or "F" in flags) else 0)

    def error(who):
        """An ICMP error from who's side (who itself or a router there) quoting the last packet who got."""
        if who not in last:
            return
        q = last[who]
        src, dst, _, _ = endpoints(q)
        esrc = dst if rng.random() < 0.7 or side_of[who] == "fw" else rng.choice(f.senders if side_of[who] == "s" else f.receivers)
        kind = rng.choice([(3, 3), (3, 1), (11, 0)] if f.v == 4 else [(1, 4), (1, 3), (3, 0)])
        rig.send(side_of[who], icmp_error(f, esrc, src, q, kind))

    if proto == "tcp":
        steps = [("c", "S", 0), ("s", "SA", 0), ("c", "A", 0), ("c", "PA", rng.randint(1, 60)), ("s", "A", 0),
                 ("s", "PA", rng.randint(1, 90)), ("c", "A", 0), ("c", "FA", 0), ("s", "FA", 0), ("c", "A", 0)]
        v = rng.random()
        if v < 0.15:
            steps = steps[:2 + rng.randint(0, 2)] + [(rng.choice("cs"), "RA" if rng.random() < 0.5 else "R", 0)]
        elif v < 0.25:
            steps = [("c", "S", 0), ("s", "RA", 0)]
        elif v < 0.45:
            steps = steps[:rng.randint(1, len(steps))]
        bad = rng.randint(2, len(steps) + 1) if rng.random() < 0.2 else -1
        err = rng.randint(1, len(steps)) if rng.random() < 0.15 else -1
        for i, (who, flags, n) in enumerate(steps):
            if i == bad:
                tcp(rng.choice("cs"), "A", 0, bad=True)
            tcp(who, flags, n)
            if i == err:
                error("s")
    elif proto == "udp":
        n = rng.randint(1, 4)
        err = rng.randint(0, n - 1) if rng.random() < 0.3 else -1
        for i in range(n):
            who = "c" if i % 2 == 0 else "s"
            send(who, lambda sp, dp: UDP(sport=sp, dport=dp) / Raw(bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 40)))))
            if i == err:
                error("s" if who == "c" else "c")
    else:
        ident = rng.randint(0, 65535)
        if again and "ident" in again:
            ident = again["ident"]
        shape["ident"] = ident
        n = rng.randint(1, 4)
        err = rng.randint(0, n - 1) if rng.random() < 0.25 else -1
        for i in range(n):
            who = "c" if i % 2 == 0 else "s"
            if f.v == 4:
                send(who, lambda sp, dp, i=i, who=who: ICMP(type=8 if who == "c" else 0, id=ident, seq=i // 2 + 1) / Raw(b"chainwalk"))
            else:
                send(who, lambda sp, dp, i=i, who=who: (ICMPv6EchoRequest if who == "c" else ICMPv6EchoReply)(id=ident, seq=i // 2 + 1, data=b"chainwalk"))
            if i == err:
                error("s" if who == "c" else "c")

    return shape

def scenario_flow(rig, rng, f, rules, sc=None, turn=None):
    """A flow aimed at one rule of a scenario: its -i picks the client's side, its -d the server; or, mostly, one
    of the scenario's own flows (sides, destination, port, protocol): the turn-th, so that the cases of a scenario
    go through all of them in turn."""
    flows = (sc or {}).get("flows")
    if flows and rng.random() < 0.75:
        fl = dict(flows[turn % len(flows)] if turn is not None else rng.choice(flows))
        sides = fl.pop("sides")
        return run_flow(rig, rng, f, rules, sides, fl)
    h = aim(rng, rules, f, free=True)
    cs, dst = h.get("side", "s"), h.get("dst")
    if dst in f.locals:
        ss = "fw"
    elif dst and in_net(dst, "10.1.0.0/24" if f.v == 4 else "fd01::/64"):
        ss = "s"
    elif dst:
        ss = "r"
    else:
        ss = rng.choice(["r", "fw", "r"])
    if cs == ss:
        cs = "r" if ss == "s" else "s"
    if h.get("src") and cs == "fw":
        del h["src"]
    run_flow(rig, rng, f, rules, (cs, ss), h)


def flow_sides(rng, kind):
    if kind in NAT_KINDS and rng.random() < 0.2:
        return rng.choice([("fw", "r"), ("fw", "s")])  # fw's own connections: nat OUTPUT, then POSTROUTING
    if kind == "local":
        return rng.choice([("fw", "r"), ("fw", "s"), ("s", "fw"), ("r", "fw"), ("fw", "r"), ("s", "fw")])
    return rng.choice([("s", "r")] * 7 + [("r", "s")] * 2 + [("s", "fw")])


# ---------------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--cases", type=int, default=150)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--packets", type=int, default=8)
    ap.add_argument("--first", type=int, default=0, help="number of the first case (parallel recorders split a range)")
    ap.add_argument("--kinds", default=",".join(ALL_KINDS), help="comma list of " + ",".join(ALL_KINDS))
    ap.add_argument("--scenario", default="", help="comma list of scenario names: scenario cases use only these")
    args = ap.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    cycle = [k for k in KIND_CYCLE if k in kinds]
    if not cycle:
        cycle = kinds
    os.makedirs(args.out, exist_ok=True)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        setup()
        # fw's IPv6 link chatter (MLD reports for its multicast groups) passes its OUTPUT chains: let it end first.
        time.sleep(2.5)
        rigs = {4: Rig(F4)}
        rigs[6] = Rig(F6)
        rigs[6].snd, rigs[6].rcv, rigs[6].raw4, rigs[6].raw6 = rigs[4].snd, rigs[4].rcv, rigs[4].raw4, rigs[4].raw6
        for case in range(args.first, args.first + args.cases):
            rng = random.Random(args.seed * 100003 + case)
            kind = cycle[case % len(cycle)]
            f = F6 if kind.startswith("v6") else F4
            stateful = kind in ("stateful", "v6-stateful", "local", "scenario") + NAT_KINDS
            scenario = None
            sc = None
            if kind == "scenario":
                # The scenarios take turns over the scenario cases (the n-th scenario case of the run, counted by the cycle).
                nth = case // len(cycle) * cycle.count("scenario") + cycle[:case % len(cycle)].count("scenario")
                pool = [x for x in SCENARIOS if not args.scenario or x["name"] in args.scenario.split(",")]
                for attempt in range(len(pool)):
                    sc = pool[(nth + attempt) % len(pool)]
                    turn = nth // len(pool) * 4
                    f = F6 if sc.get("family") == 6 else F4
                    rules = scenario_rules(sc)
                    if rules and load_ruleset(rules, f)[0]:
                        scenario = sc["name"]
                        break
                else:
                    kind, f, sc = "stateful", F4, None
            for attempt in range(0 if scenario else 20):
                rules = gen_ruleset(rng, core=kind == "basic" and case % 20 in (5, 17), f=f, stateful=stateful or rng.random() < 0.1 and kind == "local",
                                    statistic=kind == "statistic")
                if kind in NAT_KINDS:
                    rules = gen_nat_rules(rng, f) + rules
                ok, err = load_ruleset(rules, f)
                if ok:
                    break
            else:
                if not scenario:
                    raise RuntimeError("no loadable ruleset: " + err)
            sh(["conntrack", "-F"], NS["fw"], check=False)
            sh(["conntrack", "-F", "-f", "ipv6"], NS["fw"], check=False)
            rig = rigs[f.v]
            rig.start(track=stateful, nat=kind in NAT_KINDS or "*nat\n" in rules)
            if scenario:
                if sc.get("invalid"):
                    # Checksums checked as on a wire: veth would otherwise mark the sender's packets CHECKSUM_UNNECESSARY.
                    for dev in ("eth0", "eth1"):
                        sh(f"ethtool -K {dev} rx off", NS["fw"], check=False)
                try:
                    bad = turn * 2  # the invalid kinds in turn too: two cases of a scenario send all of them
                    for j in range(rng.randint(3, 4)):
                        scenario_flow(rig, rng, f, rules, sc, turn + j)
                        if sc.get("invalid"):
                            for _ in range(rng.randint(1, 3)):
                                rig.send("s", invalid_packet(rng, f, INVALID_KINDS[bad % len(INVALID_KINDS)]))
                                bad += 1
                finally:
                    if sc.get("invalid"):
                        for dev in ("eth0", "eth1"):
                            sh(f"ethtool -K {dev} rx on", NS["fw"], check=False)
            elif stateful:
                prev = None
                for _ in range(rng.randint(2, 3)):
                    if kind in NAT_KINDS and prev and rng.random() < 0.35:
                        prev = run_flow(rig, rng, f, rules, prev["sides"], again=prev)
                    else:
                        prev = run_flow(rig, rng, f, rules, flow_sides(rng, kind))
            else:
                for p in range(args.packets + (4 if kind == "statistic" else 0)):
                    rig.send("s", gen_packet(rng, rules, f))
            doc = {
                "seed": args.seed, "case": case, "kind": kind, "family": f.v, **({"scenario": scenario} if scenario else {}), "kernel": os.uname().release,
                "iptables": sh(["iptables", "-V"]).stdout.strip(),
                "host": HOST_COMMANDS + HOST_COMMANDS6,
                "neighbours": {"eth0": {a: MAC["s0"] for a in f.senders}, "eth1": {a: MAC["r0"] for a in f.receivers}},
                "rules": rules, "packets": rig.packets,
            }
            with open(os.path.join(args.out, f"case-{args.seed:04d}-{case:04d}.json"), "w") as fh:
                json.dump(doc, fh, indent=1)
                fh.write("\n")
        print(f"recorded {args.cases} cases into {args.out}")
    finally:
        cleanup()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        print(f"record.py: interrupted ({e}); namespaces deleted", file=sys.stderr)
        sys.exit(130)
