#!/bin/bash
# Records tests/Chainwalk.Tests/Nat/kernel-recording-nat.txt: run as root; uses namespaces cwnat-{lan,gw,wan} only.
# GW is the guide's NAT gateway (examples/nat-gateway.rules): eth1 10.0.1.1/24 to LAN, eth0 198.51.100.2/24 to WAN
# (default via 198.51.100.1). LAN and WAN send hand-made packets (../conntrack/send.py, send6.py) with any
# source; sniff.py in LAN and WAN prints what GW sent them. After each packet: what left GW, then conntrack -L.
set -u
D=$(cd "$(dirname "$0")" && pwd)
for n in lan gw wan; do ip netns del cwnat-$n 2>/dev/null; done
for n in lan gw wan; do ip netns add cwnat-$n; ip -n cwnat-$n link set lo up; done
ip link add eth1 netns cwnat-gw type veth peer name lan0 netns cwnat-lan
ip link add eth0 netns cwnat-gw type veth peer name wan0 netns cwnat-wan
G="ip -n cwnat-gw"; L="ip -n cwnat-lan"; W="ip -n cwnat-wan"
$G addr add 10.0.1.1/24 dev eth1; $G addr add 198.51.100.2/24 dev eth0
$G addr add fd00:1::1/64 dev eth1 nodad; $G addr add 2001:db8:100::2/64 dev eth0 nodad
$G link set eth1 up; $G link set eth0 up
$G route add default via 198.51.100.1; $G -6 route add default via 2001:db8:100::1
$L addr add 10.0.1.200/24 dev lan0; $L addr add fd00:1::200/64 dev lan0 nodad; $L link set lan0 up
$L route add default via 10.0.1.1; $L -6 route add default via fd00:1::1
$W addr add 198.51.100.1/24 dev wan0; $W addr add 2001:db8:100::1/64 dev wan0 nodad; $W link set wan0 up
$W route add 192.0.2.0/24 via 198.51.100.2
LMAC=$($L -j link show lan0 | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["address"])')
WMAC=$($W -j link show wan0 | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["address"])')
GMAC=$($G -j link show eth0 | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["address"])')
for a in 10.0.1.20 10.0.1.21 10.0.1.22 10.0.1.23 10.0.1.24 10.0.1.25 10.0.1.50 10.0.1.51 10.0.1.52; do $G neigh add $a lladdr $LMAC dev eth1 nud permanent; done
$G neigh add fd00:1::20 lladdr $LMAC dev eth1 nud permanent
for a in 198.51.100.10 198.51.100.11 198.51.100.12; do $W neigh add $a lladdr $GMAC dev wan0 nud permanent; done
ip netns exec cwnat-gw sysctl -qw net.ipv4.ip_forward=1
ip netns exec cwnat-gw sysctl -qw net.ipv6.conf.all.forwarding=1
ip netns exec cwnat-gw iptables-restore < "$D/../../../examples/nat-gateway.rules"
OUT=$(mktemp); : > "$OUT"
ip netns exec cwnat-lan python3 "$D/sniff.py" lan0 eth1 "$OUT" & P1=$!
ip netns exec cwnat-wan python3 "$D/sniff.py" wan0 eth0 "$OUT" & P2=$!
sleep 2
LS="ip netns exec cwnat-lan python3 $D/../conntrack/send.py"; WS="ip netns exec cwnat-wan python3 $D/../conntrack/send.py"
LS6="ip netns exec cwnat-lan python3 $D/../conntrack/send6.py"; WS6="ip netns exec cwnat-wan python3 $D/../conntrack/send6.py"
show(){ sleep 0.3; echo "## $1"; sed 's/^/> /' "$OUT"; : > "$OUT"; ip netns exec cwnat-gw conntrack -L -f ${2:-ipv4} 2>/dev/null; }
flush(){ ip netns exec cwnat-gw conntrack -F 2>/dev/null; ip netns exec cwnat-gw conntrack -F -f ipv6 2>/dev/null; }
echo "# lab2"
C=10.0.1.20; S=93.184.216.34; N=198.51.100.2
$LS tcp $C $S 40000 80 S 1000 0 0; show "SYN"
$WS tcp $S $N 80 40000 SA 5000 1001 0; show "SYN-ACK"
$LS tcp $C $S 40000 80 A 1001 5001 0; show "ACK"
$LS tcp $C $S 40000 80 PA 1001 5001 10; show "data c->s"
$WS tcp $S $N 80 40000 A 5001 1011 0; show "ack s->c"
$LS tcp $C $S 40000 80 FA 1011 5001 0; show "FIN c->s"
$WS tcp $S $N 80 40000 A 5001 1012 0; show "ACK of FIN s->c"
$WS tcp $S $N 80 40000 FA 5001 1012 0; show "FIN s->c"
$LS tcp $C $S 40000 80 A 1012 5002 0; show "last ACK c->s"
flush
echo "# lab3"
X=203.0.113.9; P=10.0.1.50
$WS tcp $X $N 51000 443 S 1000 0 0; show "SYN"
$LS tcp $P $X 8443 51000 SA 5000 1001 0; show "SYN-ACK"
$WS tcp $X $N 51000 443 A 1001 5001 0; show "ACK"
$WS tcp $X $N 51000 443 PA 1001 5001 10; show "data c->s"
$LS tcp $P $X 8443 51000 A 5001 1011 0; show "ack s->c"
$WS tcp $X $N 51000 443 FA 1011 5001 0; show "FIN c->s"
$LS tcp $P $X 8443 51000 A 5001 1012 0; show "ACK of FIN s->c"
$LS tcp $P $X 8443 51000 FA 5001 1012 0; show "FIN s->c"
$WS tcp $X $N 51000 443 A 1012 5002 0; show "last ACK c->s"
flush
echo "# clash"
$LS tcp 10.0.1.20 $S 40000 80 S 1000 0 0; show "first SYN"
$LS tcp 10.0.1.21 $S 40000 80 S 3000 0 0; show "second host, same source port"
$LS tcp 10.0.1.21 $S 700 80 S 3000 0 0; show "second host, port 700"
$LS tcp 10.0.1.20 $S 700 80 S 3000 0 0; show "first host, port 700"
flush
echo "# icmp error"
$LS udp 10.0.1.20 $S 5000 53; show "udp out"
$WS unreach $S $N $N $S 5000 53; show "port unreachable back"
flush
echo "# lan to :443 (the DNAT rule has no -i: hairpin to 10.0.1.50)"
$LS tcp 10.0.1.20 $S 40001 443 S 1000 0 0; show "SYN"
flush
echo "# snat range"
ip netns exec cwnat-gw iptables -t nat -I POSTROUTING -s 10.0.1.0/24 -o eth0 -j SNAT --to-source 198.51.100.10-198.51.100.12
for h in 20 21 22 23 24 25; do $LS tcp 10.0.1.$h $S 41000 80 S 1000 0 0; done; show "six hosts"
$LS tcp 10.0.1.20 198.51.100.77 41000 80 S 1000 0 0; show "other destination"
ip netns exec cwnat-gw iptables -t nat -D POSTROUTING 1
flush
echo "# redirect"
ip netns exec cwnat-gw iptables -t nat -I PREROUTING -i eth1 -p tcp --dport 80 -j REDIRECT --to-ports 3128
$LS tcp 10.0.1.20 $S 40002 80 S 1000 0 0; show "SYN redirected to the gateway (no listener: RST)"
ip netns exec cwnat-gw iptables -t nat -D PREROUTING 1
flush
echo "# netmap"
ip netns exec cwnat-gw iptables -t nat -I PREROUTING -d 192.0.2.0/24 -j NETMAP --to 10.0.1.0/24
ip netns exec cwnat-gw iptables -t nat -I POSTROUTING -s 10.0.1.0/24 -o eth0 -j NETMAP --to 192.0.2.0/24
$WS tcp $X 192.0.2.50 52000 22 S 1000 0 0; show "in to 192.0.2.50"
$LS tcp 10.0.1.21 $S 40003 80 S 1000 0 0; show "out from 10.0.1.21"
ip netns exec cwnat-gw iptables -t nat -D PREROUTING 1; ip netns exec cwnat-gw iptables -t nat -D POSTROUTING 1
flush
echo "# dnat range"
ip netns exec cwnat-gw iptables -t nat -I PREROUTING -i eth0 -p tcp --dport 8080 -j DNAT --to-destination 10.0.1.50-10.0.1.52:8443
ip netns exec cwnat-gw iptables -I FORWARD -p tcp --dport 8443 -j ACCEPT
for h in 1 2 3 4 5 6; do $WS tcp 203.0.113.$h $N 53000 8080 S 1000 0 0; done; show "six clients"
ip netns exec cwnat-gw iptables -t nat -D PREROUTING 1; ip netns exec cwnat-gw iptables -D FORWARD 1
flush
echo "# snat port range exhausted"
ip netns exec cwnat-gw iptables -t nat -I POSTROUTING -s 10.0.1.0/24 -o eth0 -p tcp -j SNAT --to-source 198.51.100.2:5000-5001
$LS tcp 10.0.1.20 $S 42000 80 S 1000 0 0; $LS tcp 10.0.1.21 $S 42000 80 S 1000 0 0; show "two connections"
$LS tcp 10.0.1.22 $S 42000 80 S 1000 0 0; show "a third: no free port"
ip netns exec cwnat-gw iptables -t nat -D POSTROUTING 1
flush
echo "# ping through masquerade"
$LS echo 10.0.1.20 $S 8 77; show "echo from .20 id 77"
$LS echo 10.0.1.21 $S 8 77; show "echo from .21 id 77"
$WS echo $S $N 0 77; show "echo reply id 77"
flush
echo "# masquerade --to-ports"
ip netns exec cwnat-gw iptables -t nat -I POSTROUTING -s 10.0.1.0/24 -o eth0 -p udp -j MASQUERADE --to-ports 20000-20009
$LS udp 10.0.1.20 $S 5000 53; show "udp"
ip netns exec cwnat-gw iptables -t nat -D POSTROUTING 1
flush
echo "# hairpin with masquerade"
ip netns exec cwnat-gw iptables -t nat -I POSTROUTING -s 10.0.1.0/24 -d 10.0.1.50 -p tcp --dport 8443 -j MASQUERADE
$LS tcp 10.0.1.20 $N 40005 443 S 1000 0 0; show "SYN to the public address"
$LS tcp 10.0.1.50 10.0.1.1 8443 40005 SA 5000 1001 0; show "SYN-ACK from the server"
ip netns exec cwnat-gw iptables -t nat -D POSTROUTING 1
flush
echo "# dnat persistent range"
ip netns exec cwnat-gw iptables -t nat -I PREROUTING -i eth0 -p tcp --dport 8080 -j DNAT --to-destination 10.0.1.50-10.0.1.52:8443 --persistent
ip netns exec cwnat-gw iptables -I FORWARD -p tcp --dport 8443 -j ACCEPT
for h in 1 2 3 4 5 6; do $WS tcp 203.0.113.$h $N 53000 8080 S 1000 0 0; done; show "six clients"
ip netns exec cwnat-gw iptables -t nat -D PREROUTING 1
echo "# shifted port map"
ip netns exec cwnat-gw iptables -t nat -I PREROUTING -i eth0 -p tcp --dport 8000:8099 -j DNAT --to-destination 10.0.1.50:9000-9099/8000
ip netns exec cwnat-gw iptables -I FORWARD -p tcp --dport 9000:9099 -j ACCEPT
$WS tcp $X $N 53001 8005 S 1000 0 0; show "to 8005"
ip netns exec cwnat-gw iptables -t nat -D PREROUTING 1; ip netns exec cwnat-gw iptables -D FORWARD 1; ip netns exec cwnat-gw iptables -D FORWARD 1
flush
echo "# snat --random"
ip netns exec cwnat-gw iptables -t nat -I POSTROUTING -s 10.0.1.0/24 -o eth0 -j SNAT --to-source 198.51.100.2 --random
$LS tcp 10.0.1.20 $S 43000 80 S 1000 0 0; show "free port, moved anyway"
ip netns exec cwnat-gw iptables -t nat -D POSTROUTING 1
flush
echo "# ttl 1 through the port forward"
ip netns exec cwnat-wan python3 $D/send_ttl1.py $X $N 51002 443; show "SYN with TTL 1 to :443"
flush
echo "# ipv6 masquerade"
ip netns exec cwnat-gw ip6tables -t nat -A POSTROUTING -s fd00:1::/64 -o eth0 -j MASQUERADE
$LS6 udp fd00:1::20 2001:db8:200::1 5000 53; show "udp out" ipv6
$WS6 udp 2001:db8:200::1 2001:db8:100::2 53 5000; show "udp reply" ipv6
flush
echo "# ipv6 redirect"
ip netns exec cwnat-gw ip6tables -t nat -A PREROUTING -i eth1 -p udp --dport 53 -j REDIRECT --to-ports 5353
$LS6 udp fd00:1::20 2001:db8:200::1 5001 53; show "udp to :53 redirected" ipv6
flush
echo "# ipv6 dnat"
ip netns exec cwnat-gw ip6tables -t nat -A PREROUTING -i eth0 -p udp --dport 5353 -j DNAT --to-destination [fd00:1::50]:53
$G neigh add fd00:1::50 lladdr $LMAC dev eth1 nud permanent
$WS6 udp 2001:db8:200::1 2001:db8:100::2 5002 5353; show "udp to the gateway's :5353" ipv6
flush
echo "# masqueraded connections and the interface"
$LS udp 10.0.1.20 $S 5002 53
$WS tcp $X $N 51003 443 S 1000 0 0; show "a masqueraded and a DNATed connection"
$G addr del 198.51.100.2/24 dev eth0; sleep 1; show "after the masquerade address is removed"
kill $P1 $P2; rm -f "$OUT"
for n in lan gw wan; do ip netns del cwnat-$n; done
