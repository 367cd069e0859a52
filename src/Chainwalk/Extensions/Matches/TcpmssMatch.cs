using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m tcpmss</c> (struct xt_tcpmss_match_info).</summary>
public sealed class TcpmssData : ExtensionData
{
    public ushort MssMin;
    public ushort MssMax;
    public bool Invert;
}

/// <summary><c>-m tcpmss --mss a[:b]</c> (libxt_tcpmss.c, xt_tcpmss.c): needs <c>-p tcp</c>.</summary>
public sealed class TcpmssMatch : XtExtension<TcpmssData>
{
    public override string Name => "tcpmss";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override ushort RequiredProtocol => Protocols.Tcp;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("mss", 0, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, TcpmssData d)
    {
        var (a, b, n) = XtParse.UIntRange(argument!, ushort.MaxValue, Name, "mss");
        d.MssMin = (ushort)a;
        d.MssMax = d.MssMin;
        if (n == 2)
        {
            d.MssMax = (ushort)b;
            if (d.MssMax < d.MssMin) throw ctx.Error("tcpmss: invalid range given");
        }
        if (invert) d.Invert = true;
    }

    private static void AppendRange(StringBuilder sb, TcpmssData d)
    {
        sb.Append(XtParse.Dec(d.MssMin));
        if (d.MssMin != d.MssMax) sb.Append(':').Append(XtParse.Dec(d.MssMax));
    }

    protected override void Save(StringBuilder sb, TcpmssData d, IpFamily family)
    {
        sb.Append(d.Invert ? " !" : string.Empty).Append(" --mss ");
        AppendRange(sb, d);
    }

    protected override void Print(StringBuilder sb, TcpmssData d, IpFamily family, bool numeric)
    {
        sb.Append(" tcpmss match ").Append(d.Invert ? "!" : string.Empty);
        AppendRange(sb, d);
    }

    /// <summary>
    /// Evaluates the match (xt_tcpmss.c): the first well-formed MSS option (kind 2, length 4) decides; a packet
    /// without one matches only when inverted. A truncated header or options, or a data offset below 5, drop
    /// the packet. The kernel does not look at the fragment offset here.
    /// </summary>
    protected override bool Match(PacketContext ctx, TcpmssData d)
    {
        Packet p = ctx.Packet;
        if (!HeaderReads.TryTransport(p, TcpHeader.MinLength, out ReadOnlySpan<byte> th)) return HeaderReads.Drop(ctx);
        int doff = (th[12] >> 4) * 4;
        if (doff < TcpHeader.MinLength) return HeaderReads.Drop(ctx);
        int optlen = doff - TcpHeader.MinLength;
        if (optlen == 0) return d.Invert;
        if (!HeaderReads.TryRead(p, HeaderReads.ThOff(p) + TcpHeader.MinLength, optlen, out ReadOnlySpan<byte> op))
            return HeaderReads.Drop(ctx);
        for (int i = 0; i < optlen;)
        {
            if (op[i] == TcpOptionKind.Mss && optlen - i >= 4 && op[i + 1] == 4)
            {
                int mss = (op[i + 2] << 8) | op[i + 3];
                return (mss >= d.MssMin && mss <= d.MssMax) != d.Invert;
            }
            if (op[i] < 2) i++;
            else if (i + 1 < optlen && op[i + 1] != 0) i += op[i + 1];
            else i++;
        }
        return d.Invert;
    }
}
