# Sends one TCP SYN with TTL 1: send_ttl1.py SRC DST SPORT DPORT (raw socket, any source).
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b)//2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16; return (~s) & 0xffff
src, dst, sp, dp = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t = struct.pack('!HHIIBBHHH', sp, dp, 1000, 0, 5 << 4, 2, 64240, 0, 0)
ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 6, len(t))
t = t[:16] + struct.pack('!H', csum(ph + t)) + t[18:]
h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(t), 1, 0, 1, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(h + t, (dst, 0))
