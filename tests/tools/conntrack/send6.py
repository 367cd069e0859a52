# Sends one hand-made IPv6 packet (raw, header included) for record-conntrack6.sh.
import socket, struct, sys
def csum(b):
    if len(b)%2: b+=b'\0'
    s=sum(struct.unpack('!%dH'%(len(b)//2),b)); s=(s>>16)+(s&0xffff); s+=s>>16; return (~s)&0xffff
def ip6(src,dst,nh,payload):
    return struct.pack('!IHBB',6<<28,len(payload),nh,64)+socket.inet_pton(socket.AF_INET6,src)+socket.inet_pton(socket.AF_INET6,dst)+payload
def l4sum(src,dst,nh,body):
    ph=socket.inet_pton(socket.AF_INET6,src)+socket.inet_pton(socket.AF_INET6,dst)+struct.pack('!IxxxB',len(body),nh)
    return csum(ph+body)
def icmp6(src,dst,typ,code,rest,data=b''):
    m=struct.pack('!BBHI',typ,code,0,rest)+data
    c=l4sum(src,dst,58,m)
    return ip6(src,dst,58,m[:2]+struct.pack('!H',c)+m[4:])
def udp6(src,dst,sp,dp,data=b'x'):
    u=struct.pack('!HHHH',sp,dp,8+len(data),0)+data
    c=l4sum(src,dst,17,u) or 0xffff
    return ip6(src,dst,17,u[:6]+struct.pack('!H',c)+u[8:])
a=sys.argv[1:]
if a[0]=='echo': pkt=icmp6(a[1],a[2],int(a[3]),0,(int(a[4])<<16)|1,b'ping')
elif a[0]=='udp': pkt=udp6(a[1],a[2],int(a[3]),int(a[4]))
elif a[0]=='unreach':
    q=udp6(a[3],a[4],int(a[5]),int(a[6]))
    pkt=icmp6(a[1],a[2],1,4,0,q)
s=socket.socket(socket.AF_INET6,socket.SOCK_RAW,socket.IPPROTO_RAW)
s.sendto(pkt,(a[2],0))
