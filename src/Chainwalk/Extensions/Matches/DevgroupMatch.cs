using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m devgroup</c> (struct xt_devgroup_info).</summary>
public sealed class DevgroupData : ExtensionData
{
    public bool MatchSrc;
    public bool MatchDst;
    public bool InvertSrc;
    public bool InvertDst;
    public uint SrcGroup;
    public uint SrcMask = uint.MaxValue;
    public uint DstGroup;
    public uint DstMask = uint.MaxValue;
}

/// <summary>
/// <c>-m devgroup [!] --src-group G[/M] [!] --dst-group G[/M]</c> (libxt_devgroup.c, xt_devgroup.c). Names come
/// from /etc/iproute2/group. The kernel allows the source group only in PREROUTING, INPUT and FORWARD and the
/// destination group only in FORWARD, OUTPUT and POSTROUTING.
/// </summary>
public sealed class DevgroupMatch : XtExtension<DevgroupData>
{
    private const int OSrc = 0, ODst = 1;

    private static readonly Lazy<IReadOnlyList<(int Id, string Name)>?> Groups = new(() => XtParse.LoadLmap("iproute2/group"));

    public override string Name => "devgroup";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("src-group", OSrc, OptionArg.Required, OptFlags.Invert),
        new("dst-group", ODst, OptionArg.Required, OptFlags.Invert),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, DevgroupData d)
    {
        var (group, mask) = XtParse.ValMask(argument!, Name, option.Name, Groups.Value);
        if (option.Id == OSrc)
        {
            (d.SrcGroup, d.SrcMask, d.MatchSrc) = (group, mask, true);
            if (invert) d.InvertSrc = true;
        }
        else
        {
            (d.DstGroup, d.DstMask, d.MatchDst) = (group, mask, true);
            if (invert) d.InvertDst = true;
        }
    }

    protected override void FinalCheck(ParseContext ctx, DevgroupData d)
    {
        if (d.Given == 0) throw ctx.Error("devgroup match: You must specify either '--src-group' or '--dst-group'");
    }

    protected override string? CheckEntry(RuleCheckContext ctx, DevgroupData d)
    {
        if (d.MatchSrc && (ctx.EntryHooks & ~(HookMask.Prerouting | HookMask.Input | HookMask.Forward)) != 0) return RulesetEditor.InvalidArgument;
        if (d.MatchDst && (ctx.EntryHooks & ~(HookMask.Forward | HookMask.Output | HookMask.Postrouting)) != 0) return RulesetEditor.InvalidArgument;
        return null;
    }

    private static void Show(StringBuilder sb, DevgroupData d, string prefix, bool numeric)
    {
        if (d.MatchSrc)
        {
            if (d.InvertSrc) sb.Append(" !");
            sb.Append(' ').Append(prefix).Append("src-group");
            XtParse.AppendValMask(sb, d.SrcGroup, d.SrcMask, numeric ? null : Groups.Value);
        }
        if (d.MatchDst)
        {
            if (d.InvertDst) sb.Append(" !");
            sb.Append(' ').Append(prefix).Append("dst-group");
            XtParse.AppendValMask(sb, d.DstGroup, d.DstMask, numeric ? null : Groups.Value);
        }
    }

    protected override void Save(StringBuilder sb, DevgroupData d, IpFamily family) => Show(sb, d, "--", false);

    protected override void Print(StringBuilder sb, DevgroupData d, IpFamily family, bool numeric) => Show(sb, d, string.Empty, numeric);

    /// <summary>xt_devgroup.c: the in/out device's group under the mask; a link's group is 0 (the default group) on the virtual host.</summary>
    protected override bool Match(PacketContext ctx, DevgroupData d)
    {
        const uint group = 0;
        if (d.MatchSrc && (((d.SrcGroup ^ group) & d.SrcMask) != 0) != d.InvertSrc) return false;
        if (d.MatchDst && (((d.DstGroup ^ group) & d.DstMask) != 0) != d.InvertDst) return false;
        return true;
    }
}
