using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Wire;

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

    /// <summary>
    /// Evaluates the match (xt_ipcomp.c): the 16-bit CPI against the range (without --ipcompspi the range is
    /// 0:0, as libxt_ipcomp leaves it); --compres is not looked at by the kernel. Non-first fragments never
    /// match, fewer than 4 bytes drop the packet.
    /// </summary>
    protected override bool Match(PacketContext ctx, IpcompData d)
    {
        Packet p = ctx.Packet;
        if (HeaderReads.FragOff(p) != 0) return false;
        if (!HeaderReads.TryTransport(p, 4, out ReadOnlySpan<byte> ch)) return HeaderReads.Drop(ctx);
        uint cpi = HeaderReads.U16(ch, 2);
        return (cpi >= d.SpiMin && cpi <= d.SpiMax) != d.InvSpi;
    }
}
