using System.Buffers.Binary;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Wire;
using Shouldly;
using Xunit;
using static Chainwalk.Tests.Engine.TargetTestHost;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// REJECT and REJECT (ip6): the fate, and the reply's bytes as nf_reject_ipv4.c / nf_reject_ipv6.c and icmp_send /
/// icmp6_send build them (expectations read from those sources: source address, TOS 0xc0 | (tos &amp; 0x1e), TTL 64,
/// no DF for ICMP errors; DF, TTL 64, window 0 for resets; the IPv4 ID and IPv6 flow label are left 0 where the
/// kernel randomises them).
/// </summary>
public class TargetTestsReject
{
    private static Netfilter Filter4(string rule) => new(Create(Table("filter", rule)));

    /// <summary>Rules in filter with forwarding on (eth1 192.168.1.10/24): fragments are tested where they pass one by one.</summary>
    private static Netfilter Forwarding4(params string[] rules) => new(Create(Table("filter", rules), null, "sysctl -w net.ipv4.ip_forward=1"));

    private static Netfilter Filter6(string rule) => new(Create(v6Rules: Table("filter", rule)));

    public static TheoryData<string, string, byte> Ipv4Codes => new()
    {
        { "", "icmp-port-unreachable", 3 },
        { "--reject-with icmp-net-unreachable", "icmp-net-unreachable", 0 },
        { "--reject-with icmp-host-unreachable", "icmp-host-unreachable", 1 },
        { "--reject-with icmp-proto-unreachable", "icmp-proto-unreachable", 2 },
        { "--reject-with icmp-port-unreachable", "icmp-port-unreachable", 3 },
        { "--reject-with icmp-net-prohibited", "icmp-net-prohibited", 9 },
        { "--reject-with icmp-host-prohibited", "icmp-host-prohibited", 10 },
        { "--reject-with icmp-admin-prohibited", "icmp-admin-prohibited", 13 },
        { "--reject-with admin-prohib", "icmp-admin-prohibited", 13 },
    };

    [Theory]
    [MemberData(nameof(Ipv4Codes))]
    public void Ipv4_icmp_reject_sends_destination_unreachable_from_the_local_address(string opts, string name, byte code)
    {
        Netfilter nf = Filter4("-A INPUT -p udp -j REJECT " + opts);
        byte[] offending = PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Tos(0x25).Id(0x4242).Udp(5000, 53).Payload([1, 2, 3, 4]).Build();
        PacketResult r = Receive(nf, offending);
        r.Fate.ShouldBe(["rejected:" + name]);
        r.Outputs.Count.ShouldBe(1);
        r.Outputs[0].Interface.ShouldBe("eth0");
        Packet reply = r.Outputs[0].Packet;
        reply.Source.ShouldBe(Ip("10.0.0.1"));
        reply.Destination.ShouldBe(Ip("10.0.0.2"));
        reply.Tos.ShouldBe((byte)(0xc0 | (0x25 & 0x1e)));
        reply.Ttl.ShouldBe((byte)64);
        reply.DontFragment.ShouldBeFalse();
        reply.IcmpType.ShouldBe((byte)3);
        reply.IcmpCode.ShouldBe(code);
        // The whole offending packet is quoted after the 8-byte ICMP header (rest of header 0).
        Hex(reply.Bytes.AsSpan(20 + 4, 4)).ShouldBe("00000000");
        Hex(reply.Bytes.AsSpan(28)).ShouldBe(Hex(offending));
        reply.ShouldHaveValidChecksums();
    }

    [Fact]
    public void Ipv4_quote_is_cut_to_keep_the_error_within_576_bytes()
    {
        Netfilter nf = Filter4("-A INPUT -p udp -j REJECT");
        byte[] offending = PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Udp(5000, 53).PayloadLength(1000).Build();
        Packet reply = Receive(nf, offending).Outputs.ShouldHaveSingleItem().Packet;
        reply.TotalLength.ShouldBe(576);
        Hex(reply.Bytes.AsSpan(28)).ShouldBe(Hex(offending.AsSpan(0, 548)));
    }

    public static TheoryData<string, byte[]> Ipv4NoIcmp => new()
    {
        // nf_send_unreach: later fragments get no error (forwarded: INPUT sees IPv4 only after reassembly).
        { "later fragment", PacketBuilder.Ipv4("10.0.0.2", "192.168.1.20").Fragment(8, false, 7).Udp(5000, 53).Build() },
        // nf_ip_checksum fails: no error.
        { "bad UDP checksum", Corrupt(PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Udp(5000, 53).Payload([9]).Build(), 26) },
        // icmp_send: never about an ICMP error.
        { "ICMP error", PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").IcmpError(3, 1, PacketBuilder.Ipv4("10.0.0.1", "10.0.0.9").Udp(1, 2).Build()).Build() },
        // icmp_send: the destination is the subnet broadcast.
        { "broadcast destination", PacketBuilder.Ipv4("10.0.0.2", "10.0.0.255").Udp(5000, 53).Build() },
    };

    private static byte[] Corrupt(byte[] b, int at)
    {
        b[at] ^= 0x55;
        return b;
    }

    [Theory]
    [MemberData(nameof(Ipv4NoIcmp))]
    public void Ipv4_reject_without_reply_still_drops_as_rejected(string what, byte[] packet)
    {
        _ = what;
        Netfilter nf = Forwarding4("-A INPUT -j REJECT", "-A FORWARD -j REJECT");
        PacketResult r = Receive(nf, packet);
        r.Outputs.ShouldBeEmpty();
        r.Fate.ShouldBe(["rejected:icmp-port-unreachable"]);
    }

    [Fact]
    public void Ipv4_reject_of_a_udp_packet_without_checksum_is_answered()
    {
        Netfilter nf = Filter4("-A INPUT -j REJECT");
        byte[] b = PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Udp(5000, 53).Payload([9]).Build();
        b[26] = 0;
        b[27] = 0;
        Receive(nf, b).Outputs.Count.ShouldBe(1);
    }

    [Fact]
    public void Ipv4_errors_to_one_peer_are_rate_limited_to_a_burst_of_six()
    {
        // icmpv4_xrlim_allow: icmp_ratelimit 1000 ms, XRLIM_BURST_FACTOR 6, the first burst full (the real kernel,
        // sent 8 rejected packets from one source in a namespace, answered 6).
        Netfilter nf = Filter4("-A INPUT -j REJECT");
        int sent = 0;
        for (int i = 0; i < 8; i++)
            sent += Receive(nf, PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Udp((ushort)(5000 + i), 53).Build()).Outputs.Count;
        sent.ShouldBe(6);
        // One more token a second later.
        PacketResult later = nf.Process(new PacketInput
        {
            Bytes = PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Udp(6000, 53).Build(),
            InInterface = "eth0",
            SourceMac = PeerMac,
            DestinationMac = MacOf(nf.Host, "eth0"),
            At = nf.State.Now + 1,
        });
        later.Outputs.Count.ShouldBe(1);
    }

    public static TheoryData<TcpFlags, uint, uint, int, TcpFlags, uint, uint> Resets => new()
    {
        // No ACK in the segment: RST|ACK, seq 0, ack = seq + SYN + FIN + payload.
        { TcpFlags.Syn, 1000, 0, 0, TcpFlags.Rst | TcpFlags.Ack, 0, 1001 },
        { TcpFlags.Syn | TcpFlags.Fin, 1000, 0, 5, TcpFlags.Rst | TcpFlags.Ack, 0, 1007 },
        { TcpFlags.None, 0xffff_fffe, 0, 4, TcpFlags.Rst | TcpFlags.Ack, 0, 2 },
        // ACK set: RST alone, seq = the segment's ack, ack 0.
        { TcpFlags.Ack | TcpFlags.Psh, 77, 5000, 10, TcpFlags.Rst, 5000, 0 },
    };

    [Theory]
    [MemberData(nameof(Resets))]
    public void Ipv4_tcp_reset_is_built_as_nf_send_reset(TcpFlags flags, uint seq, uint ack, int payload, TcpFlags rflags, uint rseq, uint rack)
    {
        Netfilter nf = Filter4("-A INPUT -p tcp -j REJECT --reject-with tcp-reset");
        byte[] segment = PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Tos(0x10).Ttl(20).Tcp(40000, 22, flags, seq, ack).Mss(1460).PayloadLength(payload).Build();
        PacketResult r = Receive(nf, segment);
        r.Fate.ShouldBe(["rejected:tcp-reset"]);
        Packet rst = r.Outputs.ShouldHaveSingleItem().Packet;
        rst.Source.ShouldBe(Ip("10.0.0.1"));
        rst.Destination.ShouldBe(Ip("10.0.0.2"));
        rst.Tos.ShouldBe((byte)0);
        rst.Ttl.ShouldBe((byte)64);
        rst.DontFragment.ShouldBeTrue();
        rst.FragmentId.ShouldBe(0u);
        rst.TotalLength.ShouldBe(40);
        rst.SourcePort.ShouldBe((ushort)22);
        rst.DestinationPort.ShouldBe((ushort)40000);
        rst.TcpFlags.ShouldBe(rflags);
        rst.SequenceNumber.ShouldBe(rseq);
        rst.AcknowledgmentNumber.ShouldBe(rack);
        rst.Window.ShouldBe((ushort)0);
        rst.UrgentPointer.ShouldBe((ushort)0);
        rst.ShouldHaveValidChecksums();
    }

    public static TheoryData<string, byte[]> NoReset => new()
    {
        { "RST", PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Tcp(40000, 22, TcpFlags.Rst | TcpFlags.Ack, 1, 2).Build() },
        { "bad checksum", Corrupt(PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Tcp(40000, 22).Build(), 36) },
        { "later fragment", PacketBuilder.Ipv4("10.0.0.2", "192.168.1.20").Fragment(16, false, 3).Tcp(40000, 22).Build() },
    };

    [Theory]
    [MemberData(nameof(NoReset))]
    public void Ipv4_no_reset_for_rst_bad_checksum_or_fragments(string what, byte[] segment)
    {
        _ = what;
        Netfilter nf = Forwarding4("-A INPUT -p tcp -j REJECT --reject-with tcp-reset", "-A FORWARD -p tcp -j REJECT --reject-with tcp-reset");
        PacketResult r = Receive(nf, segment);
        r.Outputs.ShouldBeEmpty();
        r.Fate.ShouldBe(["rejected:tcp-reset"]);
    }

    [Fact]
    public void Ipv4_reject_in_output_is_answered_locally()
    {
        // A local packet rejected in OUTPUT: the error goes back to this host by lo.
        Netfilter nf = Filter4("-A OUTPUT -p udp -d 10.0.0.2 -j REJECT");
        PacketResult r = Send(nf, PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Udp(5000, 53).Build());
        r.Fate.ShouldBe(["rejected:icmp-port-unreachable"]);
        r.Outputs.ShouldBeEmpty();
    }

    public static TheoryData<string, string, byte> Ipv6Codes => new()
    {
        { "", "icmp6-port-unreachable", 4 },
        { "--reject-with icmp6-no-route", "icmp6-no-route", 0 },
        { "--reject-with icmp6-adm-prohibited", "icmp6-adm-prohibited", 1 },
        { "--reject-with icmp6-addr-unreachable", "icmp6-addr-unreachable", 3 },
        { "--reject-with icmp6-port-unreachable", "icmp6-port-unreachable", 4 },
        { "--reject-with icmp6-policy-fail", "icmp6-policy-fail", 5 },
        { "--reject-with icmp6-reject-route", "icmp6-reject-route", 6 },
    };

    [Theory]
    [MemberData(nameof(Ipv6Codes))]
    public void Ipv6_icmp_reject_sends_destination_unreachable(string opts, string name, byte code)
    {
        Netfilter nf = Filter6("-A INPUT -p udp -j REJECT " + opts);
        byte[] offending = PacketBuilder.Ipv6("2001:db8:1::2", "2001:db8:1::1").Tos(0x28).FlowLabel(0x12345).Udp(5000, 53).Payload([1, 2, 3]).Build();
        PacketResult r = Receive(nf, offending);
        r.Fate.ShouldBe(["rejected:" + name]);
        Packet reply = r.Outputs.ShouldHaveSingleItem().Packet;
        reply.Source.ShouldBe(Ip6("2001:db8:1::1"));
        reply.Destination.ShouldBe(Ip6("2001:db8:1::2"));
        reply.Tos.ShouldBe((byte)0);
        reply.Ttl.ShouldBe((byte)64);
        reply.IcmpType.ShouldBe((byte)1);
        reply.IcmpCode.ShouldBe(code);
        Hex(reply.Bytes.AsSpan(48)).ShouldBe(Hex(offending));
        reply.ShouldHaveValidChecksums();
    }

    [Fact]
    public void Ipv6_quote_is_cut_to_the_minimum_mtu()
    {
        Netfilter nf = Filter6("-A INPUT -j REJECT");
        byte[] offending = PacketBuilder.Ipv6("2001:db8:1::2", "2001:db8:1::1").Udp(5000, 53).PayloadLength(1400).Build();
        Packet reply = Receive(nf, offending).Outputs.ShouldHaveSingleItem().Packet;
        reply.TotalLength.ShouldBe(1280);
    }

    [Fact]
    public void Ipv6_no_error_about_an_icmpv6_error_or_a_bad_checksum()
    {
        Netfilter nf = Filter6("-A INPUT -j REJECT");
        byte[] err = PacketBuilder.Ipv6("2001:db8:1::2", "2001:db8:1::1").IcmpError(1, 4, PacketBuilder.Ipv6("2001:db8:1::1", "2001:db8:1::9").Udp(1, 2).Build()).Build();
        Receive(nf, err).Outputs.ShouldBeEmpty();
        byte[] bad = Corrupt(PacketBuilder.Ipv6("2001:db8:1::2", "2001:db8:1::1").Udp(5000, 53).Payload([7]).Build(), 48);
        PacketResult r = Receive(nf, bad);
        r.Outputs.ShouldBeEmpty();
        r.Fate.ShouldBe(["rejected:icmp6-port-unreachable"]);
        // An echo request is informational: answered.
        Receive(nf, PacketBuilder.Ipv6("2001:db8:1::2", "2001:db8:1::1").IcmpEcho(1, 1).Build()).Outputs.Count.ShouldBe(1);
    }

    [Theory]
    [MemberData(nameof(Resets))]
    public void Ipv6_tcp_reset_is_built_as_nf_send_reset6(TcpFlags flags, uint seq, uint ack, int payload, TcpFlags rflags, uint rseq, uint rack)
    {
        Netfilter nf = Filter6("-A INPUT -p tcp -j REJECT --reject-with tcp-reset");
        byte[] segment = PacketBuilder.Ipv6("2001:db8:1::2", "2001:db8:1::1").Tos(0x10).FlowLabel(5).Ttl(9).Tcp(40000, 22, flags, seq, ack).PayloadLength(payload).Build();
        PacketResult r = Receive(nf, segment);
        r.Fate.ShouldBe(["rejected:tcp-reset"]);
        Packet rst = r.Outputs.ShouldHaveSingleItem().Packet;
        rst.Source.ShouldBe(Ip6("2001:db8:1::1"));
        rst.Destination.ShouldBe(Ip6("2001:db8:1::2"));
        rst.Tos.ShouldBe((byte)0);
        rst.FlowLabel.ShouldBe(0u);
        rst.Ttl.ShouldBe((byte)64);
        rst.TotalLength.ShouldBe(60);
        rst.TcpFlags.ShouldBe(rflags);
        rst.SequenceNumber.ShouldBe(rseq);
        rst.AcknowledgmentNumber.ShouldBe(rack);
        rst.Window.ShouldBe((ushort)0);
        rst.ShouldHaveValidChecksums();
    }

    internal static UInt128 Ip(string a) => BinaryPrimitives.ReadUInt32BigEndian(System.Net.IPAddress.Parse(a).GetAddressBytes());

    internal static UInt128 Ip6(string a) => BinaryPrimitives.ReadUInt128BigEndian(System.Net.IPAddress.Parse(a).GetAddressBytes());

    internal static VirtualHost HostFor(string v4) => Create(v4);
}
