using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Nat;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Targets;

/// <summary>
/// <c>-j SNAT --to-source [addr[-addr]][:port[-port]] [--random] [--random-fully] [--persistent]</c>
/// (libxt_NAT.c; IPv4 revision 0, IPv6 revision 1: neither keeps a shifted port map's base, the flag
/// stays and prints as "/0"). nat table, INPUT and POSTROUTING.
/// </summary>
public sealed class SnatTarget : NatTargetBase
{
    public override string Name => "SNAT";

    public override HookMask Hooks => HookMask.Postrouting | HookMask.Input;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("to-source", ToSrc, OptionArg.Required, OptFlags.Mandatory),
        new("random", Random, OptionArg.None),
        new("random-fully", RandomFully, OptionArg.None),
        new("persistent", Persistent, OptionArg.None),
    ];

    protected override string PrintRangeOption => "to:";

    protected override string SaveRangeOption => "--to-source ";

    protected override void Init(ParseContext ctx, NatRangeData data) => data.Revision = ctx.Family == IpFamily.V4 ? 0 : 1;

    /// <summary>xt_snat_target_v0 / _v1: the source binding from the rule's range.</summary>
    protected override Verdict Execute(PacketContext ctx, NatRangeData data) =>
        NatTargets.Bind(ctx, NatRange2.From(data), NatManip.Src, Name);
}
