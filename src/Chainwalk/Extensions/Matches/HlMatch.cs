using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Comparison of <c>-m hl</c> / <c>-m ttl</c>: EQ 0, NE 1, LT 2, GT 3 (IP6T_HL_*, IPT_TTL_*).</summary>
public enum HopCompare : byte
{
    Eq = 0,
    Ne = 1,
    Lt = 2,
    Gt = 3,
}

/// <summary>Options of <c>-m hl</c> and <c>-m ttl</c> (struct ip6t_hl_info / ipt_ttl_info).</summary>
public sealed class HopLimitData : ExtensionData
{
    public HopCompare Mode;
    public byte Value;
}

/// <summary>The shared parser of <c>-m hl</c> (IPv6 hop limit) and <c>-m ttl</c> (IPv4 TTL).</summary>
public abstract class HopLimitMatchBase : XtExtension<HopLimitData>
{
    private const int OEq = 0, OLt = 1, OGt = 2;
    private const ulong Any = (1UL << OEq) | (1UL << OLt) | (1UL << OGt);

    /// <summary>"hl" or "ttl": the option prefix.</summary>
    protected abstract string Word { get; }

    /// <summary>"HL" or "TTL" in messages and the list form.</summary>
    protected string Upper => Word.ToUpperInvariant();

    public override ExtensionKind Kind => ExtensionKind.Match;

    private IReadOnlyList<XtOption>? _options;

    public override IReadOnlyList<XtOption> Options => _options ??=
    [
        new(Word + "-lt", OLt) { Excludes = Any & ~(1UL << OLt) },
        new(Word + "-gt", OGt) { Excludes = Any & ~(1UL << OGt) },
        new(Word + "-eq", OEq, OptionArg.Required, OptFlags.Invert) { Excludes = Any & ~(1UL << OEq) },
        new(Word, OEq) { Excludes = Any & ~(1UL << OEq) },
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, HopLimitData d)
    {
        d.Value = (byte)XtParse.UInt8Strict(argument!, Name, option.Name);
        d.Mode = option.Id switch
        {
            OLt => HopCompare.Lt,
            OGt => HopCompare.Gt,
            _ => invert ? HopCompare.Ne : HopCompare.Eq,
        };
    }

    protected override void FinalCheck(ParseContext ctx, HopLimitData d)
    {
        if ((d.Given & Any) == 0)
            throw ctx.Error(MissingMessage);
    }

    protected abstract string MissingMessage { get; }

    protected override void Save(StringBuilder sb, HopLimitData d, IpFamily family)
    {
        sb.Append(d.Mode switch
        {
            HopCompare.Eq => $" --{Word}-eq",
            HopCompare.Ne => $" ! --{Word}-eq",
            HopCompare.Lt => $" --{Word}-lt",
            _ => $" --{Word}-gt",
        });
        sb.Append(' ').Append(XtParse.Dec(d.Value));
    }

    protected override void Print(StringBuilder sb, HopLimitData d, IpFamily family, bool numeric)
    {
        string op = d.Mode switch
        {
            HopCompare.Eq => "==",
            HopCompare.Ne => "!=",
            HopCompare.Lt => "<",
            _ => ">",
        };
        sb.Append(' ').Append(Upper).Append(" match ").Append(Upper).Append(' ').Append(op).Append(' ').Append(XtParse.Dec(d.Value));
    }

    /// <summary>Evaluates the match (xt_hl.c ttl_mt / hl_mt6): the TTL or hop limit against the value.</summary>
    protected override bool Match(PacketContext ctx, HopLimitData d)
    {
        byte v = ctx.Packet.Ttl;
        return d.Mode switch
        {
            HopCompare.Eq => v == d.Value,
            HopCompare.Ne => v != d.Value,
            HopCompare.Lt => v < d.Value,
            _ => v > d.Value,
        };
    }
}

/// <summary><c>-m hl --hl-eq|--hl-lt|--hl-gt N</c>, IPv6 only (libip6t_hl.c, ip6t_hl.c).</summary>
public sealed class HlMatch : HopLimitMatchBase
{
    public override string Name => "hl";

    public override FamilyMask Families => FamilyMask.V6;

    protected override string Word => "hl";

    protected override string MissingMessage => "HL match: You must specify one of `--hl-eq', `--hl-lt', `--hl-gt'";
}
