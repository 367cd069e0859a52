#!/usr/bin/env bash
# Records a capture of real traffic to a Lab 1 server in throw-away namespaces, and the server's counters after it:
# golden/replay/lab1.pcap (tcpdump -w on the server's interface, both directions), lab1.counters (iptables-save -c),
# lab1.mac (the server interface's MAC). The replay test runs the capture through Chainwalk and compares.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=tests/Chainwalk.Tests/golden/replay
S=cwr-srv-$$ C=cwr-cli-$$
cleanup() { ip netns del "$S" 2>/dev/null || true; ip netns del "$C" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$S"; ip netns add "$C"
ip link add eth0 netns "$S" type veth peer name c0 netns "$C"
ip -n "$S" link set lo up; ip -n "$C" link set lo up
ip -n "$S" addr add 10.9.0.1/24 dev eth0; ip -n "$C" addr add 10.9.0.2/24 dev c0
ip -n "$S" link set eth0 up; ip -n "$C" link set c0 up
ethtool -K eth0 tx off >/dev/null 2>&1 || true
ip netns exec "$S" ethtool -K eth0 tx off rx off >/dev/null 2>&1 || true
ip netns exec "$C" ethtool -K c0 tx off rx off >/dev/null 2>&1 || true
ip netns exec "$S" iptables-restore examples/lab1-server.rules
ip netns exec "$S" python3 - >/dev/null 2>&1 <<'PY' &
import socket, threading
def serve(port):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("10.9.0.1", port)); l.listen()
    while True:
        a, _ = l.accept(); d = a.recv(100); a.sendall(b"reply:" + d); a.close()
for p in (22, 80): threading.Thread(target=serve, args=(p,), daemon=True).start()
threading.Event().wait(8)
PY
SRV=$!
sleep 0.5
ip netns exec "$S" tcpdump -i eth0 -w "$OUT/lab1.pcap" -U -s 0 >/dev/null 2>&1 &
DUMP=$!
sleep 1
ip netns exec "$C" python3 - <<'PY'
import socket, time
for port in (22, 80, 22):
    s = socket.create_connection(("10.9.0.1", port), timeout=2); s.sendall(b"hello %d" % port); s.recv(100); s.close(); time.sleep(0.1)
s = socket.socket(); s.settimeout(1.5)
try: s.connect(("10.9.0.1", 443))
except OSError: pass
s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b"x", ("10.9.0.1", 53))
time.sleep(0.3)
PY
ip netns exec "$C" ping -c 2 -i 0.2 -W 1 10.9.0.1 >/dev/null 2>&1 || true
sleep 0.5
kill "$DUMP"; wait "$DUMP" 2>/dev/null || true
kill "$SRV" 2>/dev/null || true
ip netns exec "$S" iptables-save -c | grep -v '^#' > "$OUT/lab1.counters"
ip -n "$S" link show eth0 | awk '/link\/ether/ {print $2}' > "$OUT/lab1.mac"
echo "recorded $(tcpdump -r "$OUT/lab1.pcap" 2>/dev/null | wc -l) packets"
