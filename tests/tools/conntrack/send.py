import socket, struct, sys
def csum(b):
    if len(b)%2: b+=b'\0'
    s=sum(struct.unpack('!%dH'%(len(b)//2),b)); s=(s>>16)+(s&0xffff); s+=s>>16; return (~s)&0xffff
def ip(src,dst,proto,payload):
    h=struct.pack('!BBHHHBBH4s4s',0x45,0,20+len(payload),1,0,64,proto,0,socket.inet_aton(src),socket.inet_aton(dst))
    h=h[:10]+struct.pack('!H',csum(h))+h[12:]
    return h+payload
def tcp(src,dst,sp,dp,flags,seq,ack,data=b'',win=64240,badsum=False):
    F={'F':1,'S':2,'R':4,'P':8,'A':16}
    fl=sum(F[c] for c in flags)
    t=struct.pack('!HHIIBBHHH',sp,dp,seq,ack,5<<4,fl,win,0,0)+data
    ph=socket.inet_aton(src)+socket.inet_aton(dst)+struct.pack('!BBH',0,6,len(t))
    c=csum(ph+t)
    if badsum: c^=0x1234
    t=t[:16]+struct.pack('!H',c)+t[18:]
    return ip(src,dst,6,t)
def udp(src,dst,sp,dp,data=b'x'):
    u=struct.pack('!HHHH',sp,dp,8+len(data),0)+data
    ph=socket.inet_aton(src)+socket.inet_aton(dst)+struct.pack('!BBH',0,17,len(u))
    c=csum(ph+u) or 0xffff
    return ip(src,dst,17,u[:6]+struct.pack('!H',c)+u[8:])
def icmp(src,dst,typ,code,rest,data=b''):
    m=struct.pack('!BBHI',typ,code,0,rest)+data
    return ip(src,dst,1,m[:2]+struct.pack('!H',csum(m))+m[4:])
s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_RAW)
a=sys.argv[1:]
kind=a[0]
if kind=='tcp':
    src,dst,sp,dp,flags,seq,ack,n=a[1],a[2],int(a[3]),int(a[4]),a[5],int(a[6]),int(a[7]),int(a[8])
    pkt=tcp(src,dst,sp,dp,flags.replace('.',''),seq,ack,b'a'*n,badsum=len(a)>9)
elif kind=='udp':
    pkt=udp(a[1],a[2],int(a[3]),int(a[4]))
elif kind=='echo':
    pkt=icmp(a[1],a[2],int(a[3]),0,(int(a[4])<<16)|1,b'ping')
elif kind=='gre':  # GRE version 0 carrying 4 bytes
    pkt=ip(a[1],a[2],47,struct.pack('!HH',0,0x0800)+b'abcd')
elif kind=='unreach':  # src dst  quoted: udp qsrc qdst qsp qdp
    q=udp(a[3],a[4],int(a[5]),int(a[6]))
    pkt=icmp(a[1],a[2],3,3,0,q[:28])
s.sendto(pkt,(a[2],0))
