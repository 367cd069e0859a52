using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>A packet handed to the virtual host: received on an interface, or sent by a local process.</summary>
public sealed class PacketInput
{
    /// <summary>The IP packet (IPv4 or IPv6 header first).</summary>
    public required byte[] Bytes { get; init; }

    /// <summary>The interface it arrives on; null for a locally generated packet.</summary>
    public string? InInterface { get; init; }

    /// <summary>True for a packet a local process sends (OUTPUT).</summary>
    public bool Local => InInterface is null;

    /// <summary>For a local packet: the interface the socket is bound to (SO_BINDTODEVICE / <c>-o</c>), if any.</summary>
    public string? OutInterface { get; init; }

    /// <summary>For a local packet: the socket's mark (SO_MARK).</summary>
    public uint Mark { get; init; }

    /// <summary>For a local packet: the socket's owner; root when not given.</summary>
    public SocketOwner? Owner { get; init; }

    /// <summary>The Ethernet source and destination of a received packet (null: the sender's and ours).</summary>
    public ulong? SourceMac { get; init; }

    public ulong? DestinationMac { get; init; }

    /// <summary>Seconds on the host clock when the packet arrives (null: now).</summary>
    public double? At { get; init; }

    /// <summary>Trace the packet from its first hook on, as if a TRACE rule had marked it (nf_trace).</summary>
    public bool Trace { get; init; }

    /// <summary>
    /// A parse of <see cref="Bytes"/> the caller already made and hands over with them (a replay decodes each frame
    /// once): the pipeline works on it instead of parsing a copy, so the bytes are changed in place as the packet goes
    /// (NAT, TTL). Used only when its bytes are <see cref="Bytes"/> itself.
    /// </summary>
    internal Packet? Parsed { get; init; }

    /// <summary>Parses the bytes, or returns the error text.</summary>
    public static string? Check(byte[] bytes) =>
        Packet.TryParse(bytes, out _, out PacketError e) ? null : Packet.Describe(e);
}
