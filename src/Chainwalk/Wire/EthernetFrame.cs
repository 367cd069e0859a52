using System.Buffers.Binary;

namespace Chainwalk.Wire;

/// <summary>EtherType values (IEEE 802 numbers) that Chainwalk reads.</summary>
public static class EtherType
{
    public const ushort Ipv4 = 0x0800, Arp = 0x0806, Vlan = 0x8100, Ipv6 = 0x86dd, QinQ = 0x88a8;
}

/// <summary>
/// A zero-copy view of an Ethernet II frame: destination and source MAC, EtherType, and at most one 802.1Q
/// tag (TPID 0x8100 or 0x88a8) before the payload's EtherType. <see cref="TryCreate"/> checks that the header,
/// and the tag when one is announced, fit; the accessors then never throw.
/// </summary>
public readonly ref struct EthernetFrame
{
    public const int HeaderLength = 14;
    public const int TagLength = 4;
    private const int DestinationOffset = 0, SourceOffset = 6, EtherTypeOffset = 12, TciOffset = 14, InnerEtherTypeOffset = 16;

    private readonly Span<byte> _b;

    private EthernetFrame(Span<byte> buffer) => _b = buffer;

    public static bool TryCreate(Span<byte> buffer, out EthernetFrame frame)
    {
        frame = default;
        if (buffer.Length < HeaderLength) return false;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(buffer[EtherTypeOffset..]);
        if (type is EtherType.Vlan or EtherType.QinQ && buffer.Length < HeaderLength + TagLength) return false;
        frame = new EthernetFrame(buffer);
        return true;
    }

    public Span<byte> Bytes => _b;

    public Span<byte> Destination => _b.Slice(DestinationOffset, 6);

    public Span<byte> Source => _b.Slice(SourceOffset, 6);

    /// <summary>The destination MAC in the low 48 bits.</summary>
    public ulong DestinationAddress => ReadMac(_b[DestinationOffset..]);

    /// <summary>The source MAC in the low 48 bits (what <c>-m mac --mac-source</c> compares).</summary>
    public ulong SourceAddress => ReadMac(_b[SourceOffset..]);

    /// <summary>The EtherType right after the addresses: the TPID when the frame is tagged.</summary>
    public ushort OuterEtherType { get => BinaryPrimitives.ReadUInt16BigEndian(_b[EtherTypeOffset..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[EtherTypeOffset..], value); }

    public bool HasVlanTag => OuterEtherType is EtherType.Vlan or EtherType.QinQ;

    /// <summary>The tag control information (priority, DEI, VLAN id), 0 when untagged.</summary>
    public ushort TagControl => HasVlanTag ? BinaryPrimitives.ReadUInt16BigEndian(_b[TciOffset..]) : (ushort)0;

    public int VlanId => TagControl & 0x0fff;

    public int Priority => TagControl >> 13;

    /// <summary>The payload's EtherType, after the tag when there is one.</summary>
    public ushort EtherTypeField => HasVlanTag ? BinaryPrimitives.ReadUInt16BigEndian(_b[InnerEtherTypeOffset..]) : OuterEtherType;

    public int PayloadOffset => HasVlanTag ? HeaderLength + TagLength : HeaderLength;

    public Span<byte> Payload => _b[PayloadOffset..];

    /// <summary>A MAC as Linux prints it: six lower-case hex pairs joined by colons.</summary>
    public static string FormatMac(ReadOnlySpan<byte> mac) =>
        mac.Length < 6 ? string.Empty : string.Join(':', mac[..6].ToArray().Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));

    /// <summary>A MAC held in the low 48 bits of a number, as Linux prints it.</summary>
    public static string FormatMac(ulong mac)
    {
        Span<byte> b = stackalloc byte[6];
        for (int i = 0; i < 6; i++) b[i] = (byte)(mac >> (8 * (5 - i)));
        return FormatMac(b);
    }

    /// <summary>Reads "xx:xx:xx:xx:xx:xx" (one or two hex digits per part) into the low 48 bits of a number.</summary>
    public static bool TryParseMac(string? text, out ulong mac)
    {
        mac = 0;
        if (text is null) return false;
        string[] parts = text.Split(':');
        if (parts.Length != 6) return false;
        foreach (string p in parts)
        {
            if (p.Length is 0 or > 2 || !byte.TryParse(p, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture, out byte x))
            {
                mac = 0;
                return false;
            }
            mac = (mac << 8) | x;
        }
        return true;
    }

    private static ulong ReadMac(ReadOnlySpan<byte> b) =>
        ((ulong)BinaryPrimitives.ReadUInt16BigEndian(b) << 32) | BinaryPrimitives.ReadUInt32BigEndian(b[2..]);
}
