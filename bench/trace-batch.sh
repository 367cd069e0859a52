#!/usr/bin/env bash
# Times `chainwalk trace --batch` of N packets (default 1000) aimed at the rules of a large rule set
# (default: the largest file of the shared corpus, ~5k rules), end to end: one process, one host.
# Usage: bench/trace-batch.sh [RULES_FILE] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
RULES=${1:-../shared/corpus/other/tum-net-firewall-2015-09-03.rules}
N=${2:-1000}
HOST=$(mktemp -d /tmp/cw-bench-XXXXXX)
trap 'rm -rf "$HOST"' EXIT
CW="./chainwalk --host $HOST"
# Interfaces the rules name (with '+' wildcards made concrete), each up, plus a default route.
python3 - "$RULES" "$N" "$HOST" > "$HOST/setup" <<'PY'
import random, re, sys, json
rules, n, host = sys.argv[1], int(sys.argv[2]), sys.argv[3]
text = open(rules).read()
ifaces = sorted(set(m.rstrip('+') + ('0' if m.endswith('+') else '') for m in re.findall(r'-[io] ([A-Za-z0-9_.+-]+)', text)))[:200]
if 'eth0' not in ifaces: ifaces.insert(0, 'eth0')
print('\n'.join(f'ip link add {i} type dummy\nip link set {i} up' for i in ifaces if i != 'lo'))
print('ip addr add 10.255.255.1/8 dev eth0')
print('ip route add default via 10.0.0.254 dev eth0')
print('sysctl -w net.ipv4.ip_forward=1')
random.seed(1)
lines = [l for l in text.split('\n') if l.startswith('-A ')]
out = open(host + '/batch.jsonl', 'w')
for k in range(n):
    l = random.choice(lines)
    def grab(opt, default):
        m = re.search(r'(?<!!)\s' + opt + r' ([^ ]+)', ' ' + l)
        return m.group(1) if m else default
    src = grab('-s', '198.51.100.%d/32' % random.randint(1, 254)).split('/')[0]
    dst = grab('-d', '203.0.113.%d/32' % random.randint(1, 254)).split('/')[0]
    proto = grab('-p', random.choice(['tcp', 'udp']))
    if proto not in ('tcp', 'udp', 'icmp'): proto = 'tcp'
    iface = grab('-i', random.choice(ifaces)).rstrip('+')
    if iface not in ifaces: iface = 'eth0'
    p = {'in': iface, 'proto': proto, 'src': src, 'dst': dst}
    if proto != 'icmp':
        port = grab('--dport', str(random.randint(1, 65535))).split(':')[0]
        p['dport'] = int(port) if port.isdigit() else 80
        p['sport'] = random.randint(1024, 65535)
        if proto == 'tcp': p['flags'] = 'SYN'
    out.write(json.dumps(p) + '\n')
PY
while read -r line; do $CW $line >/dev/null; done < "$HOST/setup"
# The TUM firewall's MAC addresses were anonymised to XX:XX:…: make them valid (as ../shared/corpus/SOURCES.md suggests).
sed 's/XX:XX:XX:XX:XX:XX/02:00:00:00:00:01/g' "$RULES" > "$HOST/rules"
$CW iptables-restore "$HOST/rules"
echo "rules: $(grep -c '^-A' "$RULES") in $RULES; packets: $N"
start=$(date +%s.%N)
$CW trace --batch "$HOST/batch.jsonl" --json > "$HOST/out.jsonl" || echo "(trace exit code $?)"
end=$(date +%s.%N)
python3 - "$HOST/out.jsonl" "$start" "$end" <<'PY'
import json, sys, collections
fates = collections.Counter()
for l in open(sys.argv[1]):
    o = json.loads(l); fates[o['fate'][0] if o['fate'] else '-'] += 1
print('fates:', dict(fates))
print('trace --batch wall time: %.2f s (includes process start and loading the rules)' % (float(sys.argv[3]) - float(sys.argv[2])))
PY
