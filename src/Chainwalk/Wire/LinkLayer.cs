using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using Chainwalk.Net;

namespace Chainwalk.Wire;

/// <summary>Why a captured frame gave no IP packet.</summary>
public enum LinkLayerError
{
    None,

    /// <summary>The frame is shorter than its link-layer header.</summary>
    Truncated,

    /// <summary>The frame carries something other than IPv4 or IPv6 (ARP, LLDP, ...).</summary>
    NotIp,

    /// <summary>Chainwalk does not decode this link type.</summary>
    UnsupportedLinkType,
}

/// <summary>
/// What the link layer of a captured frame told: the source MAC (Ethernet, or a cooked header's address when it is
/// one), the outer 802.1Q tag, and for Linux cooked captures the packet type and (SLL2) the interface index.
/// Absent facts are null.
/// </summary>
public readonly record struct LinkLayerFacts(ushort EtherType, ulong? SourceMac, ushort? VlanTag, SllPacketType? PacketType, int? InterfaceIndex)
{
    /// <summary>The VLAN id of the outer tag (its low 12 bits).</summary>
    public int? VlanId => VlanTag is ushort tci ? tci & 0x0fff : null;

    /// <summary>The priority code point of the outer tag.</summary>
    public int? VlanPriority => VlanTag is ushort tci ? tci >> 13 : null;
}

/// <summary>Finds the IP packet inside a captured frame of any link type Chainwalk reads.</summary>
public static class LinkLayer
{
    private const int SllLength = 16, Sll2Length = 20, NullLength = 4;
    private const ushort ArphrdEther = 1, ArphrdLoopback = 772;
    private const ushort TpidCustom = 0x9100;

    /// <summary>
    /// Finds where the IP packet starts in <paramref name="frame"/>, a frame of <paramref name="linkType"/>, and reads
    /// the link-layer facts. Up to two VLAN tags are stepped over (the outer one is reported).
    /// </summary>
    public static bool TryFindIp(LinkType linkType, ReadOnlySpan<byte> frame, out int ipOffset, out LinkLayerFacts facts, out LinkLayerError error)
    {
        ipOffset = 0;
        facts = default;
        error = LinkLayerError.None;
        ushort etherType;
        ulong? mac = null;
        ushort? tag = null;
        SllPacketType? packetType = null;
        int? ifindex = null;
        int at;
        switch (linkType)
        {
            case LinkType.Ethernet:
                if (frame.Length < EthernetFrame.HeaderLength) return Fail(LinkLayerError.Truncated, out error);
                mac = ReadMac(frame[6..]);
                etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
                at = EthernetFrame.HeaderLength;
                break;
            case LinkType.LinuxSll:
                if (frame.Length < SllLength) return Fail(LinkLayerError.Truncated, out error);
                packetType = (SllPacketType)BinaryPrimitives.ReadUInt16BigEndian(frame);
                mac = CookedMac(BinaryPrimitives.ReadUInt16BigEndian(frame[2..]), BinaryPrimitives.ReadUInt16BigEndian(frame[4..]), frame[6..14]);
                etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[14..]);
                at = SllLength;
                break;
            case LinkType.LinuxSll2:
                if (frame.Length < Sll2Length) return Fail(LinkLayerError.Truncated, out error);
                etherType = BinaryPrimitives.ReadUInt16BigEndian(frame);
                ifindex = (int)BinaryPrimitives.ReadUInt32BigEndian(frame[4..]);
                packetType = (SllPacketType)frame[10];
                mac = CookedMac(BinaryPrimitives.ReadUInt16BigEndian(frame[8..]), frame[11], frame[12..20]);
                at = Sll2Length;
                break;
            case LinkType.Raw or LinkType.Ipv4 or LinkType.Ipv6:
                return ByVersion(frame, 0, out ipOffset, out facts, out error);
            case LinkType.Null or LinkType.Loop:
                // The family word is in the capturing host's byte order (Null) and its AF_INET6 differs between BSDs:
                // the IP version nibble says more than the word.
                if (frame.Length < NullLength) return Fail(LinkLayerError.Truncated, out error);
                return ByVersion(frame, NullLength, out ipOffset, out facts, out error);
            default:
                return Fail(LinkLayerError.UnsupportedLinkType, out error);
        }
        for (int tags = 0; tags < 2 && etherType is EtherType.Vlan or EtherType.QinQ or TpidCustom; tags++)
        {
            if (frame.Length < at + 4) return Fail(LinkLayerError.Truncated, out error);
            tag ??= BinaryPrimitives.ReadUInt16BigEndian(frame[at..]);
            etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[(at + 2)..]);
            at += 4;
        }
        facts = new LinkLayerFacts(etherType, mac, tag, packetType, ifindex);
        if (etherType is not (EtherType.Ipv4 or EtherType.Ipv6)) return Fail(LinkLayerError.NotIp, out error);
        ipOffset = at;
        return true;
    }

    /// <summary>
    /// Reads the IP packet of a captured record with <see cref="Packet.TryParse(ReadOnlySpan{byte}, IpFamily, out Packet?, out PacketError)"/>.
    /// For Ethernet the packet also carries the source MAC and VLAN id, as <see cref="Packet.TryParseFrame"/> gives them.
    /// </summary>
    public static bool TryDecode(in CaptureRecord record, [NotNullWhen(true)] out Packet? packet, out LinkLayerFacts facts, out string? error) =>
        TryDecode(record, null, out packet, out facts, out error);

    /// <summary>
    /// The same, reading the packet into an earlier one of the same IP length when <paramref name="spares"/> (indexed by
    /// that length) holds one, and keeping a packet parsed afresh there: for a caller that is done with a packet before it
    /// decodes the next (a replay). The facts are those of a fresh parse.
    /// </summary>
    internal static bool TryDecode(in CaptureRecord record, Packet?[]? spares, [NotNullWhen(true)] out Packet? packet, out LinkLayerFacts facts, out string? error)
    {
        packet = null;
        if (!TryFindIp(record.LinkType, record.Data, out int offset, out facts, out LinkLayerError linkError))
        {
            error = linkError switch
            {
                LinkLayerError.Truncated => "frame shorter than its link-layer header",
                LinkLayerError.NotIp => "not an IP frame",
                _ => "unsupported link type " + ((int)record.LinkType).ToString(System.Globalization.CultureInfo.InvariantCulture),
            };
            return false;
        }
        IpFamily family = facts.EtherType == EtherType.Ipv6 ? IpFamily.V6 : IpFamily.V4;
        bool singleTagEthernet = record.LinkType == LinkType.Ethernet && offset <= EthernetFrame.HeaderLength + EthernetFrame.TagLength;
        ReadOnlySpan<byte> ip = record.Data[offset..];
        // Reused: frames without a VLAN tag (what TryParseFrame reads of a tagged one is left to it).
        bool reusable = record.LinkType != LinkType.Ethernet || offset == EthernetFrame.HeaderLength;
        if (spares is not null && reusable && ip.Length >= 6 && (ip[0] >> 4) == (family == IpFamily.V4 ? 4 : 6))
        {
            int total = family == IpFamily.V4 ? BinaryPrimitives.ReadUInt16BigEndian(ip[2..]) : 40 + BinaryPrimitives.ReadUInt16BigEndian(ip[4..]);
            if (total < spares.Length && spares[total] is { } spare)
            {
                spares[total] = null;
                if (spare.TryReuseFor(ip))
                {
                    if (singleTagEthernet) spare.SetLinkFacts(facts.SourceMac, null);
                    spares[total] = spare;
                    packet = spare;
                    error = null;
                    return true;
                }
            }
        }
        PacketError packetError;
        bool ok = singleTagEthernet
            ? Packet.TryParseFrame(record.Data, out packet, out packetError)
            : Packet.TryParse(ip, family, out packet, out packetError);
        error = ok ? null : Packet.Describe(packetError);
        if (ok && spares is not null && packet!.Bytes.Length < spares.Length && !packet.IsQuoted) spares[packet.Bytes.Length] = packet;
        return ok;
    }

    private static bool ByVersion(ReadOnlySpan<byte> frame, int at, out int ipOffset, out LinkLayerFacts facts, out LinkLayerError error)
    {
        ipOffset = 0;
        facts = default;
        if (frame.Length <= at) return Fail(LinkLayerError.Truncated, out error);
        ushort etherType = (frame[at] >> 4) switch { 4 => EtherType.Ipv4, 6 => EtherType.Ipv6, _ => 0 };
        facts = new LinkLayerFacts(etherType, null, null, null, null);
        if (etherType == 0) return Fail(LinkLayerError.NotIp, out error);
        ipOffset = at;
        error = LinkLayerError.None;
        return true;
    }

    private static ulong? CookedMac(ushort hardwareType, int addressLength, ReadOnlySpan<byte> address) =>
        hardwareType is ArphrdEther or ArphrdLoopback && addressLength == 6 ? ReadMac(address) : null;

    private static ulong ReadMac(ReadOnlySpan<byte> b) =>
        ((ulong)BinaryPrimitives.ReadUInt16BigEndian(b) << 32) | BinaryPrimitives.ReadUInt32BigEndian(b[2..]);

    private static bool Fail(LinkLayerError why, out LinkLayerError error)
    {
        error = why;
        return false;
    }
}
