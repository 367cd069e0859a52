using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m cgroup</c> (struct xt_cgroup_info_v2).</summary>
public sealed class CgroupData : ExtensionData
{
    public bool HasPath;
    public bool HasClassId;
    public bool InvertPath;
    public bool InvertClassId;

    /// <summary>cgroup2 path relative to the root (at most 511 characters).</summary>
    public string Path = string.Empty;

    /// <summary>net_cls class id.</summary>
    public uint ClassId;
}

/// <summary><c>-m cgroup --path P | --cgroup ID</c> revision 2 (libxt_cgroup.c, xt_cgroup.c).</summary>
public sealed class CgroupMatch : XtExtension<CgroupData>
{
    private const int OClassId = 0, OPath = 1;

    public override string Name => "cgroup";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override HookMask Hooks => HookMask.Output | HookMask.Postrouting | HookMask.Input;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("path", OPath, OptionArg.Required, OptFlags.Invert),
        new("cgroup", OClassId, OptionArg.Required, OptFlags.Invert),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, CgroupData d)
    {
        if (option.Id == OPath)
        {
            d.Path = CommentMatch.Truncate(argument!, 511);
            d.HasPath = true;
            if (invert) d.InvertPath = true;
        }
        else
        {
            d.ClassId = (uint)XtParse.UIntBad(argument!, 0, uint.MaxValue, Name, option.Name);
            d.HasClassId = true;
            if (invert) d.InvertClassId = true;
        }
    }

    /// <summary>
    /// cgroup_mt_check_v2: exactly one of path and class id; the path must name an existing cgroup2 group.
    /// The virtual host has only the cgroup2 root.
    /// </summary>
    protected override string? CheckEntry(RuleCheckContext ctx, CgroupData d)
    {
        if (d.HasPath == d.HasClassId) return RulesetEditor.InvalidArgument;
        if (d.HasPath && d.Path != "/") return RulesetEditor.InvalidArgument;
        return null;
    }

    protected override void Save(StringBuilder sb, CgroupData d, IpFamily family)
    {
        if (d.HasPath)
        {
            sb.Append(d.InvertPath ? " !" : string.Empty).Append(" --path");
            XtParse.SaveString(sb, d.Path);
        }
        if (d.HasClassId) sb.Append(d.InvertClassId ? " !" : string.Empty).Append(" --cgroup ").Append(XtParse.Dec(d.ClassId));
    }

    protected override void Print(StringBuilder sb, CgroupData d, IpFamily family, bool numeric)
    {
        sb.Append(" cgroup");
        if (d.HasPath) sb.Append(' ').Append(d.InvertPath ? "! " : string.Empty).Append(d.Path);
        if (d.HasClassId) sb.Append(' ').Append(d.InvertClassId ? "! " : string.Empty).Append(XtParse.Dec(d.ClassId));
    }

    /// <summary>
    /// xt_cgroup.c: a packet without a full socket (received, forwarded, kernel-built) never matches, even
    /// with !. The virtual host has no cgroup hierarchy below the root and no net_cls classes: a socket's
    /// classid is 0 and its process sits in the root cgroup ("/").
    /// </summary>
    protected override bool Match(PacketContext ctx, CgroupData d)
    {
        if (ctx.Skb.Socket is null) return false;
        if (d.HasPath) return (d.Path.Length == 0 || d.Path == "/") ^ d.InvertPath;
        if (d.HasClassId) return (d.ClassId == 0) ^ d.InvertClassId;
        return true;
    }
}
