using System.Reflection;
using Chainwalk.Net;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The reused packet's read of the common packet (plain IPv4 TCP/UDP, <see cref="Packet.TryReadPlainV4"/>) writes every
/// fact a whole parse gives, whatever the object held before; anything else (options, fragments, other protocols, a TCP
/// header cut short, IPv6) is left to the whole re-read. Every public fact is compared, by reflection.
/// </summary>
public class PlainParseTests
{
    private const int Size = 84;

    /// <summary>kind → (IPv4 plain TCP/UDP, taken by the plain read)</summary>
    private static readonly (string Kind, bool Plain)[] Kinds =
    [
        ("tcp", true), ("tcp df", true), ("tcp reserved flag", true), ("tcp bad ip checksum", true), ("tcp bad tcp checksum", true),
        ("tcp options", true), ("tcp urg", true), ("udp", true), ("udp zero checksum", true), ("udp short length field", true),
        ("tcp data offset 4", false), ("tcp data offset 60", true), ("tcp ip options", false), ("tcp more fragments", false),
        ("tcp fragment offset", false), ("icmp echo", false), ("icmp error", false), ("sctp", false), ("udplite", false),
        ("gre", false), ("v6 tcp", false), ("v6 tcp hop-by-hop", false), ("v6 udp", false),
    ];

    private static byte[] Make(string kind, int payload) => kind switch
    {
        "tcp" or "tcp bad ip checksum" or "tcp bad tcp checksum" or "tcp data offset 4" or "tcp data offset 60" or "tcp reserved flag" =>
            PacketBuilder.Ipv4("10.1.2.3", "192.168.9.8").Ttl(17).Tos(0x2e).Id(0x1234).Tcp(40000, 443, TcpFlags.Ack | TcpFlags.Psh, seq: 0xdeadbeef, ack: 77, window: 512).PayloadLength(payload).Build(),
        "tcp df" => PacketBuilder.Ipv4("10.1.2.4", "192.168.9.7").DontFragment().Tcp(1, 2, TcpFlags.Fin | TcpFlags.Ack, seq: 5, ack: 6).PayloadLength(payload).Build(),
        "tcp options" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(1000, 22, TcpFlags.Syn).Mss(1460).PayloadLength(payload).Build(),
        "tcp urg" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(1000, 22, TcpFlags.Urg | TcpFlags.Ack, urgentPointer: 9).PayloadLength(payload).Build(),
        "tcp ip options" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Ipv4Options([1, 1, 1, 0]).Tcp(1000, 22).PayloadLength(payload).Build(),
        "tcp more fragments" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Fragment(0, true, 99).Tcp(1000, 22).PayloadLength(payload).Build(),
        "tcp fragment offset" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Fragment(64, false, 99).Tcp(1000, 22).PayloadLength(payload).Build(),
        "udp" or "udp zero checksum" or "udp short length field" => PacketBuilder.Ipv4("172.16.5.5", "8.8.8.8").Udp(5353, 53).PayloadLength(payload).Build(),
        "icmp echo" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").IcmpEcho(7, 8).PayloadLength(payload).Build(),
        "icmp error" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").IcmpError(3, 3,
            PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Udp(9, 10).PayloadLength(payload).Build()).Build(),
        "sctp" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Sctp(1, 2, 3, 1).PayloadLength(payload).Build(),
        "udplite" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Udp(1, 2).Protocol(IpProtocol.UdpLite).PayloadLength(payload).Build(),
        "gre" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Protocol(47).PayloadLength(payload).Build(),
        "v6 tcp" => PacketBuilder.Ipv6("2001:db8::1", "2001:db8::2").FlowLabel(0x12345).Tcp(1, 2, TcpFlags.Ack, seq: 3, ack: 4).PayloadLength(payload).Build(),
        "v6 tcp hop-by-hop" => PacketBuilder.Ipv6("2001:db8::1", "2001:db8::2").Ipv6Extension(0, [0, 0, 0, 0, 0, 0]).Tcp(1, 2, TcpFlags.Ack).PayloadLength(payload).Build(),
        "v6 udp" => PacketBuilder.Ipv6("2001:db8::1", "2001:db8::2").Udp(1, 2).PayloadLength(payload).Build(),
        _ => throw new ArgumentException(kind),
    };

    /// <summary>The kind's packet, <see cref="Size"/> bytes long (so any object can be reused for any other), with its mutation.</summary>
    private static byte[] Build(string kind)
    {
        byte[] b = Make(kind, Size - Make(kind, 0).Length);
        b.Length.ShouldBe(Size, kind);
        int l4 = (b[0] >> 4) == 4 ? (b[0] & 0x0f) * 4 : 0;
        switch (kind)
        {
            case "tcp bad ip checksum": b[10] ^= 0x5a; break;
            case "tcp bad tcp checksum": b[l4 + 16] ^= 0x5a; break;
            case "tcp reserved flag": b[6] |= 0x80; Packet.UpdateChecksums(b); break;
            case "tcp data offset 4": b[l4 + 12] = 0x40; break;
            case "tcp data offset 60": b[l4 + 12] = 0xf0; break;
            case "udp zero checksum": b[l4 + 6] = 0; b[l4 + 7] = 0; break;
            case "udp short length field": b[l4 + 4] = 0; b[l4 + 5] = 9; break;
        }
        return b;
    }

    /// <summary>Every public fact of the packet (the byte views as hex; the quoted packet by its own facts).</summary>
    private static string AllFacts(Packet? p)
    {
        if (p is null) return "none";
        var parts = new List<string>();
        foreach (PropertyInfo prop in typeof(Packet).GetProperties(BindingFlags.Public | BindingFlags.Instance).OrderBy(x => x.Name, StringComparer.Ordinal))
        {
            if (prop.PropertyType.IsByRefLike || prop.GetIndexParameters().Length > 0) continue;
            object? v = prop.GetValue(p);
            parts.Add(prop.Name + "=" + v switch
            {
                byte[] bytes => Convert.ToHexString(bytes),
                Packet inner => "[" + AllFacts(inner) + "]",
                null => "null",
                _ => v.ToString(),
            });
        }
        parts.Add("ip=" + Convert.ToHexString(p.IpHeaderBytes));
        parts.Add("l4=" + Convert.ToHexString(p.TransportBytes));
        parts.Add("options=" + p.ReadTcpOptions());
        return string.Join(" ", parts);
    }

    public static TheoryData<string, bool> Each()
    {
        var data = new TheoryData<string, bool>();
        foreach ((string kind, bool plain) in Kinds) data.Add(kind, plain);
        return data;
    }

    [Theory]
    [MemberData(nameof(Each))]
    public void The_plain_read_takes_exactly_plain_ipv4_tcp_and_udp(string kind, bool plain)
    {
        Packet p = Packet.Parse(Build(kind));
        string before = AllFacts(p);
        p.TryReadPlainV4().ShouldBe(plain, kind);
        // Taken or not, the facts are the parse's (nothing changed when not taken).
        AllFacts(p).ShouldBe(before);
    }

    public static TheoryData<string, string> Pairs()
    {
        var data = new TheoryData<string, string>();
        foreach ((string before, _) in Kinds)
        {
            foreach ((string next, _) in Kinds) data.Add(before, next);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Pairs))]
    public void A_reused_object_has_every_fact_of_a_fresh_parse(string before, string next)
    {
        Packet p = Packet.Parse(Build(before));
        _ = p.QuotedPacket; // read (and remembered) before the reuse: the next packet's must be its own
        byte[] bytes = Build(next);
        byte[] padded = [.. bytes, 0xee, 0xee, 0xee];
        p.TryReuseFor(padded).ShouldBeTrue();
        AllFacts(p).ShouldBe(AllFacts(Packet.Parse(bytes)), $"{before} → {next}");
    }

    [Theory]
    [InlineData(0x50, true)]
    [InlineData(0x60, false)]
    [InlineData(0xf0, false)]
    public void A_tcp_header_longer_than_the_segment_is_left_to_the_whole_read(byte dataOffset, bool plain)
    {
        // 40 bytes: IPv4 and a TCP header of 20, nothing more; a data offset past the end leaves no transport header.
        byte[] bytes = PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(1000, 22, TcpFlags.Ack).Build();
        bytes[32] = dataOffset;
        Packet p = Packet.Parse(PacketBuilder.Ipv4("10.0.0.9", "10.0.0.8").Udp(7, 8).PayloadLength(12).Build());
        p.TryReuseFor(bytes).ShouldBeTrue();
        AllFacts(p).ShouldBe(AllFacts(Packet.Parse(bytes)));
        p.TryReadPlainV4().ShouldBe(plain);
    }
}
