using Chainwalk.Engine;
using Chainwalk.Nat;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Targets;

/// <summary>
/// <c>-j MASQUERADE [--to-ports port[-port]] [--random] [--random-fully]</c> (libxt_NAT.c).
/// nat table, POSTROUTING only; the kernel refuses an address range.
/// </summary>
public sealed class MasqueradeTarget : NatTargetBase
{
    public override string Name => "MASQUERADE";

    public override HookMask Hooks => HookMask.Postrouting;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("to-ports", ToPorts, OptionArg.Required),
        new("random", Random, OptionArg.None),
        new("random-fully", RandomFully, OptionArg.None),
    ];

    protected override string PrintRangeOption => "masq ports: ";

    protected override string SaveRangeOption => "--to-ports ";

    protected override bool SkipColon => true;

    protected override string? CheckEntry(RuleCheckContext ctx, NatRangeData data) => RefuseMapIps(data);

    protected override Verdict Execute(PacketContext ctx, NatRangeData data) => NatTargets.Masquerade(ctx, data);
}
