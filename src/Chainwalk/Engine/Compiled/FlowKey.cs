using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Engine.Compiled;

/// <summary>
/// The header fields a compiled index classifies on, read once per walk. Only packets on which every
/// indexable rule is decided by these fields alone get a key: IPv4, not a fragment, and for TCP / UDP the
/// whole fixed header present (then the tcp/udp matches can neither hot-drop nor read past the packet,
/// xt_tcpudp.c, nft_payload.c). Everything else is walked linearly.
/// </summary>
public readonly struct FlowKey
{
    public readonly uint Source;
    public readonly uint Destination;
    public readonly ushort SourcePort;
    public readonly ushort DestinationPort;
    public readonly byte Protocol;

    public FlowKey(uint source, uint destination, byte protocol, ushort sourcePort, ushort destinationPort)
    {
        Source = source;
        Destination = destination;
        Protocol = protocol;
        SourcePort = sourcePort;
        DestinationPort = destinationPort;
    }

    /// <summary>The key of <paramref name="p"/>, or false when the packet must be walked linearly.</summary>
    /// <remarks>
    /// Reads only the parsed facts (no access to the bytes: one cache line less per packet). A TCP packet counts
    /// as having its fixed header when the parser found the header with its options (stricter than 20 bytes: a
    /// packet with truncated options is walked linearly, which is always right); UDP when 8 bytes are there.
    /// </remarks>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static bool TryRead(Packet p, out FlowKey key)
    {
        key = default;
        if (p.Family != IpFamily.V4 || p.MoreFragments || p.FragmentOffset != 0) return false;
        byte proto = p.Protocol;
        ushort sport = 0, dport = 0;
        if (proto is IpProtocol.Tcp or IpProtocol.Udp)
        {
            if (!p.HasTransportHeader) return false;
            sport = p.SourcePort;
            dport = p.DestinationPort;
        }
        key = new FlowKey((uint)p.Source, (uint)p.Destination, proto, sport, dport);
        return true;
    }
}
