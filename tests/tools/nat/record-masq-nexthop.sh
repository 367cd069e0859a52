#!/bin/bash
# Records tests/Chainwalk.Tests/Nat/kernel-recording-masq-nexthop.txt: run as root; uses namespaces cwmnh-{lan,gw,wan} only.
# Which source MASQUERADE picks when the out interface has two addresses in different subnets: GW's eth0 has
# 198.51.100.2/24 (added first) and 203.0.113.2/24, the default gateway 203.0.113.1 is in the second subnet,
# 192.0.2.0/24 goes via 198.51.100.1, 100.64.0.0/16 is on link without a gateway. IPv6: 2001:db8:100::2/64 (first)
# and 2001:db8:200::2/64, default via 2001:db8:200::1. After each packet: what left GW, then conntrack -L.
set -u
D=$(cd "$(dirname "$0")" && pwd)
for n in lan gw wan; do ip netns del cwmnh-$n 2>/dev/null; done
for n in lan gw wan; do ip netns add cwmnh-$n; ip -n cwmnh-$n link set lo up; done
ip link add eth1 netns cwmnh-gw type veth peer name lan0 netns cwmnh-lan
ip link add eth0 netns cwmnh-gw type veth peer name wan0 netns cwmnh-wan
G="ip -n cwmnh-gw"; L="ip -n cwmnh-lan"; W="ip -n cwmnh-wan"
$G addr add 10.0.1.1/24 dev eth1; $G addr add 198.51.100.2/24 dev eth0; $G addr add 203.0.113.2/24 dev eth0
$G addr add fd00:1::1/64 dev eth1 nodad; $G addr add 2001:db8:100::2/64 dev eth0 nodad; $G addr add 2001:db8:200::2/64 dev eth0 nodad
$G link set eth1 up; $G link set eth0 up
$G route add default via 203.0.113.1; $G route add 192.0.2.0/24 via 198.51.100.1; $G route add 100.64.0.0/16 dev eth0
$G -6 route add default via 2001:db8:200::1
$L addr add 10.0.1.200/24 dev lan0; $L addr add fd00:1::200/64 dev lan0 nodad; $L link set lan0 up
$L route add default via 10.0.1.1; $L -6 route add default via fd00:1::1
$W addr add 198.51.100.1/24 dev wan0; $W addr add 203.0.113.1/24 dev wan0
$W addr add 2001:db8:100::1/64 dev wan0 nodad; $W addr add 2001:db8:200::1/64 dev wan0 nodad; $W link set wan0 up
WMAC=$($W -j link show wan0 | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["address"])')
for a in 198.51.100.77 203.0.113.77 100.64.0.9; do $G neigh add $a lladdr $WMAC dev eth0 nud permanent; done
ip netns exec cwmnh-gw sysctl -qw net.ipv4.ip_forward=1
ip netns exec cwmnh-gw sysctl -qw net.ipv6.conf.all.forwarding=1
ip netns exec cwmnh-gw iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE
ip netns exec cwmnh-gw iptables -t nat -A OUTPUT -d 10.0.1.99 -p udp --dport 53 -j DNAT --to-destination 93.184.216.34
ip netns exec cwmnh-gw ip6tables -t nat -A POSTROUTING -o eth0 -j MASQUERADE
OUT=$(mktemp); : > "$OUT"
ip netns exec cwmnh-wan python3 "$D/sniff.py" wan0 eth0 "$OUT" & P1=$!
sleep 2
LS="ip netns exec cwmnh-lan python3 $D/../conntrack/send.py"; LS6="ip netns exec cwmnh-lan python3 $D/../conntrack/send6.py"
# MLD reports of the new interfaces are left out; a local UDP packet leaves with its checksum for the NIC to finish
# (veth offload): sniff.py marks it "badsum", the tests ignore that word.
show(){ sleep 0.5; echo "## $1"; grep -v ' > ff02::' "$OUT" | sed 's/^/> /'; : > "$OUT"; ip netns exec cwmnh-gw conntrack -L -f ${2:-ipv4} 2>/dev/null; ip netns exec cwmnh-gw conntrack -F -f ${2:-ipv4} 2>/dev/null; }
echo "# masquerade next hop"
$LS udp 10.0.1.20 93.184.216.34 5000 53; show "default route via 203.0.113.1"
$LS udp 10.0.1.20 192.0.2.5 5001 53; show "192.0.2.0/24 via 198.51.100.1"
$LS udp 10.0.1.20 198.51.100.77 5002 53; show "on link in 198.51.100.0/24"
$LS udp 10.0.1.20 203.0.113.77 5003 53; show "on link in 203.0.113.0/24"
$LS udp 10.0.1.20 100.64.0.9 5004 53; show "on link in 100.64.0.0/16, no address of that subnet"
ip netns exec cwmnh-gw python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5005)); s.sendto(b"x", ("10.0.1.99", 53))'
show "local to 10.0.1.99 (eth1), DNAT in OUTPUT to 93.184.216.34: re-routed via 203.0.113.1"
$LS6 udp fd00:1::20 2001:db8:100:1::1 5006 53; show "ipv6 to 2001:db8:100:1::1 via 2001:db8:200::1" ipv6
$LS6 udp fd00:1::20 2001:db8:300::1 5007 53; show "ipv6 to 2001:db8:300::1 via 2001:db8:200::1" ipv6
kill $P1; rm -f "$OUT"
for n in lan gw wan; do ip netns del cwmnh-$n; done
