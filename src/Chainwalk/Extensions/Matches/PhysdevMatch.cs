using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Matches;

/// <summary>What <c>-m physdev</c> tests (XT_PHYSDEV_OP_*).</summary>
[Flags]
public enum PhysdevOps : byte
{
    None = 0,
    In = 0x01,
    Out = 0x02,
    Bridged = 0x04,
    IsIn = 0x08,
    IsOut = 0x10,
}

/// <summary>Options of <c>-m physdev</c> (struct xt_physdev_info); names keep a trailing '+' wildcard.</summary>
public sealed class PhysdevData : ExtensionData
{
    public string PhysInDev = string.Empty;
    public string PhysOutDev = string.Empty;
    public PhysdevOps Bitmask;
    public PhysdevOps Invert;
}

/// <summary>
/// <c>-m physdev</c>: bridge port names and bridged-ness (libxt_physdev.c, xt_physdev.c). The kernel refuses
/// --physdev-out/--physdev-is-out reachable from OUTPUT unless --physdev-is-bridged (not inverted) is given.
/// </summary>
public sealed class PhysdevMatch : XtExtension<PhysdevData>
{
    private const int OIn = 0, OOut = 1, OIsIn = 2, OIsOut = 3, OBridged = 4;

    public override string Name => "physdev";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("physdev-in", OIn, OptionArg.Required, OptFlags.Invert),
        new("physdev-out", OOut, OptionArg.Required, OptFlags.Invert),
        new("physdev-is-in", OIsIn, OptionArg.None, OptFlags.Invert),
        new("physdev-is-out", OIsOut, OptionArg.None, OptFlags.Invert),
        new("physdev-is-bridged", OBridged, OptionArg.None, OptFlags.Invert),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, PhysdevData d)
    {
        PhysdevOps op;
        switch (option.Id)
        {
            case OIn:
                d.PhysInDev = AddressParser.ParseInterface(argument!, ctx.Warnings);
                op = PhysdevOps.In;
                break;
            case OOut:
                d.PhysOutDev = AddressParser.ParseInterface(argument!, ctx.Warnings);
                op = PhysdevOps.Out;
                break;
            case OIsIn:
                op = PhysdevOps.IsIn;
                break;
            case OIsOut:
                op = PhysdevOps.IsOut;
                break;
            default:
                op = PhysdevOps.Bridged;
                break;
        }
        d.Bitmask |= op;
        if (invert) d.Invert |= op;
    }

    protected override void FinalCheck(ParseContext ctx, PhysdevData d)
    {
        if (d.Given == 0) throw ctx.Error("PHYSDEV: no physdev option specified");
    }

    protected override string? CheckEntry(RuleCheckContext ctx, PhysdevData d)
    {
        bool outSide = (d.Bitmask & (PhysdevOps.Out | PhysdevOps.IsOut)) != 0;
        bool bridged = (d.Bitmask & PhysdevOps.Bridged) != 0 && (d.Invert & PhysdevOps.Bridged) == 0;
        if (outSide && !bridged && (ctx.EntryHooks & HookMask.Output) != 0) return RulesetEditor.InvalidArgument;
        return null;
    }

    private static void Show(StringBuilder sb, PhysdevData d)
    {
        string Inv(PhysdevOps op) => (d.Invert & op) != 0 ? " !" : string.Empty;
        if ((d.Bitmask & PhysdevOps.IsIn) != 0) sb.Append(Inv(PhysdevOps.IsIn)).Append(" --physdev-is-in");
        if ((d.Bitmask & PhysdevOps.In) != 0) sb.Append(Inv(PhysdevOps.In)).Append(" --physdev-in ").Append(d.PhysInDev);
        if ((d.Bitmask & PhysdevOps.IsOut) != 0) sb.Append(Inv(PhysdevOps.IsOut)).Append(" --physdev-is-out");
        if ((d.Bitmask & PhysdevOps.Out) != 0) sb.Append(Inv(PhysdevOps.Out)).Append(" --physdev-out ").Append(d.PhysOutDev);
        if ((d.Bitmask & PhysdevOps.Bridged) != 0) sb.Append(Inv(PhysdevOps.Bridged)).Append(" --physdev-is-bridged");
    }

    protected override void Save(StringBuilder sb, PhysdevData d, IpFamily family) => Show(sb, d);

    protected override void Print(StringBuilder sb, PhysdevData d, IpFamily family, bool numeric)
    {
        sb.Append(" PHYSDEV match");
        Show(sb, d);
    }

    /// <summary>
    /// xt_physdev.c. No bridge exists on the virtual host, so no packet has nf_bridge info; the kernel then
    /// matches exactly when every option the rule gives is inverted (a rule with any plain option fails).
    /// </summary>
    protected override bool Match(PacketContext ctx, PhysdevData d)
    {
        if (ctx.Skb.PhysInDev is null && ctx.Skb.PhysOutDev is null)
            return (d.Bitmask & ~d.Invert) == PhysdevOps.None;
        // A bridged packet (nf_bridge present): the kernel's full test.
        string? inDev = ctx.Skb.PhysInDev, outDev = ctx.Skb.PhysOutDev;
        if ((d.Bitmask & PhysdevOps.Bridged) != 0 && (outDev is not null) != ((d.Invert & PhysdevOps.Bridged) == 0)) return false;
        if ((d.Bitmask & PhysdevOps.IsIn) != 0 && (inDev is not null) != ((d.Invert & PhysdevOps.IsIn) == 0)) return false;
        if ((d.Bitmask & PhysdevOps.IsOut) != 0 && (outDev is not null) != ((d.Invert & PhysdevOps.IsOut) == 0)) return false;
        if ((d.Bitmask & PhysdevOps.In) != 0 && Netfilter.InterfaceMatches(d.PhysInDev, inDev ?? "") == ((d.Invert & PhysdevOps.In) != 0)) return false;
        if ((d.Bitmask & PhysdevOps.Out) != 0 && Netfilter.InterfaceMatches(d.PhysOutDev, outDev ?? "") == ((d.Invert & PhysdevOps.Out) != 0)) return false;
        return true;
    }
}
