using Chainwalk.Engine;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Nat;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Targets;

/// <summary>The network NETMAP maps to: the range min..max of the prefix given with <c>--to</c>.</summary>
public sealed class NetmapData : ExtensionData
{
    public NatRangeFlags Flags;
    public UInt128 MinAddress;
    public UInt128 MaxAddress;

    /// <summary>The mask the range stands for (~(min ^ max)).</summary>
    public UInt128 Mask(IpFamily family) => ~(MinAddress ^ MaxAddress) & IpNet.FullMask(family);
}

/// <summary>
/// <c>-j NETMAP --to address[/mask]</c> (libipt_NETMAP.c, libip6t_NETMAP.c): 1:1 mapping of a network.
/// nat table, all four of its hooks; the kernel needs the address range flag (always set here).
/// </summary>
public sealed class NetmapTarget : XtExtension<NetmapData>
{
    public override string Name => "NETMAP";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<string>? Tables { get; } = ["nat"];

    public override HookMask Hooks => HookMask.Prerouting | HookMask.Postrouting | HookMask.Output | HookMask.Input;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("to", 0, OptionArg.Required, OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, NetmapData d)
    {
        (UInt128 addr, _, UInt128 mask) = TargetParsing.HostMask(argument!, ctx.Family, ctx.Names, Name, option.Name);
        UInt128 full = IpNet.FullMask(ctx.Family);
        d.Flags |= NatRangeFlags.MapIps;
        d.MinAddress = addr & mask;
        d.MaxAddress = d.MinAddress | (~mask & full);
    }

    private static void AppendNetwork(StringBuilder sb, NetmapData d, IpFamily family)
    {
        sb.Append(IpNet.FormatAddress(d.MinAddress, family));
        UInt128 mask = d.Mask(family);
        int bits = IpNet.MaskToCidr(mask, family);
        sb.Append('/').Append(bits < 0 ? IpNet.FormatAddress(mask, family) : TargetParsing.Dec((ulong)bits));
    }

    protected override void Save(StringBuilder sb, NetmapData d, IpFamily family)
    {
        sb.Append(" --to ");
        AppendNetwork(sb, d, family);
    }

    protected override void Print(StringBuilder sb, NetmapData d, IpFamily family, bool numeric)
    {
        sb.Append(" to:");
        AppendNetwork(sb, d, family);
    }

    protected override string? CheckEntry(RuleCheckContext ctx, NetmapData d) =>
        (d.Flags & NatRangeFlags.MapIps) == 0 ? RulesetEditor.InvalidArgument : null;

    protected override Verdict Execute(PacketContext ctx, NetmapData data) => NatTargets.Netmap(ctx, data);
}
