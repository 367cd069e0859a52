using System.Buffers.Binary;

namespace Chainwalk.Wire;

/// <summary>ICMPv6 message types (RFC 4443, RFC 4861 and IANA).</summary>
public static class Icmpv6Type
{
    public const byte DestinationUnreachable = 1, PacketTooBig = 2, TimeExceeded = 3, ParameterProblem = 4,
        EchoRequest = 128, EchoReply = 129, MldQuery = 130, MldReport = 131, MldDone = 132,
        RouterSolicitation = 133, RouterAdvertisement = 134, NeighborSolicitation = 135,
        NeighborAdvertisement = 136, Redirect = 137, Mldv2Report = 143;

    /// <summary>Types below 128 are errors that quote the offending packet (RFC 4443 section 2.1).</summary>
    public static bool IsError(byte type) => type < 128;
}

/// <summary>
/// A zero-copy view of an ICMPv6 message (RFC 4443): type, code, checksum, the 4-byte rest of header and the
/// data (for errors, the quoted packet). <see cref="TryCreate"/> checks the 8-byte header fits; the accessors
/// then never throw. The checksum covers the IPv6 pseudo header and the whole buffer.
/// </summary>
public readonly ref struct Icmpv6Header
{
    public const int Length = 8;
    private const int TypeOffset = 0, CodeOffset = 1, ChecksumOffset = 2, RestOffset = 4, IdOffset = 4, SequenceOffset = 6;

    private readonly Span<byte> _b;

    private Icmpv6Header(Span<byte> buffer) => _b = buffer;

    public static bool TryCreate(Span<byte> buffer, out Icmpv6Header header)
    {
        header = default;
        if (buffer.Length < Length) return false;
        header = new Icmpv6Header(buffer);
        return true;
    }

    public Span<byte> Bytes => _b;

    public byte Type { get => _b[TypeOffset]; set => _b[TypeOffset] = value; }

    public byte Code { get => _b[CodeOffset]; set => _b[CodeOffset] = value; }

    public ushort Checksum { get => BinaryPrimitives.ReadUInt16BigEndian(_b[ChecksumOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[ChecksumOffset..], value); }

    /// <summary>The four bytes after the checksum: MTU for packet-too-big, pointer for parameter problem.</summary>
    public uint RestOfHeader { get => BinaryPrimitives.ReadUInt32BigEndian(_b[RestOffset..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[RestOffset..], value); }

    public ushort Identifier { get => BinaryPrimitives.ReadUInt16BigEndian(_b[IdOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[IdOffset..], value); }

    public ushort SequenceNumber { get => BinaryPrimitives.ReadUInt16BigEndian(_b[SequenceOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[SequenceOffset..], value); }

    public bool IsError => Icmpv6Type.IsError(Type);

    public Span<byte> Payload => _b[Length..];

    /// <summary>For an error message, the quoted packet (its IPv6 header first); empty otherwise.</summary>
    public Span<byte> QuotedPacket => IsError ? _b[Length..] : [];

    public bool ChecksumValid(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination) =>
        TransportChecksum.Verify(_b, source, destination, IpProtocol.Icmpv6);

    public void UpdateChecksum(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination)
    {
        Checksum = 0;
        Checksum = TransportChecksum.Compute(_b, source, destination, IpProtocol.Icmpv6);
    }
}
