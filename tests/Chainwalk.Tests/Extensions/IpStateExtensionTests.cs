using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Shouldly;
using Chainwalk.Tests.Support;
using Xunit;

namespace Chainwalk.Tests.Extensions;

/// <summary>
/// The connection-state and IP-header matches (conntrack, state, mac, mark, addrtype, connmark, iprange, pkttype,
/// hl, ttl, connlimit, connbytes, connlabel, helper, cpu, tos, dscp, ecn, realm, devgroup, physdev): each row is
/// <c>TOOL -t TABLE -A CHAIN RULE</c>, then <c>-S CHAIN</c>, <c>-L CHAIN -n</c> and <c>-L CHAIN</c>; every expected
/// value was taken from the real iptables 1.8.9 (nf_tables) in a private network namespace.
/// </summary>
public class IpStateExtensionTests
{
    [Theory]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m state --state NEW,RELATED", 0, "", "-A INPUT -m state --state NEW,RELATED", "           0    --  0.0.0.0/0            0.0.0.0/0            state NEW,RELATED", "           all  --  anywhere             anywhere             state NEW,RELATED")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m state ! --state INVALID,UNTRACKED", 0, "", "-A INPUT -m state ! --state INVALID,UNTRACKED", "           0    --  0.0.0.0/0            0.0.0.0/0            ! state INVALID,UNTRACKED", "           all  --  anywhere             anywhere             ! state INVALID,UNTRACKED")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m state --state SNAT", 2, "iptables v1.8.9 (nf_tables): Bad state \"SNAT\"", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m state", 2, "iptables v1.8.9 (nf_tables): state: option \"--state\" must be specified", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack --ctstate ESTABLISHED,RELATED", 0, "", "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED", "           0    --  0.0.0.0/0            0.0.0.0/0            ctstate RELATED,ESTABLISHED", "           all  --  anywhere             anywhere             ctstate RELATED,ESTABLISHED")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack ! --ctstate NEW --ctproto tcp --ctorigsrc 10.0.0.0/8 ! --ctorigdst 127.0.0.1 --ctstatus ASSURED,SEEN_REPLY --ctexpire 10:20 --ctdir REPLY", 0, "", "-A INPUT -m conntrack ! --ctstate NEW --ctproto 6 --ctorigsrc 10.0.0.0/8 ! --ctorigdst 127.0.0.1 --ctstatus SEEN_REPLY,ASSURED --ctexpire 10:20 --ctdir REPLY", "           0    --  0.0.0.0/0            0.0.0.0/0            ! ctstate NEW ctproto 6 ctorigsrc 10.0.0.0/8 ! ctorigdst 127.0.0.1 ctstatus SEEN_REPLY,ASSURED ctexpire 10:20 ctdir REPLY", "           all  --  anywhere             anywhere             ! ctstate NEW ctproto 6 ctorigsrc 10.0.0.0/8 ! ctorigdst localhost ctstatus SEEN_REPLY,ASSURED ctexpire 10:20 ctdir REPLY")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack --ctorigsrcport 1000:2000 --ctrepldstport 22", 0, "", "-A INPUT -m conntrack --ctorigsrcport 1000:2000 --ctrepldstport 22", "           0    --  0.0.0.0/0            0.0.0.0/0            ctorigsrcport 1000:2000 ctrepldstport 22", "           all  --  anywhere             anywhere             ctorigsrcport 1000:2000 ctrepldstport 22")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack --ctreplsrc 0.0.0.0/0", 0, "", "-A INPUT -m conntrack --ctreplsrc 0.0.0.0/0", "           0    --  0.0.0.0/0            0.0.0.0/0            ctreplsrc 0.0.0.0/0", "           all  --  anywhere             anywhere             ctreplsrc anywhere")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack --ctstatus NONE", 0, "", "-A INPUT -m conntrack --ctstatus NONE", "           0    --  0.0.0.0/0            0.0.0.0/0            ctstatus NONE", "           all  --  anywhere             anywhere             ctstatus NONE")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack", 2, "iptables v1.8.9 (nf_tables): conntrack: At least one option is required", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack --ctstate NEW,", 2, "iptables v1.8.9 (nf_tables): Bad ctstate \"\"", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack --ctexpire 5x", 2, "iptables v1.8.9 (nf_tables): conntrack: Argument to \"--ctexpire\" has unexpected characters near \"x\".", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack --ctorigsrc 1.2.3.4/x", 2, "iptables v1.8.9 (nf_tables): conntrack: bad value for option \"--ctorigsrc\", neither a valid network mask nor valid CIDR (0-32).", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack ! --ctdir REPLY", 2, "iptables v1.8.9 (nf_tables): conntrack: option \"--ctdir\" cannot be inverted.", "", "", "")]
    [InlineData(IpFamily.V6, "filter", "INPUT", "-m conntrack --ctorigsrc 2001:db8::1/64 ! --ctrepldst ::", 0, "", "-A INPUT -m conntrack --ctorigsrc 2001:db8::1/64 ! --ctrepldst ::", "           0    --  ::/0                 ::/0                 ctorigsrc 2001:db8::1/64 ! ctrepldst ::", "           all  --  anywhere             anywhere             ctorigsrc 2001:db8::1/64 ! ctrepldst anywhere")]
    [InlineData(IpFamily.V6, "filter", "INPUT", "-m state --state ESTABLISHED", 0, "", "-A INPUT -m state --state ESTABLISHED", "           0    --  ::/0                 ::/0                 state ESTABLISHED", "           all  --  anywhere             anywhere             state ESTABLISHED")]
    [InlineData(IpFamily.V4, "filter", "FORWARD", "-m mac --mac-source 00:11:22:AA:bb:0c", 0, "", "-A FORWARD -m mac --mac-source 00:11:22:aa:bb:0c", "           0    --  0.0.0.0/0            0.0.0.0/0            MAC 00:11:22:aa:bb:0c", "           all  --  anywhere             anywhere             MAC 00:11:22:aa:bb:0c")]
    [InlineData(IpFamily.V4, "filter", "FORWARD", "-m mac ! --mac-source 42:01:02:03:04:05", 0, "", "-A FORWARD -m mac ! --mac-source 42:01:02:03:04:05", "           0    --  0.0.0.0/0            0.0.0.0/0            MAC ! 42:01:02:03:04:05", "           all  --  anywhere             anywhere             MAC ! 42:01:02:03:04:05")]
    [InlineData(IpFamily.V4, "filter", "FORWARD", "-m mac --mac-source 42:01:02:03:04", 2, "iptables v1.8.9 (nf_tables): Invalid MAC address specified.", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "OUTPUT", "-m mac --mac-source 42:01:02:03:04:05", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain OUTPUT", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m mark --mark 0x10/0xff", 0, "", "-A INPUT -m mark --mark 0x10/0xff", "           0    --  0.0.0.0/0            0.0.0.0/0            mark match 0x10/0xff", "           all  --  anywhere             anywhere             mark match 0x10/0xff")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m mark ! --mark 7", 0, "", "-A INPUT -m mark ! --mark 0x7", "           0    --  0.0.0.0/0            0.0.0.0/0            mark match ! 0x7", "           all  --  anywhere             anywhere             mark match ! 0x7")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m mark --mark 1x", 2, "iptables v1.8.9 (nf_tables): mark: trailing garbage after value for option \"--mark\".", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m mark --mark 4294967296", 2, "iptables v1.8.9 (nf_tables): mark: bad integer value for option \"--mark\", or out of range.", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m addrtype --src-type LOCAL,UNICAST ! --dst-type BROADCAST", 0, "", "-A INPUT -m addrtype --src-type UNICAST,LOCAL ! --dst-type BROADCAST", "           0    --  0.0.0.0/0            0.0.0.0/0            ADDRTYPE match src-type UNICAST,LOCAL dst-type !BROADCAST", "           all  --  anywhere             anywhere             ADDRTYPE match src-type UNICAST,LOCAL dst-type !BROADCAST")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m addrtype --dst-type LOCAL --limit-iface-in", 0, "", "-A INPUT -m addrtype --dst-type LOCAL --limit-iface-in", "           0    --  0.0.0.0/0            0.0.0.0/0            ADDRTYPE match dst-type LOCAL limit-in", "           all  --  anywhere             anywhere             ADDRTYPE match dst-type LOCAL limit-in")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m addrtype --dst-type LOCAL --limit-iface-out", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m addrtype --src-type wrong", 2, "iptables v1.8.9 (nf_tables): addrtype: bad type \"wrong\"", "", "", "")]
    [InlineData(IpFamily.V6, "filter", "INPUT", "-m addrtype --src-type BROADCAST", 4, "ip6tables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData(IpFamily.V6, "filter", "INPUT", "-m addrtype --dst-type LOCAL", 0, "", "-A INPUT -m addrtype --dst-type LOCAL", "           0    --  ::/0                 ::/0                 ADDRTYPE match dst-type LOCAL", "           all  --  anywhere             anywhere             ADDRTYPE match dst-type LOCAL")]
    [InlineData(IpFamily.V4, "mangle", "PREROUTING", "-m connmark --mark 0x1/0x1", 0, "", "-A PREROUTING -m connmark --mark 0x1/0x1", "           0    --  0.0.0.0/0            0.0.0.0/0            connmark match  0x1/0x1", "           all  --  anywhere             anywhere             connmark match  0x1/0x1")]
    [InlineData(IpFamily.V4, "mangle", "PREROUTING", "-m connmark ! --mark 5", 0, "", "-A PREROUTING -m connmark ! --mark 0x5", "           0    --  0.0.0.0/0            0.0.0.0/0            connmark match ! 0x5", "           all  --  anywhere             anywhere             connmark match ! 0x5")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m iprange --src-range 10.0.0.1-10.0.0.9 ! --dst-range 192.168.1.1-192.168.1.2", 0, "", "-A INPUT -m iprange --src-range 10.0.0.1-10.0.0.9 ! --dst-range 192.168.1.1-192.168.1.2", "           0    --  0.0.0.0/0            0.0.0.0/0            source IP range 10.0.0.1-10.0.0.9 destination IP range ! 192.168.1.1-192.168.1.2", "           all  --  anywhere             anywhere             source IP range 10.0.0.1-10.0.0.9 destination IP range ! 192.168.1.1-192.168.1.2")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m iprange --src-range 10.0.0.300-10.0.0.9", 2, "iptables v1.8.9 (nf_tables): iprange: Bad value for \"--src-range\" option: \"10.0.0.300\"", "", "", "")]
    [InlineData(IpFamily.V6, "filter", "INPUT", "-m iprange ! --src-range 2001:db8::1-2001:db8::ff", 0, "", "-A INPUT -m iprange ! --src-range 2001:db8::1-2001:db8::ff", "           0    --  ::/0                 ::/0                 source IP range ! 2001:db8::1-2001:db8::ff", "           all  --  anywhere             anywhere             source IP range ! 2001:db8::1-2001:db8::ff")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m pkttype --pkt-type multicast", 0, "", "-A INPUT -m pkttype --pkt-type multicast", "           0    --  0.0.0.0/0            0.0.0.0/0            PKTTYPE = multicast", "           all  --  anywhere             anywhere             PKTTYPE = multicast")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m pkttype ! --pkt-type host", 0, "", "-A INPUT -m pkttype ! --pkt-type unicast", "           0    --  0.0.0.0/0            0.0.0.0/0            PKTTYPE != unicast", "           all  --  anywhere             anywhere             PKTTYPE != unicast")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m pkttype --pkt-type wrong", 2, "iptables v1.8.9 (nf_tables): Bad packet type 'wrong'", "", "", "")]
    [InlineData(IpFamily.V6, "filter", "INPUT", "-m hl --hl-gt 5", 0, "", "-A INPUT -m hl --hl-gt 5", "           0    --  ::/0                 ::/0                 HL match HL > 5", "           all  --  anywhere             anywhere             HL match HL > 5")]
    [InlineData(IpFamily.V6, "filter", "INPUT", "-m hl ! --hl 64", 0, "", "-A INPUT -m hl ! --hl-eq 64", "           0    --  ::/0                 ::/0                 HL match HL != 64", "           all  --  anywhere             anywhere             HL match HL != 64")]
    [InlineData(IpFamily.V6, "filter", "INPUT", "-m hl --hl-lt 1 --hl-eq 2", 2, "ip6tables v1.8.9 (nf_tables): hl: option \"--hl-lt\" cannot be used together with \"--hl-eq\".", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m ttl --ttl-lt 3", 0, "", "-A INPUT -m ttl --ttl-lt 3", "           0    --  0.0.0.0/0            0.0.0.0/0            TTL match TTL < 3", "           all  --  anywhere             anywhere             TTL match TTL < 3")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m ttl ! --ttl-eq 64", 0, "", "-A INPUT -m ttl ! --ttl-eq 64", "           0    --  0.0.0.0/0            0.0.0.0/0            TTL match TTL != 64", "           all  --  anywhere             anywhere             TTL match TTL != 64")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m ttl", 2, "iptables v1.8.9 (nf_tables): TTL match: You must specify one of `--ttl-eq', `--ttl-lt', `--ttl-gt", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-p tcp --syn -m connlimit --connlimit-above 10 --connlimit-mask 24", 0, "", "-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 10 --connlimit-mask 24 --connlimit-saddr", "           6    --  0.0.0.0/0            0.0.0.0/0            tcp flags:0x17/0x02 #conn src/24 > 10", "           tcp  --  anywhere             anywhere             tcp flags:FIN,SYN,RST,ACK/SYN #conn src/24 > 10")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m connlimit ! --connlimit-above 2 --connlimit-daddr", 0, "", "-A INPUT -m connlimit --connlimit-upto 2 --connlimit-mask 32 --connlimit-daddr", "           0    --  0.0.0.0/0            0.0.0.0/0            #conn dst/32 <= 2", "           all  --  anywhere             anywhere             #conn dst/32 <= 2")]
    [InlineData(IpFamily.V6, "filter", "INPUT", "-m connlimit --connlimit-upto 4 --connlimit-mask 64", 0, "", "-A INPUT -m connlimit --connlimit-upto 4 --connlimit-mask 64 --connlimit-saddr", "           0    --  ::/0                 ::/0                 #conn src/64 <= 4", "           all  --  anywhere             anywhere             #conn src/64 <= 4")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m connbytes --connbytes 10:100 --connbytes-mode bytes --connbytes-dir both", 0, "", "-A INPUT -m connbytes --connbytes 10:100 --connbytes-mode bytes --connbytes-dir both", "           0    --  0.0.0.0/0            0.0.0.0/0            connbytes 10:100 connbytes mode bytes connbytes direction both", "           all  --  anywhere             anywhere             connbytes 10:100 connbytes mode bytes connbytes direction both")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m connbytes ! --connbytes 10 --connbytes-mode avgpkt --connbytes-dir reply", 0, "", "-A INPUT -m connbytes ! --connbytes 10 --connbytes-mode avgpkt --connbytes-dir reply", "           0    --  0.0.0.0/0            0.0.0.0/0            ! connbytes 10 connbytes mode avgpkt connbytes direction reply", "           all  --  anywhere             anywhere             ! connbytes 10 connbytes mode avgpkt connbytes direction reply")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m connbytes --connbytes 10:1 --connbytes-mode avgpkt --connbytes-dir reply", 2, "iptables v1.8.9 (nf_tables): 10 should be less than 1", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m connlabel ! --label 7 --set", 0, "", "-A INPUT -m connlabel ! --label \"7\" --set", "           0    --  0.0.0.0/0            0.0.0.0/0            connlabel ! 7 set", "           all  --  anywhere             anywhere             connlabel ! 7 set")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m connlabel --label 128", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Numerical result out of range): rule in chain INPUT", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m helper --helper ftp", 0, "", "-A INPUT -m helper --helper ftp", "           0    --  0.0.0.0/0            0.0.0.0/0            helper match \"ftp\"", "           all  --  anywhere             anywhere             helper match \"ftp\"")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m helper ! --helper \"sip 2\"", 0, "", "-A INPUT -m helper ! --helper \"sip 2\"", "           0    --  0.0.0.0/0            0.0.0.0/0            helper match ! \"sip 2\"", "           all  --  anywhere             anywhere             helper match ! \"sip 2\"")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m cpu ! --cpu 2", 0, "", "-A INPUT -m cpu ! --cpu 2", "           0    --  0.0.0.0/0            0.0.0.0/0            cpu ! 2", "           all  --  anywhere             anywhere             cpu ! 2")]
    [InlineData(IpFamily.V4, "mangle", "PREROUTING", "-m tos --tos Minimize-Delay", 0, "", "-A PREROUTING -m tos --tos 0x10/0x3f", "           0    --  0.0.0.0/0            0.0.0.0/0            tos match0x10/0x3f", "           all  --  anywhere             anywhere             tos match Minimize-Delay")]
    [InlineData(IpFamily.V4, "mangle", "PREROUTING", "-m tos ! --tos 0x08/0x0f", 0, "", "-A PREROUTING -m tos ! --tos 0x08/0x0f", "           0    --  0.0.0.0/0            0.0.0.0/0            tos match!0x08/0x0f", "           all  --  anywhere             anywhere             tos match!0x08/0x0f")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m dscp --dscp-class AF41", 0, "", "-A INPUT -m dscp --dscp 0x22", "           0    --  0.0.0.0/0            0.0.0.0/0            DSCP match 0x22", "           all  --  anywhere             anywhere             DSCP match 0x22")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m dscp ! --dscp 0x2e", 0, "", "-A INPUT -m dscp ! --dscp 0x2e", "           0    --  0.0.0.0/0            0.0.0.0/0            DSCP match !0x2e", "           all  --  anywhere             anywhere             DSCP match !0x2e")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m dscp --dscp 64", 2, "iptables v1.8.9 (nf_tables): dscp: bad value for option \"--dscp\", or out of range (0-63).", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-p tcp -m ecn --ecn-tcp-ece ! --ecn-ip-ect 2", 0, "", "-A INPUT -p tcp -m ecn --ecn-tcp-ece ! --ecn-ip-ect 2", "           6    --  0.0.0.0/0            0.0.0.0/0            ECN match ECE !ECT=2", "           tcp  --  anywhere             anywhere             ECN match ECE !ECT=2")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m ecn --ecn-tcp-cwr", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m realm --realm 0x2a", 0, "", "-A INPUT -m realm --realm 0x2a", "           0    --  0.0.0.0/0            0.0.0.0/0            realm 0x2a", "           all  --  anywhere             anywhere             realm 0x2a")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m realm ! --realm cosmos", 0, "", "-A INPUT -m realm ! --realm cosmos", "           0    --  0.0.0.0/0            0.0.0.0/0            ! realm 0x0", "           all  --  anywhere             anywhere             ! realm cosmos")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m devgroup --src-group default ! --dst-group 3/0xf", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m physdev --physdev-in br+ ! --physdev-is-bridged", 0, "", "-A INPUT -m physdev --physdev-in br+ ! --physdev-is-bridged", "           0    --  0.0.0.0/0            0.0.0.0/0            PHYSDEV match --physdev-in br+ ! --physdev-is-bridged", "           all  --  anywhere             anywhere             PHYSDEV match --physdev-in br+ ! --physdev-is-bridged")]
    [InlineData(IpFamily.V4, "filter", "OUTPUT", "-m physdev --physdev-out eth0", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain OUTPUT", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack --ctorigsrcport +5 --ctorigdstport 4294967296", 0, "", "-A INPUT -m conntrack --ctorigsrcport 5 --ctorigdstport 0", "           0    --  0.0.0.0/0            0.0.0.0/0            ctorigsrcport 5 ctorigdstport 0", "           all  --  anywhere             anywhere             ctorigsrcport 5 ctorigdstport 0")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack --ctorigsrcport -2", 2, "iptables v1.8.9 (nf_tables): Port \"-2\" does not resolve to anything.", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack --ctorigsrc 256.1.1.1", 2, "iptables v1.8.9 (nf_tables): getaddrinfo: Name or service not known", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack --ctorigsrc 1.2.3", 0, "", "-A INPUT -m conntrack --ctorigsrc 1.2.0.3", "           0    --  0.0.0.0/0            0.0.0.0/0            ctorigsrc 1.2.0.3", "           all  --  anywhere             anywhere             ctorigsrc 1.2.0.3")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack --ctorigsrc 1.2.3.4/255.0.255.0 --ctrepldst 10.1.2.3/16", 0, "", "-A INPUT -m conntrack --ctorigsrc 1.2.3.4 --ctrepldst 10.1.2.3/16", "           0    --  0.0.0.0/0            0.0.0.0/0            ctorigsrc 1.2.3.4 ctrepldst 10.1.2.3/16", "           all  --  anywhere             anywhere             ctorigsrc 1.2.3.4 ctrepldst 10.1.2.3/16")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m conntrack --ctexpire 1:2:3", 2, "iptables v1.8.9 (nf_tables): conntrack: Too many components for option \"--ctexpire\" (max: 2)", "", "", "")]
    [InlineData(IpFamily.V6, "filter", "INPUT", "-m conntrack --ctorigsrc 1.2.3.4", 2, "ip6tables v1.8.9 (nf_tables): getaddrinfo: Address family for hostname not supported", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m physdev ! --physdev-is-bridged --physdev-is-out", 0, "", "-A INPUT -m physdev --physdev-is-out ! --physdev-is-bridged", "           0    --  0.0.0.0/0            0.0.0.0/0            PHYSDEV match --physdev-is-out ! --physdev-is-bridged", "           all  --  anywhere             anywhere             PHYSDEV match --physdev-is-out ! --physdev-is-bridged")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m ttl --ttl 5 --ttl-eq 6", 2, "iptables v1.8.9 (nf_tables): ttl: option \"--ttl-eq\" can only be used once.", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m ttl ! --ttl 5", 0, "", "-A INPUT -m ttl ! --ttl-eq 5", "           0    --  0.0.0.0/0            0.0.0.0/0            TTL match TTL != 5", "           all  --  anywhere             anywhere             TTL match TTL != 5")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m iprange --src-range 10.0.0.9-10.0.0.1", 0, "xt_iprange: range 10.0.0.9-10.0.0.1 is reversed and will never match", "-A INPUT -m iprange --src-range 10.0.0.9-10.0.0.1", "           0    --  0.0.0.0/0            0.0.0.0/0            source IP range 10.0.0.9-10.0.0.1", "           all  --  anywhere             anywhere             source IP range 10.0.0.9-10.0.0.1")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m connlabel --label foo", 2, "Warning: cannot open /etc/xtables/connlabel.conf: No such file or directory", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m addrtype --limit-iface-in --limit-iface-out", 2, "iptables v1.8.9 (nf_tables): addrtype: you must specify --src-type or --dst-type", "", "", "")]
    [InlineData(IpFamily.V6, "filter", "INPUT", "-m hl --hl-gt 42 --hl-eq 42", 2, "ip6tables v1.8.9 (nf_tables): hl: option \"--hl-gt\" cannot be used together with \"--hl-eq\".", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m connbytes --connbytes 0:1000 --connbytes-dir original", 2, "iptables v1.8.9 (nf_tables): connbytes: option \"--connbytes-mode\" must be specified", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m dscp --dscp-class af111", 0, "", "-A INPUT -m dscp --dscp 0x0a", "           0    --  0.0.0.0/0            0.0.0.0/0            DSCP match 0x0a", "           all  --  anywhere             anywhere             DSCP match 0x0a")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m tos --tos 1/0x100", 2, "iptables v1.8.9 (nf_tables): Illegal value: \"1/0x100\"", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m realm --realm foo", 2, "iptables v1.8.9 (nf_tables): realm: could not map name foo to an integer value for option \"--realm\".", "", "", "")]
    [InlineData(IpFamily.V4, "filter", "INPUT", "-m mac --mac-source ::::: ", 0, "", "-A INPUT -m mac --mac-source 00:00:00:00:00:00", "           0    --  0.0.0.0/0            0.0.0.0/0            MAC 00:00:00:00:00:00", "           all  --  anywhere             anywhere             MAC 00:00:00:00:00:00")]
    public void RuleMatchesRealIptables(IpFamily family, string table, string chain, string rule, int exit, string firstError,
        string saved, string listNumeric, string list)
    {
        string dir = Path.Combine(Path.GetTempPath(), "cw-ipstate-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var store = new HostStore(dir);
            string[] ruleArgs = SplitArgs(rule);
            var (rc, _, err) = Run(family, store, ["-t", table, "-A", chain, .. ruleArgs]);
            rc.ShouldBe(exit);
            (err.Split('\n').FirstOrDefault() ?? string.Empty).ShouldBe(firstError);
            if (exit != 0) return;
            LastLine(Run(family, store, ["-t", table, "-S", chain]).Out, "-A").ShouldBe(saved);
            LastLine(Run(family, store, ["-t", table, "-L", chain, "-n"]).Out, null).ShouldBe(listNumeric);
            LastLine(Run(family, store, ["-t", table, "-L", chain]).Out, null).ShouldBe(list);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Under nf_tables, checkentry sees a hook only in built-in chains: hook-dependent refusals (addrtype's
    /// limit-iface, devgroup, physdev-out) do not apply in user chains, while a module's fixed hooks (mac) are
    /// still checked against every chain that reaches the rule. Exit codes from the real iptables 1.8.9.
    /// </summary>
    [Theory]
    [InlineData("-m devgroup --src-group 1", "OUTPUT", 0)]
    [InlineData("-m addrtype --src-type LOCAL --limit-iface-out", "INPUT", 0)]
    [InlineData("-m physdev --physdev-out eth0", "OUTPUT", 0)]
    [InlineData("-m mac --mac-source 00:11:22:33:44:55", "OUTPUT", 4)]
    [InlineData("-m realm --realm 1", "OUTPUT", 0)]
    public void UserChainCheckentrySeesNoHook(string rule, string from, int exitOfJump)
    {
        string dir = Path.Combine(Path.GetTempPath(), "cw-ipstate-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var store = new HostStore(dir);
            Run(IpFamily.V4, store, ["-N", "x"]).Rc.ShouldBe(0);
            Run(IpFamily.V4, store, ["-A", "x", .. SplitArgs(rule)]).Rc.ShouldBe(0);
            Run(IpFamily.V4, store, ["-A", from, "-j", "x"]).Rc.ShouldBe(exitOfJump);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static (int Rc, string Out, string Err) Run(IpFamily family, HostStore store, string[] args) =>
        CompatRun.Iptables(family, store, args);

    private static string LastLine(string text, string? prefix) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last(l => prefix is null || l.StartsWith(prefix, StringComparison.Ordinal));

    private static string[] SplitArgs(string rule) => CompatRun.SplitWords(rule);
}
