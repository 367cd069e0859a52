#!/usr/bin/python3
"""Makes the small captures PcapReaderTests reads. Run with Debian's python3-scapy; the tcpdump-made files come
from make-captures.sh (tcpdump inside a private network namespace, on its loopback only)."""
import struct
from decimal import Decimal
from scapy.all import Ether, Dot1Q, IP, IPv6, TCP, UDP, ICMP, ARP, Raw, CookedLinuxV2, wrpcap, PcapWriter

A, B = "02:00:00:00:00:01", "02:00:00:00:00:02"


def frames():
    p = [
        Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2", id=1) / TCP(sport=1234, dport=80, flags="S", seq=1),
        Ether(src=B, dst=A) / IPv6(src="2001:db8::2", dst="2001:db8::1") / UDP(sport=4000, dport=5000) / Raw(b"hi"),
        Ether(src=A, dst=B) / Dot1Q(vlan=42, prio=5) / IP(src="10.0.0.1", dst="10.0.0.3", id=2) / ICMP(id=7, seq=1),
        Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.2"),
    ]
    for i, f in enumerate(p):
        f.time = Decimal("1700000000.123456789") + i
    return p


wrpcap("scapy-le-us.pcap", frames())
wrpcap("scapy-le-ns.pcap", frames(), nano=True)
w = PcapWriter("scapy-be-us.pcap", endianness=">")
w.write(frames())
w.close()
w = PcapWriter("scapy-be-ns.pcap", endianness=">", nano=True)
w.write(frames())
w.close()

sll2 = CookedLinuxV2(proto=0x0800, ifindex=3, pkttype=4, lladdrtype=1, lladdrlen=6, src=bytes.fromhex("020000000001") + b"\0\0") \
    / IP(src="10.0.0.1", dst="10.0.0.2", id=3) / UDP(sport=7, dport=9)
sll2.time = Decimal("1700000001.5")
wrpcap("scapy-sll2.pcap", [sll2])


# A big-endian pcapng built by hand from the format's definition: two sections; the first has two interfaces
# (Ethernet with if_tsresol 10^-3 and the if_name "eth0", raw IP with if_tsresol 2^-10) and an unknown block
# between them; the second a simple packet block and an obsolete packet block.
def opt(code, value):
    return struct.pack(">HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def block(kind, body):
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(">II", kind, n) + body + struct.pack(">I", n)


def shb():
    return block(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1) + opt(4, b"make-captures.py") + opt(0, b""))


def idb(link, options):
    return block(1, struct.pack(">HHI", link, 0, 65535) + options + opt(0, b""))


def epb(iface, units, data):
    return block(6, struct.pack(">IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(data), len(data)) + data)


eth = bytes(frames()[0])
ip6 = bytes(IPv6(src="2001:db8::2", dst="2001:db8::1") / UDP(sport=4000, dport=5000) / Raw(b"hi"))
out = shb()
out += idb(1, opt(2, b"eth0") + opt(9, bytes([3])))
out += idb(101, opt(9, bytes([0x8A])))
out += epb(0, 1700000000123, eth)                      # 1700000000.123 s
out += block(0x0BADBEEF, b"unknown block body")
out += epb(1, (1700000002 << 10) + 512, ip6)           # 1700000002.5 s
out += shb()
out += idb(1, b"")
out += block(3, struct.pack(">I", len(eth)) + eth)    # simple packet block: no timestamp
out += block(2, struct.pack(">HHIIII", 0, 0, 1700000003000000 >> 32, 1700000003000000 & 0xFFFFFFFF, len(eth), len(eth)) + eth)
with open("handmade-be.pcapng", "wb") as f:
    f.write(out)
