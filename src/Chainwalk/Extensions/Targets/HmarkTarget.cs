using System.Buffers.Binary;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Targets;

/// <summary>The XT_HMARK_* flag bits (1 &lt;&lt; value) of <see cref="HmarkData.Flags"/>.</summary>
public enum HmarkField
{
    SourceMask = 0,
    DestinationMask = 1,
    Spi = 2,
    SpiMask = 3,
    SourcePort = 4,
    DestinationPort = 5,
    SourcePortMask = 6,
    DestinationPortMask = 7,
    ProtoMask = 8,
    Random = 9,
    Modulus = 10,
    Offset = 11,
    Conntrack = 12,
    MethodL3 = 13,
    MethodL34 = 14,
}

/// <summary>Options of <c>-j HMARK</c> (struct xt_hmark_info), ports and SPI in host order.</summary>
public sealed class HmarkData : ExtensionData
{
    public uint Flags;
    public UInt128 SourceMask;
    public UInt128 DestinationMask;
    public ushort SourcePortMask;
    public ushort DestinationPortMask;
    public uint SpiMask;
    public ushort SourcePort;
    public ushort DestinationPort;
    public uint Spi;
    public ushort ProtoMask;
    public uint HashRandom;
    public uint Modulus;
    public uint Offset;

    public bool Has(HmarkField f) => (Flags & (1u << (int)f)) != 0;

    public void Set(HmarkField f) => Flags |= 1u << (int)f;
}

/// <summary>
/// <c>-j HMARK</c>: set the mark from a hash of packet fields (libxt_HMARK.c, xt_HMARK.c). Any table
/// and hook; --hmark-mod and --hmark-rnd are required, plus something to hash.
/// </summary>
public sealed class HmarkTarget : XtExtension<HmarkData>
{
    // Option ids equal the XT_HMARK_* bits, except the tuple option.
    private const int Type = 13;

    public override string Name => "HMARK";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("hmark-tuple", Type),
        new("hmark-src-prefix", (int)HmarkField.SourceMask),
        new("hmark-dst-prefix", (int)HmarkField.DestinationMask),
        new("hmark-sport-mask", (int)HmarkField.SourcePortMask),
        new("hmark-dport-mask", (int)HmarkField.DestinationPortMask),
        new("hmark-spi-mask", (int)HmarkField.SpiMask),
        new("hmark-sport", (int)HmarkField.SourcePort),
        new("hmark-dport", (int)HmarkField.DestinationPort),
        new("hmark-spi", (int)HmarkField.Spi),
        new("hmark-proto-mask", (int)HmarkField.ProtoMask),
        new("hmark-rnd", (int)HmarkField.Random),
        new("hmark-mod", (int)HmarkField.Modulus),
        new("hmark-offset", (int)HmarkField.Offset),
    ];

    private const ulong PacketFields =
        (1UL << (int)HmarkField.SourceMask) | (1UL << (int)HmarkField.DestinationMask) | (1UL << (int)HmarkField.SpiMask) |
        (1UL << (int)HmarkField.SourcePortMask) | (1UL << (int)HmarkField.DestinationPortMask) | (1UL << (int)HmarkField.ProtoMask) |
        (1UL << (int)HmarkField.SourcePort) | (1UL << (int)HmarkField.DestinationPort) | (1UL << (int)HmarkField.Spi);

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, HmarkData d)
    {
        string arg = argument!;
        var field = (HmarkField)option.Id;
        switch (option.Id)
        {
            case Type:
                ParseTuple(arg, d);
                return;
            case (int)HmarkField.SourceMask:
                d.SourceMask = TargetParsing.PlenMask(arg, ctx.Family, Name, option.Name).Mask;
                break;
            case (int)HmarkField.DestinationMask:
                d.DestinationMask = TargetParsing.PlenMask(arg, ctx.Family, Name, option.Name).Mask;
                break;
            case (int)HmarkField.SourcePortMask:
                d.SourcePortMask = (ushort)U(arg, ushort.MaxValue, option.Name);
                break;
            case (int)HmarkField.DestinationPortMask:
                d.DestinationPortMask = (ushort)U(arg, ushort.MaxValue, option.Name);
                break;
            case (int)HmarkField.SpiMask:
                d.SpiMask = (uint)U(arg, uint.MaxValue, option.Name);
                break;
            case (int)HmarkField.SourcePort:
                d.SourcePort = (ushort)U(arg, ushort.MaxValue, option.Name);
                break;
            case (int)HmarkField.DestinationPort:
                d.DestinationPort = (ushort)U(arg, ushort.MaxValue, option.Name);
                break;
            case (int)HmarkField.Spi:
                d.Spi = (uint)U(arg, uint.MaxValue, option.Name);
                break;
            case (int)HmarkField.ProtoMask:
                d.ProtoMask = (ushort)U(arg, ushort.MaxValue, option.Name);
                break;
            case (int)HmarkField.Random:
                d.HashRandom = (uint)U(arg, uint.MaxValue, option.Name);
                break;
            case (int)HmarkField.Modulus:
                d.Modulus = (uint)U(arg, uint.MaxValue, option.Name, 1);
                break;
            case (int)HmarkField.Offset:
                d.Offset = (uint)U(arg, uint.MaxValue, option.Name);
                break;
        }
        d.Set(field);
    }

    private ulong U(string arg, ulong max, string option, ulong min = 0)
    {
        TargetParsing.IntOptionRange(arg, min, max, Name, option, out ulong v);
        return v;
    }

    /// <summary>One tuple word, matched as a case-insensitive prefix of length <paramref name="len"/> (strncasecmp).</summary>
    private static bool ParseTupleWord(string text, int len, HmarkData d)
    {
        bool Is(string word) => string.Compare(text, 0, word, 0, len, StringComparison.OrdinalIgnoreCase) == 0 && (len <= word.Length || text.Length >= len);
        HmarkField f;
        if (Is("ct")) f = HmarkField.Conntrack;
        else if (Is("src")) { d.SourceMask = UInt128.MaxValue; f = HmarkField.SourceMask; }
        else if (Is("dst")) { d.DestinationMask = UInt128.MaxValue; f = HmarkField.DestinationMask; }
        else if (Is("sport")) { d.SourcePortMask = ushort.MaxValue; f = HmarkField.SourcePortMask; }
        else if (Is("dport")) { d.DestinationPortMask = ushort.MaxValue; f = HmarkField.DestinationPortMask; }
        else if (Is("proto")) { d.ProtoMask = ushort.MaxValue; f = HmarkField.ProtoMask; }
        else if (Is("spi")) { d.SpiMask = uint.MaxValue; f = HmarkField.SpiMask; }
        else return false;
        d.Set(f);
        d.Given |= 1UL << (int)f;
        return true;
    }

    private static void ParseTuple(string arg, HmarkData d)
    {
        int pos = 0;
        int comma;
        while ((comma = arg.IndexOf(',', pos)) >= 0)
        {
            string rest = arg[pos..];
            if (comma == pos || !ParseTupleWord(rest, comma - pos, d)) throw XtablesException.Param($"Bad type \"{rest}\"");
            pos = comma + 1;
        }
        string last = arg[pos..];
        if (last.Length == 0)
            throw XtablesException.Param("\"--hmark-tuple\" requires a list of types with no spaces, e.g. src,dst,sport,dport,proto");
        if (!ParseTupleWord(last, last.Length, d)) throw XtablesException.Param($"Bad type \"{last}\"");
    }

    protected override void FinalCheck(ParseContext ctx, HmarkData d)
    {
        ulong x = d.Given;
        if ((x & (1UL << (int)HmarkField.Modulus)) == 0) throw XtablesException.Param("--hmark-mod is mandatory");
        if ((x & (1UL << (int)HmarkField.Random)) == 0) throw XtablesException.Param("--hmark-rnd is mandatory");
        if ((x & (1UL << (int)HmarkField.SpiMask)) != 0 &&
            (x & ((1UL << (int)HmarkField.SourcePortMask) | (1UL << (int)HmarkField.DestinationPortMask))) != 0)
            throw XtablesException.Param("you cannot use --hmark-spi-mask and --hmark-?port-mask,at the same time");
        if ((x & PacketFields) == 0 && (x & (1UL << (int)HmarkField.Conntrack)) == 0)
            throw XtablesException.Param("you have to specify --hmark-tuple at least");
    }

    private static string H(ulong v) => TargetParsing.Hex(v);

    private static string HexPad(ulong v, int digits) => "0x" + v.ToString("x" + TargetParsing.Dec((ulong)digits), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The prefix length of a mask as the save form prints it (%d of *mask_to_cidr, -1 for holes).</summary>
    private static string SaveCidr(UInt128 mask, IpFamily family)
    {
        int cidr = IpNet.MaskToCidr(mask & IpNet.FullMask(family), family);
        return cidr.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The -L form: IPv4 %u of the cidr; IPv6 the text after '/' of xtables_ip6mask_to_numeric ("" for /128).</summary>
    private static string PrintCidr(UInt128 mask, IpFamily family)
    {
        UInt128 m = mask & IpNet.FullMask(family);
        int cidr = IpNet.MaskToCidr(m, family);
        if (family == IpFamily.V4) return ((uint)cidr).ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (cidr == 128) return string.Empty;
        return cidr < 0 ? IpNet.FormatAddress(m, family) : TargetParsing.Dec((ulong)cidr);
    }

    protected override void Save(StringBuilder sb, HmarkData d, IpFamily family)
    {
        if (d.Has(HmarkField.SourceMask)) sb.Append(" --hmark-src-prefix ").Append(SaveCidr(d.SourceMask, family));
        if (d.Has(HmarkField.DestinationMask)) sb.Append(" --hmark-dst-prefix ").Append(SaveCidr(d.DestinationMask, family));
        if (d.Has(HmarkField.SourcePortMask)) sb.Append(" --hmark-sport-mask ").Append(HexPad(d.SourcePortMask, 4));
        if (d.Has(HmarkField.DestinationPortMask)) sb.Append(" --hmark-dport-mask ").Append(HexPad(d.DestinationPortMask, 4));
        if (d.Has(HmarkField.SpiMask)) sb.Append(" --hmark-spi-mask ").Append(HexPad(d.SpiMask, 8));
        if (d.Has(HmarkField.SourcePort)) sb.Append(" --hmark-sport ").Append(HexPad(d.SourcePort, 4));
        if (d.Has(HmarkField.DestinationPort)) sb.Append(" --hmark-dport ").Append(HexPad(d.DestinationPort, 4));
        if (d.Has(HmarkField.Spi)) sb.Append(" --hmark-spi ").Append(HexPad(d.Spi, 8));
        if (d.Has(HmarkField.ProtoMask)) sb.Append(" --hmark-proto-mask ").Append(HexPad(d.ProtoMask, 2));
        if (d.Has(HmarkField.Random)) sb.Append(" --hmark-rnd ").Append(HexPad(d.HashRandom, 8));
        if (d.Has(HmarkField.Modulus)) sb.Append(" --hmark-mod ").Append(TargetParsing.Dec(d.Modulus));
        if (d.Has(HmarkField.Offset)) sb.Append(" --hmark-offset ").Append(TargetParsing.Dec(d.Offset));
        if (d.Has(HmarkField.Conntrack)) sb.Append(" --hmark-tuple ct");
    }

    protected override void Print(StringBuilder sb, HmarkData d, IpFamily family, bool numeric)
    {
        sb.Append(" HMARK ");
        if (d.Has(HmarkField.Modulus)) sb.Append("mod ").Append(TargetParsing.Dec(d.Modulus)).Append(' ');
        if (d.Has(HmarkField.Offset)) sb.Append("+ ").Append(H(d.Offset)).Append(' ');
        if (d.Has(HmarkField.Conntrack)) sb.Append("ct, ");
        if (d.Has(HmarkField.SourceMask)) sb.Append("src-prefix ").Append(PrintCidr(d.SourceMask, family)).Append(' ');
        if (d.Has(HmarkField.DestinationMask)) sb.Append("dst-prefix ").Append(PrintCidr(d.DestinationMask, family)).Append(' ');
        if (d.Has(HmarkField.SourcePortMask)) sb.Append("sport-mask ").Append(H(d.SourcePortMask)).Append(' ');
        if (d.Has(HmarkField.DestinationPortMask)) sb.Append("dport-mask ").Append(H(d.DestinationPortMask)).Append(' ');
        if (d.Has(HmarkField.SpiMask)) sb.Append("spi-mask ").Append(H(d.SpiMask)).Append(' ');
        if (d.Has(HmarkField.SourcePort)) sb.Append("sport ").Append(H(d.SourcePort)).Append(' ');
        if (d.Has(HmarkField.DestinationPort)) sb.Append("dport ").Append(H(d.DestinationPort)).Append(' ');
        if (d.Has(HmarkField.Spi)) sb.Append("spi ").Append(H(d.Spi)).Append(' ');
        if (d.Has(HmarkField.ProtoMask)) sb.Append("proto-mask ").Append(H(d.ProtoMask)).Append(' ');
        if (d.Has(HmarkField.Random)) sb.Append("rnd ").Append(H(d.HashRandom)).Append(' ');
    }

    protected override string? CheckEntry(RuleCheckContext ctx, HmarkData d)
    {
        bool bad = d.Modulus == 0
            || (d.ProtoMask != 0 && d.Has(HmarkField.MethodL3))
            || (d.Has(HmarkField.SpiMask) && (d.Has(HmarkField.SourcePortMask) || d.Has(HmarkField.DestinationPortMask)))
            || (d.Has(HmarkField.Spi) && (d.Has(HmarkField.SourcePort) || d.Has(HmarkField.DestinationPort)));
        return bad ? RulesetEditor.InvalidArgument : null;
    }

    /// <summary>
    /// xt_HMARK.c hmark_tg_v4 / hmark_tg_v6: mark = reciprocal_scale(jhash_3words(lower address, higher address,
    /// ports, --hmark-rnd) ^ (protocol &amp; proto mask), --hmark-mod) + --hmark-offset, from the masked addresses,
    /// the masked-and-set ports (or SPI) ordered so both directions hash alike, and the protocol. ICMP errors hash
    /// the packet they quote; fragments and ICMP have no ports. With --hmark-tuple ct the tuple comes from the
    /// connection; without one the mark is left alone.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, HmarkData data)
    {
        uint src, dst, ports = 0;
        byte proto = 0;
        if (data.Has(HmarkField.Conntrack))
        {
            // The conntrack tuple is the conntrack room's; the packet's own addresses are its original direction
            // only for packets of that direction, so without an entry (or not knowing it) nothing is done.
            ctx.Note("HMARK --hmark-tuple ct: no conntrack tuple available; mark unchanged");
            return Verdict.Continue;
        }
        Packet p = ctx.Packet;
        byte[] b = p.Bytes;
        int end = Math.Min(p.TotalLength, b.Length);
        // XT_HMARK_METHOD_L3 (addresses only) exists in the kernel, but no iptables option sets it (libxt_HMARK.c);
        // Chainwalk's parser records --hmark-tuple under that bit number, so it is not read here.
        const bool l3 = false;
        if (p.Family == IpFamily.V4)
        {
            int nh = 0;
            int ihl = (b[0] & 0x0f) * 4;
            if (b[9] == IpProtocol.Icmp && end >= ihl + 8 && b[ihl] <= 18 && b[ihl] is 3 or 4 or 11 or 12 or 5)
            {
                nh = ihl + 8;
                if (end - nh < 20) return Verdict.Continue;
                ihl = (b[nh] & 0x0f) * 4;
            }
            src = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(nh + 12)) & (uint)data.SourceMask;
            dst = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(nh + 16)) & (uint)data.DestinationMask;
            if (!l3)
            {
                proto = b[nh + 9];
                bool fragment = (BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(nh + 6)) & 0x3fff) != 0;
                if (proto != IpProtocol.Icmp && !fragment) ports = Ports(b, end, nh + ihl, proto, data);
            }
        }
        else
        {
            (int off, byte next, bool frag) = FindHeader6(b, end, 0);
            if (off < 0) return Verdict.Continue;
            int nh = 0;
            if (!frag && next == IpProtocol.Icmpv6 && end - off >= 8 && b[off] != 0 && b[off] < 128)
            {
                nh = off + 8;
                if (end - nh < 40) return Verdict.Continue;
                (off, next, frag) = FindHeader6(b, end, nh);
                if (off < 0) return Verdict.Continue;
            }
            src = Fold6(b.AsSpan(nh + 8, 16), data.SourceMask);
            dst = Fold6(b.AsSpan(nh + 24, 16), data.DestinationMask);
            if (!l3)
            {
                proto = next;
                if (proto != IpProtocol.Icmpv6 && !frag) ports = Ports(b, end, off, proto, data);
            }
        }
        if (dst < src) (src, dst) = (dst, src);
        uint hash = Jhash.ThreeWords(src, dst, ports, data.HashRandom) ^ (uint)(proto & data.ProtoMask);
        ctx.Skb.Mark = Jhash.Scale(hash, data.Modulus) + data.Offset;
        return Verdict.Continue;
    }

    private static uint Fold6(ReadOnlySpan<byte> addr, UInt128 mask)
    {
        uint r = 0;
        for (int i = 0; i < 4; i++) r ^= BinaryPrimitives.ReadUInt32BigEndian(addr[(i * 4)..]) & (uint)(mask >> (96 - 32 * i));
        return r;
    }

    /// <summary>hmark_set_tuple_ports: the first 4 bytes at the protocol's ports offset, masked, set, larger port first.</summary>
    private static uint Ports(byte[] b, int end, int l4, byte proto, HmarkData d)
    {
        int off = proto switch
        {
            IpProtocol.Tcp or IpProtocol.Udp or 33 or IpProtocol.Esp or IpProtocol.Sctp or IpProtocol.UdpLite => 0,
            IpProtocol.Ah => 4,
            _ => -1,
        };
        if (off < 0 || end - (l4 + off) < 4) return 0;
        bool spiMask = d.Has(HmarkField.SpiMask), spiSet = d.Has(HmarkField.Spi);
        ushort maskS = spiMask ? (ushort)(d.SpiMask >> 16) : d.SourcePortMask, maskD = spiMask ? (ushort)d.SpiMask : d.DestinationPortMask;
        ushort setS = spiSet ? (ushort)(d.Spi >> 16) : d.SourcePort, setD = spiSet ? (ushort)d.Spi : d.DestinationPort;
        uint s = (uint)((BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(l4 + off)) & maskS) | setS);
        uint t = (uint)((BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(l4 + off + 2)) & maskD) | setD);
        return t > s ? (t << 16) | s : (s << 16) | t;
    }

    /// <summary>ipv6_find_hdr(target -1, IP6_FH_F_AUTH) from the IPv6 header at <paramref name="start"/>: the upper layer (or AH), and whether a fragment header was passed.</summary>
    private static (int Offset, byte Next, bool Fragment) FindHeader6(byte[] b, int end, int start)
    {
        byte next = b[start + 6];
        int off = start + 40;
        bool frag = false;
        while (next is IpProtocol.HopByHop or IpProtocol.Routing or IpProtocol.Fragment or IpProtocol.DestinationOptions)
        {
            if (end - off < 8) return (-1, next, frag);
            byte following = b[off];
            if (next == IpProtocol.Fragment)
            {
                frag = true;
                if ((BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(off + 2)) & 0xfff8) != 0)
                {
                    if (!IpProtocol.IsIpv6Extension(following) || following == IpProtocol.NoNextHeader) return (off + 8, following, true);
                    return (-1, next, frag);
                }
                off += 8;
            }
            else
            {
                off += (b[off + 1] + 1) * 8;
            }
            next = following;
        }
        return (off, next, frag);
    }
}
