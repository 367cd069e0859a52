using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m ipvs</c> (struct xt_ipvs_mtinfo). Kept as given: the kernel here refuses every such rule.</summary>
public sealed class IpvsData : ExtensionData
{
    public Dictionary<string, (string? Value, bool Invert)> Given2 { get; private set; } = new(StringComparer.Ordinal);

    public override ExtensionData Clone()
    {
        var c = (IpvsData)MemberwiseClone();
        c.Given2 = new Dictionary<string, (string?, bool)>(Given2, StringComparer.Ordinal);
        return c;
    }
}

/// <summary>
/// <c>-m ipvs</c> (libxt_ipvs.c): the xt_ipvs kernel module is missing here. iptables warns
/// "Extension ipvs revision 0 not supported, missing kernel module?" when loading it, parses on,
/// and the kernel then refuses the rule with ENOENT.
/// </summary>
public sealed class IpvsMatch : XtExtension<IpvsData>
{
    public override string Name => "ipvs";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("ipvs", 0, OptionArg.None, OptFlags.Invert),
        new("vproto", 1, OptionArg.Required, OptFlags.Invert),
        new("vaddr", 2, OptionArg.Required, OptFlags.Invert),
        new("vport", 3, OptionArg.Required, OptFlags.Invert),
        new("vdir", 4, OptionArg.Required),
        new("vmethod", 5, OptionArg.Required, OptFlags.Invert),
        new("vportctl", 6, OptionArg.Required, OptFlags.Invert),
    ];

    protected override void Init(ParseContext ctx, IpvsData data) =>
        ctx.Warn("Warning: Extension ipvs revision 0 not supported, missing kernel module?");

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, IpvsData d) =>
        d.Given2[option.Name] = (argument, invert);

    /// <summary>No xt_ipvs in this kernel: the match cannot be found (ENOENT).</summary>
    protected override string? CheckEntry(RuleCheckContext ctx, IpvsData d) => "No such file or directory";

    protected override void Save(StringBuilder sb, IpvsData d, IpFamily family)
    {
        foreach (XtOption o in Options)
        {
            if (!d.Given2.TryGetValue(o.Name, out var v)) continue;
            if (v.Invert) sb.Append(" !");
            sb.Append(" --").Append(o.Name);
            if (v.Value is not null) sb.Append(' ').Append(v.Value);
        }
    }

    protected override void Print(StringBuilder sb, IpvsData d, IpFamily family, bool numeric)
    {
        sb.Append(" ipvs");
        Save(sb, d, family);
    }
}
