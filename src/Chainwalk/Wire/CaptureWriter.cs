using System.Buffers.Binary;
using System.Text;

namespace Chainwalk.Wire;

/// <summary>
/// Writes packets as a classic pcap file (microsecond or nanosecond timestamps) or a pcapng file (one section,
/// one or more interfaces, nanosecond <c>if_tsresol</c>, enhanced packet blocks),
/// in little-endian byte order unless big-endian is asked for. Nothing is buffered beyond a reused header scratch: give it a buffered stream for speed.
/// </summary>
public sealed class CaptureWriter : IDisposable
{
    /// <summary>The snap length tcpdump uses by default (libpcap's MAXIMUM_SNAPLEN).</summary>
    public const int DefaultSnapLength = 262144;

    private const uint BlockSection = 0x0a0d0d0a, BlockInterface = 1, BlockEnhancedPacket = 6;
    private const ushort OptEnd = 0, OptUserApplication = 4, OptIfName = 2, OptIfTsResol = 9, OptEpbFlags = 2;

    private readonly Stream _stream;
    private readonly bool _leaveOpen, _bigEndian;
    private readonly int _snapLength;
    private readonly List<LinkType> _interfaces = [];
    private readonly byte[] _scratch = new byte[64];

    public CaptureWriter(Stream stream, CaptureFileFormat format, LinkType linkType, int snapLength = DefaultSnapLength, bool bigEndian = false, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(snapLength);
        _stream = stream;
        Format = format;
        _snapLength = snapLength;
        _bigEndian = bigEndian;
        _leaveOpen = leaveOpen;
        if (format == CaptureFileFormat.PcapNg)
        {
            WriteSectionHeader();
            AddInterface(linkType);
        }
        else
        {
            Span<byte> h = _scratch.AsSpan(0, 24);
            U32(h, format == CaptureFileFormat.Pcap ? 0xa1b2c3d4 : 0xa1b23c4d);
            U16(h[4..], 2);
            U16(h[6..], 4);
            U32(h[8..], 0); // thiszone: timestamps are UTC
            U32(h[12..], 0); // sigfigs
            U32(h[16..], (uint)snapLength);
            U32(h[20..], (uint)linkType);
            _stream.Write(h);
            _interfaces.Add(linkType);
        }
    }

    public CaptureFileFormat Format { get; }

    /// <summary>The link types of the interfaces written so far; a record names one by its index.</summary>
    public IReadOnlyList<LinkType> Interfaces => _interfaces;

    /// <summary>Declares another interface (pcapng only) and returns its index for <see cref="Write"/>.</summary>
    public int AddInterface(LinkType linkType, string? name = null)
    {
        if (Format != CaptureFileFormat.PcapNg)
            throw new InvalidOperationException("a classic pcap file has one link type; write pcapng for several interfaces");
        byte[] nameBytes = name is null ? [] : Encoding.UTF8.GetBytes(name);
        int nameOption = name is null ? 0 : 4 + Pad(nameBytes.Length);
        int total = 8 + 8 + nameOption + 8 /* if_tsresol */ + 4 /* end */ + 4;
        byte[] block = new byte[total];
        Span<byte> b = block;
        U32(b, BlockInterface);
        U32(b[4..], (uint)total);
        U16(b[8..], (ushort)linkType);
        U16(b[10..], 0);
        U32(b[12..], (uint)_snapLength);
        int at = 16;
        if (name is not null)
        {
            U16(b[at..], OptIfName);
            U16(b[(at + 2)..], (ushort)nameBytes.Length);
            nameBytes.CopyTo(b[(at + 4)..]);
            at += nameOption;
        }
        U16(b[at..], OptIfTsResol);
        U16(b[(at + 2)..], 1);
        b[at + 4] = 9; // nanoseconds
        at += 8;
        U16(b[at..], OptEnd);
        U16(b[(at + 2)..], 0);
        U32(b[(total - 4)..], (uint)total);
        _stream.Write(block);
        _interfaces.Add(linkType);
        return _interfaces.Count - 1;
    }

    /// <summary>
    /// Writes one packet (link-layer header first, of the interface's link type). Bytes past the snap length are cut;
    /// <paramref name="originalLength"/> defaults to the data's length. A known <paramref name="direction"/> is written
    /// as pcapng's <c>epb_flags</c>; classic pcap has no place for it.
    /// </summary>
    public void Write(CaptureTimestamp timestamp, ReadOnlySpan<byte> data, int originalLength = -1, int interfaceIndex = 0, CaptureDirection direction = CaptureDirection.Unknown)
    {
        if ((uint)interfaceIndex >= (uint)_interfaces.Count) throw new ArgumentOutOfRangeException(nameof(interfaceIndex), "no such interface");
        if (originalLength < 0) originalLength = data.Length;
        if (data.Length > _snapLength) data = data[.._snapLength];
        originalLength = Math.Max(originalLength, data.Length);
        Span<byte> h = _scratch;
        if (Format != CaptureFileFormat.PcapNg)
        {
            uint fraction = Format == CaptureFileFormat.Pcap ? timestamp.Nanoseconds / 1000 : timestamp.Nanoseconds;
            U32(h, (uint)timestamp.Seconds);
            U32(h[4..], fraction);
            U32(h[8..], (uint)data.Length);
            U32(h[12..], (uint)originalLength);
            _stream.Write(h[..16]);
            _stream.Write(data);
            return;
        }
        int padded = Pad(data.Length);
        int optionBytes = direction == CaptureDirection.Unknown ? 0 : 12;
        int total = 28 + padded + optionBytes + 4;
        ulong units = ((ulong)timestamp.Seconds * 1_000_000_000UL) + timestamp.Nanoseconds;
        U32(h, BlockEnhancedPacket);
        U32(h[4..], (uint)total);
        U32(h[8..], (uint)interfaceIndex);
        U32(h[12..], (uint)(units >> 32));
        U32(h[16..], (uint)units);
        U32(h[20..], (uint)data.Length);
        U32(h[24..], (uint)originalLength);
        _stream.Write(h[..28]);
        _stream.Write(data);
        Span<byte> tail = h[28..56];
        tail.Clear();
        int at = padded - data.Length;
        if (optionBytes != 0)
        {
            U16(tail[at..], OptEpbFlags);
            U16(tail[(at + 2)..], 4);
            U32(tail[(at + 4)..], (uint)direction);
            at += optionBytes; // the flags option, then opt_endofopt (already zero)
        }
        U32(tail[at..], (uint)total);
        _stream.Write(tail[..(at + 4)]);
    }

    public void Flush() => _stream.Flush();

    public void Dispose()
    {
        _stream.Flush();
        if (!_leaveOpen) _stream.Dispose();
    }

    private void WriteSectionHeader()
    {
        byte[] app = Encoding.UTF8.GetBytes("Chainwalk");
        int total = 8 + 16 + 4 + Pad(app.Length) + 4 + 4;
        byte[] block = new byte[total];
        Span<byte> b = block;
        U32(b, BlockSection);
        U32(b[4..], (uint)total);
        U32(b[8..], 0x1a2b3c4d);
        U16(b[12..], 1);
        U16(b[14..], 0);
        U32(b[16..], 0xffffffff); // section length: not given
        U32(b[20..], 0xffffffff);
        U16(b[24..], OptUserApplication);
        U16(b[26..], (ushort)app.Length);
        app.CopyTo(b[28..]);
        int at = 28 + Pad(app.Length);
        U16(b[at..], OptEnd);
        U16(b[(at + 2)..], 0);
        U32(b[(total - 4)..], (uint)total);
        _stream.Write(block);
    }

    private static int Pad(int n) => (n + 3) & ~3;

    private void U16(Span<byte> b, ushort v)
    {
        if (_bigEndian) BinaryPrimitives.WriteUInt16BigEndian(b, v);
        else BinaryPrimitives.WriteUInt16LittleEndian(b, v);
    }

    private void U32(Span<byte> b, uint v)
    {
        if (_bigEndian) BinaryPrimitives.WriteUInt32BigEndian(b, v);
        else BinaryPrimitives.WriteUInt32LittleEndian(b, v);
    }
}
