using System.Buffers.Binary;

namespace Chainwalk.Wire;

/// <summary>The eight TCP flag bits of byte 13 (RFC 9293, RFC 3168 for ECE and CWR).</summary>
[Flags]
public enum TcpFlags : byte
{
    None = 0,
    Fin = 0x01,
    Syn = 0x02,
    Rst = 0x04,
    Psh = 0x08,
    Ack = 0x10,
    Urg = 0x20,
    Ece = 0x40,
    Cwr = 0x80,
}

/// <summary>
/// A zero-copy view of a TCP segment (RFC 9293 section 3.1): the header, its options and the data.
/// <see cref="TryCreate"/> checks that the buffer holds the header with its options; the accessors then never
/// throw. The view spans to the end of the buffer, so slice the buffer to the segment before checksumming.
/// </summary>
public readonly ref struct TcpHeader
{
    public const int MinLength = 20;
    private const int SourcePortOffset = 0, DestinationPortOffset = 2, SequenceOffset = 4, AcknowledgmentOffset = 8,
        DataOffsetByte = 12, FlagsByte = 13, WindowOffset = 14, ChecksumOffset = 16, UrgentOffset = 18;

    private readonly Span<byte> _b;

    private TcpHeader(Span<byte> buffer) => _b = buffer;

    public static bool TryCreate(Span<byte> buffer, out TcpHeader header)
    {
        header = default;
        if (buffer.Length < MinLength) return false;
        int length = (buffer[DataOffsetByte] >> 4) * 4;
        if (length < MinLength || length > buffer.Length) return false;
        header = new TcpHeader(buffer);
        return true;
    }

    public Span<byte> Bytes => _b;

    public ushort SourcePort { get => BinaryPrimitives.ReadUInt16BigEndian(_b[SourcePortOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[SourcePortOffset..], value); }

    public ushort DestinationPort { get => BinaryPrimitives.ReadUInt16BigEndian(_b[DestinationPortOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[DestinationPortOffset..], value); }

    public uint SequenceNumber { get => BinaryPrimitives.ReadUInt32BigEndian(_b[SequenceOffset..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[SequenceOffset..], value); }

    public uint AcknowledgmentNumber { get => BinaryPrimitives.ReadUInt32BigEndian(_b[AcknowledgmentOffset..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[AcknowledgmentOffset..], value); }

    /// <summary>The header length in bytes, options included (data offset times four).</summary>
    public int HeaderLength => (_b[DataOffsetByte] >> 4) * 4;

    /// <summary>The three reserved bits and the old NS bit (the low nibble of byte 12).</summary>
    public byte Reserved => (byte)(_b[DataOffsetByte] & 0x0f);

    public TcpFlags Flags { get => (TcpFlags)_b[FlagsByte]; set => _b[FlagsByte] = (byte)value; }

    public ushort Window { get => BinaryPrimitives.ReadUInt16BigEndian(_b[WindowOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[WindowOffset..], value); }

    public ushort Checksum { get => BinaryPrimitives.ReadUInt16BigEndian(_b[ChecksumOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[ChecksumOffset..], value); }

    public ushort UrgentPointer { get => BinaryPrimitives.ReadUInt16BigEndian(_b[UrgentOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[UrgentOffset..], value); }

    /// <summary>The option bytes (possibly empty); TCPMSS and TCPOPTSTRIP edit them in place.</summary>
    public Span<byte> Options => _b[MinLength..HeaderLength];

    public TcpOptionEnumerator EnumerateOptions() => new(Options);

    public Span<byte> Payload => _b[HeaderLength..];

    /// <summary>True when the checksum over the pseudo header (4- or 16-byte addresses) and the whole buffer is right.</summary>
    public bool ChecksumValid(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination) =>
        TransportChecksum.Verify(_b, source, destination, IpProtocol.Tcp);

    public void UpdateChecksum(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination)
    {
        Checksum = 0;
        Checksum = TransportChecksum.Compute(_b, source, destination, IpProtocol.Tcp);
    }
}

/// <summary>TCP option kinds (IANA "TCP Option Kind Numbers").</summary>
public static class TcpOptionKind
{
    public const byte End = 0, Nop = 1, Mss = 2, WindowScale = 3, SackPermitted = 4, Sack = 5, Timestamp = 8,
        Md5 = 19, UserTimeout = 28, AuthenticationOption = 29, MultipathTcp = 30, FastOpen = 34;
}

/// <summary>One TCP option: its kind, where it starts within the option bytes, and its data (after kind and length).</summary>
public readonly ref struct TcpOption
{
    public TcpOption(byte kind, int offset, ReadOnlySpan<byte> data)
    {
        Kind = kind;
        Offset = offset;
        Data = data;
    }

    public byte Kind { get; }

    public int Offset { get; }

    public ReadOnlySpan<byte> Data { get; }

    /// <summary>The option's full length in bytes, kind and length bytes included (1 for NOP and EOL).</summary>
    public int Length => Kind is TcpOptionKind.End or TcpOptionKind.Nop ? 1 : Data.Length + 2;
}

/// <summary>
/// Steps through TCP options. Stops at end-of-list, at the end of the bytes, or at an option whose length
/// is below 2 or runs past the end (<see cref="Malformed"/>), as the kernel's <c>tcp_parse_options()</c> gives up.
/// </summary>
public ref struct TcpOptionEnumerator
{
    private readonly ReadOnlySpan<byte> _options;
    private int _offset;

    public TcpOptionEnumerator(ReadOnlySpan<byte> options)
    {
        _options = options;
        _offset = 0;
    }

    public readonly TcpOptionEnumerator GetEnumerator() => this;

    public TcpOption Current { get; private set; }

    public bool Malformed { get; private set; }

    public bool MoveNext()
    {
        if (_offset >= _options.Length) return false;
        byte kind = _options[_offset];
        if (kind == TcpOptionKind.End)
        {
            Current = new TcpOption(kind, _offset, default);
            _offset = _options.Length;
            return true;
        }
        if (kind == TcpOptionKind.Nop)
        {
            Current = new TcpOption(kind, _offset, default);
            _offset++;
            return true;
        }
        if (_offset + 1 >= _options.Length) return Bad();
        int length = _options[_offset + 1];
        if (length < 2 || _offset + length > _options.Length) return Bad();
        Current = new TcpOption(kind, _offset, _options.Slice(_offset + 2, length - 2));
        _offset += length;
        return true;
    }

    private bool Bad()
    {
        Malformed = true;
        _offset = _options.Length;
        return false;
    }
}

/// <summary>The TCP options that matter to a firewall, read from a SYN or any segment.</summary>
/// <param name="Mss">Maximum segment size, when present with length 4.</param>
/// <param name="WindowScale">Window scale shift, when present with length 3.</param>
/// <param name="SackPermitted">SACK-permitted seen.</param>
/// <param name="SackBlocks">The number of SACK blocks (0 when no SACK option).</param>
/// <param name="TimestampValue">TSval, when a timestamp option with length 10 is present.</param>
/// <param name="TimestampEcho">TSecr of that option.</param>
/// <param name="Malformed">An option's length was invalid; the options after it were not read.</param>
public readonly record struct TcpOptions(ushort? Mss, byte? WindowScale, bool SackPermitted, int SackBlocks,
    uint? TimestampValue, uint? TimestampEcho, bool Malformed)
{
    /// <summary>Reads the options the way <c>tcp_parse_options()</c> accepts them: wrong-length known options are skipped.</summary>
    public static TcpOptions Parse(ReadOnlySpan<byte> options)
    {
        ushort? mss = null;
        byte? wscale = null;
        bool sackOk = false;
        int sack = 0;
        uint? tsval = null, tsecr = null;
        var e = new TcpOptionEnumerator(options);
        while (e.MoveNext())
        {
            TcpOption o = e.Current;
            switch (o.Kind)
            {
                case TcpOptionKind.Mss when o.Data.Length == 2:
                    mss = BinaryPrimitives.ReadUInt16BigEndian(o.Data);
                    break;
                case TcpOptionKind.WindowScale when o.Data.Length == 1:
                    wscale = o.Data[0];
                    break;
                case TcpOptionKind.SackPermitted when o.Data.Length == 0:
                    sackOk = true;
                    break;
                case TcpOptionKind.Sack when o.Data.Length % 8 == 0 && o.Data.Length > 0:
                    sack = o.Data.Length / 8;
                    break;
                case TcpOptionKind.Timestamp when o.Data.Length == 8:
                    tsval = BinaryPrimitives.ReadUInt32BigEndian(o.Data);
                    tsecr = BinaryPrimitives.ReadUInt32BigEndian(o.Data[4..]);
                    break;
            }
        }
        return new TcpOptions(mss, wscale, sackOk, sack, tsval, tsecr, e.Malformed);
    }
}
