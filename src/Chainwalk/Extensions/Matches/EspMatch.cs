using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>An SPI range with its inversion (struct xt_esp, ipt_ah, xt_ipcomp share the layout).</summary>
public class SpiRangeData : ExtensionData
{
    public uint SpiMin;
    public uint SpiMax = uint.MaxValue;
    public bool InvSpi;

    /// <summary>libxt_esp/libipt_ah: parses "--xxspi a[:b]" (XTTYPE_UINT32RC) into the range.</summary>
    internal void ParseSpi(string arg, string ext, string option, bool invert)
    {
        var (a, b, n) = XtParse.UIntRange(arg, uint.MaxValue, ext, option);
        SpiMin = (uint)a;
        SpiMax = n == 1 ? (uint)a : (uint)b;
        if (invert) InvSpi = true;
    }

    /// <summary>The save form: nothing for 0:4294967295, even inverted.</summary>
    internal void SaveSpi(StringBuilder sb, string option)
    {
        if (SpiMin == 0 && SpiMax == uint.MaxValue) return;
        sb.Append(InvSpi ? " !" : string.Empty).Append(" --").Append(option).Append(' ').Append(XtParse.Dec(SpiMin));
        if (SpiMin != SpiMax) sb.Append(':').Append(XtParse.Dec(SpiMax));
    }

    /// <summary>print_spis: "spi:N" or "spis:A:B" ('!' after the colon), only when not the full range.</summary>
    internal void PrintSpi(StringBuilder sb, string prefix)
    {
        if (SpiMin == 0 && SpiMax == uint.MaxValue && !InvSpi) return;
        string inv = InvSpi ? "!" : string.Empty;
        sb.Append(prefix);
        if (SpiMin == SpiMax) sb.Append("spi:").Append(inv).Append(XtParse.Dec(SpiMin));
        else sb.Append("spis:").Append(inv).Append(XtParse.Dec(SpiMin)).Append(':').Append(XtParse.Dec(SpiMax));
    }
}

/// <summary>Options of <c>-m esp</c>.</summary>
public sealed class EspData : SpiRangeData
{
}

/// <summary><c>-m esp --espspi</c> (libxt_esp.c, xt_esp.c): needs <c>-p esp</c>.</summary>
public sealed class EspMatch : XtExtension<EspData>
{
    public override string Name => "esp";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override ushort RequiredProtocol => Protocols.Esp;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("espspi", 0, OptionArg.Required, OptFlags.Invert),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, EspData d) =>
        d.ParseSpi(argument!, Name, "espspi", invert);

    protected override void Save(StringBuilder sb, EspData d, IpFamily family) => d.SaveSpi(sb, "espspi");

    protected override void Print(StringBuilder sb, EspData d, IpFamily family, bool numeric)
    {
        sb.Append(" esp");
        d.PrintSpi(sb, " ");
    }

    /// <summary>Evaluates the match (xt_esp.c): the SPI; non-first fragments never match, fewer than 8 bytes drop the packet.</summary>
    protected override bool Match(PacketContext ctx, EspData d)
    {
        Packet p = ctx.Packet;
        if (HeaderReads.FragOff(p) != 0) return false;
        if (!HeaderReads.TryTransport(p, 8, out ReadOnlySpan<byte> eh)) return HeaderReads.Drop(ctx);
        uint spi = HeaderReads.U32(eh, 0);
        return (spi >= d.SpiMin && spi <= d.SpiMax) != d.InvSpi;
    }
}
