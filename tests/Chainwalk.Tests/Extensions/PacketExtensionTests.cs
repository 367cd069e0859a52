using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Xunit;

namespace Chainwalk.Tests.Extensions;

/// <summary>
/// The packet-header matches (udp, tcp's nft quirks, icmp, icmp6, multiport, sctp, dccp, esp, ah, ipcomp,
/// tcpmss, length, mh, frag, hbh, dst, rt, srh, ipv6header, eui64): each row appends one rule with the
/// in-process iptables/ip6tables and compares the exit code, then either the first error line or the
/// <c>-S</c> line and the last line of <c>-L</c> and <c>-L -n</c>. Every expected value was printed by the
/// real iptables 1.8.9 (nf_tables) in a private network namespace (generated from a list of rules).
/// </summary>
public sealed class PacketExtensionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cw-packet-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (int Rc, string Out, string Err) Run(IpFamily family, params string[] args) =>
        CompatRun.Iptables(family, new HostStore(_dir), args);

    private static string LastLine(string text) => text.TrimEnd('\n').Split('\n')[^1];

    private static string FirstLine(string text) => text.Split('\n')[0];

    [Theory]
    [InlineData("4", "filter", "INPUT", "-p udp -m udp --sport 53 --dport 1000:2000", 0, "-A INPUT -p udp -m udp --sport 53 --dport 1000:2000", "           udp  --  anywhere             anywhere             udp spt:domain dpts:1000:2000", "           17   --  0.0.0.0/0            0.0.0.0/0            udp spt:53 dpts:1000:2000")]
    [InlineData("4", "filter", "INPUT", "-p udp ! --dport 137:139", 0, "-A INPUT -p udp -m udp ! --dport 137:139", "           udp  --  anywhere             anywhere             udp dpts:!netbios-ns:139", "           17   --  0.0.0.0/0            0.0.0.0/0            udp dpts:!137:139")]
    [InlineData("4", "filter", "INPUT", "-p udp -m udp ! --sport 0:10", 0, "-A INPUT -p udp -m udp --sport 11:65535", "           udp  --  anywhere             anywhere             udp spts:11:65535", "           17   --  0.0.0.0/0            0.0.0.0/0            udp spts:11:65535")]
    [InlineData("4", "filter", "INPUT", "-p udp -m udp ! --sport 0:65535", 0, "-A INPUT -p udp", "           udp  --  anywhere             anywhere            ", "           17   --  0.0.0.0/0            0.0.0.0/0           ")]
    [InlineData("4", "filter", "INPUT", "-p udp -m udp --sport 70000", 0, "-A INPUT -p udp -m udp --sport 4464", "           udp  --  anywhere             anywhere             udp spt:4464", "           17   --  0.0.0.0/0            0.0.0.0/0            udp spt:4464")]
    [InlineData("4", "filter", "INPUT", "-p udp -m udp --sport 0x10", 2, "iptables v1.8.9 (nf_tables): Port \"0x10\" does not resolve to anything.", "", "")]
    [InlineData("4", "filter", "INPUT", "-p udp -m udp --sport 1:2:3", 2, "iptables v1.8.9 (nf_tables): udp: Too many components for option \"--source-port\" (max: 2)", "", "")]
    [InlineData("4", "filter", "INPUT", "-p udp -m udp --sport 1 --source-port 2", 2, "iptables v1.8.9 (nf_tables): udp: option \"--source-port\" can only be used once.", "", "")]
    [InlineData("4", "filter", "INPUT", "-m udp --dport 53", 2, "iptables v1.8.9 (nf_tables): UDP match requires '-p udp'", "", "")]
    [InlineData("4", "filter", "INPUT", "-m udp", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "")]
    [InlineData("4", "filter", "INPUT", "! -p udp -m udp --sport 3", 0, "-A INPUT ! -p udp -m udp --sport 3", "          !udp  --  anywhere             anywhere             udp spt:3", "          !17   --  0.0.0.0/0            0.0.0.0/0            udp spt:3")]
    [InlineData("4", "filter", "INPUT", "-p udp -m udp --sport 4:3", 0, "-A INPUT -p udp -m udp --sport 4:3", "           udp  --  anywhere             anywhere             udp spts:4:3", "           17   --  0.0.0.0/0            0.0.0.0/0            udp spts:4:3")]
    [InlineData("4", "filter", "INPUT", "-m tcp --dport 1", 2, "iptables v1.8.9 (nf_tables): TCP match requires '-p tcp'", "", "")]
    [InlineData("4", "filter", "INPUT", "! -p tcp -m tcp --dport 1", 0, "-A INPUT ! -p tcp -m tcp --dport 1", "          !tcp  --  anywhere             anywhere             tcp dpt:tcpmux", "          !6    --  0.0.0.0/0            0.0.0.0/0            tcp dpt:1")]
    [InlineData("4", "filter", "INPUT", "-p tcp -m tcp ! --sport 0:10 --dport 22", 0, "-A INPUT -p tcp -m tcp --sport 11:65535 --dport 22", "           tcp  --  anywhere             anywhere             tcp spts:systat:65535 dpt:ssh", "           6    --  0.0.0.0/0            0.0.0.0/0            tcp spts:11:65535 dpt:22")]
    [InlineData("4", "filter", "INPUT", "-p tcp -m tcp ! --dport 0:65535", 0, "-A INPUT -p tcp", "           tcp  --  anywhere             anywhere            ", "           6    --  0.0.0.0/0            0.0.0.0/0           ")]
    [InlineData("4", "filter", "INPUT", "-m tcp --tcp-option 3", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "")]
    [InlineData("4", "filter", "INPUT", "-p icmp --icmp-type echo-request", 0, "-A INPUT -p icmp -m icmp --icmp-type 8", "           icmp --  anywhere             anywhere             icmp echo-request", "           1    --  0.0.0.0/0            0.0.0.0/0            icmptype 8")]
    [InlineData("4", "filter", "INPUT", "-p icmp ! --icmp-type 3/1", 0, "-A INPUT -p icmp -m icmp ! --icmp-type 3/1", "           icmp --  anywhere             anywhere             icmp !host-unreachable", "           1    --  0.0.0.0/0            0.0.0.0/0            icmp !type 3 code 1")]
    [InlineData("4", "filter", "INPUT", "-p icmp --icmp-type 44", 0, "-A INPUT -p icmp -m icmp --icmp-type 44", "           icmp --  anywhere             anywhere             icmptype 44", "           1    --  0.0.0.0/0            0.0.0.0/0            icmptype 44")]
    [InlineData("4", "filter", "INPUT", "-p icmp -m icmp --icmp-type any", 0, "-A INPUT -p icmp -m icmp --icmp-type any", "           icmp --  anywhere             anywhere             icmp any", "           1    --  0.0.0.0/0            0.0.0.0/0            icmptype 255")]
    [InlineData("4", "filter", "INPUT", "-p icmp --icmp-type e", 2, "iptables v1.8.9 (nf_tables): Ambiguous ICMP type `e': `echo-reply' or `echo-request'?", "", "")]
    [InlineData("4", "filter", "INPUT", "-p icmp --icmp-type 3:4", 2, "iptables v1.8.9 (nf_tables): ICMP type range not supported", "", "")]
    [InlineData("4", "filter", "INPUT", "-p icmp --icmp-type 3/x", 2, "iptables v1.8.9 (nf_tables): Unknown ICMP code `3/x'", "", "")]
    [InlineData("4", "filter", "INPUT", "-p icmp -m icmp", 2, "iptables v1.8.9 (nf_tables): icmp: option \"--icmp-type\" must be specified", "", "")]
    [InlineData("4", "filter", "INPUT", "-m icmp --icmp-type 3", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "")]
    [InlineData("4", "filter", "INPUT", "-p tcp -m multiport --dports 22,80,443,8000:8080", 0, "-A INPUT -p tcp -m multiport --dports 22,80,443,8000:8080", "           tcp  --  anywhere             anywhere             multiport dports ssh,http,https,8000:http-alt", "           6    --  0.0.0.0/0            0.0.0.0/0            multiport dports 22,80,443,8000:8080")]
    [InlineData("4", "filter", "INPUT", "-p udp -m multiport ! --sports 53,67:68", 0, "-A INPUT -p udp -m multiport ! --sports 53,67:68", "           udp  --  anywhere             anywhere             multiport sports  !domain,bootps:bootpc", "           17   --  0.0.0.0/0            0.0.0.0/0            multiport sports  !53,67:68")]
    [InlineData("4", "filter", "INPUT", "-p sctp -m multiport --ports 1,2", 0, "-A INPUT -p sctp -m multiport --ports 1,2", "           sctp --  anywhere             anywhere             multiport ports 1,2", "           132  --  0.0.0.0/0            0.0.0.0/0            multiport ports 1,2")]
    [InlineData("4", "filter", "INPUT", "-m multiport --dports 22", 2, "iptables v1.8.9 (nf_tables): multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'", "", "")]
    [InlineData("4", "filter", "INPUT", "-p icmp -m multiport --dports 22", 2, "iptables v1.8.9 (nf_tables): multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP", "", "")]
    [InlineData("4", "filter", "INPUT", "! -p tcp -m multiport --dports 22", 2, "iptables v1.8.9 (nf_tables): multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP", "", "")]
    [InlineData("4", "filter", "INPUT", "-p tcp -m multiport", 2, "iptables v1.8.9 (nf_tables): multiport expection an option", "", "")]
    [InlineData("4", "filter", "INPUT", "-p tcp -m multiport --dports 22 --sports 33", 2, "iptables v1.8.9 (nf_tables): multiport: option \"--source-ports\" cannot be used together with \"--destination-ports\".", "", "")]
    [InlineData("4", "filter", "INPUT", "-p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", 2, "iptables v1.8.9 (nf_tables): too many ports specified", "", "")]
    [InlineData("4", "filter", "INPUT", "-p tcp -m multiport --dports 5:5", 2, "iptables v1.8.9 (nf_tables): invalid portrange specified", "", "")]
    [InlineData("4", "filter", "INPUT", "-p sctp --sport 1:2 --dport 3 --chunk-types any INIT,DATA:Be", 0, "-A INPUT -p sctp -m sctp --sport 1:2 --dport 3 --chunk-types any DATA:Be,INIT", "           sctp --  anywhere             anywhere             sctp spts:1:2 dpt:3 any DATA:Be,INIT", "           132  --  0.0.0.0/0            0.0.0.0/0            sctp spts:1:2 dpt:3 any 0x0000:Be,0x0001")]
    [InlineData("4", "filter", "INPUT", "-p sctp -m sctp ! --chunk-types only ALL", 0, "-A INPUT -p sctp -m sctp ! --chunk-types only ALL", "           sctp --  anywhere             anywhere             sctp ! only ALL", "           132  --  0.0.0.0/0            0.0.0.0/0            sctp ! only ALL")]
    [InlineData("4", "filter", "INPUT", "-p sctp --chunk-types any", 2, "iptables v1.8.9 (nf_tables): --chunk-types requires two args", "", "")]
    [InlineData("4", "filter", "INPUT", "-p sctp --chunk-types any DATA:X", 2, "iptables v1.8.9 (nf_tables): Invalid flags for chunk type 0", "", "")]
    [InlineData("4", "filter", "INPUT", "-m sctp --dport 5", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "")]
    [InlineData("4", "filter", "INPUT", "-p dccp --dport 5 --dccp-types REQUEST,INVALID --dccp-option 4", 0, "-A INPUT -p dccp -m dccp --dport 5 --dccp-types REQUEST,INVALID --dccp-option 4", "           dccp --  anywhere             anywhere             dccp dpt:5 REQUEST,INVALID option=4", "           33   --  0.0.0.0/0            0.0.0.0/0            dccp dpt:5 0,10,11,12,13,14,15 option=4")]
    [InlineData("4", "filter", "INPUT", "-p dccp --dccp-option 0", 2, "iptables v1.8.9 (nf_tables): dccp: bad value for option \"--dccp-option\", or out of range (1-255).", "", "")]
    [InlineData("4", "filter", "INPUT", "-p esp -m esp --espspi 100:200", 0, "-A INPUT -p esp -m esp --espspi 100:200", "           esp  --  anywhere             anywhere             esp spis:100:200", "           50   --  0.0.0.0/0            0.0.0.0/0            esp spis:100:200")]
    [InlineData("4", "filter", "INPUT", "-m esp --espspi 1", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "")]
    [InlineData("4", "filter", "INPUT", "-p ah -m ah ! --ahspi 5", 0, "-A INPUT -p ah -m ah ! --ahspi 5", "           ah   --  anywhere             anywhere             ah spi:!5", "           51   --  0.0.0.0/0            0.0.0.0/0            ah spi:!5")]
    [InlineData("4", "filter", "INPUT", "-p ipcomp -m ipcomp --ipcompspi 7 --compres", 0, "-A INPUT -p ipcomp -m ipcomp --ipcompspi 7 --compres", "           ipcomp --  anywhere             anywhere             comp spi:7 reserved", "           108  --  0.0.0.0/0            0.0.0.0/0            comp spi:7 reserved")]
    [InlineData("4", "filter", "INPUT", "-p ipcomp -m ipcomp", 0, "-A INPUT -p ipcomp -m ipcomp --ipcompspi 0", "           ipcomp --  anywhere             anywhere             comp spi:0", "           108  --  0.0.0.0/0            0.0.0.0/0            comp spi:0")]
    [InlineData("4", "filter", "INPUT", "-p tcp -m tcpmss --mss 1:500", 0, "-A INPUT -p tcp -m tcpmss --mss 1:500", "           tcp  --  anywhere             anywhere             tcpmss match 1:500", "           6    --  0.0.0.0/0            0.0.0.0/0            tcpmss match 1:500")]
    [InlineData("4", "filter", "INPUT", "-p tcp -m tcpmss --mss 5:4", 2, "iptables v1.8.9 (nf_tables): tcpmss: invalid range given", "", "")]
    [InlineData("4", "filter", "INPUT", "-m tcpmss --mss 5", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "")]
    [InlineData("4", "filter", "INPUT", "-m length ! --length 100:200", 0, "-A INPUT -m length ! --length 100:200", "           all  --  anywhere             anywhere             length !100:200", "           0    --  0.0.0.0/0            0.0.0.0/0            length !100:200")]
    [InlineData("4", "filter", "INPUT", "-m length --length 4:3", 0, "-A INPUT -m length --length 4:3", "           all  --  anywhere             anywhere             length 4:3", "           0    --  0.0.0.0/0            0.0.0.0/0            length 4:3")]
    [InlineData("4", "filter", "INPUT", "-m length --length 70000", 2, "iptables v1.8.9 (nf_tables): length: bad value for option \"--length\" near \"70000\", or out of range (0-65535).", "", "")]
    [InlineData("6", "filter", "INPUT", "-p icmpv6 --icmpv6-type echo-request", 0, "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128", "           ipv6-icmp --  anywhere             anywhere             ipv6-icmp echo-request", "           58   --  ::/0                 ::/0                 ipv6-icmptype 128")]
    [InlineData("6", "filter", "INPUT", "-p ipv6-icmp -m icmp6 ! --icmpv6-type 1/3", 0, "-A INPUT -p ipv6-icmp -m icmp6 ! --icmpv6-type 1/3", "           ipv6-icmp --  anywhere             anywhere             ipv6-icmp !address-unreachable", "           58   --  ::/0                 ::/0                 ipv6-icmp !type 1 code 3")]
    [InlineData("6", "filter", "INPUT", "-p icmpv6 --icmpv6-type 200", 0, "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 200", "           ipv6-icmp --  anywhere             anywhere             ipv6-icmptype 200", "           58   --  ::/0                 ::/0                 ipv6-icmptype 200")]
    [InlineData("6", "filter", "INPUT", "-p icmpv6 --icmpv6-type mld-listener-query", 2, "ip6tables v1.8.9 (nf_tables): Unknown ICMPv6 type `mld-listener-query'", "", "")]
    [InlineData("6", "filter", "INPUT", "-m icmp6 --icmpv6-type 1", 4, "ip6tables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "")]
    [InlineData("6", "filter", "INPUT", "-p udp -m multiport --dports 546,547", 0, "-A INPUT -p udp -m multiport --dports 546,547", "           udp  --  anywhere             anywhere             multiport dports dhcpv6-client,dhcpv6-server", "           17   --  ::/0                 ::/0                 multiport dports 546,547")]
    [InlineData("6", "filter", "INPUT", "-m ah --ahspi 3:5 --ahlen 4 --ahres", 0, "-A INPUT -m ah --ahspi 3:5 --ahlen 4 --ahres", "           all  --  anywhere             anywhere             ah spis:3:5length:4 reserved", "           0    --  ::/0                 ::/0                 ah spis:3:5length:4 reserved")]
    [InlineData("6", "filter", "INPUT", "-p mh -m mh --mh-type bu", 0, "-A INPUT -p mobility-header -m mh --mh-type 5", "           mobility-header --  anywhere             anywhere             mh binding-update", "           135  --  ::/0                 ::/0                 mh 5")]
    [InlineData("6", "filter", "INPUT", "-p mh -m mh ! --mh-type 3:5", 0, "-A INPUT -p mobility-header -m mh ! --mh-type 3:5", "           mobility-header --  anywhere             anywhere             mh !home-test:binding-update", "           135  --  ::/0                 ::/0                 mh !3:5")]
    [InlineData("6", "filter", "INPUT", "-m mh --mh-type 3", 4, "ip6tables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "")]
    [InlineData("6", "filter", "INPUT", "-m frag --fragid 5 --fraglen 3 --fragres --fragfirst --fragmore", 0, "-A INPUT -m frag --fragid 5 --fraglen 3 --fragres --fragfirst --fragmore", "           all  --  anywhere             anywhere             frag id:5 length:3 reserved first more", "           0    --  ::/0                 ::/0                 frag id:5 length:3 reserved first more")]
    [InlineData("6", "filter", "INPUT", "-m frag --fragmore --fraglast", 2, "ip6tables v1.8.9 (nf_tables): frag: option \"--fragmore\" cannot be used together with \"--fraglast\".", "", "")]
    [InlineData("6", "filter", "INPUT", "-m hbh ! --hbh-len 5 --hbh-opts 1:2,3", 0, "-A INPUT -m hbh ! --hbh-len 5 --hbh-opts 1:2,3", "           all  --  anywhere             anywhere             hbh length:!5 opts 1:2,3", "           0    --  ::/0                 ::/0                 hbh length:!5 opts 1:2,3")]
    [InlineData("6", "filter", "INPUT", "-m hbh --hbh-opts 0:3", 2, "ip6tables v1.8.9 (nf_tables): PAD0 has not got length", "", "")]
    [InlineData("6", "filter", "INPUT", "-m dst --dst-len 0 --dst-opts 4", 0, "-A INPUT -m dst --dst-len 0 --dst-opts 4", "           all  --  anywhere             anywhere             dst length:0 opts 4", "           0    --  ::/0                 ::/0                 dst length:0 opts 4")]
    [InlineData("6", "filter", "INPUT", "-m rt --rt-type 0 --rt-segsleft 2:3 --rt-len 4 --rt-0-res --rt-0-addrs ::1,2001:db8::1 --rt-0-not-strict", 0, "-A INPUT -m rt --rt-type 0 --rt-segsleft 2:3 --rt-len 4 --rt-0-res --rt-0-addrs ::1,2001:db8::1 --rt-0-not-strict", "           all  --  anywhere             anywhere             rt type:0 segslefts:2:3 length:4 reserved 0-addrs ::1,2001:db8::1 0-not-strict", "           0    --  ::/0                 ::/0                 rt type:0 segslefts:2:3 length:4 reserved 0-addrs ::1,2001:db8::1 0-not-strict")]
    [InlineData("6", "filter", "INPUT", "-m rt --rt-0-res", 2, "ip6tables v1.8.9 (nf_tables): `--rt-type 0' required before `--rt-0-res'", "", "")]
    [InlineData("6", "filter", "INPUT", "-m srh --srh-next-hdr 17 ! --srh-segs-left-gt 1 --srh-psid a::/64 ! --srh-nsid b::/128 --srh-tag 4", 0, "-A INPUT -m srh --srh-next-hdr 17 ! --srh-segs-left-gt 1 --srh-tag 4 --srh-psid a::/64 ! --srh-nsid b::/128", "           all  --  anywhere             anywhere             srh next-hdr:17 segs-left-gt:!1 tag:4 psid  a::/64 nsid ! b::/128", "           0    --  ::/0                 ::/0                 srh next-hdr:17 segs-left-gt:!1 tag:4 psid  a::/64 nsid ! b::/128")]
    [InlineData("6", "filter", "INPUT", "-m srh --srh-psid a::/129", 2, "ip6tables v1.8.9 (nf_tables): srh: bad value for option \"--srh-psid\", neither a valid network mask nor valid CIDR (0-128).", "", "")]
    [InlineData("6", "filter", "INPUT", "-m ipv6header --header hop,dst,route --soft", 0, "-A INPUT -m ipv6header --header hop-by-hop,ipv6-opts,ipv6-route --soft", "           all  --  anywhere             anywhere             ipv6header flags:hop-by-hop,ipv6-opts,ipv6-route soft", "           0    --  ::/0                 ::/0                 ipv6header flags:0xE0 soft")]
    [InlineData("6", "filter", "INPUT", "-m ipv6header ! --header frag", 0, "-A INPUT -m ipv6header ! --header ipv6-frag", "           all  --  anywhere             anywhere             ipv6header flags:!ipv6-frag", "           0    --  ::/0                 ::/0                 ipv6header flags:!0x10")]
    [InlineData("6", "filter", "INPUT", "-m ipv6header --header tcp", 2, "ip6tables v1.8.9 (nf_tables): unknown header `6' specified", "", "")]
    [InlineData("6", "filter", "INPUT", "-m eui64", 0, "-A INPUT -m eui64", "           all  --  anywhere             anywhere            ", "           0    --  ::/0                 ::/0                ")]
    [InlineData("6", "filter", "OUTPUT", "-m eui64", 4, "ip6tables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain OUTPUT", "", "")]
    [InlineData("4", "filter", "INPUT", "-p tcp --sport 1 -m tcp --dport 2", 0, "-A INPUT -p tcp -m tcp --sport 1 --dport 2", "           tcp  --  anywhere             anywhere             tcp spt:tcpmux dpt:2", "           6    --  0.0.0.0/0            0.0.0.0/0            tcp spt:1 dpt:2")]
    [InlineData("4", "filter", "INPUT", "-p tcp -m tcp ! --sport 3 -m tcp --sport 4", 0, "-A INPUT -p tcp -m tcp ! --sport 4", "           tcp  --  anywhere             anywhere             tcp spt:!4", "           6    --  0.0.0.0/0            0.0.0.0/0            tcp spt:!4")]
    [InlineData("4", "filter", "INPUT", "-p tcp -m tcp --sport 5 -m tcp --sport 0:10", 0, "-A INPUT -p tcp -m tcp --sport 5:10", "           tcp  --  anywhere             anywhere             tcp spts:5:10", "           6    --  0.0.0.0/0            0.0.0.0/0            tcp spts:5:10")]
    [InlineData("4", "filter", "INPUT", "-p tcp -m tcp --sport 3 -m comment --comment x -m tcp --dport 4", 0, "-A INPUT -p tcp -m tcp --sport 3 --dport 4 -m comment --comment x", "           tcp  --  anywhere             anywhere             tcp spt:3 dpt:4 /* x */", "           6    --  0.0.0.0/0            0.0.0.0/0            tcp spt:3 dpt:4 /* x */")]
    [InlineData("4", "filter", "INPUT", "-p tcp -m tcp ! --tcp-option 3 -m tcp --dport 2", 0, "-A INPUT -p tcp -m tcp ! --tcp-option 3 -m tcp --dport 2", "           tcp  --  anywhere             anywhere             tcp option=!3 tcp dpt:2", "           6    --  0.0.0.0/0            0.0.0.0/0            tcp option=!3 tcp dpt:2")]
    [InlineData("6", "filter", "INPUT", "-p udp -m udp --sport 3 -m udp ! --dport 4 -m udp --sport 5:6", 0, "-A INPUT -p udp -m udp --sport 5:6 ! --dport 4", "           udp  --  anywhere             anywhere             udp spts:5:6 dpt:!4", "           17   --  ::/0                 ::/0                 udp spts:5:6 dpt:!4")]
    [InlineData("6", "filter", "INPUT", "-p tcp -m tcp --syn -m tcp --dport 4 -m tcp ! --tcp-flags SYN ACK", 0, "-A INPUT -p tcp -m tcp --dport 4 ! --tcp-flags SYN ACK", "           tcp  --  anywhere             anywhere             tcp dpt:4 flags:!SYN/ACK", "           6    --  ::/0                 ::/0                 tcp dpt:4 flags:!0x02/0x10")]
    [InlineData("6", "filter", "INPUT", "-p tcp -m tcp ! --sport 0:65535 -m tcp --dport 7", 0, "-A INPUT -p tcp -m tcp --dport 7", "           tcp  --  anywhere             anywhere             tcp dpt:echo", "           6    --  ::/0                 ::/0                 tcp dpt:7")]
    public void Rule_matches_real_iptables(string fam, string table, string chain, string rule, int rc, string saveOrError, string list, string listNumeric)
    {
        IpFamily family = fam == "4" ? IpFamily.V4 : IpFamily.V6;
        string[] ruleArgs = Tokenize(rule);
        var (gotRc, _, err) = Run(family, ["-t", table, "-A", chain, .. ruleArgs]);
        Assert.Equal(rc, gotRc);
        if (rc != 0)
        {
            Assert.Equal(saveOrError, FirstLine(err.TrimStart('\n')));
            return;
        }
        Assert.Equal(saveOrError, LastLine(Run(family, "-t", table, "-S", chain).Out));
        Assert.Equal(list, LastLine(Run(family, "-t", table, "-L", chain).Out));
        Assert.Equal(listNumeric, LastLine(Run(family, "-t", table, "-L", chain, "-n").Out));
    }

    private static string[] Tokenize(string rule) => CompatRun.SplitWords(rule);
}
