using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m iprange</c> revision 1 (struct xt_iprange_mtinfo); IPv4 in the low 32 bits.</summary>
public sealed class IprangeData : ExtensionData
{
    public bool Src;
    public bool Dst;
    public bool InvertSrc;
    public bool InvertDst;
    public UInt128 SrcMin, SrcMax;
    public UInt128 DstMin, DstMax;
}

/// <summary>
/// <c>-m iprange [!] --src-range a[-b] [!] --dst-range a[-b]</c> (libxt_iprange.c revision 1, xt_iprange.c).
/// A reversed range is accepted with a warning on stderr.
/// </summary>
public sealed class IprangeMatch : XtExtension<IprangeData>
{
    private const int OSrc = 0, ODst = 1;

    public override string Name => "iprange";

    /// <summary>The revision iptables 1.8.9 uses with this kernel.</summary>
    protected override void Init(ParseContext ctx, IprangeData data) => data.Revision = 1;

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("src-range", OSrc, OptionArg.Required, OptFlags.Invert),
        new("dst-range", ODst, OptionArg.Required, OptFlags.Invert),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, IprangeData d)
    {
        string opt = "--" + option.Name;
        var (min, max) = ParseRange(ctx, argument!, opt);
        if (option.Id == OSrc)
        {
            (d.SrcMin, d.SrcMax, d.Src) = (min, max, true);
            if (invert) d.InvertSrc = true;
        }
        else
        {
            (d.DstMin, d.DstMax, d.Dst) = (min, max, true);
            if (invert) d.InvertDst = true;
        }
    }

    private static (UInt128 Min, UInt128 Max) ParseRange(ParseContext ctx, string arg, string opt)
    {
        int dash = arg.IndexOf('-', StringComparison.Ordinal);
        string from = dash < 0 ? arg : arg[..dash];
        string to = dash < 0 ? arg : arg[(dash + 1)..];
        UInt128 min = ParseAddr(ctx.Family, from, opt);
        UInt128 max = ParseAddr(ctx.Family, to, opt);
        if (dash >= 0 && min > max) ctx.Warnings.Add($"xt_iprange: range {from}-{to} is reversed and will never match");
        return (min, max);
    }

    private static UInt128 ParseAddr(IpFamily family, string text, string opt)
    {
        if (family == IpFamily.V4)
        {
            if (IpNet.TryParseV4Numeric(text, false, out uint v)) return v;
        }
        else if (IpNet.TryParseV6Numeric(text, out UInt128 v6))
        {
            return v6;
        }
        throw XtablesException.Param($"iprange: Bad value for \"{opt}\" option: \"{text}\"");
    }

    protected override void FinalCheck(ParseContext ctx, IprangeData d)
    {
        if (d.Given == 0) throw ctx.Error("iprange match: You must specify `--src-range' or `--dst-range'");
    }

    private static string Range(UInt128 a, UInt128 b, IpFamily f) => IpNet.FormatAddress(a, f) + "-" + IpNet.FormatAddress(b, f);

    protected override void Save(StringBuilder sb, IprangeData d, IpFamily family)
    {
        if (d.Src)
        {
            if (d.InvertSrc) sb.Append(" !");
            sb.Append(" --src-range ").Append(Range(d.SrcMin, d.SrcMax, family));
        }
        if (d.Dst)
        {
            if (d.InvertDst) sb.Append(" !");
            sb.Append(" --dst-range ").Append(Range(d.DstMin, d.DstMax, family));
        }
    }

    protected override void Print(StringBuilder sb, IprangeData d, IpFamily family, bool numeric)
    {
        if (d.Src)
        {
            sb.Append(" source IP range");
            if (d.InvertSrc) sb.Append(" !");
            sb.Append(' ').Append(Range(d.SrcMin, d.SrcMax, family));
        }
        if (d.Dst)
        {
            sb.Append(" destination IP range");
            if (d.InvertDst) sb.Append(" !");
            sb.Append(' ').Append(Range(d.DstMin, d.DstMax, family));
        }
    }

    /// <summary>Evaluates the match (xt_iprange.c, both revisions): each given range must hold its address, or not when inverted.</summary>
    /// <summary>Addresses: the same for a connection's packets at a given hook.</summary>
    public override bool FlowStable(ExtensionData data) => true;

    protected override bool Match(PacketContext ctx, IprangeData d)
    {
        Packet p = ctx.Packet;
        if (d.Src && (p.Source >= d.SrcMin && p.Source <= d.SrcMax) == d.InvertSrc) return false;
        if (d.Dst && (p.Destination >= d.DstMin && p.Destination <= d.DstMax) == d.InvertDst) return false;
        return true;
    }
}
