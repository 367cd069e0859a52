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
ip netns exec cwct-a iptables -A OUTPUT -p tcp --tcp-flags RST RST -j DROP; ip netns exec cwct-a iptables -A OUTPUT -p icmp --icmp-type port-unreachable -j DROP
sleep 1
A="ip netns exec cwct-a python3 "$(dirname "$0")/send.py""
B="ip netns exec cwct-b python3 "$(dirname "$0")/send.py""
# After each packet: the table, and how many packets so far were INVALID (the LOG rule's counter).
show(){ echo "## $1"; ip netns exec cwct-r conntrack -L 2>/dev/null; echo "invalid so far: $(ip netns exec cwct-r iptables -L FORWARD -v -n -x | awk 'NR==3{print $1}')"; }
flush(){ ip netns exec cwct-r conntrack -F 2>/dev/null; }
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
$A tcp $C $S 40000 22 S 2000 0 0; show "new SYN reopens from TIME_WAIT"
flush
$A tcp $C $S 40001 80 A 7000 9000 0; show "mid-stream ACK (loose)"
flush
$A tcp $C $S 40002 80 S 1 0 0 bad; show "bad checksum SYN"
$A tcp $C $S 40003 80 SF 1 0 0; show "SYN+FIN"
$A tcp $C $S 40004 80 F 1 0 0; show "bare FIN new"
$A tcp $C $S 40005 80 SA 1 1 0; show "SYN-ACK as first packet"
flush
$A tcp $C $S 40006 80 S 100 0 0; show "SYN"
$A tcp $C $S 40006 80 A 101 1 0; show "ACK in SYN_SENT"
$A tcp $C $S 40006 80 S 100 0 0; show "SYN retransmitted"
$B tcp $S $C 80 40006 RA 0 101 0; show "RST reply to unreplied SYN"
flush
$A tcp $C $S 40007 80 S 100 0 0; $B tcp $S $C 80 40007 SA 900 101 0; $A tcp $C $S 40007 80 A 101 901 0; show "established"
$A tcp $C $S 40007 80 PA 200101 901 10; show "data far beyond the window"
$A tcp $C $S 40007 80 PA 101 901 10; show "data in the window"
$A tcp $C $S 40007 80 PA 4294897297 901 10; show "old data under the lower bound"
$A tcp $C $S 40007 80 A 101 200901 0; show "ACK over upper bound"
$B tcp $S $C 80 40007 RA 901 101 0; show "RST from server"
flush
$A udp $C $S 5000 53; show "udp req"
$B udp $S $C 53 5000; show "udp reply"
sleep 3
$A udp $C $S 5000 53; show "udp again after 3 s"
flush
$A echo $C $S 8 77; show "echo req"
$B echo $S $C 0 77; show "echo reply"
$B echo $S $C 0 78; show "stray echo reply"
flush
$A gre $C $S; show "gre"
$B gre $S $C; show "gre reply"
flush
$A udp $C $S 5001 9999; show "udp 2"
$B unreach $S $C $C $S 5001 9999; show "icmp unreach quoting it"
$B unreach $S $C $C $S 5002 9999; show "icmp unreach quoting nothing known"
for n in a r b; do ip netns del cwct-$n; done
