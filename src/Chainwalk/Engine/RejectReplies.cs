using System.Buffers.Binary;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Routing;
using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>
/// The replies of REJECT (net/ipv4/netfilter/nf_reject_ipv4.c, net/ipv6/netfilter/nf_reject_ipv6.c): whether an
/// ICMP error may be sent about the packet (its checksum is verified first), and the TCP reset built from it.
/// </summary>
/// <remarks>
/// Packets reach the virtual host with CHECKSUM_NONE (as from a packet socket or a tun device): the checksum is
/// verified in software, as nf_ip_checksum / nf_ip6_checksum do. A NIC or veth that marked the checksum as
/// verified (CHECKSUM_UNNECESSARY / PARTIAL) would skip the ICMP-error check.
/// </remarks>
public static class RejectReplies
{
    /// <summary>
    /// nf_reject_verify_csum: protocols whose checksum is not verified before an ICMP error (other integrity
    /// checks, partial checksums, UDP without a checksum, GRE without the C bit).
    /// </summary>
    private static bool NeedsVerification(ReadOnlySpan<byte> l4, byte proto) => proto switch
    {
        IpProtocol.Ah or IpProtocol.Esp or IpProtocol.Sctp or IpProtocol.UdpLite or 33 => false,
        IpProtocol.Udp => l4.Length < 8 || BinaryPrimitives.ReadUInt16BigEndian(l4[6..]) != 0,
        IpProtocol.Gre => l4.Length < 2 || (l4[0] & 0x80) != 0,
        _ => true,
    };

    /// <summary>
    /// nf_send_unreach's precondition: not a later fragment, and (when the protocol has a checksum over its whole
    /// payload) a valid one. nf_ip_checksum sums with the pseudo header for TCP and UDP only; for any other
    /// protocol the bare payload must sum to zero.
    /// </summary>
    public static bool MayUnreach4(Packet p)
    {
        if (p.IsNonFirstFragment) return false;
        int end = Math.Min(p.TotalLength, p.Bytes.Length);
        ReadOnlySpan<byte> l4 = p.Bytes.AsSpan(p.IpHeaderLength, end - p.IpHeaderLength);
        if (!NeedsVerification(l4, p.Protocol)) return true;
        return Verify4(p, l4);
    }

    private static bool Verify4(Packet p, ReadOnlySpan<byte> l4)
    {
        uint sum = p.Protocol is IpProtocol.Tcp or IpProtocol.Udp
            ? Checksum.PseudoV4(p.SourceBytes, p.DestinationBytes, p.Protocol, l4.Length)
            : 0;
        return Checksum.Finish(Checksum.Add(sum, l4)) == 0;
    }

    /// <summary>reject6_csum_ok: the upper layer must be found and not be in a later fragment, and its checksum (pseudo header included) be valid.</summary>
    public static bool MayUnreach6(Packet p)
    {
        ReadOnlySpan<byte> b = p.Bytes.AsSpan(0, Math.Min(p.TotalLength, p.Bytes.Length));
        (int off, byte proto, bool later) = IcmpErrors.Ipv6Upper(b);
        if (off < 0 || off >= b.Length || later) return false;
        ReadOnlySpan<byte> l4 = b[off..];
        if (!NeedsVerification(l4, proto)) return true;
        return Verify6(p, proto, l4);
    }

    private static bool Verify6(Packet p, byte proto, ReadOnlySpan<byte> l4) =>
        Checksum.Finish(Checksum.Add(Checksum.PseudoV6(p.SourceBytes, p.DestinationBytes, proto, l4.Length), l4)) == 0;

    /// <summary>
    /// nf_send_reset: the RST answering a TCP segment, or null when none is sent (a later fragment, no complete
    /// TCP header, a RST, a bad checksum, a broadcast or multicast destination). The reply goes from the packet's
    /// destination to its source: TTL from the route (ip_default_ttl), DF, TOS 0, ID 0, window 0, no options;
    /// with ACK set on the segment the reset's sequence is its acknowledgment number, else the reset acknowledges
    /// seq + SYN + FIN + payload length.
    /// </summary>
    public static byte[]? TcpReset4(VirtualHost host, Packet p)
    {
        if (p.IsNonFirstFragment || p.Protocol != IpProtocol.Tcp) return null;
        int end = Math.Min(p.TotalLength, p.Bytes.Length);
        ReadOnlySpan<byte> l4 = p.Bytes.AsSpan(p.IpHeaderLength, end - p.IpHeaderLength);
        if (l4.Length < 20) return null;
        if ((l4[13] & 0x04) != 0) return null;
        if (!Verify4(p, l4)) return null;
        uint dst = (uint)p.Destination;
        if (dst == 0xffff_ffff || (dst >> 28) == 0xe || RouteLookup.AddressType4(host, dst) == RouteType.Broadcast) return null;
        byte ttl = byte.TryParse(host.GetSysctl("net.ipv4.ip_default_ttl"), out byte t) ? t : (byte)64;
        return PacketBuilder.Ipv4((uint)p.Destination, (uint)p.Source).Ttl(ttl).DontFragment()
            .Tcp(Port(l4, 2), Port(l4, 0), ResetFlags(l4), ResetSeq(l4), ResetAck(l4, l4.Length), window: 0).Build();
    }

    /// <summary>
    /// nf_send_reset6: as <see cref="TcpReset4"/>; both addresses must be unicast, the route back must exist; hop
    /// limit from that route's device (hop_limit sysctl), traffic class and flow label 0.
    /// </summary>
    public static byte[]? TcpReset6(VirtualHost host, Packet p)
    {
        if ((p.Source >> 120) == 0xff || p.Source == 0 || (p.Destination >> 120) == 0xff || p.Destination == 0) return null;
        ReadOnlySpan<byte> b = p.Bytes.AsSpan(0, Math.Min(p.TotalLength, p.Bytes.Length));
        (int off, byte proto, bool later) = IcmpErrors.Ipv6Upper(b);
        if (off < 0 || off > b.Length || later || proto != IpProtocol.Tcp || b.Length - off < 20) return null;
        ReadOnlySpan<byte> l4 = b[off..];
        if ((l4[13] & 0x04) != 0) return null;
        if (!Verify6(p, IpProtocol.Tcp, l4)) return null;
        RouteResult back = RouteLookup.Output(host, new RouteQuery(IpFamily.V6, p.Source) { Source = p.Destination });
        if (!back.Ok) return null;
        string? hl = back.Device is { } d ? host.GetSysctl($"net.ipv6.conf.{d}.hop_limit") : null;
        byte hops = byte.TryParse(hl ?? host.GetSysctl("net.ipv6.conf.all.hop_limit"), out byte h) ? h : (byte)64;
        return PacketBuilder.Ipv6(p.Destination, p.Source).Ttl(hops)
            .Tcp(Port(l4, 2), Port(l4, 0), ResetFlags(l4), ResetSeq(l4), ResetAck(l4, l4.Length), window: 0).Build();
    }

    private static ushort Port(ReadOnlySpan<byte> th, int at) => BinaryPrimitives.ReadUInt16BigEndian(th[at..]);

    private static bool HasAck(ReadOnlySpan<byte> th) => (th[13] & 0x10) != 0;

    private static TcpFlags ResetFlags(ReadOnlySpan<byte> th) => HasAck(th) ? TcpFlags.Rst : TcpFlags.Rst | TcpFlags.Ack;

    private static uint ResetSeq(ReadOnlySpan<byte> th) => HasAck(th) ? BinaryPrimitives.ReadUInt32BigEndian(th[8..]) : 0;

    private static uint ResetAck(ReadOnlySpan<byte> th, int segmentLength)
    {
        if (HasAck(th)) return 0;
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(th[4..]);
        uint syn = (th[13] & 0x02) != 0 ? 1u : 0u, fin = (th[13] & 0x01) != 0 ? 1u : 0u;
        int doff = (th[12] >> 4) * 4;
        return unchecked(seq + syn + fin + (uint)(segmentLength - doff));
    }
}
