using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>A packet handed to the virtual host: received on an interface, or sent by a local process.</summary>
public sealed class PacketInput
{
    private byte[] _bytes = [];
    private string? _inInterface, _outInterface;
    private uint _mark;
    private SocketOwner? _owner;
    private ulong? _sourceMac, _destinationMac;
    private double? _at;
    private bool _trace;
    private Packet? _parsed;

    /// <summary>
    /// Makes this input another received (or, with no interface, locally sent) packet, every other field as in a new one:
    /// one object serves packet after packet of a replay (nothing keeps an input past its packet's processing).
    /// </summary>
    internal void Set(byte[] bytes, Packet? parsed, string? inInterface, ulong? sourceMac, ulong? destinationMac, double? at)
    {
        _bytes = bytes;
        _parsed = parsed;
        _inInterface = inInterface;
        _sourceMac = sourceMac;
        _destinationMac = destinationMac;
        _at = at;
        _outInterface = null;
        _mark = 0;
        _owner = null;
        _trace = false;
    }

    /// <summary>The IP packet (IPv4 or IPv6 header first).</summary>
    public required byte[] Bytes { get => _bytes; init => _bytes = value; }

    /// <summary>The interface it arrives on; null for a locally generated packet.</summary>
    public string? InInterface { get => _inInterface; init => _inInterface = value; }

    /// <summary>True for a packet a local process sends (OUTPUT).</summary>
    public bool Local => InInterface is null;

    /// <summary>For a local packet: the interface the socket is bound to (SO_BINDTODEVICE / <c>-o</c>), if any.</summary>
    public string? OutInterface { get => _outInterface; init => _outInterface = value; }

    /// <summary>For a local packet: the socket's mark (SO_MARK).</summary>
    public uint Mark { get => _mark; init => _mark = value; }

    /// <summary>For a local packet: the socket's owner; root when not given.</summary>
    public SocketOwner? Owner { get => _owner; init => _owner = value; }

    /// <summary>The Ethernet source and destination of a received packet (null: the sender's and ours).</summary>
    public ulong? SourceMac { get => _sourceMac; init => _sourceMac = value; }

    public ulong? DestinationMac { get => _destinationMac; init => _destinationMac = value; }

    /// <summary>Seconds on the host clock when the packet arrives (null: now).</summary>
    public double? At { get => _at; init => _at = value; }

    /// <summary>Trace the packet from its first hook on, as if a TRACE rule had marked it (nf_trace).</summary>
    public bool Trace { get => _trace; init => _trace = value; }

    /// <summary>
    /// A parse of <see cref="Bytes"/> the caller already made and hands over with them (a replay decodes each frame
    /// once): the pipeline works on it instead of parsing a copy, so the bytes are changed in place as the packet goes
    /// (NAT, TTL). Used only when its bytes are <see cref="Bytes"/> itself.
    /// </summary>
    internal Packet? Parsed { get => _parsed; init => _parsed = value; }

    /// <summary>Parses the bytes, or returns the error text.</summary>
    public static string? Check(byte[] bytes) =>
        Packet.TryParse(bytes, out _, out PacketError e) ? null : Packet.Describe(e);
}
