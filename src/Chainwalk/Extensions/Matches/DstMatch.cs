using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m dst</c>.</summary>
public sealed class DstData : Ip6OptsData
{
}

/// <summary><c>-m dst</c> (libip6t_dst.c, ip6t_hbh.c): the IPv6 destination options header.</summary>
public sealed class DstMatch : XtExtension<DstData>
{
    private const int Len = 0, Opts = 1;

    public override string Name => "dst";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V6;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("dst-len", Len, OptionArg.Required, OptFlags.Invert),
        new("dst-opts", Opts, OptionArg.Required),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, DstData d)
    {
        if (option.Id == Len)
        {
            d.HeaderLength = (uint)XtParse.UIntOption(argument!, 0, uint.MaxValue, Name, "dst-len");
            d.HasLength = true;
            if (invert) d.InvLength = true;
        }
        else
        {
            d.ParseOptions(argument!, Name, "PAD0 hasn't got length");
        }
    }

    protected override void Save(StringBuilder sb, DstData d, IpFamily family) => d.Save(sb, "dst");

    protected override void Print(StringBuilder sb, DstData d, IpFamily family, bool numeric) => d.Print(sb, "dst");

    /// <summary>Evaluates the match on the destination options header (ip6t_hbh.c's second registration).</summary>
    protected override bool Match(PacketContext ctx, DstData d) => HbhMatch.MatchOptions(ctx, d, IpProtocol.DestinationOptions);
}
