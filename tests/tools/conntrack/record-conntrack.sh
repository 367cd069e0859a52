#!/bin/bash
# Records tests/Chainwalk.Tests/Conntrack/kernel-recording.txt: run as root; uses namespaces cwct-{a,r,b} only.
# R routes between A (10.1.0.0/24) and B (10.2.0.0/24); conntrack loaded in R by a state rule.
set -u
ip netns del cwct-a 2>/dev/null; ip netns del cwct-r 2>/dev/null; ip netns del cwct-b 2>/dev/null
for n in a r b; do ip netns add cwct-$n; ip -n cwct-$n link set lo up; done
ip link add va netns cwct-a type veth peer name ra netns cwct-r
ip link add vb netns cwct-b type veth peer name rb netns cwct-r
ip -n cwct-a addr add 10.1.0.1/24 dev va; ip -n cwct-a link set va up; ip -n cwct-a route add default via 10.1.0.254
ip -n cwct-r addr add 10.1.0.254/24 dev ra; ip -n cwct-r link set ra up
ip -n cwct-r addr add 10.2.0.254/24 dev rb; ip -n cwct-r link set rb up
ip -n cwct-b addr add 10.2.0.1/24 dev vb; ip -n cwct-b link set vb up; ip -n cwct-b route add default via 10.2.0.254
BMAC=$(ip -n cwct-b -j link show vb | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["address"])')
ip -n cwct-r neigh add 10.2.0.9 lladdr $BMAC dev rb nud permanent
ip netns exec cwct-r sysctl -qw net.ipv4.ip_forward=1
ip netns exec cwct-r iptables -A FORWARD -m conntrack --ctstate INVALID -j LOG --log-prefix "cwINV "
ip netns exec cwct-r iptables -A FORWARD -m conntrack --ctstate NEW -j ACCEPT
ip netns exec cwct-r sysctl -qw net.netfilter.nf_conntrack_acct=1
ip netns exec cwct-a iptables -A OUTPUT -p tcp --tcp-flags RST RST -j DROP; ip netns exec cwct-a iptables -A OUTPUT -p icmp -j DROP
sleep 1
A="ip netns exec cwct-a python3 "$(dirname "$0")/send.py""
B="ip netns exec cwct-b python3 "$(dirname "$0")/send.py""
show(){ echo "## $1"; ip netns exec cwct-r conntrack -L 2>/dev/null; ip netns exec cwct-r iptables -L FORWARD -v -n -x | awk 'NR>2{print "   rule pkts",$1,$3,$0}' | cut -c1-80; }
C=10.1.0.1; S=10.2.0.9
$A tcp $C $S 40000 22 S 1000 0 0; show "SYN"
$B tcp $S $C 22 40000 SA 5000 1001 0; show "SYN-ACK"
$A tcp $C $S 40000 22 A 1001 5001 0; show "ACK"
$A tcp $C $S 40000 22 PA 1001 5001 10; show "data c->s"
$B tcp $S $C 22 40000 A 5001 1011 0; show "ack s->c"
$A tcp $C $S 40000 22 FA 1011 5001 0; show "FIN c->s"
$B tcp $S $C 22 40000 A 5001 1012 0; show "ACK of FIN s->c"
$B tcp $S $C 22 40000 FA 5001 1012 0; show "FIN s->c"
$A tcp $C $S 40000 22 A 1012 5002 0; show "last ACK c->s"
ip netns exec cwct-r conntrack -F 2>/dev/null
$A tcp $C $S 40001 80 A 7000 9000 0; show "mid-stream ACK (loose)"
$A tcp $C $S 40000 22 A 1012 5002 0; show "ACK again"
$A tcp $C $S 40000 22 S 2000 0 0; show "new SYN reopen from TIME_WAIT"
ip netns exec cwct-r conntrack -F 2>/dev/null
$A tcp $C $S 40002 80 S 1 0 0 bad; show "bad checksum SYN"
$A tcp $C $S 40003 80 SF 1 0 0; show "SYN+FIN"
$A tcp $C $S 40004 80 F 1 0 0; show "bare FIN new"
ip netns exec cwct-r conntrack -F 2>/dev/null
$A udp $C $S 5000 53; show "udp req"
$B udp $S $C 53 5000; show "udp reply"
$A echo $C $S 8 77; show "echo req"
$B echo $S $C 0 77; show "echo reply"
$A udp $C $S 5001 9999; show "udp 2"
$B unreach $S $C $C $S 5001 9999; show "icmp unreach related"
$B unreach $S $C $C $S 5002 9999; show "icmp unreach unknown"
$B echo $S $C 0 78; show "stray echo reply"
ip netns exec cwct-r dmesg 2>/dev/null | grep cwINV | tail -5
for n in a r b; do ip netns del cwct-$n; done
