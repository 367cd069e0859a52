using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of the IPv6 <c>-m ah</c> (struct ip6t_ah).</summary>
public sealed class Ah6Data : SpiRangeData
{
    public uint HeaderLength;
    public bool InvLength;

    /// <summary><c>--ahres</c>: the reserved field must be zero.</summary>
    public bool Reserved;
}

/// <summary><c>-m ah</c> for IPv6 (libip6t_ah.c, ip6t_ah.c): <c>--ahspi</c>, <c>--ahlen</c>, <c>--ahres</c>; any protocol.</summary>
public sealed class Ah6Match : XtExtension<Ah6Data>
{
    private const int Spi = 0, Len = 1, Res = 2;

    public override string Name => "ah";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V6;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("ahspi", Spi, OptionArg.Required, OptFlags.Invert),
        new("ahlen", Len, OptionArg.Required, OptFlags.Invert),
        new("ahres", Res, OptionArg.None),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, Ah6Data d)
    {
        switch (option.Id)
        {
            case Spi:
                d.ParseSpi(argument!, Name, "ahspi", invert);
                break;
            case Len:
                d.HeaderLength = (uint)XtParse.UIntOption(argument!, 0, uint.MaxValue, Name, "ahlen");
                if (invert) d.InvLength = true;
                break;
            default:
                d.Reserved = true;
                break;
        }
    }

    protected override void Save(StringBuilder sb, Ah6Data d, IpFamily family)
    {
        d.SaveSpi(sb, "ahspi");
        if (d.HeaderLength != 0 || d.InvLength) sb.Append(d.InvLength ? " !" : string.Empty).Append(" --ahlen ").Append(XtParse.Dec(d.HeaderLength));
        if (d.Reserved) sb.Append(" --ahres");
    }

    protected override void Print(StringBuilder sb, Ah6Data d, IpFamily family, bool numeric)
    {
        sb.Append(" ah ");
        d.PrintSpi(sb, string.Empty);
        if (d.HeaderLength != 0 || d.InvLength) sb.Append("length:").Append(d.InvLength ? "!" : string.Empty).Append(XtParse.Dec(d.HeaderLength));
        if (d.Reserved) sb.Append(" reserved");
    }

    /// <summary>
    /// Evaluates the match (ip6t_ah.c): finds the AH header through the extension headers; no AH header fails,
    /// a header chain or AH header that does not fit drops the packet. The length compares the AH length in
    /// bytes; --ahres wants the reserved field zero.
    /// </summary>
    protected override bool Match(PacketContext ctx, Ah6Data d)
    {
        Packet p = ctx.Packet;
        if (!HeaderReads.FindIpv6Header(p, IpProtocol.Ah, out int ptr, out bool bad))
        {
            ctx.HotDrop = bad;
            return false;
        }
        if (!HeaderReads.TryRead(p, ptr, 12, out ReadOnlySpan<byte> ah)) return HeaderReads.Drop(ctx);
        uint hdrlen = (uint)(ah[1] + 2) << 2;
        uint spi = HeaderReads.U32(ah, 4);
        return (spi >= d.SpiMin && spi <= d.SpiMax) != d.InvSpi
            && (d.HeaderLength == 0 || (d.HeaderLength == hdrlen) != d.InvLength)
            && !(d.Reserved && HeaderReads.U16(ah, 2) != 0);
    }
}
