using System.Buffers.Binary;

namespace Chainwalk.Wire;

/// <summary>
/// A zero-copy view of an IPv4 header (RFC 791). Construct with <see cref="TryCreate"/>, which checks
/// that the buffer holds the whole header; the accessors then never throw.
/// </summary>
public readonly ref struct Ipv4Header
{
    public const int MinLength = 20;
    private const int VersionIhl = 0, Tos = 1, TotalLength = 2, Identification = 4, FlagsFragment = 6, Ttl = 8,
        Protocol = 9, HeaderChecksum = 10, Source = 12, Destination = 16;

    public const ushort FlagReserved = 0x8000, FlagDontFragment = 0x4000, FlagMoreFragments = 0x2000;

    private readonly Span<byte> _b;

    private Ipv4Header(Span<byte> buffer) => _b = buffer;

    public static bool TryCreate(Span<byte> buffer, out Ipv4Header header)
    {
        header = default;
        if (buffer.Length < MinLength || (buffer[0] >> 4) != 4) return false;
        int ihl = (buffer[0] & 0x0f) * 4;
        if (ihl < MinLength || ihl > buffer.Length) return false;
        header = new Ipv4Header(buffer);
        return true;
    }

    public Span<byte> Bytes => _b;

    public int HeaderLength => (_b[VersionIhl] & 0x0f) * 4;

    public byte TypeOfService { get => _b[Tos]; set => _b[Tos] = value; }

    public ushort TotalLengthField { get => BinaryPrimitives.ReadUInt16BigEndian(_b[TotalLength..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[TotalLength..], value); }

    public ushort Id { get => BinaryPrimitives.ReadUInt16BigEndian(_b[Identification..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[Identification..], value); }

    public ushort FlagsAndOffset { get => BinaryPrimitives.ReadUInt16BigEndian(_b[FlagsFragment..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[FlagsFragment..], value); }

    /// <summary>Fragment offset in 8-byte units.</summary>
    public int FragmentOffset => FlagsAndOffset & 0x1fff;

    public bool MoreFragments => (FlagsAndOffset & FlagMoreFragments) != 0;

    public bool DontFragment => (FlagsAndOffset & FlagDontFragment) != 0;

    public byte TimeToLive { get => _b[Ttl]; set => _b[Ttl] = value; }

    public byte ProtocolNumber { get => _b[Protocol]; set => _b[Protocol] = value; }

    public ushort Checksum { get => BinaryPrimitives.ReadUInt16BigEndian(_b[HeaderChecksum..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[HeaderChecksum..], value); }

    public uint SourceAddress { get => BinaryPrimitives.ReadUInt32BigEndian(_b[Source..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[Source..], value); }

    public uint DestinationAddress { get => BinaryPrimitives.ReadUInt32BigEndian(_b[Destination..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[Destination..], value); }

    public ReadOnlySpan<byte> SourceBytes => _b.Slice(Source, 4);

    public ReadOnlySpan<byte> DestinationBytes => _b.Slice(Destination, 4);

    public Span<byte> Options => _b[MinLength..HeaderLength];

    public bool ChecksumValid => Wire.Checksum.Compute(_b[..HeaderLength]) == 0;

    public void UpdateChecksum()
    {
        Checksum = 0;
        Checksum = Wire.Checksum.Compute(_b[..HeaderLength]);
    }
}
