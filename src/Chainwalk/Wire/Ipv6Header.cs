using System.Buffers.Binary;

namespace Chainwalk.Wire;

/// <summary>
/// A zero-copy view of the fixed IPv6 header (RFC 8200 section 3). Construct with <see cref="TryCreate"/>,
/// which checks that the buffer holds the 40 bytes and that the version is 6; the accessors then never throw.
/// Extension headers are walked by <see cref="Ipv6Extensions"/>.
/// </summary>
public readonly ref struct Ipv6Header
{
    public const int Length = 40;
    private const int VersionClassFlow = 0, PayloadLength = 4, NextHeaderOffset = 6, HopLimitOffset = 7,
        Source = 8, Destination = 24;

    private readonly Span<byte> _b;

    private Ipv6Header(Span<byte> buffer) => _b = buffer;

    public static bool TryCreate(Span<byte> buffer, out Ipv6Header header)
    {
        header = default;
        if (buffer.Length < Length || (buffer[0] >> 4) != 6) return false;
        header = new Ipv6Header(buffer);
        return true;
    }

    public Span<byte> Bytes => _b;

    /// <summary>The traffic class (DSCP and ECN), which straddles the first two bytes.</summary>
    public byte TrafficClass
    {
        get => (byte)(BinaryPrimitives.ReadUInt16BigEndian(_b) >> 4);
        set
        {
            ushort w = BinaryPrimitives.ReadUInt16BigEndian(_b);
            BinaryPrimitives.WriteUInt16BigEndian(_b, (ushort)((w & 0xf00f) | (value << 4)));
        }
    }

    /// <summary>The 20-bit flow label.</summary>
    public uint FlowLabel
    {
        get => BinaryPrimitives.ReadUInt32BigEndian(_b[VersionClassFlow..]) & 0xfffff;
        set
        {
            uint w = BinaryPrimitives.ReadUInt32BigEndian(_b[VersionClassFlow..]);
            BinaryPrimitives.WriteUInt32BigEndian(_b[VersionClassFlow..], (w & 0xfff00000) | (value & 0xfffff));
        }
    }

    /// <summary>The length of everything after the fixed header, extension headers included.</summary>
    public ushort PayloadLengthField { get => BinaryPrimitives.ReadUInt16BigEndian(_b[PayloadLength..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[PayloadLength..], value); }

    public byte NextHeader { get => _b[NextHeaderOffset]; set => _b[NextHeaderOffset] = value; }

    public byte HopLimit { get => _b[HopLimitOffset]; set => _b[HopLimitOffset] = value; }

    public UInt128 SourceAddress { get => BinaryPrimitives.ReadUInt128BigEndian(_b[Source..]); set => BinaryPrimitives.WriteUInt128BigEndian(_b[Source..], value); }

    public UInt128 DestinationAddress { get => BinaryPrimitives.ReadUInt128BigEndian(_b[Destination..]); set => BinaryPrimitives.WriteUInt128BigEndian(_b[Destination..], value); }

    public ReadOnlySpan<byte> SourceBytes => _b.Slice(Source, 16);

    public ReadOnlySpan<byte> DestinationBytes => _b.Slice(Destination, 16);

    /// <summary>What follows the fixed header, cut to the buffer when the payload length field claims more.</summary>
    public Span<byte> Payload => _b[Length..Math.Min(_b.Length, Length + PayloadLengthField)];
}
