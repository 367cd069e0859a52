using System.Text;
using Chainwalk.Net;
using Chainwalk.Syntax;

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
}
