using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of the IPv4 <c>-m ah</c> (struct ipt_ah).</summary>
public sealed class AhData : SpiRangeData
{
}

/// <summary><c>-m ah --ahspi</c> for IPv4 (libipt_ah.c, ipt_ah.c): needs <c>-p ah</c>.</summary>
public sealed class AhMatch : XtExtension<AhData>
{
    public override string Name => "ah";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V4;

    public override ushort RequiredProtocol => Protocols.Ah;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("ahspi", 0, OptionArg.Required, OptFlags.Invert),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, AhData d) =>
        d.ParseSpi(argument!, Name, "ahspi", invert);

    protected override void Save(StringBuilder sb, AhData d, IpFamily family) => d.SaveSpi(sb, "ahspi");

    protected override void Print(StringBuilder sb, AhData d, IpFamily family, bool numeric)
    {
        sb.Append(" ah ");
        d.PrintSpi(sb, string.Empty);
    }

    /// <summary>Evaluates the match (ipt_ah.c): the SPI of the AH header; non-first fragments never match, a short header drops the packet.</summary>
    protected override bool Match(PacketContext ctx, AhData d)
    {
        Packet p = ctx.Packet;
        if (HeaderReads.FragOff(p) != 0) return false;
        if (!HeaderReads.TryTransport(p, 12, out ReadOnlySpan<byte> ah)) return HeaderReads.Drop(ctx);
        uint spi = HeaderReads.U32(ah, 4);
        return (spi >= d.SpiMin && spi <= d.SpiMax) != d.InvSpi;
    }
}
