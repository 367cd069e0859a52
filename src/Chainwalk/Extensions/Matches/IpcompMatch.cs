using System.Text;
using Chainwalk.Net;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m ipcomp</c> (struct xt_ipcomp; no init, so the SPI range starts as 0:0).</summary>
public sealed class IpcompData : SpiRangeData
{
    public bool Reserved;

    public IpcompData() => SpiMax = 0;
}

/// <summary><c>-m ipcomp</c> (libxt_ipcomp.c, xt_ipcomp.c): <c>--ipcompspi</c>, <c>--compres</c>; needs <c>-p ipcomp</c> (108).</summary>
public sealed class IpcompMatch : XtExtension<IpcompData>
{
    private const int Spi = 0, Res = 1;

    public override string Name => "ipcomp";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override ushort RequiredProtocol => 108;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("ipcompspi", Spi, OptionArg.Required, OptFlags.Invert),
        new("compres", Res, OptionArg.None),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, IpcompData d)
    {
        if (option.Id == Spi) d.ParseSpi(argument!, Name, "ipcompspi", invert);
        else d.Reserved = true;
    }

    protected override void Save(StringBuilder sb, IpcompData d, IpFamily family)
    {
        d.SaveSpi(sb, "ipcompspi");
        if (d.Reserved) sb.Append(" --compres");
    }

    protected override void Print(StringBuilder sb, IpcompData d, IpFamily family, bool numeric)
    {
        sb.Append(" comp ");
        d.PrintSpi(sb, string.Empty);
        if (d.Reserved) sb.Append(" reserved");
    }
}
