using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m length</c> (struct xt_length_info).</summary>
public sealed class LengthData : ExtensionData
{
    public ushort Min;
    public ushort Max;
    public bool Invert;
}

/// <summary><c>-m length --length a[:b]</c> (libxt_length.c, xt_length.c): the layer-3 packet length; no order check.</summary>
public sealed class LengthMatch : XtExtension<LengthData>
{
    public override string Name => "length";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("length", 0, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, LengthData d)
    {
        var (a, b, n) = XtParse.UIntRange(argument!, ushort.MaxValue, Name, "length");
        d.Min = (ushort)a;
        d.Max = n >= 2 ? (ushort)b : (ushort)a;
        if (invert) d.Invert = true;
    }

    private static void AppendRange(StringBuilder sb, LengthData d)
    {
        sb.Append(XtParse.Dec(d.Min));
        if (d.Min != d.Max) sb.Append(':').Append(XtParse.Dec(d.Max));
    }

    protected override void Save(StringBuilder sb, LengthData d, IpFamily family)
    {
        sb.Append(d.Invert ? " !" : string.Empty).Append(" --length ");
        AppendRange(sb, d);
    }

    protected override void Print(StringBuilder sb, LengthData d, IpFamily family, bool numeric)
    {
        sb.Append(" length ").Append(d.Invert ? "!" : string.Empty);
        AppendRange(sb, d);
    }

    /// <summary>
    /// Evaluates the match (xt_length.c): the IPv4 total length, or the IPv6 payload length plus 40 (read from the
    /// header, so a jumbogram counts as 40).
    /// </summary>
    protected override bool Match(PacketContext ctx, LengthData d)
    {
        ReadOnlySpan<byte> b = ctx.Packet.Bytes;
        int length = ctx.Family == IpFamily.V4 ? HeaderReads.U16(b, 2) : HeaderReads.U16(b, 4) + 40;
        return (length >= d.Min && length <= d.Max) != d.Invert;
    }
}
