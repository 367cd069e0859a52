using Chainwalk.Conntrack;
using Chainwalk.Engine;
using System.Text;
using Chainwalk.Net;

namespace Chainwalk.Extensions.Matches;

/// <summary>
/// <c>-m connmark [!] --mark value[/mask]</c> (libxt_connmark.c revision 1, xt_connmark.c). Its list form
/// has two spaces before an uninverted value (" connmark match  0x5"), as 1.8.9 prints it.
/// </summary>
public sealed class ConnmarkMatch : XtExtension<MarkData>
{
    public override string Name => "connmark";

    /// <summary>The revision iptables 1.8.9 uses with this kernel.</summary>
    protected override void Init(ParseContext ctx, MarkData data) => data.Revision = 1;

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("mark", 0, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, MarkData d)
    {
        (d.Mark, d.Mask) = XtParse.ValMask(argument!, Name, option.Name);
        if (invert) d.Invert = true;
    }

    /// <summary>connmark_mt: (ct->mark &amp; mask) == mark, inverted by !; no connection never matches.</summary>
    protected override bool Match(PacketContext ctx, MarkData d) =>
        ConntrackHooks.TryGet(ctx.Skb, out ConnEntry ct, out _) && ((ct.Mark & d.Mask) == d.Mark) != d.Invert;

    protected override void Save(StringBuilder sb, MarkData d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        sb.Append(" --mark");
        MarkMatch.AppendMarkMask(sb, d.Mark, d.Mask);
    }

    protected override void Print(StringBuilder sb, MarkData d, IpFamily family, bool numeric)
    {
        sb.Append(" connmark match ");
        if (d.Invert) sb.Append('!');
        MarkMatch.AppendMarkMask(sb, d.Mark, d.Mask);
    }
}
