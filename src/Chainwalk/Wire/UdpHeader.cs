using System.Buffers.Binary;

namespace Chainwalk.Wire;

/// <summary>
/// A zero-copy view of a UDP datagram (RFC 768): the 8-byte header and the data after it.
/// <see cref="TryCreate"/> checks that the header fits; the accessors then never throw. The view spans to the
/// end of the buffer, so slice the buffer to the datagram before checksumming.
/// </summary>
public readonly ref struct UdpHeader
{
    public const int Length = 8;
    private const int SourcePortOffset = 0, DestinationPortOffset = 2, LengthOffset = 4, ChecksumOffset = 6;

    private readonly Span<byte> _b;

    private UdpHeader(Span<byte> buffer) => _b = buffer;

    public static bool TryCreate(Span<byte> buffer, out UdpHeader header)
    {
        header = default;
        if (buffer.Length < Length) return false;
        header = new UdpHeader(buffer);
        return true;
    }

    public Span<byte> Bytes => _b;

    public ushort SourcePort { get => BinaryPrimitives.ReadUInt16BigEndian(_b[SourcePortOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[SourcePortOffset..], value); }

    public ushort DestinationPort { get => BinaryPrimitives.ReadUInt16BigEndian(_b[DestinationPortOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[DestinationPortOffset..], value); }

    /// <summary>The length field: header plus data, in bytes.</summary>
    public ushort LengthField { get => BinaryPrimitives.ReadUInt16BigEndian(_b[LengthOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[LengthOffset..], value); }

    public ushort Checksum { get => BinaryPrimitives.ReadUInt16BigEndian(_b[ChecksumOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[ChecksumOffset..], value); }

    public Span<byte> Payload => _b[Length..];

    /// <summary>
    /// True when the checksum is right. Over IPv4 a zero checksum means "none" and is accepted; over IPv6 it
    /// is invalid (RFC 8200 section 8.1), as the kernel's <c>udp6_csum_init()</c> drops it.
    /// </summary>
    public bool ChecksumValid(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination)
    {
        if (Checksum == 0) return source.Length == 4;
        return TransportChecksum.Verify(_b, source, destination, IpProtocol.Udp);
    }

    /// <summary>Computes the checksum; a computed zero is sent as 0xffff (RFC 768).</summary>
    public void UpdateChecksum(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination)
    {
        Checksum = 0;
        ushort c = TransportChecksum.Compute(_b, source, destination, IpProtocol.Udp);
        Checksum = c == 0 ? (ushort)0xffff : c;
    }
}
