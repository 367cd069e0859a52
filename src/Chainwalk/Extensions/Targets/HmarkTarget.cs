using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

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
}
