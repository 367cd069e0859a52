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
    public static bool TryRead(Packet p, out FlowKey key)
    {
        key = default;
        if (p.Family != IpFamily.V4 || p.IsFragment) return false;
        byte proto = p.Protocol;
        ushort sport = 0, dport = 0;
        if (proto is IpProtocol.Tcp or IpProtocol.Udp)
        {
            int need = proto == IpProtocol.Tcp ? TcpHeader.MinLength : UdpHeader.Length;
            int off = p.TransportOffset;
            byte[] b = p.Bytes;
            if (off < 0 || off > b.Length - need) return false;
            sport = (ushort)((b[off] << 8) | b[off + 1]);
            dport = (ushort)((b[off + 2] << 8) | b[off + 3]);
        }
        key = new FlowKey((uint)p.Source, (uint)p.Destination, proto, sport, dport);
        return true;
    }
}
