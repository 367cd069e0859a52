using System.Buffers.Binary;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>
/// What the header matches read from a packet the way the kernel does: <c>par->fragoff</c>, <c>par->thoff</c>
/// and <c>skb_header_pointer()</c> (a read of exact length that fails when the packet is shorter).
/// </summary>
internal static class HeaderReads
{
    /// <summary>
    /// The kernel's <c>par->fragoff</c>: IPv4 counts the fragment offset in 8-byte units (ip_tables.c / nft's
    /// pktinfo); IPv6 has it from <c>ipv6_find_hdr()</c> in bytes. So the "offset 1" TCP fragment exists only for IPv4.
    /// </summary>
    public static int FragOff(Packet p) => p.Family == IpFamily.V4 ? p.FragmentOffset >> 3 : p.FragmentOffset;

    /// <summary><c>skb_header_pointer(skb, offset, length)</c>: the bytes when the packet holds them all.</summary>
    public static bool TryRead(Packet p, int offset, int length, out ReadOnlySpan<byte> bytes)
    {
        if (offset < 0 || length < 0 || offset > p.Bytes.Length - length)
        {
            bytes = default;
            return false;
        }
        bytes = p.Bytes.AsSpan(offset, length);
        return true;
    }

    /// <summary>
    /// nf_tables' transport offset (<c>pkt->thoff</c>, also <c>par->thoff</c> of xt matches run through nft_compat).
    /// For an IPv6 non-first fragment <c>ipv6_find_hdr()</c> returns before it stores the offset, so
    /// nft_set_pktinfo_ipv6 keeps 0: the "transport header" is the IPv6 header itself (recorded on Linux 6.18:
    /// a later fragment matches "-p tcp --sport 24576", 0x6000 being version 6 and traffic class 0).
    /// </summary>
    public static int ThOff(Packet p) => p.Family == IpFamily.V6 && p.IsNonFirstFragment ? 0 : p.TransportOffset;

    /// <summary>The upper-layer header (<see cref="ThOff"/>) when at least <paramref name="length"/> bytes of it are there.</summary>
    public static bool TryTransport(Packet p, int length, out ReadOnlySpan<byte> bytes) => TryRead(p, ThOff(p), length, out bytes);

    public static ushort U16(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt16BigEndian(b[at..]);

    public static uint U32(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt32BigEndian(b[at..]);

    /// <summary>
    /// <c>ipv6_find_hdr(skb, &amp;ptr, target, NULL, NULL)</c> as ip6t_ah/frag/hbh/rt call it: the header's offset,
    /// or false with <paramref name="hotDrop"/> when the walk hit a header that does not fit (not for "not found").
    /// </summary>
    public static bool FindIpv6Header(Packet p, byte target, out int offset, out bool hotDrop)
    {
        int r = Ipv6HeaderFinder.Find(p.Bytes, target, out offset, out _);
        hotDrop = r < 0 && r != Ipv6HeaderFinder.NotFound;
        return r >= 0;
    }

    /// <summary>The DS field: IPv4 TOS, or the IPv6 traffic class (<c>ipv6_get_dsfield</c>).</summary>
    public static byte DsField(Packet p) => p.Family == IpFamily.V4
        ? p.Bytes[1]
        : (byte)((BinaryPrimitives.ReadUInt16BigEndian(p.Bytes) >> 4) & 0xff);

    /// <summary>
    /// Walks TCP-style options (kind, length, data; kinds 0 and 1 are one byte) as xt_tcpudp.c's
    /// tcp_find_option does: a zero length steps one byte. True when <paramref name="kind"/> is met.
    /// </summary>
    public static bool HasOption(ReadOnlySpan<byte> options, byte kind)
    {
        for (int i = 0; i < options.Length;)
        {
            if (options[i] == kind) return true;
            if (options[i] < 2) i++;
            else if (i + 1 < options.Length && options[i + 1] != 0) i += options[i + 1];
            else i++;
        }
        return false;
    }

    /// <summary>A ctx-level hot drop: sets par->hotdrop and returns false, as the kernel's matches do.</summary>
    public static bool Drop(PacketContext ctx)
    {
        ctx.HotDrop = true;
        return false;
    }
}
