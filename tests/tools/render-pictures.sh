#!/usr/bin/env bash
# Renders the README's example pictures and checks them in headless Chromium (Debian's chromium):
#   docs/pictures/trace-port-forward.svg/.png  — a packet of the guide's Lab 3 (DNAT port forward) over the netfilter flow
#   docs/pictures/kube-proxy-nat.svg/.png      — the nat chain graph of the kube-proxy node (examples/demos)
# Chromium's screenshot must succeed and produce a non-empty PNG for each SVG.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=docs/pictures
H=$(mktemp -d /tmp/cw-pictures-XXXXXX)
trap 'rm -rf "$H"' EXIT
CW="./chainwalk --host $H"
$CW ip link add eth0 type dummy; $CW ip link set eth0 up; $CW ip addr add 198.51.100.2/24 dev eth0
$CW ip route add default via 198.51.100.1
$CW ip link add eth1 type dummy; $CW ip link set eth1 up; $CW ip addr add 10.0.1.1/24 dev eth1
$CW sysctl -w net.ipv4.ip_forward=1 >/dev/null
$CW iptables-restore examples/nat-gateway.rules
$CW trace -i eth0 -p tcp -s 203.0.113.9 -d 198.51.100.2 --sport 51000 --dport 443 --svg "$OUT/trace-port-forward.svg" --dry-run >/dev/null
K=$(mktemp -d /tmp/cw-pictures-k-XXXXXX)
trap 'rm -rf "$H" "$K"' EXIT
CK="./chainwalk --host $K"
$CK nfacct add ct_state_invalid_dropped_pkts; $CK nfacct add localhost_nps_accepted_pkts
$CK iptables-restore examples/demos/kube-proxy-node.rules
$CK graph -t nat -o "$OUT/kube-proxy-nat.svg"
CHROME=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROME" ] || { echo "chromium not found (apt-get install chromium)"; exit 1; }
for svg in "$OUT"/*.svg; do
  size=$(sed -n 's/.*<svg[^>]* width="\([0-9.]*\)" height="\([0-9.]*\)".*/\1,\2/p' "$svg" | head -1)
  w=${size%,*}; h=${size#*,}
  png="${svg%.svg}.png"
  timeout 120 "$CHROME" --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
    --screenshot="$PWD/$png" --window-size="${w%.*},${h%.*}" "file://$PWD/$svg" >/dev/null 2>&1
  [ -s "$png" ] || { echo "chromium did not render $svg"; exit 1; }
  echo "rendered $png (${w%.*}x${h%.*})"
done
