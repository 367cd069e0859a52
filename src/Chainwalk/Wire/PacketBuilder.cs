using System.Buffers.Binary;
using Chainwalk.Net;

namespace Chainwalk.Wire;

/// <summary>
/// Makes valid IPv4/IPv6 packets from fields: TCP (flags, sequence numbers, options such as MSS), UDP, ICMP and
/// ICMPv6 (echo, and errors quoting another packet), SCTP (INIT or any first chunk), or a bare protocol number,
/// with a payload. Lengths and checksums are filled in by <see cref="Build"/>. Fluent: every setter returns the
/// builder. Defaults: TTL/hop limit 64, TOS 0, IPv4 id 0, TCP window 64240.
/// </summary>
public sealed class PacketBuilder
{
    private enum Layer { None, Tcp, Udp, Icmp, Sctp }

    private readonly IpFamily _family;
    private readonly UInt128 _src, _dst;
    private byte _ttl = 64, _tos;
    private ushort _id;
    private bool _df;
    private int _fragOffset; // bytes
    private bool _more, _v6Fragment;
    private uint _v6FragmentId;
    private uint _flowLabel;
    private byte[] _ipv4Options = [];
    private readonly List<(byte Type, byte[] Body)> _v6Extensions = [];
    private int _fragmentHeaderIndex = -1;

    private Layer _layer;
    private byte _protocol = IpProtocol.NoNextHeader;
    private ushort _sport, _dport;
    private TcpFlags _flags;
    private uint _seq, _ack;
    private ushort _window = 64240, _urgent;
    private readonly List<byte> _tcpOptions = [];
    private byte _icmpType, _icmpCode;
    private uint _icmpRest;
    private uint _sctpTag;
    private byte[] _sctpChunk = [];
    private byte[] _payload = [];

    private PacketBuilder(IpFamily family, UInt128 src, UInt128 dst)
    {
        _family = family;
        _src = src;
        _dst = dst;
        _protocol = family == IpFamily.V4 ? (byte)255 : IpProtocol.NoNextHeader;
    }

    /// <summary>An IPv4 packet; addresses as numbers (a.b.c.d is a&lt;&lt;24|b&lt;&lt;16|c&lt;&lt;8|d).</summary>
    public static PacketBuilder Ipv4(uint source, uint destination) => new(IpFamily.V4, source, destination);

    /// <summary>An IPv4 packet; addresses as dotted quads.</summary>
    public static PacketBuilder Ipv4(string source, string destination) =>
        new(IpFamily.V4, ParseAddress(source, IpFamily.V4), ParseAddress(destination, IpFamily.V4));

    public static PacketBuilder Ipv6(UInt128 source, UInt128 destination) => new(IpFamily.V6, source, destination);

    /// <summary>An IPv6 packet; addresses in any text form inet_pton accepts.</summary>
    public static PacketBuilder Ipv6(string source, string destination) =>
        new(IpFamily.V6, ParseAddress(source, IpFamily.V6), ParseAddress(destination, IpFamily.V6));

    private static UInt128 ParseAddress(string text, IpFamily family) =>
        IpNet.TryParseNumeric(text, family, out UInt128 v) ? v : throw new FormatException($"not an {family} address: {text}");

    public IpFamily Family => _family;

    /// <summary>TTL (IPv4) or hop limit (IPv6).</summary>
    public PacketBuilder Ttl(byte ttl) { _ttl = ttl; return this; }

    /// <summary>TOS (IPv4) or traffic class (IPv6).</summary>
    public PacketBuilder Tos(byte tos) { _tos = tos; return this; }

    public PacketBuilder FlowLabel(uint label) { _flowLabel = label & 0xfffff; return this; }

    public PacketBuilder Id(ushort id) { _id = id; return this; }

    public PacketBuilder DontFragment(bool on = true) { _df = on; return this; }

    /// <summary>IPv4 options, padded with end-of-list to a multiple of four bytes.</summary>
    public PacketBuilder Ipv4Options(ReadOnlySpan<byte> options) { _ipv4Options = options.ToArray(); return this; }

    /// <summary>
    /// Marks the packet a fragment: offset in bytes (a multiple of 8) and the M flag. IPv4 sets the header
    /// fields; IPv6 adds a fragment header, after the extension headers added so far, with <paramref name="id"/>.
    /// </summary>
    public PacketBuilder Fragment(int offset, bool moreFragments, uint id = 0)
    {
        if (offset < 0 || offset % 8 != 0 || offset > 0x1fff * 8) throw new ArgumentOutOfRangeException(nameof(offset));
        _fragOffset = offset;
        _more = moreFragments;
        if (_family == IpFamily.V4) _id = (ushort)id;
        else
        {
            _v6Fragment = true;
            _v6FragmentId = id;
            _fragmentHeaderIndex = _v6Extensions.Count;
        }
        return this;
    }

    /// <summary>
    /// Adds an IPv6 extension header (hop-by-hop 0, routing 43, destination options 60, AH 51) with the bytes
    /// after its next-header and length bytes; the body is padded with zeros (Pad1) to the header's unit.
    /// </summary>
    public PacketBuilder Ipv6Extension(byte type, ReadOnlySpan<byte> body)
    {
        if (_family != IpFamily.V6) throw new InvalidOperationException("extension headers are IPv6 only");
        _v6Extensions.Add((type, body.ToArray()));
        return this;
    }

    /// <summary>A TCP segment. Options are added with <see cref="Mss"/> and <see cref="TcpOption"/>.</summary>
    public PacketBuilder Tcp(ushort sourcePort, ushort destinationPort, TcpFlags flags = TcpFlags.Syn, uint seq = 0,
        uint ack = 0, ushort window = 64240, ushort urgentPointer = 0)
    {
        _layer = Layer.Tcp;
        _protocol = IpProtocol.Tcp;
        (_sport, _dport, _flags, _seq, _ack, _window, _urgent) = (sourcePort, destinationPort, flags, seq, ack, window, urgentPointer);
        return this;
    }

    public PacketBuilder Mss(ushort mss) => TcpOption(TcpOptionKind.Mss, [(byte)(mss >> 8), (byte)mss]);

    /// <summary>Appends a TCP option: NOP and end-of-list take no data; others get kind, length, data.</summary>
    public PacketBuilder TcpOption(byte kind, ReadOnlySpan<byte> data = default)
    {
        _tcpOptions.Add(kind);
        if (kind is TcpOptionKind.Nop or TcpOptionKind.End) return this;
        _tcpOptions.Add((byte)(data.Length + 2));
        _tcpOptions.AddRange(data.ToArray());
        return this;
    }

    public PacketBuilder Udp(ushort sourcePort, ushort destinationPort)
    {
        _layer = Layer.Udp;
        _protocol = IpProtocol.Udp;
        (_sport, _dport) = (sourcePort, destinationPort);
        return this;
    }

    /// <summary>An ICMP (IPv4) or ICMPv6 (IPv6) message with any type, code and rest of header.</summary>
    public PacketBuilder Icmp(byte type, byte code, uint restOfHeader = 0)
    {
        _layer = Layer.Icmp;
        _protocol = _family == IpFamily.V4 ? IpProtocol.Icmp : IpProtocol.Icmpv6;
        (_icmpType, _icmpCode, _icmpRest) = (type, code, restOfHeader);
        return this;
    }

    /// <summary>An echo request (or reply) of the packet's family: ICMP type 8/0, ICMPv6 128/129.</summary>
    public PacketBuilder IcmpEcho(ushort id, ushort sequence, bool reply = false)
    {
        byte type = _family == IpFamily.V4
            ? (reply ? IcmpType.EchoReply : IcmpType.EchoRequest)
            : (reply ? Icmpv6Type.EchoReply : Icmpv6Type.EchoRequest);
        return Icmp(type, 0, ((uint)id << 16) | sequence);
    }

    /// <summary>
    /// An ICMP/ICMPv6 error quoting <paramref name="quoted"/> (an IP packet, as much of it as the caller gives;
    /// see <see cref="Quote"/> for the kernel's limit). <paramref name="restOfHeader"/> carries an MTU or pointer.
    /// </summary>
    public PacketBuilder IcmpError(byte type, byte code, ReadOnlySpan<byte> quoted, uint restOfHeader = 0)
    {
        Icmp(type, code, restOfHeader);
        _payload = quoted.ToArray();
        return this;
    }

    /// <summary>
    /// The part of <paramref name="offending"/> an ICMP error quotes: as much as keeps the error within 576 bytes
    /// (IPv4, <c>icmp_send()</c> in net/ipv4/icmp.c) or 1280 bytes (IPv6, the minimum MTU, net/ipv6/icmp.c).
    /// </summary>
    public static ReadOnlySpan<byte> Quote(ReadOnlySpan<byte> offending, IpFamily family)
    {
        int room = family == IpFamily.V4 ? 576 - Ipv4Header.MinLength - IcmpHeader.Length : 1280 - Ipv6Header.Length - Icmpv6Header.Length;
        return offending[..Math.Min(offending.Length, room)];
    }

    /// <summary>An SCTP packet whose only chunk has <paramref name="chunkType"/> and <paramref name="chunkValue"/> (padded to 4 bytes).</summary>
    public PacketBuilder Sctp(ushort sourcePort, ushort destinationPort, uint verificationTag, byte chunkType,
        byte chunkFlags = 0, ReadOnlySpan<byte> chunkValue = default)
    {
        _layer = Layer.Sctp;
        _protocol = IpProtocol.Sctp;
        (_sport, _dport, _sctpTag) = (sourcePort, destinationPort, verificationTag);
        int length = SctpHeader.ChunkHeaderLength + chunkValue.Length;
        byte[] chunk = new byte[(length + 3) & ~3];
        chunk[0] = chunkType;
        chunk[1] = chunkFlags;
        BinaryPrimitives.WriteUInt16BigEndian(chunk.AsSpan(2), (ushort)length);
        chunkValue.CopyTo(chunk.AsSpan(SctpHeader.ChunkHeaderLength));
        _sctpChunk = chunk;
        return this;
    }

    /// <summary>An SCTP INIT (verification tag 0, RFC 9260 section 3.3.2) without optional parameters.</summary>
    public PacketBuilder SctpInit(ushort sourcePort, ushort destinationPort, uint initiateTag, uint receiverWindow = 65535,
        ushort outboundStreams = 10, ushort inboundStreams = 10, uint initialTsn = 1)
    {
        Span<byte> v = stackalloc byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(v, initiateTag);
        BinaryPrimitives.WriteUInt32BigEndian(v[4..], receiverWindow);
        BinaryPrimitives.WriteUInt16BigEndian(v[8..], outboundStreams);
        BinaryPrimitives.WriteUInt16BigEndian(v[10..], inboundStreams);
        BinaryPrimitives.WriteUInt32BigEndian(v[12..], initialTsn);
        return Sctp(sourcePort, destinationPort, 0, SctpChunkType.Init, 0, v);
    }

    /// <summary>No known upper layer: the protocol number and the payload are sent as they are.</summary>
    public PacketBuilder Protocol(byte protocol)
    {
        _layer = Layer.None;
        _protocol = protocol;
        return this;
    }

    public PacketBuilder Payload(ReadOnlySpan<byte> payload) { _payload = payload.ToArray(); return this; }

    /// <summary>A payload of <paramref name="length"/> zero bytes.</summary>
    public PacketBuilder PayloadLength(int length) { _payload = new byte[length]; return this; }

    /// <summary>The packet's bytes with lengths and checksums filled in.</summary>
    public byte[] Build()
    {
        byte[] l4 = BuildTransport();
        byte[] packet = _family == IpFamily.V4 ? BuildV4(l4) : BuildV6(l4);
        int offset = packet.Length - l4.Length;
        Span<byte> seg = packet.AsSpan(offset);
        ReadOnlySpan<byte> s = _family == IpFamily.V4 ? packet.AsSpan(12, 4) : packet.AsSpan(8, 16);
        ReadOnlySpan<byte> d = _family == IpFamily.V4 ? packet.AsSpan(16, 4) : packet.AsSpan(24, 16);
        switch (_layer)
        {
            case Layer.Tcp: TcpHeader.TryCreate(seg, out TcpHeader t); t.UpdateChecksum(s, d); break;
            case Layer.Udp: UdpHeader.TryCreate(seg, out UdpHeader u); u.UpdateChecksum(s, d); break;
            case Layer.Icmp when _family == IpFamily.V4: IcmpHeader.TryCreate(seg, out IcmpHeader i); i.UpdateChecksum(); break;
            case Layer.Icmp: Icmpv6Header.TryCreate(seg, out Icmpv6Header i6); i6.UpdateChecksum(s, d); break;
            case Layer.Sctp: SctpHeader.TryCreate(seg, out SctpHeader c); c.UpdateChecksum(); break;
        }
        if (_family == IpFamily.V4)
        {
            Ipv4Header.TryCreate(packet, out Ipv4Header ip);
            ip.UpdateChecksum();
        }
        return packet;
    }

    /// <summary>Builds and parses: the <see cref="Wire.Packet"/> of <see cref="Build"/>.</summary>
    public Packet BuildPacket() => Packet.Parse(Build());

    private byte[] BuildTransport()
    {
        switch (_layer)
        {
            case Layer.Tcp:
                {
                    int optLength = (_tcpOptions.Count + 3) & ~3;
                    int header = TcpHeader.MinLength + optLength;
                    if (header > 60) throw new InvalidOperationException("TCP options exceed 40 bytes");
                    byte[] b = new byte[header + _payload.Length];
                    b[12] = (byte)((header / 4) << 4); // data offset, which TryCreate checks
                    TcpHeader.TryCreate(b, out TcpHeader t);
                    t.SourcePort = _sport;
                    t.DestinationPort = _dport;
                    t.SequenceNumber = _seq;
                    t.AcknowledgmentNumber = _ack;
                    t.Flags = _flags;
                    t.Window = _window;
                    t.UrgentPointer = _urgent;
                    _tcpOptions.ToArray().CopyTo(b, TcpHeader.MinLength);
                    _payload.CopyTo(b, header);
                    return b;
                }
            case Layer.Udp:
                {
                    byte[] b = new byte[UdpHeader.Length + _payload.Length];
                    UdpHeader.TryCreate(b, out UdpHeader u);
                    u.SourcePort = _sport;
                    u.DestinationPort = _dport;
                    u.LengthField = (ushort)b.Length;
                    _payload.CopyTo(b, UdpHeader.Length);
                    return b;
                }
            case Layer.Icmp:
                {
                    byte[] b = new byte[IcmpHeader.Length + _payload.Length];
                    IcmpHeader.TryCreate(b, out IcmpHeader i);
                    i.Type = _icmpType;
                    i.Code = _icmpCode;
                    i.RestOfHeader = _icmpRest;
                    _payload.CopyTo(b, IcmpHeader.Length);
                    return b;
                }
            case Layer.Sctp:
                {
                    byte[] b = new byte[SctpHeader.Length + _sctpChunk.Length + _payload.Length];
                    SctpHeader.TryCreate(b, out SctpHeader c);
                    c.SourcePort = _sport;
                    c.DestinationPort = _dport;
                    c.VerificationTag = _sctpTag;
                    _sctpChunk.CopyTo(b, SctpHeader.Length);
                    _payload.CopyTo(b, SctpHeader.Length + _sctpChunk.Length);
                    return b;
                }
            default:
                return (byte[])_payload.Clone();
        }
    }

    private byte[] BuildV4(byte[] l4)
    {
        int header = Ipv4Header.MinLength + ((_ipv4Options.Length + 3) & ~3);
        if (header > 60) throw new InvalidOperationException("IPv4 options exceed 40 bytes");
        int total = header + l4.Length;
        if (total > ushort.MaxValue) throw new InvalidOperationException("IPv4 packet longer than 65535 bytes");
        byte[] b = new byte[total];
        b[0] = (byte)(0x40 | (header / 4));
        Ipv4Header.TryCreate(b, out Ipv4Header ip);
        ip.TypeOfService = _tos;
        ip.TotalLengthField = (ushort)total;
        ip.Id = _id;
        ip.FlagsAndOffset = (ushort)((_df ? Ipv4Header.FlagDontFragment : 0) | (_more ? Ipv4Header.FlagMoreFragments : 0) | (_fragOffset / 8));
        ip.TimeToLive = _ttl;
        ip.ProtocolNumber = _protocol;
        ip.SourceAddress = (uint)_src;
        ip.DestinationAddress = (uint)_dst;
        _ipv4Options.CopyTo(b, Ipv4Header.MinLength);
        l4.CopyTo(b, header);
        return b;
    }

    private byte[] BuildV6(byte[] l4)
    {
        var ext = new List<(byte Type, byte[] Bytes)>();
        for (int i = 0; i <= _v6Extensions.Count; i++)
        {
            if (_v6Fragment && i == _fragmentHeaderIndex)
            {
                byte[] f = new byte[8];
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(2), (ushort)(_fragOffset | (_more ? 1 : 0)));
                BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan(4), _v6FragmentId);
                ext.Add((IpProtocol.Fragment, f));
            }
            if (i == _v6Extensions.Count) break;
            (byte type, byte[] body) = _v6Extensions[i];
            int unit = type == IpProtocol.Ah ? 4 : 8;
            int length = Math.Max(8, (2 + body.Length + unit - 1) / unit * unit);
            byte[] h = new byte[length];
            h[1] = (byte)(type == IpProtocol.Ah ? length / 4 - 2 : length / 8 - 1);
            body.CopyTo(h, 2);
            ext.Add((type, h));
        }
        int extLength = ext.Sum(e => e.Bytes.Length);
        int payload = extLength + l4.Length;
        if (payload > ushort.MaxValue) throw new InvalidOperationException("IPv6 payload longer than 65535 bytes");
        byte[] b = new byte[Ipv6Header.Length + payload];
        b[0] = 0x60;
        Ipv6Header.TryCreate(b, out Ipv6Header ip);
        ip.TrafficClass = _tos;
        ip.FlowLabel = _flowLabel;
        ip.PayloadLengthField = (ushort)payload;
        ip.NextHeader = ext.Count > 0 ? ext[0].Type : _protocol;
        ip.HopLimit = _ttl;
        ip.SourceAddress = _src;
        ip.DestinationAddress = _dst;
        int at = Ipv6Header.Length;
        for (int i = 0; i < ext.Count; i++)
        {
            ext[i].Bytes[0] = i + 1 < ext.Count ? ext[i + 1].Type : _protocol;
            ext[i].Bytes.CopyTo(b, at);
            at += ext[i].Bytes.Length;
        }
        l4.CopyTo(b, at);
        return b;
    }
}
