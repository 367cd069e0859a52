using System.Buffers.Binary;

namespace Chainwalk.Wire;

/// <summary>ICMP (IPv4) message types (RFC 792 and IANA).</summary>
public static class IcmpType
{
    public const byte EchoReply = 0, DestinationUnreachable = 3, SourceQuench = 4, Redirect = 5, EchoRequest = 8,
        RouterAdvertisement = 9, RouterSolicitation = 10, TimeExceeded = 11, ParameterProblem = 12,
        TimestampRequest = 13, TimestampReply = 14, InfoRequest = 15, InfoReply = 16, AddressMaskRequest = 17,
        AddressMaskReply = 18;

    /// <summary>
    /// True for the error messages that quote the offending packet, as the kernel's <c>icmp_is_err()</c>
    /// (include/linux/icmp.h) lists them; conntrack relates these to an existing connection.
    /// </summary>
    public static bool IsError(byte type) => type is DestinationUnreachable or SourceQuench or Redirect
        or TimeExceeded or ParameterProblem;
}

/// <summary>
/// A zero-copy view of an ICMP message (RFC 792): type, code, checksum, the 4-byte rest of header (identifier
/// and sequence for echo, unused or MTU or pointer for errors) and the data. For error messages the data is
/// the quoted IP header and the first bytes of the packet that caused it. <see cref="TryCreate"/> checks the
/// 8-byte header fits; the accessors then never throw. The checksum covers the whole buffer.
/// </summary>
public readonly ref struct IcmpHeader
{
    public const int Length = 8;
    private const int TypeOffset = 0, CodeOffset = 1, ChecksumOffset = 2, RestOffset = 4, IdOffset = 4, SequenceOffset = 6;

    private readonly Span<byte> _b;

    private IcmpHeader(Span<byte> buffer) => _b = buffer;

    public static bool TryCreate(Span<byte> buffer, out IcmpHeader header)
    {
        header = default;
        if (buffer.Length < Length) return false;
        header = new IcmpHeader(buffer);
        return true;
    }

    public Span<byte> Bytes => _b;

    public byte Type { get => _b[TypeOffset]; set => _b[TypeOffset] = value; }

    public byte Code { get => _b[CodeOffset]; set => _b[CodeOffset] = value; }

    public ushort Checksum { get => BinaryPrimitives.ReadUInt16BigEndian(_b[ChecksumOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[ChecksumOffset..], value); }

    /// <summary>The four bytes after the checksum as one word.</summary>
    public uint RestOfHeader { get => BinaryPrimitives.ReadUInt32BigEndian(_b[RestOffset..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[RestOffset..], value); }

    /// <summary>Echo, timestamp and information messages: the identifier (NAT rewrites it like a port).</summary>
    public ushort Identifier { get => BinaryPrimitives.ReadUInt16BigEndian(_b[IdOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[IdOffset..], value); }

    public ushort SequenceNumber { get => BinaryPrimitives.ReadUInt16BigEndian(_b[SequenceOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[SequenceOffset..], value); }

    /// <summary>Destination unreachable, code 4 (fragmentation needed): the next-hop MTU (RFC 1191).</summary>
    public ushort NextHopMtu { get => SequenceNumber; set => SequenceNumber = value; }

    public bool IsError => IcmpType.IsError(Type);

    /// <summary>Everything after the 8-byte header: echo data, or for an error the quoted packet.</summary>
    public Span<byte> Payload => _b[Length..];

    /// <summary>For an error message, the quoted packet (its IP header first); empty otherwise.</summary>
    public Span<byte> QuotedPacket => IsError ? _b[Length..] : [];

    public bool ChecksumValid => Wire.Checksum.Compute(_b) == 0;

    public void UpdateChecksum()
    {
        Checksum = 0;
        Checksum = Wire.Checksum.Compute(_b);
    }
}
