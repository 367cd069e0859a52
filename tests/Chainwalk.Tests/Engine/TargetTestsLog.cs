using Chainwalk.Engine;
using Chainwalk.Wire;
using Shouldly;
using Xunit;
using static Chainwalk.Tests.Engine.TargetTestHost;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// LOG lines as net/netfilter/nf_log_syslog.c writes them (nf_log_dump_packet_common, dump_mac_header,
/// dump_ipv4_packet, dump_ipv6_packet, nf_log_dump_tcp_header / udp_header): the expectations are the source's
/// format strings filled in by hand. The real kernel's output cannot be read here (it needs the host-wide
/// nf_log_all_netns sysctl), so no recording backs them.
/// </summary>
public class TargetTestsLog
{
    private const string Mac = "MAC={0}:02:00:00:00:00:02:08:00 ";

    private static string Log4(string logOpts, byte[] packet, string chain = "INPUT")
    {
        // Received packets are logged in mangle PREROUTING, which sees fragments one by one (INPUT sees IPv4 datagrams only whole).
        var nf = new Netfilter(Create(chain == "INPUT" ? Table("mangle", $"-A PREROUTING -j LOG {logOpts}") : Table("filter", $"-A {chain} -j LOG {logOpts}")));
        PacketResult r = chain == "INPUT" ? Receive(nf, packet) : Send(nf, packet, owner: new SocketOwner(1000, 100));
        return r.Logs.ShouldHaveSingleItem();
    }

    private static string Log6(string logOpts, byte[] packet)
    {
        var nf = new Netfilter(Create(v6Rules: Table("filter", $"-A INPUT -j LOG {logOpts}")));
        return Receive(nf, packet).Logs.ShouldHaveSingleItem();
    }

    private static byte[] SetByte(byte[] b, int at, byte value)
    {
        b[at] = value;
        Packet.UpdateChecksums(b);
        return b;
    }

    private static string MacOfEth0()
    {
        var h = Create();
        return h.FindLink("eth0")!.Mac;
    }

    private static readonly byte[] Syn = PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Id(0x1234).DontFragment()
        .Tcp(40000, 22, TcpFlags.Syn, 1, 0, 64240).Mss(1460).Build();

    public static TheoryData<string, string> TcpLines => new()
    {
        { "", "IN=eth0 OUT= {MAC}SRC=10.0.0.2 DST=10.0.0.1 LEN=44 TOS=0x00 PREC=0x00 TTL=64 ID=4660 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 " },
        { "--log-prefix \"fw: \"", "fw: IN=eth0 OUT= {MAC}SRC=10.0.0.2 DST=10.0.0.1 LEN=44 TOS=0x00 PREC=0x00 TTL=64 ID=4660 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 " },
        { "--log-level 7 --log-tcp-sequence", "IN=eth0 OUT= {MAC}SRC=10.0.0.2 DST=10.0.0.1 LEN=44 TOS=0x00 PREC=0x00 TTL=64 ID=4660 DF PROTO=TCP SPT=40000 DPT=22 SEQ=1 ACK=0 WINDOW=64240 RES=0x00 SYN URGP=0 " },
        { "--log-tcp-options", "IN=eth0 OUT= {MAC}SRC=10.0.0.2 DST=10.0.0.1 LEN=44 TOS=0x00 PREC=0x00 TTL=64 ID=4660 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 OPT (020405B4) " },
        { "--log-macdecode", "IN=eth0 OUT= MACSRC=02:00:00:00:00:02 MACDST={DST} MACPROTO=0800 SRC=10.0.0.2 DST=10.0.0.1 LEN=44 TOS=0x00 PREC=0x00 TTL=64 ID=4660 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 " },
        // --log-uid: a received packet has no socket, so nothing is added.
        { "--log-uid", "IN=eth0 OUT= {MAC}SRC=10.0.0.2 DST=10.0.0.1 LEN=44 TOS=0x00 PREC=0x00 TTL=64 ID=4660 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 " },
    };

    [Theory]
    [MemberData(nameof(TcpLines))]
    public void Log_line_of_a_tcp_syn(string opts, string expected)
    {
        string mac = MacOfEth0();
        Log4(opts, Syn).ShouldBe(expected.Replace("{MAC}", string.Format(System.Globalization.CultureInfo.InvariantCulture, Mac, mac), StringComparison.Ordinal)
            .Replace("{DST}", mac, StringComparison.Ordinal));
    }

    public static TheoryData<string, byte[], string> OtherLines => new()
    {
        {
            "", PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Tos(0xb8).Ttl(3).Udp(1234, 53).Payload([1, 2, 3, 4]).Build(),
            "SRC=10.0.0.2 DST=10.0.0.1 LEN=32 TOS=0x18 PREC=0xA0 TTL=3 ID=0 PROTO=UDP SPT=1234 DPT=53 LEN=12 "
        },
        {
            "", PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").IcmpEcho(7, 1).Build(),
            "SRC=10.0.0.2 DST=10.0.0.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 "
        },
        {
            "", PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").IcmpError(3, 3, PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Ttl(9).Udp(53, 1234).Build()).Build(),
            "SRC=10.0.0.2 DST=10.0.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=ICMP TYPE=3 CODE=3 [SRC=10.0.0.1 DST=10.0.0.2 LEN=28 TOS=0x00 PREC=0x00 TTL=9 ID=0 PROTO=UDP SPT=53 DPT=1234 LEN=8 ] "
        },
        {
            "", PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").IcmpError(3, 4, PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(22, 40000, TcpFlags.Ack).Build(), 1400).Build(),
            "SRC=10.0.0.2 DST=10.0.0.1 LEN=68 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=ICMP TYPE=3 CODE=4 [SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=TCP SPT=22 DPT=40000 WINDOW=64240 RES=0x00 ACK URGP=0 ] MTU=1400 "
        },
        {
            // A later fragment: FRAG in 8-byte units, no ports.
            "", PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Id(9).Fragment(1480, false, 9).Udp(1, 2).Build(),
            "SRC=10.0.0.2 DST=10.0.0.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=9 FRAG:185 PROTO=UDP "
        },
        {
            "--log-ip-options", PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Ipv4Options([0x94, 0x04, 0x00, 0x00]).Protocol(47).Build(),
            "SRC=10.0.0.2 DST=10.0.0.1 LEN=24 TOS=0x00 PREC=0x00 TTL=64 ID=0 OPT (94040000) PROTO=47 "
        },
        {
            // Parameter problem: the pointer, and no quoted packet.
            "", PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").IcmpError(12, 0, PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Udp(53, 1234).Build(), 0x14000000).Build(),
            "SRC=10.0.0.2 DST=10.0.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=ICMP TYPE=12 CODE=0 PARAMETER=20 "
        },
        {
            // The reserved bits (RES) and AccECN's AE flag, which the kernel prints before CWR.
            "", SetByte(PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Tcp(1, 2, TcpFlags.Ack | TcpFlags.Cwr).Build(), 32, 0x5f),
            "SRC=10.0.0.2 DST=10.0.0.1 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=TCP SPT=1 DPT=2 WINDOW=64240 RES=0x38 AE CWR ACK URGP=0 "
        },
        {
            // AH in a later fragment: nothing after the IP part.
            "", PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Fragment(8, false, 1).Protocol(IpProtocol.Ah).Payload(new byte[12]).Build(),
            "SRC=10.0.0.2 DST=10.0.0.1 LEN=32 TOS=0x00 PREC=0x00 TTL=64 ID=1 FRAG:1 "
        },
        {
            "", PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Protocol(IpProtocol.Esp).Payload([0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1]).Build(),
            "SRC=10.0.0.2 DST=10.0.0.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=ESP SPI=0xdeadbeef "
        },
        {
            "", PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Protocol(IpProtocol.Tcp).Payload([1, 2, 3]).Build(),
            "SRC=10.0.0.2 DST=10.0.0.1 LEN=23 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=TCP INCOMPLETE [3 bytes] "
        },
    };

    [Theory]
    [MemberData(nameof(OtherLines))]
    public void Log_line_of_ipv4_packets(string opts, byte[] packet, string expectedTail)
    {
        string line = Log4(opts, packet);
        string head = "IN=eth0 OUT= " + string.Format(System.Globalization.CultureInfo.InvariantCulture, Mac, MacOfEth0());
        line.ShouldBe(head + expectedTail);
    }

    [Fact]
    public void Log_line_of_a_local_packet_has_uid_and_mark_and_no_mac()
    {
        var nf = new Netfilter(Create(Table("filter", "-A OUTPUT -j LOG --log-uid --log-prefix OUT:")));
        PacketResult r = Send(nf, PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Udp(5000, 53).Build(), mark: 0x2a, owner: new SocketOwner(1000, 100));
        r.Logs.ShouldHaveSingleItem().ShouldBe(
            "OUT:IN= OUT=eth0 SRC=10.0.0.1 DST=10.0.0.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=UDP SPT=5000 DPT=53 LEN=8 UID=1000 GID=100 MARK=0x2a ");
    }

    public static TheoryData<string, byte[], string> Ipv6Lines => new()
    {
        {
            "", PacketBuilder.Ipv6("2001:db8:1::2", "2001:db8:1::1").Tos(0xb8).FlowLabel(0xabcde).Ttl(33).Tcp(40000, 22, TcpFlags.Syn | TcpFlags.Ece | TcpFlags.Cwr, 5).Build(),
            "SRC=2001:db8:1::2 DST=2001:db8:1::1 LEN=60 TC=184 HOPLIMIT=33 FLOWLBL=703710 PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 RES=0x00 CWR ECE SYN URGP=0 "
        },
        {
            "", PacketBuilder.Ipv6("2001:db8:1::2", "2001:db8:1::1").IcmpEcho(1, 2).Build(),
            "SRC=2001:db8:1::2 DST=2001:db8:1::1 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=1 SEQ=2 "
        },
        {
            "", PacketBuilder.Ipv6("2001:db8:1::2", "2001:db8:1::1").IcmpError(2, 0, PacketBuilder.Ipv6("2001:db8:1::1", "2001:db8:9::9").Udp(1, 2).Build(), 1280).Build(),
            "SRC=2001:db8:1::2 DST=2001:db8:1::1 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=2 CODE=0 [SRC=2001:db8:1::1 DST=2001:db8:9::9 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=1 DPT=2 LEN=8 ] MTU=1280 "
        },
        {
            // A fragment header: shown only inside OPT ( ) with --log-ip-options.
            "--log-ip-options", PacketBuilder.Ipv6("2001:db8:1::2", "2001:db8:1::1").Fragment(0, true, 0x1234).Udp(1, 2).Build(),
            "SRC=2001:db8:1::2 DST=2001:db8:1::1 LEN=56 TC=0 HOPLIMIT=64 FLOWLBL=0 OPT ( FRAG:0 INCOMPLETE ID:00001234 ) PROTO=UDP SPT=1 DPT=2 LEN=8 "
        },
        {
            "", PacketBuilder.Ipv6("2001:db8:1::2", "2001:db8:1::1").Fragment(8, false, 0x1234).Udp(1, 2).Build(),
            "SRC=2001:db8:1::2 DST=2001:db8:1::1 LEN=56 TC=0 HOPLIMIT=64 FLOWLBL=0 FRAG:8 ID:00001234 PROTO=UDP "
        },
    };

    [Theory]
    [MemberData(nameof(Ipv6Lines))]
    public void Log_line_of_ipv6_packets(string opts, byte[] packet, string expectedTail)
    {
        string line = Log6(opts, packet);
        string head = "IN=eth0 OUT= " + string.Format(System.Globalization.CultureInfo.InvariantCulture, "MAC={0}:02:00:00:00:00:02:86:dd ", MacOfEth0());
        line.ShouldBe(head + expectedTail);
    }
}
