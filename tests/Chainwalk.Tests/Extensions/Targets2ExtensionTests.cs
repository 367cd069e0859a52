using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Xunit;

namespace Chainwalk.Tests.Extensions;

/// <summary>
/// The NAT and packet-mangling targets (DNAT, SNAT, MASQUERADE, REDIRECT, NETMAP, TPROXY, TCPMSS, TTL, HL,
/// TOS, DSCP, ECN, TCPOPTSTRIP, TEE, HMARK, SYNPROXY, SET, SNPT, DNPT): each row appends one rule with the
/// in-process iptables/ip6tables and compares the exit code, then either the first error line or the
/// <c>-S</c> line and the last line of <c>-L</c> and <c>-L -n</c>. Every expected value was printed by the
/// real iptables 1.8.9 (nf_tables) in a private network namespace.
/// </summary>
public sealed class Targets2ExtensionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cw-targets2-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (int Rc, string Out, string Err) Run(IpFamily family, params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var io = new ToolIo { In = TextReader.Null, Out = o, Err = e };
        string[] argv = [family == IpFamily.V4 ? "iptables" : "ip6tables", .. args];
        int rc = IptablesCompat.Run(family, argv, new HostStore(_dir), io);
        return (rc, o.ToString(), e.ToString());
    }

    private static string LastLine(string text) => text.TrimEnd('\n').Split('\n')[^1];

    [Theory]
    [InlineData("4", "nat", "PREROUTING", "-p tcp -j DNAT --to-destination 10.0.1.50:8443", 0, "-A PREROUTING -p tcp -j DNAT --to-destination 10.0.1.50:8443", "DNAT       tcp  --  anywhere             anywhere             to:10.0.1.50:8443", "DNAT       6    --  0.0.0.0/0            0.0.0.0/0            to:10.0.1.50:8443")]
    [InlineData("4", "nat", "PREROUTING", "-p tcp --dport 80 -j DNAT --to 1.1.1.1-1.1.1.10:1025-65535 --random --persistent", 0, "-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 1.1.1.1-1.1.1.10:1025-65535 --random --persistent", "DNAT       tcp  --  anywhere             anywhere             tcp dpt:http to:1.1.1.1-1.1.1.10:1025-65535 random persistent", "DNAT       6    --  0.0.0.0/0            0.0.0.0/0            tcp dpt:80 to:1.1.1.1-1.1.1.10:1025-65535 random persistent")]
    [InlineData("4", "nat", "PREROUTING", "-p tcp -j DNAT --to-destination 1.1.1.1:1000-2000/1000", 0, "-A PREROUTING -p tcp -j DNAT --to-destination 1.1.1.1:1000-2000/1000", "DNAT       tcp  --  anywhere             anywhere             to:1.1.1.1:1000-2000/1000", "DNAT       6    --  0.0.0.0/0            0.0.0.0/0            to:1.1.1.1:1000-2000/1000")]
    [InlineData("4", "nat", "PREROUTING", "-p udp -j DNAT --to-destination 1.2.3.4:domain", 0, "-A PREROUTING -p udp -j DNAT --to-destination 1.2.3.4:53", "DNAT       udp  --  anywhere             anywhere             to:1.2.3.4:53", "DNAT       17   --  0.0.0.0/0            0.0.0.0/0            to:1.2.3.4:53")]
    [InlineData("4", "nat", "PREROUTING", "-j DNAT --to-destination 1.1.1.1:80", 2, "iptables v1.8.9 (nf_tables): Need TCP, UDP, SCTP or DCCP with port specification", "", "")]
    [InlineData("4", "nat", "PREROUTING", "-p tcp -j DNAT --to-destination 1.1.1.1:80:90", 2, "iptables v1.8.9 (nf_tables): Bad IP address \"1.1.1.1:80:90\"", "", "")]
    [InlineData("4", "nat", "PREROUTING", "-p tcp -j DNAT --to-destination 1.2.3.4:080", 2, "iptables v1.8.9 (nf_tables): Garbage after port value: `80'", "", "")]
    [InlineData("4", "nat", "PREROUTING", "-p tcp -j DNAT --to-destination 12:80", 0, "-A PREROUTING -p tcp -j DNAT --to-destination :80", "DNAT       tcp  --  anywhere             anywhere             to::80", "DNAT       6    --  0.0.0.0/0            0.0.0.0/0            to::80")]
    [InlineData("4", "nat", "PREROUTING", "-p tcp -j DNAT --to-destination 1.2.3.4 --random-fully", 2, "iptables v1.8.9 (nf_tables): unknown option \"--random-fully\"", "", "")]
    [InlineData("4", "nat", "PREROUTING", "-j DNAT", 2, "iptables v1.8.9 (nf_tables): DNAT: option \"--to-destination\" must be specified", "", "")]
    [InlineData("4", "nat", "POSTROUTING", "-j DNAT --to-destination 1.1.1.1", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain POSTROUTING", "", "")]
    [InlineData("4", "filter", "INPUT", "-j DNAT --to-destination 1.1.1.1", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "")]
    [InlineData("4", "nat", "OUTPUT", "-j DNAT --to-destination 1.1.1.1", 0, "-A OUTPUT -j DNAT --to-destination 1.1.1.1", "DNAT       all  --  anywhere             anywhere             to:1.1.1.1", "DNAT       0    --  0.0.0.0/0            0.0.0.0/0            to:1.1.1.1")]
    [InlineData("4", "nat", "POSTROUTING", "-o eth0 -j SNAT --to-source 192.0.2.1", 0, "-A POSTROUTING -o eth0 -j SNAT --to-source 192.0.2.1", "SNAT       all  --  anywhere             anywhere             to:192.0.2.1", "SNAT       0    --  0.0.0.0/0            0.0.0.0/0            to:192.0.2.1")]
    [InlineData("4", "nat", "POSTROUTING", "-j SNAT --to-source 1.1.1.1 --random --random-fully --persistent", 0, "-A POSTROUTING -j SNAT --to-source 1.1.1.1 --random --random-fully --persistent", "SNAT       all  --  anywhere             anywhere             to:1.1.1.1 random random-fully persistent", "SNAT       0    --  0.0.0.0/0            0.0.0.0/0            to:1.1.1.1 random random-fully persistent")]
    [InlineData("4", "nat", "INPUT", "-j SNAT --to-source 1.1.1.1", 0, "-A INPUT -j SNAT --to-source 1.1.1.1", "SNAT       all  --  anywhere             anywhere             to:1.1.1.1", "SNAT       0    --  0.0.0.0/0            0.0.0.0/0            to:1.1.1.1")]
    [InlineData("4", "nat", "PREROUTING", "-j SNAT --to-source 1.1.1.1", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain PREROUTING", "", "")]
    [InlineData("4", "nat", "POSTROUTING", "-s 10.0.0.0/8 -o eth0 -j MASQUERADE", 0, "-A POSTROUTING -s 10.0.0.0/8 -o eth0 -j MASQUERADE", "MASQUERADE  all  --  10.0.0.0/8           anywhere            ", "MASQUERADE  0    --  10.0.0.0/8           0.0.0.0/0           ")]
    [InlineData("4", "nat", "POSTROUTING", "-p udp -j MASQUERADE --to-ports 1024-65535 --random-fully", 0, "-A POSTROUTING -p udp -j MASQUERADE --to-ports 1024-65535 --random-fully", "MASQUERADE  udp  --  anywhere             anywhere             masq ports: 1024-65535 random-fully", "MASQUERADE  17   --  0.0.0.0/0            0.0.0.0/0            masq ports: 1024-65535 random-fully")]
    [InlineData("4", "nat", "POSTROUTING", "-p tcp -j MASQUERADE --to-ports 1000:2000", 2, "iptables v1.8.9 (nf_tables): Invalid port:port syntax - use dash", "", "")]
    [InlineData("4", "nat", "POSTROUTING", "-j MASQUERADE --to-ports 1000", 2, "iptables v1.8.9 (nf_tables): Need TCP, UDP, SCTP or DCCP with port specification", "", "")]
    [InlineData("4", "nat", "OUTPUT", "-j MASQUERADE", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain OUTPUT", "", "")]
    [InlineData("4", "nat", "PREROUTING", "-p tcp --dport 80 -j REDIRECT --to-ports 8080", 0, "-A PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080", "REDIRECT   tcp  --  anywhere             anywhere             tcp dpt:http redir ports 8080", "REDIRECT   6    --  0.0.0.0/0            0.0.0.0/0            tcp dpt:80 redir ports 8080")]
    [InlineData("4", "nat", "OUTPUT", "-p tcp -j REDIRECT --to-ports 42-1234 --random", 0, "-A OUTPUT -p tcp -j REDIRECT --to-ports 42-1234 --random", "REDIRECT   tcp  --  anywhere             anywhere             redir ports 42-1234 random", "REDIRECT   6    --  0.0.0.0/0            0.0.0.0/0            redir ports 42-1234 random")]
    [InlineData("4", "nat", "PREROUTING", "-p tcp -j REDIRECT --to-ports 42-1234/567", 2, "iptables v1.8.9 (nf_tables): Shifted portmap ranges not supported with this kernel", "", "")]
    [InlineData("4", "nat", "POSTROUTING", "-p tcp -j REDIRECT --to-ports 42", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain POSTROUTING", "", "")]
    [InlineData("4", "nat", "PREROUTING", "-j NETMAP --to 1.2.3.0/24", 0, "-A PREROUTING -j NETMAP --to 1.2.3.0/24", "NETMAP     all  --  anywhere             anywhere             to:1.2.3.0/24", "NETMAP     0    --  0.0.0.0/0            0.0.0.0/0            to:1.2.3.0/24")]
    [InlineData("4", "nat", "POSTROUTING", "-j NETMAP --to 1.2.3.4/255.255.0.255", 0, "-A POSTROUTING -j NETMAP --to 1.2.3.4/32", "NETMAP     all  --  anywhere             anywhere             to:1.2.3.4/32", "NETMAP     0    --  0.0.0.0/0            0.0.0.0/0            to:1.2.3.4/32")]
    [InlineData("4", "nat", "INPUT", "-j NETMAP --to 1.2.3.4", 0, "-A INPUT -j NETMAP --to 1.2.3.4/32", "NETMAP     all  --  anywhere             anywhere             to:1.2.3.4/32", "NETMAP     0    --  0.0.0.0/0            0.0.0.0/0            to:1.2.3.4/32")]
    [InlineData("6", "nat", "PREROUTING", "-p tcp -j DNAT --to-destination [dead::beef-dead::fee7]:1000-2000/1000", 0, "-A PREROUTING -p tcp -j DNAT --to-destination [dead::beef-dead::fee7]:1000-2000/1000", "DNAT       tcp  --  anywhere             anywhere             to:[dead::beef-dead::fee7]:1000-2000/1000", "DNAT       6    --  ::/0                 ::/0                 to:[dead::beef-dead::fee7]:1000-2000/1000")]
    [InlineData("6", "nat", "PREROUTING", "-j DNAT --to-destination dead::beef", 0, "-A PREROUTING -j DNAT --to-destination dead::beef", "DNAT       all  --  anywhere             anywhere             to:dead::beef", "DNAT       0    --  ::/0                 ::/0                 to:dead::beef")]
    [InlineData("6", "nat", "PREROUTING", "-p tcp -j DNAT --to-destination 1.2.3.4", 2, "ip6tables v1.8.9 (nf_tables): Bad IP address \"1.2.3.4\"", "", "")]
    [InlineData("6", "nat", "POSTROUTING", "-j MASQUERADE --random", 0, "-A POSTROUTING -j MASQUERADE --random", "MASQUERADE  all  --  anywhere             anywhere             random", "MASQUERADE  0    --  ::/0                 ::/0                 random")]
    [InlineData("6", "nat", "PREROUTING", "-p tcp -j REDIRECT --to-ports 8080", 0, "-A PREROUTING -p tcp -j REDIRECT --to-ports 8080", "REDIRECT   tcp  --  anywhere             anywhere             redir ports 8080", "REDIRECT   6    --  ::/0                 ::/0                 redir ports 8080")]
    [InlineData("6", "nat", "PREROUTING", "-j NETMAP --to dead::/64", 0, "-A PREROUTING -j NETMAP --to dead::/64", "NETMAP     all  --  anywhere             anywhere             to:dead::/64", "NETMAP     0    --  ::/0                 ::/0                 to:dead::/64")]
    [InlineData("4", "mangle", "PREROUTING", "-p tcp -m tcp --dport 80 -j TPROXY --on-port 3129 --on-ip 127.0.0.1 --tproxy-mark 0x1/0x1", 0, "-A PREROUTING -p tcp -m tcp --dport 80 -j TPROXY --on-port 3129 --on-ip 127.0.0.1 --tproxy-mark 0x1/0x1", "TPROXY     tcp  --  anywhere             anywhere             tcp dpt:http TPROXY redirect 127.0.0.1:3129 mark 0x1/0x1", "TPROXY     6    --  0.0.0.0/0            0.0.0.0/0            tcp dpt:80 TPROXY redirect 127.0.0.1:3129 mark 0x1/0x1")]
    [InlineData("4", "mangle", "PREROUTING", "-p udp -j TPROXY --on-port 53", 0, "-A PREROUTING -p udp -j TPROXY --on-port 53 --on-ip 0.0.0.0 --tproxy-mark 0x0/0x0", "TPROXY     udp  --  anywhere             anywhere             TPROXY redirect 0.0.0.0:53 mark 0x0/0x0", "TPROXY     17   --  0.0.0.0/0            0.0.0.0/0            TPROXY redirect 0.0.0.0:53 mark 0x0/0x0")]
    [InlineData("4", "mangle", "PREROUTING", "-j TPROXY --on-port 53", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain PREROUTING", "", "")]
    [InlineData("4", "mangle", "PREROUTING", "-p tcp -j TPROXY --on-port 0x10", 2, "iptables v1.8.9 (nf_tables): Port \"0x10\" does not resolve to anything.", "", "")]
    [InlineData("4", "mangle", "PREROUTING", "-p tcp -j TPROXY --on-port 1 --tproxy-mark 1/2x", 2, "iptables v1.8.9 (nf_tables): TPROXY: trailing garbage after value for option \"--tproxy-mark\".", "", "")]
    [InlineData("4", "mangle", "INPUT", "-p tcp -j TPROXY --on-port 1", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "")]
    [InlineData("6", "mangle", "PREROUTING", "-p tcp -j TPROXY --on-port 1 --on-ip dead::1 --tproxy-mark 0x1/0x1", 0, "-A PREROUTING -p tcp -j TPROXY --on-port 1 --on-ip dead::1 --tproxy-mark 0x1/0x1", "TPROXY     tcp  --  anywhere             anywhere             TPROXY redirect dead::1:1 mark 0x1/0x1", "TPROXY     6    --  ::/0                 ::/0                 TPROXY redirect dead::1:1 mark 0x1/0x1")]
    [InlineData("4", "mangle", "FORWARD", "-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu", 0, "-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu", "TCPMSS     tcp  --  anywhere             anywhere             tcp flags:SYN,RST/SYN TCPMSS clamp to PMTU", "TCPMSS     6    --  0.0.0.0/0            0.0.0.0/0            tcp flags:0x06/0x02 TCPMSS clamp to PMTU")]
    [InlineData("4", "mangle", "POSTROUTING", "-p tcp -j TCPMSS --set-mss 1400", 0, "-A POSTROUTING -p tcp -j TCPMSS --set-mss 1400", "TCPMSS     tcp  --  anywhere             anywhere             TCPMSS set 1400", "TCPMSS     6    --  0.0.0.0/0            0.0.0.0/0            TCPMSS set 1400")]
    [InlineData("4", "mangle", "PREROUTING", "-p tcp -j TCPMSS --clamp-mss-to-pmtu", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain PREROUTING", "", "")]
    [InlineData("4", "mangle", "POSTROUTING", "-j TCPMSS --set-mss 1400", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain POSTROUTING", "", "")]
    [InlineData("4", "mangle", "POSTROUTING", "-p tcp -j TCPMSS", 2, "iptables v1.8.9 (nf_tables): TCPMSS target: At least one parameter is required", "", "")]
    [InlineData("4", "mangle", "POSTROUTING", "-p tcp -j TCPMSS --set-mss 65516", 2, "iptables v1.8.9 (nf_tables): TCPMSS: bad value for option \"--set-mss\", or out of range (0-65515).", "", "")]
    [InlineData("6", "mangle", "POSTROUTING", "-p tcp -j TCPMSS --set-mss 65496", 2, "ip6tables v1.8.9 (nf_tables): TCPMSS: bad value for option \"--set-mss\", or out of range (0-65495).", "", "")]
    [InlineData("4", "mangle", "PREROUTING", "-j TTL --ttl-set 64", 0, "-A PREROUTING -j TTL --ttl-set 64", "TTL        all  --  anywhere             anywhere             TTL set to 64", "TTL        0    --  0.0.0.0/0            0.0.0.0/0            TTL set to 64")]
    [InlineData("4", "mangle", "PREROUTING", "-j TTL --ttl-dec 1", 0, "-A PREROUTING -j TTL --ttl-dec 1", "TTL        all  --  anywhere             anywhere             TTL decrement by 1", "TTL        0    --  0.0.0.0/0            0.0.0.0/0            TTL decrement by 1")]
    [InlineData("4", "mangle", "PREROUTING", "-j TTL --ttl-inc 0", 2, "iptables v1.8.9 (nf_tables): TTL: bad value for option \"--ttl-inc\", or out of range (1-255).", "", "")]
    [InlineData("4", "mangle", "PREROUTING", "-j TTL", 2, "iptables v1.8.9 (nf_tables): TTL: You must specify an action", "", "")]
    [InlineData("4", "mangle", "PREROUTING", "-j TTL --ttl-set 1 --ttl-dec 1 --ttl-inc 1", 2, "iptables v1.8.9 (nf_tables): TTL: option \"--ttl-set\" cannot be used together with \"--ttl-inc\".", "", "")]
    [InlineData("4", "filter", "INPUT", "-j TTL --ttl-set 64", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "")]
    [InlineData("6", "mangle", "PREROUTING", "-j HL --hl-inc 2", 0, "-A PREROUTING -j HL --hl-inc 2", "HL         all  --  anywhere             anywhere             HL increment by 2", "HL         0    --  ::/0                 ::/0                 HL increment by 2")]
    [InlineData("6", "mangle", "PREROUTING", "-j HL --hl-set 256", 2, "ip6tables v1.8.9 (nf_tables): HL: bad value for option \"--hl-set\", or out of range (0-255).", "", "")]
    [InlineData("4", "mangle", "PREROUTING", "-j TOS --set-tos Minimize-Delay", 0, "-A PREROUTING -j TOS --set-tos 0x10/0x3f", "TOS        all  --  anywhere             anywhere              TOS setMinimize-Delay", "TOS        0    --  0.0.0.0/0            0.0.0.0/0            TOS set 0x10/0x3f")]
    [InlineData("4", "mangle", "PREROUTING", "-j TOS --set-tos 0x1f", 0, "-A PREROUTING -j TOS --set-tos 0x1f/0xff", "TOS        all  --  anywhere             anywhere             TOS set 0x1f/0xff", "TOS        0    --  0.0.0.0/0            0.0.0.0/0            TOS set 0x1f/0xff")]
    [InlineData("4", "mangle", "PREROUTING", "-j TOS --and-tos 0x12", 0, "-A PREROUTING -j TOS --set-tos 0x00/0xed", "TOS        all  --  anywhere             anywhere             TOS and 0x12", "TOS        0    --  0.0.0.0/0            0.0.0.0/0            TOS set 0x00/0xed")]
    [InlineData("4", "mangle", "PREROUTING", "-j TOS --or-tos 0x12", 0, "-A PREROUTING -j TOS --set-tos 0x12/0x12", "TOS        all  --  anywhere             anywhere             TOS or 0x12", "TOS        0    --  0.0.0.0/0            0.0.0.0/0            TOS set 0x12/0x12")]
    [InlineData("4", "mangle", "PREROUTING", "-j TOS --xor-tos 0x12", 0, "-A PREROUTING -j TOS --set-tos 0x12/0x00", "TOS        all  --  anywhere             anywhere             TOS xor 0x12", "TOS        0    --  0.0.0.0/0            0.0.0.0/0            TOS set 0x12/0x00")]
    [InlineData("4", "mangle", "PREROUTING", "-j TOS --set-tos 0x1fz", 2, "iptables v1.8.9 (nf_tables): Illegal value: \"0x1fz\"", "", "")]
    [InlineData("4", "mangle", "PREROUTING", "-j TOS --set-tos 300", 2, "iptables v1.8.9 (nf_tables): Symbolic name \"300\" is unknown", "", "")]
    [InlineData("4", "mangle", "PREROUTING", "-j TOS", 2, "iptables v1.8.9 (nf_tables): TOS: An action is required", "", "")]
    [InlineData("6", "mangle", "OUTPUT", "-j TOS --set-tos 0x04/0x3f", 0, "-A OUTPUT -j TOS --set-tos 0x04/0x3f", "TOS        all  --  anywhere             anywhere              TOS setMaximize-Reliability", "TOS        0    --  ::/0                 ::/0                 TOS set 0x04/0x3f")]
    [InlineData("4", "mangle", "POSTROUTING", "-j DSCP --set-dscp-class EF", 0, "-A POSTROUTING -j DSCP --set-dscp 0x2e", "DSCP       all  --  anywhere             anywhere             DSCP set 0x2e", "DSCP       0    --  0.0.0.0/0            0.0.0.0/0            DSCP set 0x2e")]
    [InlineData("4", "mangle", "POSTROUTING", "-j DSCP --set-dscp 0x40", 2, "iptables v1.8.9 (nf_tables): DSCP: bad value for option \"--set-dscp\", or out of range (0-63).", "", "")]
    [InlineData("4", "mangle", "POSTROUTING", "-j DSCP --set-dscp 1 --set-dscp-class AF11", 2, "iptables v1.8.9 (nf_tables): DSCP: option \"--set-dscp\" cannot be used together with \"--set-dscp-class\".", "", "")]
    [InlineData("4", "mangle", "POSTROUTING", "-j DSCP --set-dscp-class XX", 2, "iptables v1.8.9 (nf_tables): Invalid DSCP value `XX'", "", "")]
    [InlineData("4", "mangle", "POSTROUTING", "-p tcp -j ECN --ecn-tcp-remove", 0, "-A POSTROUTING -p tcp -j ECN --ecn-tcp-remove", "ECN        tcp  --  anywhere             anywhere             ECN TCP remove", "ECN        6    --  0.0.0.0/0            0.0.0.0/0            ECN TCP remove")]
    [InlineData("4", "mangle", "POSTROUTING", "-j ECN --ecn-ip-ect 1", 0, "-A POSTROUTING -j ECN --ecn-ip-ect 1", "ECN        all  --  anywhere             anywhere             ECN ECT codepoint=1", "ECN        0    --  0.0.0.0/0            0.0.0.0/0            ECN ECT codepoint=1")]
    [InlineData("4", "mangle", "POSTROUTING", "-p tcp -j ECN --ecn-tcp-cwr 1 --ecn-tcp-ece 0 --ecn-ip-ect 3", 0, "-A POSTROUTING -p tcp -j ECN --ecn-tcp-ece 0 --ecn-tcp-cwr 1 --ecn-ip-ect 3", "ECN        tcp  --  anywhere             anywhere             ECN ECE=0 CWR=1 ECT codepoint=3", "ECN        6    --  0.0.0.0/0            0.0.0.0/0            ECN ECE=0 CWR=1 ECT codepoint=3")]
    [InlineData("4", "mangle", "POSTROUTING", "-j ECN --ecn-tcp-remove", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain POSTROUTING", "", "")]
    [InlineData("4", "mangle", "POSTROUTING", "-p tcp -j ECN --ecn-tcp-remove --ecn-tcp-cwr 1", 2, "iptables v1.8.9 (nf_tables): ECN: option \"--ecn-tcp-remove\" cannot be used together with \"--ecn-tcp-cwr\".", "", "")]
    [InlineData("4", "mangle", "POSTROUTING", "-p tcp -j TCPOPTSTRIP --strip-options wscale,mss,8,19,30", 0, "-A POSTROUTING -p tcp -j TCPOPTSTRIP --strip-options 2,3,8,19,30", "TCPOPTSTRIP  tcp  --  anywhere             anywhere             TCPOPTSTRIP options mss,wscale,timestamp,md5,30", "TCPOPTSTRIP  6    --  0.0.0.0/0            0.0.0.0/0            TCPOPTSTRIP options 2,3,8,19,30")]
    [InlineData("4", "mangle", "POSTROUTING", "-p tcp -j TCPOPTSTRIP", 0, "-A POSTROUTING -p tcp -j TCPOPTSTRIP", "TCPOPTSTRIP  tcp  --  anywhere             anywhere            ", "TCPOPTSTRIP  6    --  0.0.0.0/0            0.0.0.0/0           ")]
    [InlineData("4", "mangle", "POSTROUTING", "-p tcp -j TCPOPTSTRIP --strip-options mss,2", 2, "iptables v1.8.9 (nf_tables): Option \"2\" already specified", "", "")]
    [InlineData("4", "mangle", "POSTROUTING", "-p tcp -j TCPOPTSTRIP --strip-options foo", 2, "iptables v1.8.9 (nf_tables): Bad TCP option value \"foo\"", "", "")]
    [InlineData("4", "mangle", "PREROUTING", "-j TEE --gateway 127.0.0.1 --oif eth0", 0, "-A PREROUTING -j TEE --gateway 127.0.0.1 --oif eth0", "TEE        all  --  anywhere             anywhere             TEE gw:localhost oif=eth0", "TEE        0    --  0.0.0.0/0            0.0.0.0/0            TEE gw:127.0.0.1 oif=eth0")]
    [InlineData("4", "filter", "OUTPUT", "-j TEE --gateway 10.1.2.3", 0, "-A OUTPUT -j TEE --gateway 10.1.2.3", "TEE        all  --  anywhere             anywhere             TEE gw:10.1.2.3", "TEE        0    --  0.0.0.0/0            0.0.0.0/0            TEE gw:10.1.2.3")]
    [InlineData("4", "filter", "OUTPUT", "-j TEE --gateway 0.0.0.0", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain OUTPUT", "", "")]
    [InlineData("4", "filter", "OUTPUT", "-j TEE ! --gateway 1.1.1.1", 2, "iptables v1.8.9 (nf_tables): TEE: option \"--gateway\" cannot be inverted.", "", "")]
    [InlineData("6", "filter", "OUTPUT", "-j TEE --gateway 2001:db8::1", 0, "-A OUTPUT -j TEE --gateway 2001:db8::1", "TEE        all  --  anywhere             anywhere             TEE gw:2001:db8::1", "TEE        0    --  ::/0                 ::/0                 TEE gw:2001:db8::1")]
    [InlineData("6", "filter", "OUTPUT", "-j TEE --gateway 1.2.3.4", 2, "ip6tables v1.8.9 (nf_tables): getaddrinfo: Address family for hostname not supported", "", "")]
    [InlineData("4", "filter", "INPUT", "-j HMARK --hmark-src-prefix 32 --hmark-dst-prefix 32 --hmark-sport-mask 0xffff --hmark-dport-mask 0xffff --hmark-proto-mask 0xffff --hmark-rnd 0x00000004 --hmark-mod 42 --hmark-offset 1 --hmark-tuple ct", 0, "-A INPUT -j HMARK --hmark-src-prefix 32 --hmark-dst-prefix 32 --hmark-sport-mask 0xffff --hmark-dport-mask 0xffff --hmark-proto-mask 0xffff --hmark-rnd 0x00000004 --hmark-mod 42 --hmark-offset 1 --hmark-tuple ct", "HMARK      all  --  anywhere             anywhere             HMARK mod 42 + 0x1 ct, src-prefix 32 dst-prefix 32 sport-mask 0xffff dport-mask 0xffff proto-mask 0xffff rnd 0x4 ", "HMARK      0    --  0.0.0.0/0            0.0.0.0/0            HMARK mod 42 + 0x1 ct, src-prefix 32 dst-prefix 32 sport-mask 0xffff dport-mask 0xffff proto-mask 0xffff rnd 0x4 ")]
    [InlineData("4", "filter", "INPUT", "-j HMARK --hmark-tuple src,dst,spi --hmark-rnd 1 --hmark-mod 2 --hmark-spi 7", 0, "-A INPUT -j HMARK --hmark-src-prefix 32 --hmark-dst-prefix 32 --hmark-spi-mask 0xffffffff --hmark-spi 0x00000007 --hmark-rnd 0x00000001 --hmark-mod 2", "HMARK      all  --  anywhere             anywhere             HMARK mod 2 src-prefix 32 dst-prefix 32 spi-mask 0xffffffff spi 0x7 rnd 0x1 ", "HMARK      0    --  0.0.0.0/0            0.0.0.0/0            HMARK mod 2 src-prefix 32 dst-prefix 32 spi-mask 0xffffffff spi 0x7 rnd 0x1 ")]
    [InlineData("4", "filter", "INPUT", "-j HMARK --hmark-tuple s,d --hmark-rnd 10 --hmark-mod 1", 0, "-A INPUT -j HMARK --hmark-src-prefix 32 --hmark-dst-prefix 32 --hmark-rnd 0x0000000a --hmark-mod 1", "HMARK      all  --  anywhere             anywhere             HMARK mod 1 src-prefix 32 dst-prefix 32 rnd 0xa ", "HMARK      0    --  0.0.0.0/0            0.0.0.0/0            HMARK mod 1 src-prefix 32 dst-prefix 32 rnd 0xa ")]
    [InlineData("4", "filter", "INPUT", "-j HMARK --hmark-tuple foo,src --hmark-rnd 10 --hmark-mod 1", 2, "iptables v1.8.9 (nf_tables): Bad type \"foo,src\"", "", "")]
    [InlineData("4", "filter", "INPUT", "-j HMARK --hmark-src-prefix 24 --hmark-mod 10", 2, "iptables v1.8.9 (nf_tables): --hmark-rnd is mandatory", "", "")]
    [InlineData("6", "filter", "INPUT", "-j HMARK --hmark-tuple src,dst --hmark-rnd 1 --hmark-mod 2", 0, "-A INPUT -j HMARK --hmark-src-prefix 128 --hmark-dst-prefix 128 --hmark-rnd 0x00000001 --hmark-mod 2", "HMARK      all  --  anywhere             anywhere             HMARK mod 2 src-prefix  dst-prefix  rnd 0x1 ", "HMARK      0    --  ::/0                 ::/0                 HMARK mod 2 src-prefix  dst-prefix  rnd 0x1 ")]
    [InlineData("6", "filter", "INPUT", "-j HMARK --hmark-src-prefix 64 --hmark-rnd 1 --hmark-mod 2", 0, "-A INPUT -j HMARK --hmark-src-prefix 64 --hmark-rnd 0x00000001 --hmark-mod 2", "HMARK      all  --  anywhere             anywhere             HMARK mod 2 src-prefix 64 rnd 0x1 ", "HMARK      0    --  ::/0                 ::/0                 HMARK mod 2 src-prefix 64 rnd 0x1 ")]
    [InlineData("4", "filter", "INPUT", "-p tcp -j SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460", 0, "-A INPUT -p tcp -j SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460", "SYNPROXY   tcp  --  anywhere             anywhere             SYNPROXY sack-perm timestamp wscale 7 mss 1460 ", "SYNPROXY   6    --  0.0.0.0/0            0.0.0.0/0            SYNPROXY sack-perm timestamp wscale 7 mss 1460 ")]
    [InlineData("4", "filter", "FORWARD", "-p tcp -j SYNPROXY --wscale 300 --mss 70000 --ecn", 0, "-A FORWARD -p tcp -j SYNPROXY --wscale 44 --mss 4464 --ecn", "SYNPROXY   tcp  --  anywhere             anywhere             SYNPROXY wscale 44 mss 4464 ecn ", "SYNPROXY   6    --  0.0.0.0/0            0.0.0.0/0            SYNPROXY wscale 44 mss 4464 ecn ")]
    [InlineData("4", "filter", "OUTPUT", "-p tcp -j SYNPROXY", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain OUTPUT", "", "")]
    [InlineData("4", "filter", "INPUT", "-j SYNPROXY", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "")]
    [InlineData("4", "filter", "INPUT", "-j SET --add-set foo src,dst", 2, "iptables v1.8.9 (nf_tables): Set foo doesn't exist.", "", "")]
    [InlineData("4", "filter", "INPUT", "-j SET --add-set foo", 2, "iptables v1.8.9 (nf_tables): --add-set requires two args.", "", "")]
    [InlineData("4", "filter", "INPUT", "-j SET --timeout 5", 2, "iptables v1.8.9 (nf_tables): You must specify either `--add-set' or `--del-set' or `--map-set'", "", "")]
    [InlineData("4", "filter", "INPUT", "-j SET --add-set aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa src", 2, "iptables v1.8.9 (nf_tables): setname `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' too long, max 31 characters.", "", "")]
    [InlineData("6", "mangle", "PREROUTING", "-j DNPT --src-pfx dead::/64 --dst-pfx 1c3::/64", 0, "-A PREROUTING -j DNPT --src-pfx dead::/64 --dst-pfx 1c3::/64", "DNPT       all  --  anywhere             anywhere             DNPT src-pfx dead::/64 dst-pfx 1c3::/64", "DNPT       0    --  ::/0                 ::/0                 DNPT src-pfx dead::/64 dst-pfx 1c3::/64")]
    [InlineData("6", "mangle", "POSTROUTING", "-j SNPT --src-pfx dead::beef/48 --dst-pfx 1c3::/48", 4, "ip6tables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain POSTROUTING", "", "")]
    [InlineData("6", "mangle", "PREROUTING", "-j DNPT --src-pfx dead::beef --dst-pfx 1c3::/64", 4, "ip6tables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain PREROUTING", "", "")]
    [InlineData("6", "mangle", "PREROUTING", "-j DNPT --dst-pfx 1c3::/64", 2, "ip6tables v1.8.9 (nf_tables): DNPT: option \"--src-pfx\" must be specified", "", "")]
    [InlineData("6", "mangle", "PREROUTING", "-j SNPT --src-pfx dead::/64 --dst-pfx 1c3::/64", 4, "ip6tables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain PREROUTING", "", "")]
    [InlineData("6", "mangle", "POSTROUTING", "-j SNPT --src-pfx dead::/48 --dst-pfx 1c3:0:0:1::/48", 4, "ip6tables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain POSTROUTING", "", "")]
    public void AppendSaveList(string fam, string table, string chain, string rule, int rc, string expected, string list, string listNumeric)
    {
        IpFamily family = fam == "4" ? IpFamily.V4 : IpFamily.V6;
        string[] ruleArgs = rule.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var add = Run(family, ["-t", table, "-A", chain, .. ruleArgs]);
        Assert.Equal(rc, add.Rc);
        if (rc != 0)
        {
            Assert.Equal(expected, add.Err.Split('\n')[0]);
            return;
        }
        Assert.Equal(expected, LastLine(Run(family, "-t", table, "-S", chain).Out));
        Assert.Equal(list, LastLine(Run(family, "-t", table, "-L", chain).Out));
        Assert.Equal(listNumeric, LastLine(Run(family, "-t", table, "-L", chain, "-n").Out));
    }
}
