using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Nat;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Targets;

/// <summary>
/// <c>-j DNAT --to-destination [addr[-addr]][:port[-port[/base]]] [--random] [--persistent]</c>
/// (libxt_NAT.c; revision 2, struct nf_nat_range2, for both families). nat table, PREROUTING and OUTPUT.
/// </summary>
public sealed class DnatTarget : NatTargetBase
{
    public override string Name => "DNAT";

    public override HookMask Hooks => HookMask.Prerouting | HookMask.Output;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("to-destination", ToDest, OptionArg.Required, OptFlags.Mandatory),
        new("random", Random, OptionArg.None),
        new("persistent", Persistent, OptionArg.None),
    ];

    protected override string PrintRangeOption => "to:";

    protected override string SaveRangeOption => "--to-destination ";

    protected override bool KeepsBasePort(IpFamily family) => true;

    protected override void Init(ParseContext ctx, NatRangeData data) => data.Revision = 2;

    /// <summary>xt_dnat_target_v2: the destination binding from the rule's range.</summary>
    protected override Verdict Execute(PacketContext ctx, NatRangeData data) =>
        NatTargets.Bind(ctx, NatRange2.From(data), NatManip.Dst, Name);
}
