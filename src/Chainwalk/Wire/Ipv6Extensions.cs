using System.Buffers.Binary;

namespace Chainwalk.Wire;

/// <summary>IP protocol numbers (IANA), which IPv6 also uses as next-header values.</summary>
public static class IpProtocol
{
    public const byte HopByHop = 0, Icmp = 1, Igmp = 2, Tcp = 6, Udp = 17, Ipv6 = 41, Routing = 43, Fragment = 44,
        Gre = 47, Esp = 50, Ah = 51, Icmpv6 = 58, NoNextHeader = 59, DestinationOptions = 60, Sctp = 132,
        Mobility = 135, UdpLite = 136;

    /// <summary>True for the headers the kernel's <c>ipv6_ext_hdr()</c> steps over (net/ipv6/exthdrs_core.c).</summary>
    public static bool IsIpv6Extension(byte nextHeader) => nextHeader is HopByHop or Routing or Fragment or Ah
        or NoNextHeader or DestinationOptions;
}

/// <summary>One IPv6 extension header found by <see cref="Ipv6ExtensionEnumerator"/>.</summary>
/// <param name="Type">The header's own type (the next-header value that named it).</param>
/// <param name="Offset">Where it starts, counted from the start of the IPv6 header.</param>
/// <param name="Length">Its length in bytes.</param>
/// <param name="NextHeader">The next-header value it carries.</param>
public readonly record struct Ipv6ExtensionHeader(byte Type, int Offset, int Length, byte NextHeader);

/// <summary>
/// Steps through the extension headers of an IPv6 packet (hop-by-hop, routing, fragment, destination
/// options, AH) in order. Stops at the upper-layer header, at "no next header", after a fragment header of
/// a non-first fragment (what follows it is not a header), or at a header that does not fit
/// (<see cref="Truncated"/>). Never throws.
/// </summary>
public ref struct Ipv6ExtensionEnumerator
{
    private readonly ReadOnlySpan<byte> _packet;
    private byte _next;
    private int _offset;
    private bool _done;

    /// <param name="packet">The packet from the first byte of the IPv6 header; it must hold the fixed header.</param>
    public Ipv6ExtensionEnumerator(ReadOnlySpan<byte> packet)
    {
        _packet = packet;
        _done = packet.Length < Ipv6Header.Length;
        _next = _done ? IpProtocol.NoNextHeader : packet[6];
        _offset = Ipv6Header.Length;
    }

    public readonly Ipv6ExtensionEnumerator GetEnumerator() => this;

    public Ipv6ExtensionHeader Current { get; private set; }

    /// <summary>The next-header value after the last header stepped over: the upper-layer protocol once enumeration ends.</summary>
    public readonly byte NextHeader => _next;

    /// <summary>Where the header named by <see cref="NextHeader"/> starts.</summary>
    public readonly int Offset => _offset;

    /// <summary>True when an extension header ran past the end of the buffer.</summary>
    public bool Truncated { get; private set; }

    /// <summary>True when a fragment header with a non-zero offset ended the walk.</summary>
    public bool NonFirstFragment { get; private set; }

    public bool MoveNext()
    {
        if (_done || !IpProtocol.IsIpv6Extension(_next) || _next == IpProtocol.NoNextHeader) return Stop();
        ReadOnlySpan<byte> rest = _packet[_offset..];
        if (rest.Length < 8) { Truncated = true; return Stop(); }
        int length = _next switch
        {
            IpProtocol.Fragment => 8,
            IpProtocol.Ah => (rest[1] + 2) * 4, // RFC 4302: in 32-bit words, minus 2
            _ => (rest[1] + 1) * 8, // RFC 8200: in 8-byte units, not counting the first 8
        };
        if (rest.Length < length) { Truncated = true; return Stop(); }
        Current = new Ipv6ExtensionHeader(_next, _offset, length, rest[0]);
        if (_next == IpProtocol.Fragment && (BinaryPrimitives.ReadUInt16BigEndian(rest[2..]) & 0xfff8) != 0)
        {
            NonFirstFragment = true;
            _done = true;
        }
        _next = rest[0];
        _offset += length;
        return true;
    }

    private bool Stop()
    {
        _done = true;
        return false;
    }
}

/// <summary>What walking an IPv6 packet's extension headers found.</summary>
/// <param name="Protocol">The upper-layer protocol (59 when there is none); for a non-first fragment, the
/// fragment header's next header, as the kernel's <c>ipv6_find_hdr()</c> reports it.</param>
/// <param name="Offset">Where the upper-layer header (or a non-first fragment's data) starts.</param>
/// <param name="HasFragmentHeader">A fragment header was seen.</param>
/// <param name="FragmentOffset">Its fragment offset in 8-byte units.</param>
/// <param name="MoreFragments">Its M flag.</param>
/// <param name="FragmentId">Its identification.</param>
public readonly record struct Ipv6UpperLayer(byte Protocol, int Offset, bool HasFragmentHeader, int FragmentOffset,
    bool MoreFragments, uint FragmentId)
{
    /// <summary>A later fragment: no upper-layer header is present at <see cref="Offset"/>.</summary>
    public bool IsNonFirstFragment => FragmentOffset != 0;
}

/// <summary>Finds the upper-layer protocol of an IPv6 packet through its extension headers.</summary>
public static class Ipv6Extensions
{
    /// <summary>
    /// Walks the extension headers of <paramref name="packet"/> (starting at the IPv6 header). Returns false
    /// when the fixed header or an extension header does not fit in the buffer.
    /// </summary>
    public static bool TryFindUpperLayer(ReadOnlySpan<byte> packet, out Ipv6UpperLayer result)
    {
        result = default;
        if (packet.Length < Ipv6Header.Length) return false;
        var walk = new Ipv6ExtensionEnumerator(packet);
        bool frag = false, more = false;
        int fragOffset = 0;
        uint id = 0;
        while (walk.MoveNext())
        {
            Ipv6ExtensionHeader h = walk.Current;
            if (h.Type == IpProtocol.Fragment && !frag)
            {
                frag = true;
                ushort w = BinaryPrimitives.ReadUInt16BigEndian(packet[(h.Offset + 2)..]);
                fragOffset = w >> 3;
                more = (w & 1) != 0;
                id = BinaryPrimitives.ReadUInt32BigEndian(packet[(h.Offset + 4)..]);
            }
        }
        if (walk.Truncated) return false;
        result = new Ipv6UpperLayer(walk.NextHeader, walk.Offset, frag, fragOffset, more, id);
        return true;
    }
}

/// <summary>
/// The kernel's <c>ipv6_find_hdr()</c> (net/ipv6/exthdrs_core.c), as the IPv6 extension-header matches call it:
/// finds a header of a given type by walking the extension-header chain.
/// </summary>
public static class Ipv6HeaderFinder
{
    /// <summary>The walk did not meet the header (-ENOENT): the match just fails.</summary>
    public const int NotFound = -2;

    /// <summary>A header did not fit in the packet (-EBADMSG): most matches drop the packet.</summary>
    public const int BadMessage = -74;

    /// <summary>
    /// Walks from the IPv6 header looking for <paramref name="target"/> (a next-header value, or -1 for the
    /// upper-layer header). Returns the header type found with its <paramref name="offset"/>, or
    /// <see cref="NotFound"/> / <see cref="BadMessage"/>. A non-first fragment's fragment header ends the walk:
    /// what follows it is not a header, so only the fragment header itself (or, with -1, its next-header value)
    /// can be found there. <paramref name="fragmentOffset"/> is that fragment's offset in bytes (0 otherwise).
    /// </summary>
    public static int Find(ReadOnlySpan<byte> packet, int target, out int offset, out int fragmentOffset)
    {
        offset = 0;
        fragmentOffset = 0;
        if (packet.Length < Ipv6Header.Length) return BadMessage;
        int start = Ipv6Header.Length;
        byte next = packet[6];
        while (true)
        {
            bool found = next == target;
            if (!IpProtocol.IsIpv6Extension(next) || next == IpProtocol.NoNextHeader)
            {
                if (target < 0 || found) break;
                return NotFound;
            }
            if (start + 2 > packet.Length) return BadMessage;
            byte hpNext = packet[start];
            int length;
            if (next == IpProtocol.Fragment)
            {
                if (start + 4 > packet.Length) return BadMessage;
                int frag = BinaryPrimitives.ReadUInt16BigEndian(packet[(start + 2)..]) & ~0x7;
                if (frag != 0)
                {
                    if (target < 0 && (!IpProtocol.IsIpv6Extension(hpNext) || hpNext == IpProtocol.NoNextHeader))
                    {
                        fragmentOffset = frag;
                        offset = start;
                        return hpNext;
                    }
                    if (!found) return NotFound;
                    fragmentOffset = frag;
                    break;
                }
                length = 8;
            }
            else if (next == IpProtocol.Ah)
            {
                length = (packet[start + 1] + 2) << 2;
            }
            else
            {
                length = (packet[start + 1] + 1) << 3;
            }
            if (found) break;
            next = hpNext;
            start += length;
        }
        offset = start;
        return next;
    }
}
