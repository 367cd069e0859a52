using Chainwalk.Wire;
using Xunit;

namespace Chainwalk.Tests.Wire;

/// <summary>
/// Packets recorded with scapy 2.5 (python3-scapy, Debian 12), each with the builder call that must produce the
/// same bytes and the line <see cref="Packet.ToString"/> must print. The scapy expression is in the comment;
/// A = 10.0.0.1 / 2001:db8::1, B = 10.0.0.2 / 2001:db8::2, <c>ip()</c> = IP(src=A, dst=B, id=0).
/// The lines are what <c>tcpdump -n -S -r</c> (tcpdump 4.99.3) printed for these bytes, except where tcpdump
/// decodes an application protocol (DNS on port 53, DHCPv6 on 546/547, "HTTP" after port-80 data): Chainwalk
/// stops at the transport layer, and drops the trailing space tcpdump leaves after SCTP chunks.
/// </summary>
public static class ScapyCases
{
    public sealed record Case(string Name, string Hex, Func<PacketBuilder> Build, string Text);

    private const string A = "10.0.0.1", B = "10.0.0.2", A6 = "2001:db8::1", B6 = "2001:db8::2";

    // ip(flags='DF', tos=0x10, ttl=63)/UDP(sport=5353, dport=53)/b'abcd'
    public const string Udp4 = "45100020000040003f1127bb0a0000010a00000214e90035000c11ef61626364";

    // IPv6(src=A6, dst=B6, tc=0xb8, fl=0x12345)/UDP(sport=546, dport=547)/b'xyz'
    public const string Udp6 = "6b812345000b114020010db800000000000000000000000120010db800000000000000000000000202220223000bada478797a";

    public static readonly Case[] All =
    [
        // ip()/TCP(sport=1234, dport=80, flags='S', seq=1, window=64240, options=[('MSS', 1460)])
        new("tcp4_syn_mss", "4500002c00000000400666ca0a0000010a00000204d2005000000001000000006002faf084100000020405b4",
            () => PacketBuilder.Ipv4(A, B).Tcp(1234, 80, TcpFlags.Syn, seq: 1).Mss(1460),
            "IP 10.0.0.1.1234 > 10.0.0.2.80: Flags [S], seq 1, win 64240, options [mss 1460], length 0"),
        // IP(src=B, dst=A, id=0)/TCP(sport=80, dport=1234, flags='SA', seq=5000, ack=2, window=65160,
        //   options=[('MSS', 1460), ('SAckOK', b''), ('Timestamp', (100, 200)), ('NOP', None), ('WScale', 7)])
        new("tcp4_synack_options", "4500003c00000000400666ba0a0000020a000001005004d20000138800000002a012fe881b8d0000020405b40402080a00000064000000c801030307",
            () => PacketBuilder.Ipv4(B, A).Tcp(80, 1234, TcpFlags.Syn | TcpFlags.Ack, 5000, 2, 65160).Mss(1460)
                .TcpOption(TcpOptionKind.SackPermitted).TcpOption(TcpOptionKind.Timestamp, Convert.FromHexString("00000064000000c8"))
                .TcpOption(TcpOptionKind.Nop).TcpOption(TcpOptionKind.WindowScale, [7]),
            "IP 10.0.0.2.80 > 10.0.0.1.1234: Flags [S.], seq 5000, ack 2, win 65160, options [mss 1460,sackOK,TS val 100 ecr 200,nop,wscale 7], length 0"),
        // ip()/TCP(sport=1234, dport=80, flags='PA', seq=1000, ack=2000, window=502)/b'hello'
        new("tcp4_psh_data", "4500002d00000000400666c90a0000010a00000204d20050000003e8000007d0501801f64523000068656c6c6f",
            () => PacketBuilder.Ipv4(A, B).Tcp(1234, 80, TcpFlags.Psh | TcpFlags.Ack, 1000, 2000, 502).Payload("hello"u8),
            "IP 10.0.0.1.1234 > 10.0.0.2.80: Flags [P.], seq 1000:1005, ack 2000, win 502, length 5"),
        new("udp4", Udp4,
            () => PacketBuilder.Ipv4(A, B).DontFragment().Tos(0x10).Ttl(63).Udp(5353, 53).Payload("abcd"u8),
            "IP 10.0.0.1.5353 > 10.0.0.2.53: UDP, length 4"),
        // ip()/ICMP(type=8, id=1, seq=1)/(b'\x00' * 8)
        new("icmp4_echo", "4500002400000000400166d70a0000010a0000020800f7fd000100010000000000000000",
            () => PacketBuilder.Ipv4(A, B).IcmpEcho(1, 1).PayloadLength(8),
            "IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 16"),
        // IP(src=B, dst=A, id=0)/ICMP(type=3, code=3)/Raw(bytes(udp4))
        new("icmp4_port_unreachable", "4500003c00000000400166bf0a0000020a0000010303111d00000000" + Udp4,
            () => PacketBuilder.Ipv4(B, A).IcmpError(IcmpType.DestinationUnreachable, 3, Convert.FromHexString(Udp4)),
            "IP 10.0.0.2 > 10.0.0.1: ICMP 10.0.0.2 udp port 53 unreachable, length 40"),
        // IP(src=B, dst=A, id=0)/ICMP(type=3, code=4, nexthopmtu=1400)/Raw(bytes(udp4))
        new("icmp4_frag_needed", "4500003c00000000400166bf0a0000020a00000103040ba400000578" + Udp4,
            () => PacketBuilder.Ipv4(B, A).IcmpError(IcmpType.DestinationUnreachable, 4, Convert.FromHexString(Udp4), 1400),
            "IP 10.0.0.2 > 10.0.0.1: ICMP 10.0.0.2 unreachable - need to frag (mtu 1400), length 40"),
        // ip()/SCTP(sport=5000, dport=5001, tag=0)/SCTPChunkInit(init_tag=0x11223344, a_rwnd=65535, n_out_streams=10, n_in_streams=10, init_tsn=1)
        new("sctp4_init", "4500003400000000408466440a0000010a0000021388138900000000e97c491b01000014112233440000ffff000a000a00000001",
            () => PacketBuilder.Ipv4(A, B).SctpInit(5000, 5001, 0x11223344),
            "IP 10.0.0.1.5000 > 10.0.0.2.5001: sctp (1) [INIT] [init tag: 287454020] [rwnd: 65535] [OS: 10] [MIS: 10] [init TSN: 1]"),
        // ip(options=[IPOption_Router_Alert()])/UDP(sport=1, dport=2)
        new("ip4_router_alert_udp", "46000020000000004011d1c60a0000010a00000294040000000100020008ebd8",
            () => PacketBuilder.Ipv4(A, B).Ipv4Options([0x94, 4, 0, 0]).Udp(1, 2),
            "IP 10.0.0.1.1 > 10.0.0.2.2: UDP, length 0"),
        // ip(flags='MF', frag=2, proto=17)/Raw(b'\x00' * 16)
        new("ip4_nonfirst_fragment", "4500002400002002401146c50a0000010a00000200000000000000000000000000000000",
            () => PacketBuilder.Ipv4(A, B).Fragment(16, moreFragments: true).Protocol(IpProtocol.Udp).PayloadLength(16),
            "IP 10.0.0.1 > 10.0.0.2: ip-proto-17"),
        // IPv6(src=A6, dst=B6)/TCP(sport=1234, dport=443, flags='S', seq=1, window=64800, options=[('MSS', 1440)])
        new("tcp6_syn", "600000000018064020010db800000000000000000000000120010db800000000000000000000000204d201bb00000001000000006002fd2039170000020405a0",
            () => PacketBuilder.Ipv6(A6, B6).Tcp(1234, 443, TcpFlags.Syn, 1, 0, 64800).Mss(1440),
            "IP6 2001:db8::1.1234 > 2001:db8::2.443: Flags [S], seq 1, win 64800, options [mss 1440], length 0"),
        new("udp6", Udp6,
            () => PacketBuilder.Ipv6(A6, B6).Tos(0xb8).FlowLabel(0x12345).Udp(546, 547).Payload("xyz"u8),
            "IP6 2001:db8::1.546 > 2001:db8::2.547: UDP, length 3"),
        // IPv6(src=A6, dst=B6)/ICMPv6EchoRequest(id=7, seq=3, data=b'ping')
        new("icmp6_echo", "60000000000c3a4020010db800000000000000000000000120010db8000000000000000000000002800045690007000370696e67",
            () => PacketBuilder.Ipv6(A6, B6).IcmpEcho(7, 3).Payload("ping"u8),
            "IP6 2001:db8::1 > 2001:db8::2: ICMP6, echo request, id 7, seq 3, length 12"),
        // IPv6(src=B6, dst=A6)/ICMPv6DestUnreach(code=4)/Raw(bytes(udp6))
        new("icmp6_port_unreachable", "60000000003b3a4020010db800000000000000000000000220010db80000000000000000000000010104031c00000000" + Udp6,
            () => PacketBuilder.Ipv6(B6, A6).IcmpError(Icmpv6Type.DestinationUnreachable, 4, Convert.FromHexString(Udp6)),
            "IP6 2001:db8::2 > 2001:db8::1: ICMP6, destination unreachable, unreachable port, 2001:db8::2 udp port 547, length 59"),
        // IPv6(src=B6, dst=A6)/ICMPv6PacketTooBig(mtu=1280)/Raw(bytes(udp6))
        new("icmp6_packet_too_big", "60000000003b3a4020010db800000000000000000000000220010db80000000000000000000000010200fd1f00000500" + Udp6,
            () => PacketBuilder.Ipv6(B6, A6).IcmpError(Icmpv6Type.PacketTooBig, 0, Convert.FromHexString(Udp6), 1280),
            "IP6 2001:db8::2 > 2001:db8::1: ICMP6, packet too big, mtu 1280, length 59"),
        // IPv6(src=A6, dst=B6)/IPv6ExtHdrHopByHop()/IPv6ExtHdrFragment(offset=0, m=1, id=0x42)/UDP(sport=1000, dport=2000)/(b'\x00' * 8)
        new("ip6_hopbyhop_fragment_udp", "600000000020004020010db800000000000000000000000120010db80000000000000000000000022c00010400000000110000010000004203e807d0001098a10000000000000000",
            () => PacketBuilder.Ipv6(A6, B6).Ipv6Extension(IpProtocol.HopByHop, [1, 4, 0, 0, 0, 0]).Fragment(0, true, 0x42).Udp(1000, 2000).PayloadLength(8),
            "IP6 2001:db8::1 > 2001:db8::2: HBH frag (0|16) 1000 > 2000: UDP, length 8"),
        // IPv6(src=A6, dst=B6)/IPv6ExtHdrFragment(nh=17, offset=2, m=0, id=0x42)/Raw(b'\x00' * 8)
        new("ip6_nonfirst_fragment", "6000000000102c4020010db800000000000000000000000120010db800000000000000000000000211000010000000420000000000000000",
            () => PacketBuilder.Ipv6(A6, B6).Fragment(16, false, 0x42).Protocol(IpProtocol.Udp).PayloadLength(8),
            "IP6 2001:db8::1 > 2001:db8::2: frag (16|8)"),
        // IPv6(src=A6, dst=B6)/IPv6ExtHdrDestOpt()/TCP(sport=1, dport=2, flags='R', seq=9, window=0)
        new("ip6_destination_options_tcp", "60000000001c3c4020010db800000000000000000000000120010db800000000000000000000000206000104000000000001000200000009000000005004000054600000",
            () => PacketBuilder.Ipv6(A6, B6).Ipv6Extension(IpProtocol.DestinationOptions, [1, 4, 0, 0, 0, 0]).Tcp(1, 2, TcpFlags.Rst, 9, 0, 0),
            "IP6 2001:db8::1 > 2001:db8::2: DSTOPT 1 > 2: Flags [R], seq 9, win 0, length 0"),
        // IPv6(src=A6, dst=B6)/SCTP(sport=5000, dport=5001, tag=0)/SCTPChunkInit(init_tag=1, a_rwnd=106496, n_out_streams=10, n_in_streams=65535, init_tsn=7)
        new("sctp6_init", "600000000020844020010db800000000000000000000000120010db80000000000000000000000021388138900000000e2003d0301000014000000010001a000000affff00000007",
            () => PacketBuilder.Ipv6(A6, B6).SctpInit(5000, 5001, 1, 106496, 10, 65535, 7),
            "IP6 2001:db8::1.5000 > 2001:db8::2.5001: sctp (1) [INIT] [init tag: 1] [rwnd: 106496] [OS: 10] [MIS: 65535] [init TSN: 7]"),
    ];

    public static Case Get(string name) => All.Single(c => c.Name == name);

    public static TheoryData<string> Names()
    {
        return new TheoryData<string>(All.Select(c => c.Name));
    }

}
