#!/bin/sh
# Makes the tcpdump-written captures: tcpdump runs inside a fresh network namespace (unshare -n) on its own
# loopback, so nothing of the host's traffic is recorded. Needs root, tcpdump, iputils-ping, editcap (wireshark-common).
set -eu
cd "$(dirname "$0")"
unshare -n sh -c '
  ip link set lo up
  tcpdump -q -i lo -w tcpdump-lo-ns.pcap --time-stamp-precision=nano -c 4 icmp 2>/dev/null &
  a=$!
  tcpdump -q -i any -y LINUX_SLL2 -w tcpdump-any-sll2.pcap -c 4 icmp 2>/dev/null &
  b=$!
  tcpdump -q -i any -y LINUX_SLL -w tcpdump-any-sll.pcap -c 4 icmp 2>/dev/null &
  c=$!
  sleep 1
  ping -q -c 2 -i 0.2 127.0.0.1 >/dev/null
  wait $a $b $c
'
# Two interfaces of different link types and timestamp resolutions in one pcapng (IDB if_tsresol 9 and 6).
mergecap -F pcapng -w merged-two-interfaces.pcapng tcpdump-lo-ns.pcap tcpdump-any-sll.pcap
editcap -F pcapng tcpdump-any-sll2.pcap tcpdump-any-sll2.pcapng
