#!/bin/bash
# Shows that the ICMP errors the kernel sends are attached to their cause's connection (icmp_glue_bits ->
# nf_ct_attach) even when it was never confirmed: a router's time exceeded about a first packet counts on
# the OUTPUT rule for RELATED, not INVALID (Linux 6.18: "1 57 ACCEPT ... state RELATED").
# And with a nat table, the redirect a hairpinned new connection would get is dropped (nf_nat_icmp_reply_translation).
# Run as root; uses namespaces cwnat-{lan,gw} only.
set -u
D=$(cd "$(dirname "$0")" && pwd)
for n in lan gw; do ip netns del cwnat-$n 2>/dev/null; ip netns add cwnat-$n; ip -n cwnat-$n link set lo up; done
ip link add eth1 netns cwnat-gw type veth peer name lan0 netns cwnat-lan
G="ip -n cwnat-gw"; L="ip -n cwnat-lan"
$G addr add 10.0.1.1/24 dev eth1; $G link set eth1 up; $G addr add 10.9.0.1/24 dev lo
$L addr add 10.0.1.200/24 dev lan0; $L link set lan0 up; $L route add default via 10.0.1.1
$G route add 10.2.0.0/24 via 10.0.1.77 dev eth1 onlink
LMAC=$($L -j link show lan0 | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["address"])')
for a in 10.0.1.20 10.0.1.77; do $G neigh add $a lladdr $LMAC dev eth1 nud permanent; done
ip netns exec cwnat-gw sysctl -qw net.ipv4.ip_forward=1
ip netns exec cwnat-gw iptables -A OUTPUT -m state --state INVALID -j DROP
ip netns exec cwnat-gw iptables -A OUTPUT -m state --state RELATED -j ACCEPT
OUT=$(mktemp)
ip netns exec cwnat-lan python3 $D/sniff.py lan0 eth1 $OUT & P=$!
sleep 1
ip netns exec cwnat-lan python3 -c "
import sys; sys.argv=['x','udp','10.0.1.20','10.2.0.9','5000','53']
exec(open('$D/../conntrack/send.py').read().replace('s.sendto(pkt','pkt=pkt[:8]+bytes([1])+pkt[9:]; import struct; pkt=pkt[:10]+b\"\\\\0\\\\0\"+pkt[12:]; pkt=pkt[:10]+struct.pack(\"!H\",csum(pkt[:20]))+pkt[12:]; s.sendto(pkt'))
"
sleep 0.5; echo "-- ttl1:"; cat $OUT; ip netns exec cwnat-gw iptables -L OUTPUT -v -n
kill $P; for n in lan gw; do ip netns del cwnat-$n; done
