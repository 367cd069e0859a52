using System.Text;
using Chainwalk.Net;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m connlimit</c> revision 1 (struct xt_connlimit_info).</summary>
public sealed class ConnlimitData : ExtensionData
{
    public uint Limit;

    /// <summary>The grouping prefix length; -1 until given (then the family's full length).</summary>
    public int PrefixLength = -1;

    /// <summary>XT_CONNLIMIT_INVERT: match when the count is at most <see cref="Limit"/> (--connlimit-upto).</summary>
    public bool Upto;

    /// <summary>XT_CONNLIMIT_DADDR: group by destination address.</summary>
    public bool ByDestination;

    public int EffectivePrefix(IpFamily family) => PrefixLength < 0 ? family.AddressBits() : PrefixLength;
}

/// <summary>
/// <c>-m connlimit --connlimit-upto|--connlimit-above N [--connlimit-mask LEN] [--connlimit-saddr|--connlimit-daddr]</c>
/// (libxt_connlimit.c revision 1, xt_connlimit.c). The save form always shows the mask and the address side.
/// </summary>
public sealed class ConnlimitMatch : XtExtension<ConnlimitData>
{
    private const int OUpto = 0, OAbove = 1, OMask = 2, OSaddr = 3, ODaddr = 4;

    public override string Name => "connlimit";

    /// <summary>The revision iptables 1.8.9 uses with this kernel.</summary>
    protected override void Init(ParseContext ctx, ConnlimitData data) => data.Revision = 1;

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("connlimit-upto", OUpto, OptionArg.Required, OptFlags.Invert) { Excludes = 1UL << OAbove },
        new("connlimit-above", OAbove, OptionArg.Required, OptFlags.Invert) { Excludes = 1UL << OUpto },
        new("connlimit-mask", OMask),
        new("connlimit-saddr", OSaddr, OptionArg.None) { Excludes = 1UL << ODaddr },
        new("connlimit-daddr", ODaddr, OptionArg.None) { Excludes = 1UL << OSaddr },
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ConnlimitData d)
    {
        switch (option.Id)
        {
            case OUpto:
                d.Limit = (uint)XtParse.UIntStrict(argument!, 0, uint.MaxValue, Name, option.Name);
                if (!invert) d.Upto = true;
                break;
            case OAbove:
                d.Limit = (uint)XtParse.UIntStrict(argument!, 0, uint.MaxValue, Name, option.Name);
                if (invert) d.Upto = true;
                break;
            case OMask:
                d.PrefixLength = XtParse.PrefixLength(argument!, ctx.Family, Name, option.Name);
                break;
            case OSaddr:
                d.ByDestination = false;
                break;
            case ODaddr:
                d.ByDestination = true;
                break;
        }
    }

    protected override void FinalCheck(ParseContext ctx, ConnlimitData d)
    {
        if ((d.Given & ((1UL << OUpto) | (1UL << OAbove))) == 0)
            throw ctx.Error("You must specify \"--connlimit-above\" or \"--connlimit-upto\".");
    }

    protected override void Save(StringBuilder sb, ConnlimitData d, IpFamily family)
    {
        sb.Append(d.Upto ? " --connlimit-upto " : " --connlimit-above ").Append(XtParse.Dec(d.Limit));
        sb.Append(" --connlimit-mask ").Append(XtParse.Dec((ulong)d.EffectivePrefix(family)));
        sb.Append(d.ByDestination ? " --connlimit-daddr" : " --connlimit-saddr");
    }

    protected override void Print(StringBuilder sb, ConnlimitData d, IpFamily family, bool numeric)
    {
        sb.Append(" #conn ").Append(d.ByDestination ? "dst" : "src").Append('/').Append(XtParse.Dec((ulong)d.EffectivePrefix(family)))
          .Append(d.Upto ? " <= " : " > ").Append(XtParse.Dec(d.Limit));
    }
}
