using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using Chainwalk.Net;

namespace Chainwalk.Wire;

/// <summary>Why bytes could not be read as an IP packet.</summary>
public enum PacketError
{
    None,
    /// <summary>Fewer bytes than the IP header, or than the IP total length, or an extension header runs past the end.</summary>
    Truncated,
    /// <summary>The version nibble is neither 4 nor 6 (or not the one the caller asked for).</summary>
    BadVersion,
    /// <summary>The IPv4 header length (IHL) is below 5 words.</summary>
    BadHeaderLength,
    /// <summary>The IPv4 total length is smaller than the header length.</summary>
    BadTotalLength,
    /// <summary>An Ethernet frame carries neither IPv4 nor IPv6.</summary>
    UnsupportedEtherType,
}

/// <summary>The exception <see cref="Packet.Parse"/> throws; <see cref="Error"/> says what was wrong.</summary>
public sealed class PacketFormatException : FormatException
{
    public PacketFormatException() : this(PacketError.Truncated) { }

    public PacketFormatException(string message) : base(message) { }

    public PacketFormatException(string message, Exception inner) : base(message, inner) { }

    public PacketFormatException(PacketError error) : base(Packet.Describe(error)) => Error = error;

    public PacketError Error { get; }
}

/// <summary>
/// An IPv4 or IPv6 packet: its bytes (from the first byte of the IP header, cut to the IP length) and the
/// facts netfilter looks at, read once by <see cref="TryParse(ReadOnlySpan{byte}, out Packet?, out PacketError)"/>.
/// The bytes may be changed through the header views (NAT, mangle); the facts are not re-read, so parse the
/// bytes again after a change. Facts of a layer that is absent are zero (check <see cref="HasPorts"/>,
/// <see cref="HasTransportHeader"/>).
/// </summary>
public sealed partial class Packet
{
    /// <summary>Protocols whose first four bytes are a source and a destination port.</summary>
    private static bool HasPortPair(byte protocol) => protocol is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.UdpLite
        or IpProtocol.Sctp;

    private Packet(byte[] bytes) => Bytes = bytes;

    /// <summary>The IP packet, header first. Mutable through the views; re-parse after changing it.</summary>
    public byte[] Bytes { get; }

    public IpFamily Family { get; private set; }

    /// <summary>The source address (IPv4 in the low 32 bits, as <see cref="IpNet"/> holds it).</summary>
    public UInt128 Source { get; private set; }

    public UInt128 Destination { get; private set; }

    /// <summary>The upper-layer protocol: IPv4's protocol field, or IPv6's after the extension headers.</summary>
    public byte Protocol { get; private set; }

    /// <summary>The IPv4 header length with options, or 40 for IPv6.</summary>
    public int IpHeaderLength { get; private set; }

    /// <summary>Where the upper-layer header starts: after IPv4 options, or after IPv6 extension headers.</summary>
    public int TransportOffset { get; private set; }

    /// <summary>The IP length: IPv4 total length, or 40 plus the IPv6 payload length. Counters add this.</summary>
    public int TotalLength { get; private set; }

    /// <summary>TTL (IPv4) or hop limit (IPv6).</summary>
    public byte Ttl { get; private set; }

    /// <summary>TOS (IPv4) or traffic class (IPv6): DSCP in the upper six bits, ECN in the lower two.</summary>
    public byte Tos { get; private set; }

    public uint FlowLabel { get; private set; }

    /// <summary>IPv4 identification, or the identification of the IPv6 fragment header.</summary>
    public uint FragmentId { get; private set; }

    /// <summary>The fragment offset in bytes.</summary>
    public int FragmentOffset { get; private set; }

    public bool MoreFragments { get; private set; }

    public bool DontFragment { get; private set; }

    /// <summary>An IPv6 packet has a fragment header (an atomic fragment has one with offset 0 and no M flag).</summary>
    public bool HasFragmentHeader { get; private set; }

    /// <summary>Part of a fragmented datagram: the M flag or a non-zero offset.</summary>
    public bool IsFragment
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get => MoreFragments || FragmentOffset != 0;
    }

    /// <summary>A fragment after the first: no upper-layer header, as the kernel's <c>par->fragoff != 0</c>.</summary>
    public bool IsNonFirstFragment => FragmentOffset != 0;

    /// <summary>The IPv4 header checksum is right (always true for IPv6, which has none).</summary>
    public bool IpChecksumValid { get; private set; }

    /// <summary>The bytes after the IP header(s) up to the IP length.</summary>
    public int TransportLength => TotalLength - TransportOffset;

    /// <summary>The upper-layer header is there in full (TCP with options, UDP 8 bytes, ICMP 8 bytes, SCTP 12).</summary>
    public bool HasTransportHeader { get; private set; }

    /// <summary>TCP/UDP/UDP-Lite/SCTP ports were read (at least 4 bytes of a first fragment).</summary>
    public bool HasPorts { get; private set; }

    public ushort SourcePort { get; private set; }

    public ushort DestinationPort { get; private set; }

    /// <summary>The length of the upper-layer header (TCP's with options).</summary>
    public int TransportHeaderLength { get; private set; }

    /// <summary>The bytes after the upper-layer header: TCP/UDP data, ICMP data after its 8 bytes.</summary>
    public int PayloadLength
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get => HasTransportHeader ? TransportLength - TransportHeaderLength : 0;
    }

    public TcpFlags TcpFlags { get; private set; }

    public uint SequenceNumber { get; private set; }

    public uint AcknowledgmentNumber { get; private set; }

    public ushort Window { get; private set; }

    public ushort UrgentPointer { get; private set; }

    /// <summary>ICMP or ICMPv6 type (meaningful when <see cref="IsIcmp"/> and <see cref="HasTransportHeader"/>).</summary>
    public byte IcmpType { get; private set; }

    public byte IcmpCode { get; private set; }

    /// <summary>The echo identifier (also read for other types: it is the first half of the rest of header).</summary>
    public ushort IcmpId { get; private set; }

    public ushort IcmpSequence { get; private set; }

    /// <summary>The SCTP first chunk's type, when present.</summary>
    public byte? SctpFirstChunk { get; private set; }

    /// <summary>For a packet read from an Ethernet frame: the source MAC in the low 48 bits.</summary>
    public ulong? SourceMac { get; private set; }

    /// <summary>For a packet read from a tagged Ethernet frame: the VLAN id.</summary>
    public int? VlanId { get; private set; }

    /// <summary>Read as the quoted packet inside an ICMP error: <see cref="TotalLength"/> may exceed the bytes held.</summary>
    public bool IsQuoted { get; private set; }

    public bool IsIcmp
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get => Protocol == (Family == IpFamily.V4 ? IpProtocol.Icmp : IpProtocol.Icmpv6);
    }

    /// <summary>An ICMP/ICMPv6 error message that quotes another packet.</summary>
    public bool IsIcmpError => IsIcmp && HasTransportHeader && !IsNonFirstFragment
        && (Family == IpFamily.V4 ? Wire.IcmpType.IsError(IcmpType) : Icmpv6Type.IsError(IcmpType));

    /// <summary>The IP header bytes (IPv4 with options; IPv6 fixed header).</summary>
    public Span<byte> IpHeaderBytes => Bytes.AsSpan(0, IpHeaderLength);

    /// <summary>The upper-layer bytes (for a non-first fragment, the fragment's data).</summary>
    public Span<byte> TransportBytes => Bytes.AsSpan(Math.Min(TransportOffset, Bytes.Length));

    public ReadOnlySpan<byte> SourceBytes => Family == IpFamily.V4 ? Bytes.AsSpan(12, 4) : Bytes.AsSpan(8, 16);

    public ReadOnlySpan<byte> DestinationBytes => Family == IpFamily.V4 ? Bytes.AsSpan(16, 4) : Bytes.AsSpan(24, 16);

    private Packet? _quoted;
    private bool _quotedRead;

    /// <summary>For an ICMP error, the packet it quotes (read leniently: it is usually cut short); otherwise null.</summary>
    public Packet? QuotedPacket
    {
        get
        {
            if (!_quotedRead)
            {
                _quotedRead = true;
                if (IsIcmpError && TryParseCore(TransportBytes[IcmpHeader.Length..], Family, quoted: true, out Packet? inner, out _))
                    _quoted = inner;
            }
            return _quoted;
        }
    }

    /// <summary>Reads an IPv4 or IPv6 packet (chosen by its version nibble) and throws <see cref="PacketFormatException"/> if it cannot.</summary>
    public static Packet Parse(ReadOnlySpan<byte> bytes) =>
        TryParse(bytes, out Packet? packet, out PacketError error) ? packet : throw new PacketFormatException(error);

    /// <summary>Reads an IPv4 or IPv6 packet, chosen by its version nibble. Bytes after the IP length (link padding) are dropped.</summary>
    public static bool TryParse(ReadOnlySpan<byte> bytes, [NotNullWhen(true)] out Packet? packet, out PacketError error) =>
        TryParseCore(bytes, null, quoted: false, out packet, out error);

    /// <summary>Reads a packet that must be of <paramref name="family"/>; another version is <see cref="PacketError.BadVersion"/>.</summary>
    public static bool TryParse(ReadOnlySpan<byte> bytes, IpFamily family, [NotNullWhen(true)] out Packet? packet, out PacketError error) =>
        TryParseCore(bytes, family, quoted: false, out packet, out error);

    /// <summary>Reads the IP packet inside an Ethernet II frame (one 802.1Q tag allowed).</summary>
    public static bool TryParseFrame(ReadOnlySpan<byte> frame, [NotNullWhen(true)] out Packet? packet, out PacketError error)
    {
        packet = null;
        byte[] copy = frame.ToArray();
        if (!EthernetFrame.TryCreate(copy, out EthernetFrame eth))
        {
            error = PacketError.Truncated;
            return false;
        }
        IpFamily family;
        switch (eth.EtherTypeField)
        {
            case EtherType.Ipv4: family = IpFamily.V4; break;
            case EtherType.Ipv6: family = IpFamily.V6; break;
            default: error = PacketError.UnsupportedEtherType; return false;
        }
        if (!TryParseCore(eth.Payload, family, quoted: false, out Packet? inner, out error)) return false;
        inner.SourceMac = eth.SourceAddress;
        inner.VlanId = eth.HasVlanTag ? eth.VlanId : null;
        packet = inner;
        return true;
    }

    /// <summary>The words an error is reported with.</summary>
    public static string Describe(PacketError error) => error switch
    {
        PacketError.None => "no error",
        PacketError.Truncated => "truncated packet",
        PacketError.BadVersion => "bad IP version",
        PacketError.BadHeaderLength => "bad IP header length",
        PacketError.BadTotalLength => "bad IP total length",
        PacketError.UnsupportedEtherType => "not an IP frame",
        _ => error.ToString(),
    };

    private static bool Fail(PacketError e, out Packet? packet, out PacketError error)
    {
        packet = null;
        error = e;
        return false;
    }

    private static bool TryParseCore(ReadOnlySpan<byte> bytes, IpFamily? family, bool quoted, [NotNullWhen(true)] out Packet? packet, out PacketError error)
    {
        if (bytes.Length < 1) return Fail(PacketError.Truncated, out packet, out error);
        int version = bytes[0] >> 4;
        if ((version != 4 && version != 6) || (family is { } f && (int)f != version)) return Fail(PacketError.BadVersion, out packet, out error);
        return version == 4 ? TryParseV4(bytes, quoted, out packet, out error) : TryParseV6(bytes, quoted, out packet, out error);
    }

    private static bool TryParseV4(ReadOnlySpan<byte> bytes, bool quoted, [NotNullWhen(true)] out Packet? packet, out PacketError error)
    {
        if (bytes.Length < Ipv4Header.MinLength) return Fail(PacketError.Truncated, out packet, out error);
        int ihl = (bytes[0] & 0x0f) * 4;
        if (ihl < Ipv4Header.MinLength) return Fail(PacketError.BadHeaderLength, out packet, out error);
        if (ihl > bytes.Length) return Fail(PacketError.Truncated, out packet, out error);
        int total = BinaryPrimitives.ReadUInt16BigEndian(bytes[2..]);
        if (total < ihl) return Fail(PacketError.BadTotalLength, out packet, out error);
        if (total > bytes.Length && !quoted) return Fail(PacketError.Truncated, out packet, out error);
        byte[] copy = bytes[..Math.Min(total, bytes.Length)].ToArray();
        var facts = new Packet(copy);
        facts.ReadV4(ihl, total, quoted);
        packet = facts;
        error = PacketError.None;
        return true;
    }

    /// <summary>Reads the IPv4 facts (and the upper layer's) from <see cref="Bytes"/>, whose header is checked.</summary>
    private void ReadV4(int ihl, int total, bool quoted)
    {
        Ipv4Header.TryCreate(Bytes, out Ipv4Header ip);
        Family = IpFamily.V4;
        Source = ip.SourceAddress;
        Destination = ip.DestinationAddress;
        Protocol = ip.ProtocolNumber;
        IpHeaderLength = ihl;
        TransportOffset = ihl;
        TotalLength = total;
        Ttl = ip.TimeToLive;
        Tos = ip.TypeOfService;
        FragmentId = ip.Id;
        FragmentOffset = ip.FragmentOffset * 8;
        MoreFragments = ip.MoreFragments;
        DontFragment = ip.DontFragment;
        IpChecksumValid = ip.ChecksumValid;
        IsQuoted = quoted;
        ReadTransport(this);
    }

    /// <summary>
    /// Reads the facts again from <see cref="Bytes"/> after they were changed in place (NAT, mangle, TTL): the same
    /// facts <see cref="Parse"/> of the bytes would give, without copying them or making another object. False, with
    /// nothing changed, when the bytes are no longer exactly one whole packet (its length moved, a header broke):
    /// parse them then.
    /// </summary>
    internal bool TryReread()
    {
        byte[] b = Bytes;
        if (b.Length < 1 || IsQuoted) return false;
        int version = b[0] >> 4;
        if (version == 4)
        {
            if (b.Length < Ipv4Header.MinLength) return false;
            int ihl = (b[0] & 0x0f) * 4;
            int total = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(2));
            if (ihl < Ipv4Header.MinLength || ihl > b.Length || total < ihl || total != b.Length) return false;
            ResetFacts();
            ReadV4(ihl, total, quoted: false);
            return true;
        }
        if (version == 6)
        {
            if (b.Length < Ipv6Header.Length) return false;
            int payload = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(4));
            int total = payload == 0 && b[6] == IpProtocol.HopByHop ? b.Length : Ipv6Header.Length + payload;
            if (total != b.Length || !Ipv6Extensions.TryFindUpperLayer(b, out Ipv6UpperLayer upper)) return false;
            ResetFacts();
            ReadV6(upper, total, quoted: false);
            return true;
        }
        return false;
    }

    /// <summary>
    /// <see cref="TryReread"/> after a change of the addresses, ports or ICMP id only (with their checksums: what NAT
    /// rewrites, nf_nat_packet), for an IPv4 packet: those facts are read again, the others stand. The facts are the
    /// ones <see cref="TryReread"/> would give. False, with nothing changed, when the packet is not such a one.
    /// </summary>
    /// <param name="ipChecksumKept">
    /// The IPv4 header checksum was updated incrementally for the change (csum_replace4, as Nat.NatPacket.ManipV4 does):
    /// the header's one's complement sum is then the same as before, so <see cref="IpChecksumValid"/> stands as it was
    /// (a header's sum folds to a value in 1..0xffff, and a replace changes it by a multiple of 0xffff: by nothing).
    /// </param>
    internal bool TryRereadAddresses(bool ipChecksumKept = false)
    {
        byte[] b = Bytes;
        if (Family != IpFamily.V4 || IsQuoted || b.Length != TotalLength || b.Length < Ipv4Header.MinLength
            || (b[0] >> 4) != 4 || (b[0] & 0x0f) * 4 != IpHeaderLength || b[9] != Protocol
            || BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(2)) != TotalLength)
        {
            return false;
        }
        Source = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(12));
        Destination = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(16));
        if (!ipChecksumKept) IpChecksumValid = Wire.Checksum.Compute(b.AsSpan(0, IpHeaderLength)) == 0;
        if (HasPorts)
        {
            SourcePort = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(TransportOffset));
            DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(TransportOffset + 2));
        }
        else if (Protocol == IpProtocol.Icmp && HasTransportHeader)
        {
            IcmpId = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(TransportOffset + 4));
        }
        // As a full read does: the link-layer facts and the quoted packet are not the rewritten packet's.
        SourceMac = null;
        VlanId = null;
        _quoted = null;
        _quotedRead = false;
        return true;
    }

    /// <summary>
    /// <see cref="TryRereadAddresses"/> (with the IPv4 header checksum kept) after Nat.NatPacket.ManipV4 wrote one side's
    /// address and port: the same checks, then the written values set instead of read back (the other side's address
    /// and port are the bytes' as before: the manip did not touch them). False, with nothing changed, where the re-read
    /// would return false.
    /// </summary>
    /// <param name="source">The source side was written (the source manip), else the destination side.</param>
    /// <param name="address">The address written.</param>
    /// <param name="port">The port written (set only when the packet <see cref="HasPorts"/>, as the re-read reads it).</param>
    internal bool TryAddressRewrittenV4(bool source, uint address, ushort port)
    {
        byte[] b = Bytes;
        if (Family != IpFamily.V4 || IsQuoted || b.Length != TotalLength || b.Length < Ipv4Header.MinLength
            || (b[0] >> 4) != 4 || (b[0] & 0x0f) * 4 != IpHeaderLength || b[9] != Protocol
            || BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(2)) != TotalLength)
        {
            return false;
        }
        if (source)
        {
            Source = address;
            if (HasPorts) SourcePort = port;
        }
        else
        {
            Destination = address;
            if (HasPorts) DestinationPort = port;
        }
        // As a full read does: the link-layer facts and the quoted packet are not the rewritten packet's.
        SourceMac = null;
        VlanId = null;
        _quoted = null;
        _quotedRead = false;
        return true;
    }

    /// <summary>The Ethernet facts <see cref="TryParseFrame"/> gives a packet (set again on a reused packet).</summary>
    internal void SetLinkFacts(ulong? sourceMac, int? vlanId)
    {
        SourceMac = sourceMac;
        VlanId = vlanId;
    }

    /// <summary>
    /// After an established TCP/UDP packet's addresses, ports and (when forwarded) TTL or hop limit were rewritten in place
    /// with the checksums kept valid incrementally (Nat.NatPacket.RewriteEstablishedV4 / V6; IPv6 without extension
    /// headers): the facts a re-read would give (<see cref="TryRereadAddresses"/> or a whole re-read, then
    /// <see cref="TtlChanged"/>), set from the values written instead of read again.
    /// <paramref name="addresses"/> false: only the TTL changed (the link-layer facts then stay, as after TtlChanged alone).
    /// </summary>
    internal void Rewritten(bool addresses, UInt128 source, UInt128 destination, ushort sourcePort, ushort destinationPort, byte ttl)
    {
        Ttl = ttl;
        if (!addresses) return;
        Source = source;
        Destination = destination;
        SourcePort = sourcePort;
        DestinationPort = destinationPort;
        SourceMac = null;
        VlanId = null;
        _quoted = null;
        _quotedRead = false;
    }

    /// <summary>
    /// After the TTL / hop limit byte alone was changed in place (ip_decrease_ttl, with the IPv4 header checksum
    /// adjusted incrementally): the fact read again, the others unchanged (what a re-read would give).
    /// </summary>
    internal void TtlChanged() => Ttl = Family == IpFamily.V4 ? Bytes[8] : Bytes[7];

    /// <summary>
    /// Reads <paramref name="bytes"/> into this object, reusing it and its byte array, when the IP packet they hold is
    /// exactly as long as <see cref="Bytes"/> (a pool of one packet: Engine's reused results). The facts are those
    /// <see cref="TryParse(ReadOnlySpan{byte}, out Packet?, out PacketError)"/> would give. False, with this object no
    /// longer to be used, when the lengths differ or the bytes are not one whole packet: parse them then.
    /// </summary>
    internal bool TryReuseFor(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 4 || IsQuoted) return false;
        int version = bytes[0] >> 4;
        int total;
        if (version == 4) total = BinaryPrimitives.ReadUInt16BigEndian(bytes[2..]);
        else if (version == 6 && bytes.Length >= Ipv6Header.Length && !(bytes[4] == 0 && bytes[5] == 0)) total = Ipv6Header.Length + BinaryPrimitives.ReadUInt16BigEndian(bytes[4..]);
        else return false;
        if (total != Bytes.Length || total > bytes.Length) return false;
        bytes[..total].CopyTo(Bytes);
        return TryReadPlainV4() || TryReread();
    }

    /// <summary>
    /// The facts of the common packet read straight from <see cref="Bytes"/>, every one written once (no reset, no header
    /// views): IPv4 without options, exactly as long as its total length, not a fragment, TCP with its whole header or
    /// UDP. The facts are those <see cref="TryReread"/> gives (ResetFacts, ReadV4, ReadTransport); false, with nothing
    /// changed, for any other packet (options, fragments, other protocols, a TCP header cut short): re-read it whole then.
    /// </summary>
    internal bool TryReadPlainV4()
    {
        byte[] b = Bytes;
        if (b.Length < Ipv4Header.MinLength + UdpHeader.Length || b[0] != 0x45 || IsQuoted) return false;
        int total = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(2));
        int flags = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(6));
        // MF or a fragment offset: a fragment (the reserved bit is no fact and does not matter).
        if (total != b.Length || (flags & 0x3fff) != 0) return false;
        byte protocol = b[9];
        int l4 = total - Ipv4Header.MinLength;
        int headerLength;
        if (protocol == IpProtocol.Tcp)
        {
            if (l4 < TcpHeader.MinLength) return false;
            headerLength = (b[Ipv4Header.MinLength + 12] >> 4) * 4;
            if (headerLength < TcpHeader.MinLength || headerLength > l4) return false;
        }
        else if (protocol == IpProtocol.Udp)
        {
            headerLength = UdpHeader.Length;
        }
        else
        {
            return false;
        }
        Family = IpFamily.V4;
        Source = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(12));
        Destination = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(16));
        Protocol = protocol;
        IpHeaderLength = Ipv4Header.MinLength;
        TransportOffset = Ipv4Header.MinLength;
        TotalLength = total;
        Ttl = b[8];
        Tos = b[1];
        FlowLabel = 0;
        FragmentId = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(4));
        FragmentOffset = 0;
        MoreFragments = false;
        DontFragment = (flags & 0x4000) != 0;
        HasFragmentHeader = false;
        IpChecksumValid = Wire.Checksum.HeaderValid20(b);
        HasTransportHeader = true;
        HasPorts = true;
        SourcePort = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(Ipv4Header.MinLength));
        DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(Ipv4Header.MinLength + 2));
        TransportHeaderLength = headerLength;
        if (protocol == IpProtocol.Tcp)
        {
            TcpFlags = (TcpFlags)b[Ipv4Header.MinLength + 13];
            SequenceNumber = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(Ipv4Header.MinLength + 4));
            AcknowledgmentNumber = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(Ipv4Header.MinLength + 8));
            Window = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(Ipv4Header.MinLength + 14));
            UrgentPointer = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(Ipv4Header.MinLength + 18));
        }
        else
        {
            ResetTcpFacts();
        }
        ResetNonTcpFacts();
        return true;
    }

    /// <summary>Every fact back to its value in a new object (before a re-read).</summary>
    private void ResetFacts()
    {
        Family = default;
        Source = default;
        Destination = default;
        Protocol = default;
        IpHeaderLength = 0;
        TransportOffset = 0;
        TotalLength = 0;
        Ttl = 0;
        Tos = 0;
        FlowLabel = 0;
        FragmentId = 0;
        FragmentOffset = 0;
        MoreFragments = false;
        DontFragment = false;
        HasFragmentHeader = false;
        IpChecksumValid = false;
        HasTransportHeader = false;
        HasPorts = false;
        SourcePort = 0;
        DestinationPort = 0;
        TransportHeaderLength = 0;
        ResetTcpFacts();
        ResetNonTcpFacts();
    }

    /// <summary>The TCP header's facts back to a new object's values.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void ResetTcpFacts()
    {
        TcpFlags = default;
        SequenceNumber = 0;
        AcknowledgmentNumber = 0;
        Window = 0;
        UrgentPointer = 0;
    }

    /// <summary>The ICMP, SCTP, link and quoted-packet facts back to a new object's values (the plain IPv4 TCP/UDP read sets none of them).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void ResetNonTcpFacts()
    {
        IcmpType = 0;
        IcmpCode = 0;
        IcmpId = 0;
        IcmpSequence = 0;
        SctpFirstChunk = null;
        SourceMac = null;
        VlanId = null;
        IsQuoted = false;
        _quoted = null;
        _quotedRead = false;
    }

    private static bool TryParseV6(ReadOnlySpan<byte> bytes, bool quoted, [NotNullWhen(true)] out Packet? packet, out PacketError error)
    {
        if (bytes.Length < Ipv6Header.Length) return Fail(PacketError.Truncated, out packet, out error);
        int payload = BinaryPrimitives.ReadUInt16BigEndian(bytes[4..]);
        // A zero payload length with a hop-by-hop header is a jumbogram (RFC 2675): the link gives the length.
        int total = payload == 0 && bytes[6] == IpProtocol.HopByHop ? bytes.Length : Ipv6Header.Length + payload;
        if (total > bytes.Length && !quoted) return Fail(PacketError.Truncated, out packet, out error);
        byte[] copy = bytes[..Math.Min(total, bytes.Length)].ToArray();
        if (!Ipv6Extensions.TryFindUpperLayer(copy, out Ipv6UpperLayer upper))
        {
            // A quoted packet may stop inside its extension headers; keep what the fixed header says.
            if (!quoted) return Fail(PacketError.Truncated, out packet, out error);
            upper = new Ipv6UpperLayer(IpProtocol.NoNextHeader, copy.Length, false, 0, false, 0);
        }
        var facts = new Packet(copy);
        facts.ReadV6(upper, total, quoted);
        packet = facts;
        error = PacketError.None;
        return true;
    }

    /// <summary>Reads the IPv6 facts (and the upper layer's) from <see cref="Bytes"/>, given where the upper layer is.</summary>
    private void ReadV6(in Ipv6UpperLayer upper, int total, bool quoted)
    {
        Ipv6Header.TryCreate(Bytes, out Ipv6Header ip);
        Family = IpFamily.V6;
        Source = ip.SourceAddress;
        Destination = ip.DestinationAddress;
        Protocol = upper.Protocol;
        IpHeaderLength = Ipv6Header.Length;
        TransportOffset = upper.Offset;
        TotalLength = total;
        Ttl = ip.HopLimit;
        Tos = ip.TrafficClass;
        FlowLabel = ip.FlowLabel;
        HasFragmentHeader = upper.HasFragmentHeader;
        FragmentId = upper.FragmentId;
        FragmentOffset = upper.FragmentOffset * 8;
        MoreFragments = upper.MoreFragments;
        IpChecksumValid = true;
        IsQuoted = quoted;
        ReadTransport(this);
    }

    /// <summary>Adds the upper-layer facts to a packet whose IP facts are read.</summary>
    private static void ReadTransport(Packet p)
    {
        if (p.IsNonFirstFragment || p.TransportOffset > p.Bytes.Length) return;
        Span<byte> l4 = p.Bytes.AsSpan(p.TransportOffset);
        if (HasPortPair(p.Protocol) && l4.Length >= 4)
        {
            p.HasPorts = true;
            p.SourcePort = BinaryPrimitives.ReadUInt16BigEndian(l4);
            p.DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(l4[2..]);
        }
        switch (p.Protocol)
        {
            case IpProtocol.Tcp when TcpHeader.TryCreate(l4, out TcpHeader tcp):
                p.HasTransportHeader = true;
                p.TransportHeaderLength = tcp.HeaderLength;
                p.TcpFlags = tcp.Flags;
                p.SequenceNumber = tcp.SequenceNumber;
                p.AcknowledgmentNumber = tcp.AcknowledgmentNumber;
                p.Window = tcp.Window;
                p.UrgentPointer = tcp.UrgentPointer;
                break;
            case IpProtocol.Udp or IpProtocol.UdpLite when l4.Length >= UdpHeader.Length:
                p.HasTransportHeader = true;
                p.TransportHeaderLength = UdpHeader.Length;
                break;
            case IpProtocol.Sctp when SctpHeader.TryCreate(l4, out SctpHeader sctp):
                p.HasTransportHeader = true;
                p.TransportHeaderLength = SctpHeader.Length;
                p.SctpFirstChunk = sctp.FirstChunkType;
                break;
            case IpProtocol.Icmp when p.Family == IpFamily.V4 && l4.Length >= IcmpHeader.Length:
            case IpProtocol.Icmpv6 when p.Family == IpFamily.V6 && l4.Length >= Icmpv6Header.Length:
                p.HasTransportHeader = true;
                p.TransportHeaderLength = IcmpHeader.Length;
                p.IcmpType = l4[0];
                p.IcmpCode = l4[1];
                p.IcmpId = BinaryPrimitives.ReadUInt16BigEndian(l4[4..]);
                p.IcmpSequence = BinaryPrimitives.ReadUInt16BigEndian(l4[6..]);
                break;
        }
    }

    /// <summary>The TCP options, when this is a TCP packet with its header; otherwise all absent.</summary>
    public TcpOptions ReadTcpOptions() =>
        Protocol == IpProtocol.Tcp && HasTransportHeader && TcpHeader.TryCreate(TransportBytes, out TcpHeader tcp)
            ? TcpOptions.Parse(tcp.Options) : default;

    /// <summary>
    /// True when the upper-layer checksum is right: TCP, UDP (zero over IPv4 is "none"), ICMP, ICMPv6, SCTP.
    /// Fragments, quoted packets and other protocols have nothing to check here and count as valid.
    /// </summary>
    public bool TransportChecksumValid
    {
        get
        {
            if (IsFragment || IsQuoted || !HasTransportHeader || TotalLength > Bytes.Length) return true;
            if (Family == IpFamily.V4 && Protocol == IpProtocol.Tcp) return TcpChecksumValidV4();
            Span<byte> l4 = Bytes.AsSpan(TransportOffset, TransportLength);
            ReadOnlySpan<byte> s = SourceBytes, d = DestinationBytes;
            return Protocol switch
            {
                IpProtocol.Tcp => TcpHeader.TryCreate(l4, out TcpHeader t) && t.ChecksumValid(s, d),
                IpProtocol.Udp => UdpHeader.TryCreate(l4, out UdpHeader u) && u.ChecksumValid(s, d),
                IpProtocol.Icmp when Family == IpFamily.V4 => IcmpHeader.TryCreate(l4, out IcmpHeader i) && i.ChecksumValid,
                IpProtocol.Icmpv6 when Family == IpFamily.V6 => Icmpv6Header.TryCreate(l4, out Icmpv6Header i6) && i6.ChecksumValid(s, d),
                IpProtocol.Sctp => SctpHeader.TryCreate(l4, out SctpHeader c) && c.ChecksumValid,
                _ => true,
            };
        }
    }

    /// <summary>
    /// The IPv4 TCP case of <see cref="TransportChecksumValid"/> (conntrack's per-packet check, tcp_error): the same header
    /// checks as <see cref="TcpHeader.TryCreate"/> and the same sum as <see cref="TransportChecksum.Verify"/> (the
    /// pseudo-header's address words read from the IP header in place), without the header views.
    /// </summary>
    private bool TcpChecksumValidV4()
    {
        byte[] b = Bytes;
        int off = TransportOffset, len = TotalLength - off;
        if (len < TcpHeader.MinLength) return false;
        int header = (b[off + 12] >> 4) * 4;
        if (header < TcpHeader.MinLength || header > len) return false;
        uint sum = Checksum.PseudoV4(b.AsSpan(12, 4), b.AsSpan(16, 4), IpProtocol.Tcp, len);
        return Checksum.Finish(Checksum.Add(sum, b.AsSpan(off, len))) == 0;
    }

    /// <summary>
    /// Recomputes the IPv4 header checksum and the upper-layer checksum of the IP packet in <paramref name="bytes"/>
    /// (after NAT or mangle changed it). Fragments keep their upper-layer checksum. Returns false when the
    /// bytes do not parse.
    /// </summary>
    public static bool UpdateChecksums(Span<byte> bytes)
    {
        if (!TryParse(bytes, out Packet? p, out _)) return false;
        Span<byte> b = bytes[..p.TotalLength];
        if (p.Family == IpFamily.V4 && Ipv4Header.TryCreate(b, out Ipv4Header ip)) ip.UpdateChecksum();
        if (p.IsFragment || !p.HasTransportHeader) return true;
        Span<byte> l4 = b[p.TransportOffset..];
        ReadOnlySpan<byte> s = p.Family == IpFamily.V4 ? b.Slice(12, 4) : b.Slice(8, 16);
        ReadOnlySpan<byte> d = p.Family == IpFamily.V4 ? b.Slice(16, 4) : b.Slice(24, 16);
        switch (p.Protocol)
        {
            case IpProtocol.Tcp when TcpHeader.TryCreate(l4, out TcpHeader t): t.UpdateChecksum(s, d); break;
            case IpProtocol.Udp when UdpHeader.TryCreate(l4, out UdpHeader u): u.UpdateChecksum(s, d); break;
            case IpProtocol.Icmp when p.Family == IpFamily.V4 && IcmpHeader.TryCreate(l4, out IcmpHeader i): i.UpdateChecksum(); break;
            case IpProtocol.Icmpv6 when p.Family == IpFamily.V6 && Icmpv6Header.TryCreate(l4, out Icmpv6Header i6): i6.UpdateChecksum(s, d); break;
            case IpProtocol.Sctp when SctpHeader.TryCreate(l4, out SctpHeader c): c.UpdateChecksum(); break;
        }
        return true;
    }
}
