using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m mark</c> (struct xt_mark_mtinfo1).</summary>
public sealed class MarkData : ExtensionData
{
    public uint Mark;
    public uint Mask = uint.MaxValue;
    public bool Invert;
}

/// <summary><c>-m mark [!] --mark value[/mask]</c> (libxt_mark.c revision 1, xt_mark.c).</summary>
public sealed class MarkMatch : XtExtension<MarkData>
{
    public override string Name => "mark";

    /// <summary>The revision iptables 1.8.9 uses with this kernel.</summary>
    protected override void Init(ParseContext ctx, MarkData data) => data.Revision = 1;

    public override ExtensionKind Kind => ExtensionKind.Match;

    /// <inheritdoc/>
    public override bool SharesEqualData => true;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("mark", 0, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, MarkData d)
    {
        (d.Mark, d.Mask) = XtParse.ValMask(argument!, Name, option.Name);
        if (invert) d.Invert = true;
    }

    /// <summary>xtables_print_mark_mask: " 0xV" or " 0xV/0xM".</summary>
    internal static void AppendMarkMask(StringBuilder sb, uint mark, uint mask)
    {
        sb.Append(' ').Append(XtParse.Hex(mark));
        if (mask != uint.MaxValue) sb.Append('/').Append(XtParse.Hex(mask));
    }

    protected override void Save(StringBuilder sb, MarkData d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        sb.Append(" --mark");
        AppendMarkMask(sb, d.Mark, d.Mask);
    }

    protected override void Print(StringBuilder sb, MarkData d, IpFamily family, bool numeric)
    {
        sb.Append(" mark match");
        if (d.Invert) sb.Append(" !");
        AppendMarkMask(sb, d.Mark, d.Mask);
    }

    /// <summary>xt_mark.c: (skb->mark &amp; mask) == mark, inverted by !.</summary>
    /// <summary>The skb mark as the walk finds it, which the walk memo compares.</summary>
    public override bool FlowStable(ExtensionData data) => true;

    protected override bool Match(PacketContext ctx, MarkData d) => ((ctx.Skb.Mark & d.Mask) == d.Mark) ^ d.Invert;
}
