using System.Buffers.Binary;
using System.Globalization;

namespace Chainwalk.Wire;

/// <summary>Which capture file format a reader found or a writer writes.</summary>
public enum CaptureFileFormat
{
    /// <summary>Classic pcap with microsecond timestamps (magic 0xa1b2c3d4).</summary>
    Pcap,

    /// <summary>Classic pcap with nanosecond timestamps (magic 0xa1b23c4d).</summary>
    PcapNanoseconds,

    /// <summary>pcapng: sections of blocks, several interfaces, per-interface timestamp resolution.</summary>
    PcapNg,
}

/// <summary>An interface a pcapng interface description block declares (or the one interface of a classic pcap file).</summary>
public sealed record CaptureInterface(LinkType LinkType, int SnapLength, string? Name, int TimestampResolution, bool BinaryResolution, long TimestampOffsetSeconds);

/// <summary>
/// Reads classic pcap (both byte orders, micro- and nanosecond) and pcapng (several sections, several interfaces,
/// <c>if_tsresol</c>, enhanced, simple and obsolete packet blocks; unknown blocks are stepped over) from a stream,
/// record by record, in constant memory: records point into one reused buffer that only grows for a record larger
/// than any before. A malformed or truncated file throws <see cref="CaptureFormatException"/> naming the byte offset,
/// after every record before that offset has been handed out.
/// </summary>
public sealed class CaptureReader : IDisposable
{
    /// <summary>The largest record or block accepted: far above any real snap length, so a garbage length fails fast.</summary>
    public const int MaxRecordLength = 64 * 1024 * 1024;

    private const uint PcapMagicMicro = 0xa1b2c3d4, PcapMagicNano = 0xa1b23c4d;
    private const uint PcapMagicMicroSwapped = 0xd4c3b2a1, PcapMagicNanoSwapped = 0x4d3cb2a1;
    private const uint PcapNgSectionHeader = 0x0a0d0d0a, PcapNgByteOrderMagic = 0x1a2b3c4d;
    private const uint BlockInterface = 1, BlockObsoletePacket = 2, BlockSimplePacket = 3, BlockEnhancedPacket = 6;
    private const int PcapFileHeaderLength = 24, PcapRecordHeaderLength = 16;
    private const int OptEnd = 0, OptIfName = 2, OptIfTsResol = 9, OptIfTsOffset = 14, OptEpbFlags = 2;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly List<CaptureInterface> _interfaces = [];
    private byte[] _buf = new byte[64 * 1024];
    private int _pos, _end;
    private long _bufOffset;
    private bool _bigEndian;
    private int _section = -1;
    private CaptureFormatException? _fault;

    /// <summary>Reads the file header (pcap) or first section header (pcapng); throws <see cref="CaptureFormatException"/> when it is neither.</summary>
    public CaptureReader(Stream stream, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
        _leaveOpen = leaveOpen;
        if (!Ensure(4)) throw Fail(Available == 0 ? "empty file: no capture header" : "file ends inside the capture header", 0);
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(_buf.AsSpan(_pos));
        switch (magic)
        {
            case PcapMagicMicro or PcapMagicNano or PcapMagicMicroSwapped or PcapMagicNanoSwapped:
                ReadPcapHeader(magic);
                break;
            case PcapNgSectionHeader:
                Format = CaptureFileFormat.PcapNg;
                if (!TryReadPcapNgBlock(out _)) throw Fail("file ends before the first section header", 0);
                break;
            default:
                throw Fail(string.Create(CultureInfo.InvariantCulture, $"not a pcap or pcapng file (magic 0x{magic:x8})"), 0);
        }
    }

    public CaptureFileFormat Format { get; private set; }

    /// <summary>The file's byte order is big-endian (for pcapng: the current section's).</summary>
    public bool IsBigEndian => _bigEndian;

    /// <summary>The interfaces of the current section (pcapng), or the file's one link type (pcap) as interface 0.</summary>
    public IReadOnlyList<CaptureInterface> Interfaces => _interfaces;

    /// <summary>The byte offset of the next unread byte.</summary>
    public long Position => _bufOffset + _pos;

    private int Available => _end - _pos;

    /// <summary>
    /// Reads the next packet record. Returns false at a clean end of file. Throws <see cref="CaptureFormatException"/>
    /// at a malformed or truncated record, and again on every later call.
    /// </summary>
    public bool TryReadNext(out CaptureRecord record)
    {
        if (_fault is not null) throw _fault;
        try
        {
            if (Format != CaptureFileFormat.PcapNg) return TryReadPcapRecord(out record);
            while (TryReadPcapNgBlock(out record))
            {
                if (record.Offset >= 0) return true;
            }
            return false;
        }
        catch (CaptureFormatException e)
        {
            _fault = e;
            throw;
        }
    }

    public void Dispose()
    {
        if (!_leaveOpen) _stream.Dispose();
    }

    private void ReadPcapHeader(uint magic)
    {
        _bigEndian = magic is PcapMagicMicroSwapped or PcapMagicNanoSwapped;
        Format = magic is PcapMagicNano or PcapMagicNanoSwapped ? CaptureFileFormat.PcapNanoseconds : CaptureFileFormat.Pcap;
        if (!Ensure(PcapFileHeaderLength)) throw Fail("file ends inside the 24-byte pcap file header", 0);
        ReadOnlySpan<byte> h = _buf.AsSpan(_pos, PcapFileHeaderLength);
        ushort major = U16(h[4..]);
        if (major != 2) throw Fail(string.Create(CultureInfo.InvariantCulture, $"pcap version {major}.{U16(h[6..])} is not 2.x"), 4);
        int snap = (int)Math.Min(U32(h[16..]), int.MaxValue);
        // The upper bits of the link-type word carry FCS facts (pcap-linktype(7)); the type is the low 16 bits.
        var linkType = (LinkType)(U32(h[20..]) & 0xffff);
        _interfaces.Add(new CaptureInterface(linkType, snap, null, Format == CaptureFileFormat.Pcap ? 6 : 9, false, 0));
        _section = 0;
        _pos += PcapFileHeaderLength;
    }

    private bool TryReadPcapRecord(out CaptureRecord record)
    {
        record = default;
        long at = Position;
        if (!Ensure(PcapRecordHeaderLength))
        {
            if (Available == 0) return false;
            throw Fail(string.Create(CultureInfo.InvariantCulture, $"truncated record header: the file ends {Available} bytes into the 16-byte header"), at);
        }
        ReadOnlySpan<byte> h = _buf.AsSpan(_pos, PcapRecordHeaderLength);
        uint seconds = U32(h), fraction = U32(h[4..]), captured = U32(h[8..]), original = U32(h[12..]);
        if (captured > MaxRecordLength)
            throw Fail(string.Create(CultureInfo.InvariantCulture, $"record claims {captured} captured bytes (more than {MaxRecordLength}): corrupt record header"), at);
        int length = (int)captured;
        if (!Ensure(PcapRecordHeaderLength + length))
            throw Fail(string.Create(CultureInfo.InvariantCulture, $"truncated record: {length} captured bytes announced, the file ends after {Available - PcapRecordHeaderLength}"), at);
        ulong nanos = Format == CaptureFileFormat.Pcap ? fraction * 1000UL : fraction;
        record = new CaptureRecord(CaptureTimestamp.Normalized(seconds, nanos), 0, _interfaces[0].LinkType,
            (int)Math.Min(original, int.MaxValue), _buf.AsSpan(_pos + PcapRecordHeaderLength, length), at);
        _pos += PcapRecordHeaderLength + length;
        return true;
    }

    /// <summary>
    /// Reads one pcapng block. Returns false at a clean end of file; true with a record whose <see cref="CaptureRecord.Offset"/>
    /// is -1 for a block that is not a packet.
    /// </summary>
    private bool TryReadPcapNgBlock(out CaptureRecord record)
    {
        record = new CaptureRecord(default, 0, default, 0, default, -1);
        long at = Position;
        if (!Ensure(8))
        {
            if (Available == 0) return false;
            throw Fail(string.Create(CultureInfo.InvariantCulture, $"truncated block header: the file ends {Available} bytes into it"), at);
        }
        uint type = U32(_buf.AsSpan(_pos));
        if (type == PcapNgSectionHeader)
        {
            // The section header's own byte-order magic says how to read its length and everything up to the next section.
            if (!Ensure(12)) throw Fail("truncated section header block", at);
            uint bom = BinaryPrimitives.ReadUInt32LittleEndian(_buf.AsSpan(_pos + 8));
            if (bom == PcapNgByteOrderMagic) _bigEndian = false;
            else if (bom == BinaryPrimitives.ReverseEndianness(PcapNgByteOrderMagic)) _bigEndian = true;
            else throw Fail(string.Create(CultureInfo.InvariantCulture, $"section header block with bad byte-order magic 0x{bom:x8}"), at + 8);
        }
        else if (_section < 0)
        {
            throw Fail("pcapng file does not start with a section header block", at);
        }
        uint total = U32(_buf.AsSpan(_pos + 4));
        if (total < 12 || total % 4 != 0 || total > MaxRecordLength)
            throw Fail(string.Create(CultureInfo.InvariantCulture, $"block of type 0x{type:x8} has a bad total length {total}"), at);
        int length = (int)total;
        if (!Ensure(length))
            throw Fail(string.Create(CultureInfo.InvariantCulture, $"truncated block of type 0x{type:x8}: {length} bytes announced, the file ends after {Available}"), at);
        ReadOnlySpan<byte> block = _buf.AsSpan(_pos, length);
        uint trailer = U32(block[(length - 4)..]);
        if (trailer != total)
            throw Fail(string.Create(CultureInfo.InvariantCulture, $"block of type 0x{type:x8} has total length {total} at its start but {trailer} at its end"), at);
        ReadOnlySpan<byte> body = block[8..(length - 4)];
        _pos += length;
        switch (type)
        {
            case PcapNgSectionHeader:
                ReadSectionHeader(body, at);
                break;
            case BlockInterface:
                ReadInterface(body, at);
                break;
            case BlockEnhancedPacket:
                record = ReadEnhancedPacket(body, at);
                break;
            case BlockSimplePacket:
                record = ReadSimplePacket(body, at);
                break;
            case BlockObsoletePacket:
                record = ReadObsoletePacket(body, at);
                break;
            default:
                break; // name resolution, statistics, custom and unknown blocks: nothing a replay needs
        }
        return true;
    }

    private void ReadSectionHeader(ReadOnlySpan<byte> body, long at)
    {
        if (body.Length < 16) throw Fail("section header block shorter than 28 bytes", at);
        ushort major = U16(body[4..]);
        if (major != 1) throw Fail(string.Create(CultureInfo.InvariantCulture, $"pcapng section version {major}.{U16(body[6..])} is not 1.x"), at + 12);
        _section++;
        _interfaces.Clear();
    }

    private void ReadInterface(ReadOnlySpan<byte> body, long at)
    {
        if (body.Length < 8) throw Fail("interface description block shorter than 20 bytes", at);
        var linkType = (LinkType)U16(body);
        int snap = (int)Math.Min(U32(body[4..]), int.MaxValue);
        string? name = null;
        int resolution = 6;
        bool binary = false;
        long offsetSeconds = 0;
        ReadOnlySpan<byte> options = body[8..];
        long optionAt = at + 16;
        while (options.Length >= 4)
        {
            ushort code = U16(options), optionLength = U16(options[2..]);
            if (code == OptEnd) break;
            int padded = (optionLength + 3) & ~3;
            if (4 + padded > options.Length) throw Fail("interface option runs past the end of its block", optionAt);
            ReadOnlySpan<byte> value = options.Slice(4, optionLength);
            switch (code)
            {
                case OptIfName:
                    name = System.Text.Encoding.UTF8.GetString(value).TrimEnd('\0');
                    break;
                case OptIfTsResol when optionLength >= 1:
                    binary = (value[0] & 0x80) != 0;
                    resolution = value[0] & 0x7f;
                    if (binary ? resolution > 63 : resolution > 19)
                        throw Fail(string.Create(CultureInfo.InvariantCulture, $"if_tsresol 0x{value[0]:x2} is beyond 64-bit timestamps"), optionAt);
                    break;
                case OptIfTsOffset when optionLength >= 8:
                    offsetSeconds = _bigEndian ? BinaryPrimitives.ReadInt64BigEndian(value) : BinaryPrimitives.ReadInt64LittleEndian(value);
                    break;
                default:
                    break;
            }
            options = options[(4 + padded)..];
            optionAt += 4 + padded;
        }
        _interfaces.Add(new CaptureInterface(linkType, snap, name, resolution, binary, offsetSeconds));
    }

    private CaptureRecord ReadEnhancedPacket(ReadOnlySpan<byte> body, long at)
    {
        if (body.Length < 20) throw Fail("enhanced packet block shorter than 32 bytes", at);
        uint id = U32(body);
        ulong units = ((ulong)U32(body[4..]) << 32) | U32(body[8..]);
        uint captured = U32(body[12..]);
        CaptureDirection direction = CaptureDirection.Unknown;
        if (captured <= (uint)body.Length - 20)
        {
            // Options follow the padded packet data; a malformed option list is not worth losing the packet over.
            ReadOnlySpan<byte> options = body[Math.Min(body.Length, 20 + (((int)captured + 3) & ~3))..];
            while (options.Length >= 4)
            {
                ushort code = U16(options), optionLength = U16(options[2..]);
                int next = 4 + ((optionLength + 3) & ~3);
                if (code == OptEnd || next > options.Length) break;
                if (code == OptEpbFlags && optionLength >= 4)
                {
                    uint way = U32(options[4..]) & 3; // 3 is reserved: treat as not recorded
                    direction = way is 1 or 2 ? (CaptureDirection)way : CaptureDirection.Unknown;
                }
                options = options[next..];
            }
        }
        return PacketRecord(id, units, captured, U32(body[16..]), body[20..], at, direction);
    }

    private CaptureRecord ReadObsoletePacket(ReadOnlySpan<byte> body, long at)
    {
        if (body.Length < 20) throw Fail("packet block shorter than 32 bytes", at);
        uint id = U16(body);
        ulong units = ((ulong)U32(body[4..]) << 32) | U32(body[8..]);
        return PacketRecord(id, units, U32(body[12..]), U32(body[16..]), body[20..], at);
    }

    private CaptureRecord ReadSimplePacket(ReadOnlySpan<byte> body, long at)
    {
        if (body.Length < 4) throw Fail("simple packet block shorter than 16 bytes", at);
        if (_interfaces.Count == 0) throw Fail("simple packet block before any interface description block", at);
        uint original = U32(body);
        ReadOnlySpan<byte> data = body[4..];
        // The captured length is not stored: it is the original length cut to the snap length and to the block.
        int captured = (int)Math.Min(original, (uint)data.Length);
        int snap = _interfaces[0].SnapLength;
        if (snap > 0) captured = Math.Min(captured, snap);
        return new CaptureRecord(default, 0, _interfaces[0].LinkType, (int)Math.Min(original, int.MaxValue), data[..captured], at, _section);
    }

    private CaptureRecord PacketRecord(uint id, ulong units, uint captured, uint original, ReadOnlySpan<byte> data, long at, CaptureDirection direction = CaptureDirection.Unknown)
    {
        if (id >= (uint)_interfaces.Count)
            throw Fail(string.Create(CultureInfo.InvariantCulture, $"packet block names interface {id}, but the section has {_interfaces.Count}"), at);
        if (captured > (uint)data.Length)
            throw Fail(string.Create(CultureInfo.InvariantCulture, $"packet block claims {captured} captured bytes but holds {data.Length}"), at);
        CaptureInterface iface = _interfaces[(int)id];
        CaptureTimestamp ts = ToTimestamp(units, iface);
        return new CaptureRecord(ts, (int)id, iface.LinkType, (int)Math.Min(original, int.MaxValue), data[..(int)captured], at, _section, direction);
    }

    /// <summary>Turns a count of <c>if_tsresol</c> units into seconds and nanoseconds (10^-n or 2^-n seconds per unit).</summary>
    internal static CaptureTimestamp ToTimestamp(ulong units, CaptureInterface iface)
    {
        ulong seconds, nanos;
        int r = iface.TimestampResolution;
        if (iface.BinaryResolution)
        {
            seconds = r == 0 ? units : units >> r;
            ulong fraction = r == 0 ? 0 : units & ((1UL << r) - 1);
            nanos = (ulong)(((UInt128)fraction * 1_000_000_000UL) >> r);
        }
        else
        {
            ulong perSecond = Pow10(r);
            seconds = units / perSecond;
            ulong fraction = units % perSecond;
            nanos = r <= 9 ? fraction * Pow10(9 - r) : fraction / Pow10(r - 9);
        }
        return CaptureTimestamp.Normalized((long)seconds + iface.TimestampOffsetSeconds, nanos);
    }

    private static ulong Pow10(int n)
    {
        ulong v = 1;
        for (int i = 0; i < n; i++) v *= 10;
        return v;
    }

    private ushort U16(ReadOnlySpan<byte> b) => _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(b) : BinaryPrimitives.ReadUInt16LittleEndian(b);

    private uint U32(ReadOnlySpan<byte> b) => _bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(b) : BinaryPrimitives.ReadUInt32LittleEndian(b);

    /// <summary>Makes <paramref name="count"/> bytes readable at <c>_pos</c>, reading more of the stream; false when the file ends first.</summary>
    private bool Ensure(int count)
    {
        if (_end - _pos >= count) return true;
        if (_buf.Length < count)
        {
            byte[] bigger = new byte[Math.Max(count, _buf.Length * 2)];
            _buf.AsSpan(_pos, _end - _pos).CopyTo(bigger);
            _buf = bigger;
        }
        else if (_pos > 0)
        {
            _buf.AsSpan(_pos, _end - _pos).CopyTo(_buf);
        }
        _bufOffset += _pos;
        _end -= _pos;
        _pos = 0;
        while (_end < count)
        {
            int n = _stream.Read(_buf, _end, _buf.Length - _end);
            if (n <= 0) return false;
            _end += n;
        }
        return true;
    }

    private static CaptureFormatException Fail(string problem, long offset) => new(problem, offset);
}
