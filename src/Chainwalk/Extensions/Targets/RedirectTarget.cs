using Chainwalk.Engine;
using Chainwalk.Nat;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>
/// <c>-j REDIRECT [--to-ports port[-port]] [--random]</c> (libxt_NAT.c). nat table, PREROUTING and
/// OUTPUT; a shifted port map ("/base") is refused by the final check.
/// </summary>
public sealed class RedirectTarget : NatTargetBase
{
    public override string Name => "REDIRECT";

    public override HookMask Hooks => HookMask.Prerouting | HookMask.Output;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("to-ports", ToPorts, OptionArg.Required),
        new("random", Random, OptionArg.None),
    ];

    protected override string PrintRangeOption => "redir ports ";

    protected override string SaveRangeOption => "--to-ports ";

    protected override bool SkipColon => true;

    protected override void FinalCheck(ParseContext ctx, NatRangeData d)
    {
        if (d.Has(NatRangeFlags.ProtoOffset)) throw XtablesException.Param("Shifted portmap ranges not supported with this kernel");
    }

    protected override string? CheckEntry(RuleCheckContext ctx, NatRangeData data) => RefuseMapIps(data);

    protected override Verdict Execute(PacketContext ctx, NatRangeData data) => NatTargets.Redirect(ctx, data);
}
