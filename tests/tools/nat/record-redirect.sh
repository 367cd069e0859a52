#!/bin/bash
# ICMP redirects from the gateway: sent without rules and with conntrack only, not with a nat table (the redirect is
# attached to the new connection, whose source binding is not made yet: nf_nat_icmp_reply_translation drops it).
# Run as root; uses namespaces cwnat-{lan,gw} only.
set -u
D=$(cd "$(dirname "$0")" && pwd)
for n in lan gw; do ip netns del cwnat-$n 2>/dev/null; ip netns add cwnat-$n; ip -n cwnat-$n link set lo up; done
ip link add eth1 netns cwnat-gw type veth peer name lan0 netns cwnat-lan
G="ip -n cwnat-gw"; L="ip -n cwnat-lan"
$G addr add 10.0.1.1/24 dev eth1; $G link set eth1 up
$L addr add 10.0.1.200/24 dev lan0; $L link set lan0 up; $L route add default via 10.0.1.1; $L route add 10.0.1.50/32 via 10.0.1.1
LMAC=$($L -j link show lan0 | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["address"])')
for a in 10.0.1.20 10.0.1.21 10.0.1.22 10.0.1.23 10.0.1.50; do $G neigh add $a lladdr $LMAC dev eth1 nud permanent; done
ip netns exec cwnat-gw sysctl -qw net.ipv4.ip_forward=1
OUT=$(mktemp)
ip netns exec cwnat-lan python3 $D/sniff.py lan0 eth1 $OUT & P=$!
sleep 1
ip netns exec cwnat-lan python3 $D/../conntrack/send.py tcp 10.0.1.20 10.0.1.50 40000 80 S 1 0 0; sleep 0.5
echo "-- no rules:"; cat $OUT; : > $OUT
ip netns exec cwnat-gw iptables -A FORWARD -m conntrack --ctstate NEW -j ACCEPT
ip netns exec cwnat-lan python3 $D/../conntrack/send.py tcp 10.0.1.21 10.0.1.50 40001 80 S 1 0 0; sleep 0.5
echo "-- conntrack loaded (a conntrack rule):"; cat $OUT; : > $OUT
ip netns exec cwnat-gw iptables -t nat -A PREROUTING -p tcp --dport 443 -j DNAT --to-destination 10.0.1.50:8443
ip netns exec cwnat-lan python3 $D/../conntrack/send.py tcp 10.0.1.22 10.0.1.50 40002 80 S 1 0 0; sleep 0.5
echo "-- with a nat table, not NATed:"; cat $OUT; : > $OUT
ip netns exec cwnat-lan python3 $D/../conntrack/send.py tcp 10.0.1.23 10.0.1.50 40003 443 S 1 0 0; sleep 0.5
echo "-- DNATed to the same LAN:"; cat $OUT; : > $OUT
kill $P; for n in lan gw; do ip netns del cwnat-$n; done
