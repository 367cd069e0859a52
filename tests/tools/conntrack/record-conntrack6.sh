#!/bin/bash
# Records tests/Chainwalk.Tests/Conntrack/kernel-recording6.txt: run as root; uses namespaces cwc6-{a,r,b} only.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
for n in a r b; do ip netns del cwc6-$n 2>/dev/null; ip netns add cwc6-$n; ip -n cwc6-$n link set lo up; done
ip link add va netns cwc6-a type veth peer name ra netns cwc6-r
ip link add vb netns cwc6-b type veth peer name rb netns cwc6-r
ip -n cwc6-a addr add 2001:db8:1::1/64 dev va nodad; ip -n cwc6-a link set va up; ip -n cwc6-a route add default via 2001:db8:1::fe
ip -n cwc6-r addr add 2001:db8:1::fe/64 dev ra nodad; ip -n cwc6-r link set ra up
ip -n cwc6-r addr add 2001:db8:2::fe/64 dev rb nodad; ip -n cwc6-r link set rb up
ip -n cwc6-b addr add 2001:db8:2::1/64 dev vb nodad; ip -n cwc6-b link set vb up; ip -n cwc6-b route add default via 2001:db8:2::fe
BMAC=$(ip -n cwc6-b -j link show vb | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["address"])')
ip -n cwc6-r neigh add 2001:db8:2::9 lladdr $BMAC dev rb nud permanent
ip netns exec cwc6-r sysctl -qw net.ipv6.conf.all.forwarding=1
ip netns exec cwc6-r ip6tables -A FORWARD -m conntrack --ctstate INVALID -j ACCEPT
ip netns exec cwc6-r ip6tables -A INPUT -m conntrack --ctstate UNTRACKED -p icmpv6 --icmpv6-type neighbour-solicitation -j ACCEPT
ip netns exec cwc6-a ip6tables -A OUTPUT -p icmpv6 --icmpv6-type port-unreachable -j DROP
sleep 2
A="ip netns exec cwc6-a python3 $here/send6.py"
B="ip netns exec cwc6-b python3 $here/send6.py"
show(){ echo "## $1"; ip netns exec cwc6-r conntrack -L -f ipv6 2>/dev/null; echo "invalid so far: $(ip netns exec cwc6-r ip6tables -L FORWARD -v -n -x | awk 'NR==3{print $1}')"; }
C=2001:db8:1::1; S=2001:db8:2::9
$A echo $C $S 128 77; show "echo request"
$B echo $S $C 129 77; show "echo reply"
$B echo $S $C 129 78; show "stray echo reply"
$A udp $C $S 5001 9999; show "udp"
$B unreach $S $C $C $S 5001 9999; show "icmpv6 unreachable quoting it"
$B unreach $S $C $C $S 5002 9999; show "icmpv6 unreachable quoting nothing known"
echo "neighbour solicitations to R seen UNTRACKED: $(ip netns exec cwc6-r ip6tables -L INPUT -v -n -x | awk 'NR==3{print ($1>0)?"yes":"no"}')"
for n in a r b; do ip netns del cwc6-$n; done
