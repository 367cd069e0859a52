using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Routing;
using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>
/// The ICMP and ICMPv6 errors the kernel sends about a packet (icmp_send in net/ipv4/icmp.c, icmp6_send
/// in net/ipv6/icmp.c): when it sends one at all, from which address, with which TOS and TTL, and how
/// much of the offending packet it quotes. Used by routing errors, TTL expiry and REJECT.
/// </summary>
public static class IcmpErrors
{
    public const int NetUnreachable = 0;
    public const int HostUnreachable = 1;
    public const int ProtocolUnreachable = 2;
    public const int PortUnreachable = 3;
    public const int NetProhibited = 9;
    public const int HostProhibited = 10;
    public const int AdminProhibited = 13;

    /// <summary>ICMP types that are errors (icmp_pointers[].error): no error is ever sent about one of them.</summary>
    private static bool IsIcmpV4Error(byte type) => type is 3 or 4 or 5 or 11 or 12;

    /// <summary>
    /// The error packet (IP header first), or null when the kernel sends none: about a non-first fragment,
    /// about an ICMP error, about a broadcast or multicast packet, or from an unspecified/multicast source.
    /// </summary>
    public static byte[]? Build(VirtualHost host, Skb about, byte type, byte code, uint info)
    {
        Packet p = about.Packet;
        return p.Family == IpFamily.V4 ? Build4(host, about, p, type, code, info) : Build6(host, about, p, type, code, info);
    }

    private static byte[]? Build4(VirtualHost host, Skb about, Packet p, byte type, byte code, uint info)
    {
        uint dst = (uint)p.Destination, src = (uint)p.Source;
        if (about.PacketType is PacketType.Broadcast or PacketType.Multicast) return null;
        if (dst == 0xffff_ffff || (dst >> 28) == 0xe) return null;
        if (RouteLookup.AddressType4(host, dst) == RouteType.Broadcast) return null;
        if (p.IsNonFirstFragment) return null;
        if (p.IsIcmp && p.HasTransportHeader && IsIcmpV4Error(p.IcmpType)) return null;
        if (src == 0 || (src >> 28) == 0xe || src == 0xffff_ffff) return null;

        // The source: the address the packet was sent to when that is ours; otherwise the one the route back picks.
        UInt128? from = null;
        if (RouteLookup.IsLocalAddress(host, IpFamily.V4, dst)) from = dst;
        if (from is null)
        {
            RouteResult back = RouteLookup.Output(host, new RouteQuery(IpFamily.V4, src));
            from = back.PreferredSource;
        }
        if (from is null) return null;
        byte tos = (byte)((p.Tos & 0x1e) | 0xc0);
        byte ttl = byte.TryParse(host.GetSysctl("net.ipv4.ip_default_ttl"), out byte t) ? t : (byte)64;
        ReadOnlySpan<byte> quoted = PacketBuilder.Quote(p.Bytes.AsSpan(0, Math.Min(p.TotalLength, p.Bytes.Length)), IpFamily.V4);
        return PacketBuilder.Ipv4((uint)from.Value, src).Tos(tos).Ttl(ttl).DontFragment(false)
            .IcmpError(type, code, quoted, info).Build();
    }

    private static byte[]? Build6(VirtualHost host, Skb about, Packet p, byte type, byte code, uint info)
    {
        UInt128 dst = p.Destination, src = p.Source;
        bool dstMulticast = (dst >> 120) == 0xff;
        // icmp6_send: errors about multicast packets only for "packet too big" and unknown options (param problem code 2).
        if ((dstMulticast || about.PacketType is PacketType.Multicast or PacketType.Broadcast) && !(type == 2 || (type == 4 && code == 2))) return null;
        if (src == 0 || (src >> 120) == 0xff) return null;
        if (p.Protocol == IpProtocol.Icmpv6 && p.HasTransportHeader && p.IcmpType < 128) return null;

        UInt128? from = RouteLookup.IsLocalAddress(host, IpFamily.V6, dst) ? dst : null;
        if (from is null)
        {
            RouteResult back = RouteLookup.Output(host, new RouteQuery(IpFamily.V6, src));
            from = back.PreferredSource;
        }
        if (from is null) return null;
        byte hops = byte.TryParse(host.GetSysctl("net.ipv6.conf.all.hop_limit"), out byte h) ? h : (byte)64;
        ReadOnlySpan<byte> quoted = PacketBuilder.Quote(p.Bytes.AsSpan(0, Math.Min(p.TotalLength, p.Bytes.Length)), IpFamily.V6);
        return PacketBuilder.Ipv6(from.Value, src).Ttl(hops).IcmpError(type, code, quoted, info).Build();
    }
}
