# Prints each IPv4/IPv6 packet received on an interface as the NAT tests describe it:
# "<label> 198.51.100.2:40000 > 93.184.216.34:80 S" (+ " badsum" when a checksum is wrong).
import socket, struct, sys
ifname, label, out = sys.argv[1], sys.argv[2], sys.argv[3]
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b)//2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16; return (~s) & 0xffff
def addr(fam, a): return socket.inet_ntop(fam, a)
def parse(ip, quoted=False):
    v = ip[0] >> 4
    if v == 4:
        fam, hl, proto, src, dst = socket.AF_INET, (ip[0] & 15)*4, ip[9], ip[12:16], ip[16:20]
        tot = struct.unpack('!H', ip[2:4])[0]
        ok = quoted or csum(ip[:hl]) == 0
        l4 = ip[hl:tot] if not quoted else ip[hl:]
        ph = src + dst + struct.pack('!BBH', 0, proto, len(l4))
    else:
        fam, hl, proto, src, dst = socket.AF_INET6, 40, ip[6], ip[8:24], ip[24:40]
        tot = 40 + struct.unpack('!H', ip[4:6])[0]
        ok = True
        l4 = ip[40:tot] if not quoted else ip[40:]
        ph = src + dst + struct.pack('!IxxxB', len(l4), proto)
    def end(a, p): return ('[%s]:%d' if v == 6 else '%s:%d') % (addr(fam, a), p) if p is not None else addr(fam, a)
    sp = dp = None; tail = ''
    if proto in (6, 17, 132) and len(l4) >= 4:
        sp, dp = struct.unpack('!HH', l4[:4])
    if proto == 6 and len(l4) >= 20:
        fl = l4[13]; tail = ' ' + ''.join(c for c, b in (('S', 2), ('F', 1), ('R', 4), ('P', 8), ('A', 16)) if fl & b)
        if not quoted and csum(ph + l4) != 0: ok = False
    if proto == 17 and not quoted and len(l4) >= 8 and l4[6:8] != b'\0\0' and csum(ph + l4) != 0: ok = False
    if proto in (1, 58) and len(l4) >= 8:
        t = l4[0]; err = (t in (3, 4, 5, 11, 12)) if proto == 1 else t < 128
        tail = ' icmp %d' % t + ('' if err else ' id %d' % struct.unpack('!H', l4[4:6])[0])
        if not quoted:
            if (csum(l4) if proto == 1 else csum(ph + l4)) != 0: ok = False
            if err:
                q = parse(l4[8:], True)
                tail += ' quoting ' + q
    s = end(src, sp) + ' > ' + end(dst, dp) + (tail if not quoted else '')
    if not ok: s += ' badsum'
    return s
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
s.bind((ifname, 0))
f = open(out, 'a', buffering=1)
while True:
    pkt, a = s.recvfrom(65535)
    if a[2] == socket.PACKET_OUTGOING: continue
    et = struct.unpack('!H', pkt[12:14])[0]
    if et not in (0x0800, 0x86dd): continue
    ip = pkt[14:]
    if et == 0x86dd and ip[6] == 58 and len(ip) > 40 and ip[40] in (133, 134, 135, 136, 143): continue
    f.write(label + ' ' + parse(ip) + '\n')
