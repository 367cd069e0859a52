using System.Buffers.Binary;
using System.Numerics;

namespace Chainwalk.Wire;

/// <summary>SCTP chunk types (RFC 9260 section 3.2 and IANA).</summary>
public static class SctpChunkType
{
    public const byte Data = 0, Init = 1, InitAck = 2, Sack = 3, Heartbeat = 4, HeartbeatAck = 5, Abort = 6,
        Shutdown = 7, ShutdownAck = 8, Error = 9, CookieEcho = 10, CookieAck = 11, ShutdownComplete = 14,
        Auth = 15, ForwardTsn = 192;

    /// <summary>The name tcpdump and the iptables sctp match use, or null for an unnamed type.</summary>
    public static string? Name(byte type) => type switch
    {
        Data => "DATA",
        Init => "INIT",
        InitAck => "INIT_ACK",
        Sack => "SACK",
        Heartbeat => "HEARTBEAT",
        HeartbeatAck => "HEARTBEAT_ACK",
        Abort => "ABORT",
        Shutdown => "SHUTDOWN",
        ShutdownAck => "SHUTDOWN_ACK",
        Error => "ERROR",
        CookieEcho => "COOKIE_ECHO",
        CookieAck => "COOKIE_ACK",
        ShutdownComplete => "SHUTDOWN_COMPLETE",
        Auth => "AUTH",
        ForwardTsn => "FORWARD_TSN",
        _ => null,
    };
}

/// <summary>One SCTP chunk header: type, flags, the length field (unpadded) and where the chunk starts.</summary>
public readonly record struct SctpChunk(byte Type, byte Flags, ushort Length, int Offset);

/// <summary>
/// A zero-copy view of an SCTP packet (RFC 9260 section 3): the 12-byte common header and the chunks after it.
/// <see cref="TryCreate"/> checks the common header fits; the accessors then never throw. The checksum is
/// CRC32c over the whole buffer, so slice the buffer to the SCTP packet first.
/// </summary>
public readonly ref struct SctpHeader
{
    public const int Length = 12;
    public const int ChunkHeaderLength = 4;
    private const int SourcePortOffset = 0, DestinationPortOffset = 2, VerificationTagOffset = 4, ChecksumOffset = 8;

    private readonly Span<byte> _b;

    private SctpHeader(Span<byte> buffer) => _b = buffer;

    public static bool TryCreate(Span<byte> buffer, out SctpHeader header)
    {
        header = default;
        if (buffer.Length < Length) return false;
        header = new SctpHeader(buffer);
        return true;
    }

    public Span<byte> Bytes => _b;

    public ushort SourcePort { get => BinaryPrimitives.ReadUInt16BigEndian(_b[SourcePortOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[SourcePortOffset..], value); }

    public ushort DestinationPort { get => BinaryPrimitives.ReadUInt16BigEndian(_b[DestinationPortOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[DestinationPortOffset..], value); }

    public uint VerificationTag { get => BinaryPrimitives.ReadUInt32BigEndian(_b[VerificationTagOffset..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[VerificationTagOffset..], value); }

    /// <summary>The CRC32c as the four bytes read big-endian (the CRC itself is sent least significant byte first).</summary>
    public uint Checksum { get => BinaryPrimitives.ReadUInt32BigEndian(_b[ChecksumOffset..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[ChecksumOffset..], value); }

    /// <summary>The first chunk's type, or null when fewer than 4 bytes follow the common header.</summary>
    public byte? FirstChunkType => _b.Length >= Length + ChunkHeaderLength ? _b[Length] : null;

    public SctpChunkEnumerator EnumerateChunks() => new(_b);

    public bool ChecksumValid => Checksum == ComputeChecksum(_b);

    public void UpdateChecksum() => Checksum = ComputeChecksum(_b);

    /// <summary>CRC32c (RFC 9260 appendix A) of <paramref name="packet"/> with its checksum field taken as zero, in the field's byte order.</summary>
    public static uint ComputeChecksum(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < Length) return 0;
        uint crc = uint.MaxValue;
        crc = Crc(crc, packet[..ChecksumOffset]);
        crc = BitOperations.Crc32C(crc, 0u);
        crc = Crc(crc, packet[Length..]);
        return BinaryPrimitives.ReverseEndianness(~crc);
    }

    private static uint Crc(uint crc, ReadOnlySpan<byte> data)
    {
        int i = 0;
        for (; i + 8 <= data.Length; i += 8) crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
        for (; i < data.Length; i++) crc = BitOperations.Crc32C(crc, data[i]);
        return crc;
    }
}

/// <summary>
/// Steps through SCTP chunks after the common header. Each chunk is padded to 4 bytes. Stops at the end of the
/// buffer or at a chunk whose length is below 4 or runs past the end (<see cref="Malformed"/>).
/// </summary>
public ref struct SctpChunkEnumerator
{
    private readonly ReadOnlySpan<byte> _packet;
    private int _offset;

    public SctpChunkEnumerator(ReadOnlySpan<byte> packet)
    {
        _packet = packet;
        _offset = SctpHeader.Length;
    }

    public readonly SctpChunkEnumerator GetEnumerator() => this;

    public SctpChunk Current { get; private set; }

    public bool Malformed { get; private set; }

    public bool MoveNext()
    {
        if (_offset + SctpHeader.ChunkHeaderLength > _packet.Length)
        {
            if (_offset < _packet.Length) Malformed = true;
            _offset = _packet.Length;
            return false;
        }
        ushort length = BinaryPrimitives.ReadUInt16BigEndian(_packet[(_offset + 2)..]);
        if (length < SctpHeader.ChunkHeaderLength || _offset + length > _packet.Length)
        {
            Malformed = true;
            _offset = _packet.Length;
            return false;
        }
        Current = new SctpChunk(_packet[_offset], _packet[_offset + 1], length, _offset);
        _offset += (length + 3) & ~3;
        return true;
    }
}
