#!/bin/bash
# Records tests/Chainwalk.Tests/Conntrack/kernel-recording-extensions.txt: run as root; uses namespaces cwct-{a,r,b} only.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
for n in a r b; do ip netns del cwct-$n 2>/dev/null; ip netns add cwct-$n; ip -n cwct-$n link set lo up; done
ip link add va netns cwct-a type veth peer name ra netns cwct-r
ip link add vb netns cwct-b type veth peer name rb netns cwct-r
ip -n cwct-a addr add 10.1.0.1/24 dev va; ip -n cwct-a link set va up; ip -n cwct-a route add default via 10.1.0.254
ip -n cwct-r addr add 10.1.0.254/24 dev ra; ip -n cwct-r link set ra up
ip -n cwct-r addr add 10.2.0.254/24 dev rb; ip -n cwct-r link set rb up
ip -n cwct-b addr add 10.2.0.1/24 dev vb; ip -n cwct-b link set vb up
BMAC=$(ip -n cwct-b -j link show vb | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["address"])')
ip -n cwct-r neigh add 10.2.0.9 lladdr $BMAC dev rb nud permanent
ip netns exec cwct-r sysctl -qw net.ipv4.ip_forward=1
ip netns exec cwct-r iptables -t raw -A PREROUTING -p udp --dport 53 -j CT --zone 5
ip netns exec cwct-r iptables -t mangle -A PREROUTING -p udp --dport 54 -j CONNMARK --set-mark 0x11
ip netns exec cwct-r iptables -A FORWARD -p udp --dport 54 -m connlabel --label 3 --set
ip netns exec cwct-r iptables -A FORWARD -p udp --dport 55 -m connlimit --connlimit-above 1 -j DROP
ip netns exec cwct-r iptables -A FORWARD -p udp --dport 56 -m helper --helper ftp -j DROP
ip netns exec cwct-r iptables -A FORWARD -p udp --dport 56 -m helper ! --helper ftp -j DROP
sleep 1
A="ip netns exec cwct-a python3 $here/send.py"
$A udp 10.1.0.1 10.2.0.9 5000 53; $A udp 10.1.0.1 10.2.0.9 5000 54
$A udp 10.1.0.1 10.2.0.9 5001 55; $A udp 10.1.0.1 10.2.0.9 5002 55; $A udp 10.1.0.1 10.2.0.9 5003 55
$A udp 10.1.0.1 10.2.0.9 5000 56
ip netns exec cwct-r conntrack -L 2>&1
ip netns exec cwct-r iptables -L FORWARD -v -n -x
for n in a r b; do ip netns del cwct-$n; done
