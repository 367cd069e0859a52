using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>MARK revision 2 (struct xt_mark_tginfo2): new mark = (old mark &amp; ~Mask) ^ Mark.</summary>
public sealed class MarkTargetData : ExtensionData
{
    public uint Mark;
    public uint Mask;
}

/// <summary>
/// <c>-j MARK</c> revision 2 (libxt_MARK.c, xt_mark.c): --set-xmark, --set-mark, --and-mark, --or-mark,
/// --xor-mark, all turned into one mark/mask pair; saved as --set-xmark.
/// </summary>
public sealed class MarkTarget : XtExtension<MarkTargetData>
{
    private const int OSetMark = 0, OAndMark = 1, OOrMark = 2, OXorMark = 3, OSetXmark = 4;
    private const ulong FAny = 0x1F;

    public override string Name => "MARK";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("set-xmark", OSetXmark) { Excludes = FAny },
        new("set-mark", OSetMark) { Excludes = FAny },
        new("and-mark", OAndMark) { Excludes = FAny },
        new("or-mark", OOrMark) { Excludes = FAny },
        new("xor-mark", OXorMark) { Excludes = FAny },
    ];

    protected override void Init(ParseContext ctx, MarkTargetData data) => data.Revision = 2;

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, MarkTargetData d)
    {
        (d.Mark, d.Mask) = ParseOp(option.Id, option.Name, argument!, Name);
    }

    /// <summary>The mark/mask pair of one MARK/CONNMARK operation (ids as in libxt_MARK.c).</summary>
    internal static (uint Mark, uint Mask) ParseOp(int id, string optName, string arg, string ext)
    {
        switch (id)
        {
            case OSetXmark:
                return XtParse.OptMarkMask(arg, ext, optName);
            case OSetMark:
                {
                    (uint v, uint m) = XtParse.OptMarkMask(arg, ext, optName);
                    return (v, v | m);
                }
            case OAndMark:
                return (0, ~(uint)XtParse.OptUInt(arg, 0, uint.MaxValue, ext, optName));
            case OOrMark:
                {
                    uint v = (uint)XtParse.OptUInt(arg, 0, uint.MaxValue, ext, optName);
                    return (v, v);
                }
            default:
                return ((uint)XtParse.OptUInt(arg, 0, uint.MaxValue, ext, optName), 0);
        }
    }

    protected override void FinalCheck(ParseContext ctx, MarkTargetData d)
    {
        if (d.Given == 0) throw ctx.Error("MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required");
    }

    protected override void Save(StringBuilder sb, MarkTargetData d, IpFamily family) =>
        sb.Append(" --set-xmark ").Append(XtParse.Hex(d.Mark)).Append('/').Append(XtParse.Hex(d.Mask));

    /// <summary>The -L wording shared with CONNMARK: and / or / xor / set / xset.</summary>
    internal static void PrintOp(StringBuilder sb, string label, uint mark, uint mask)
    {
        sb.Append(' ').Append(label);
        if (mark == 0) sb.Append(" and ").Append(XtParse.Hex(~mask));
        else if (mark == mask) sb.Append(" or ").Append(XtParse.Hex(mark));
        else if (mask == 0) sb.Append(" xor ").Append(XtParse.Hex(mark));
        else if (mask == uint.MaxValue) sb.Append(" set ").Append(XtParse.Hex(mark));
        else sb.Append(" xset ").Append(XtParse.Hex(mark)).Append('/').Append(XtParse.Hex(mask));
    }

    protected override void Print(StringBuilder sb, MarkTargetData d, IpFamily family, bool numeric) => PrintOp(sb, "MARK", d.Mark, d.Mask);

    /// <summary>xt_mark.c mark_tg: mark = (mark &amp; ~mask) ^ value.</summary>
    protected override Verdict Execute(PacketContext ctx, MarkTargetData data)
    {
        ctx.Skb.Mark = (ctx.Skb.Mark & ~data.Mask) ^ data.Mark;
        return Verdict.Continue;
    }
}
