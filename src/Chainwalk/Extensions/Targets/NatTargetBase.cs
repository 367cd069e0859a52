using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Targets;

/// <summary>
/// What DNAT, SNAT, MASQUERADE and REDIRECT share (libxt_NAT.c): the option ids, the parser of
/// ranges and ports, and the save/list printer. Each target states its options, its print words and
/// whether its kernel struct keeps the base port of a shifted port map.
/// </summary>
public abstract class NatTargetBase : XtExtension<NatRangeData>
{
    protected const int ToDest = 0, ToSrc = 1, ToPorts = 2, Random = 3, RandomFully = 4, Persistent = 5;

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<string>? Tables { get; } = ["nat"];

    /// <summary>The -L prefix of the range ("to:", "masq ports: ", "redir ports ").</summary>
    protected abstract string PrintRangeOption { get; }

    /// <summary>The save option of the range ("--to-destination ", "--to-ports ").</summary>
    protected abstract string SaveRangeOption { get; }

    /// <summary>MASQUERADE and REDIRECT drop the ':' before a bare port range.</summary>
    protected virtual bool SkipColon => false;

    /// <summary>Whether the kernel struct of this target and family keeps the base port (nf_nat_range2).</summary>
    protected virtual bool KeepsBasePort(IpFamily family) => false;

    /// <summary>The range of an IPv6 rule in its 128-bit form (<see cref="WideNatRangeData"/>), an IPv4 rule's in the 40-byte one.</summary>
    public override ExtensionData CreateData(ParseContext ctx)
    {
        NatRangeData d = NatRangeData.For(ctx.Family);
        Init(ctx, d);
        return d;
    }

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, NatRangeData d)
    {
        bool portOk = NatRange.PortsAllowed(ctx.Protocol);
        switch (option.Id)
        {
            case ToDest:
            case ToSrc:
                {
                    var r = NatRangeData.For(ctx.Family);
                    NatRange.ParseTo(argument!, portOk, r, ctx.Family, ctx.Names);
                    d.MinAddress = r.MinAddress;
                    d.MaxAddress = r.MaxAddress;
                    d.MinPort = r.MinPort;
                    d.MaxPort = r.MaxPort;
                    d.Flags |= r.Flags;
                    d.BasePort = KeepsBasePort(ctx.Family) ? r.BasePort : (ushort)0;
                    break;
                }
            case ToPorts:
                {
                    var r = NatRangeData.For(ctx.Family);
                    NatRange.ParsePorts(argument!, portOk, r, ctx.Names);
                    d.MinPort = r.MinPort;
                    d.MaxPort = r.MaxPort;
                    d.Flags |= r.Flags;
                    d.BasePort = KeepsBasePort(ctx.Family) ? r.BasePort : (ushort)0;
                    break;
                }
            case Random:
                d.Flags |= NatRangeFlags.ProtoRandom;
                break;
            case RandomFully:
                d.Flags |= NatRangeFlags.ProtoRandomFully;
                break;
            case Persistent:
                d.Flags |= NatRangeFlags.Persistent;
                break;
        }
    }

    protected override void Save(StringBuilder sb, NatRangeData d, IpFamily family) =>
        NatRange.Print(sb, d, family, SaveRangeOption, "--", SkipColon);

    protected override void Print(StringBuilder sb, NatRangeData d, IpFamily family, bool numeric) =>
        NatRange.Print(sb, d, family, PrintRangeOption, string.Empty, SkipColon);

    /// <summary>masquerade/redirect checkentry: an address range is refused.</summary>
    protected static string? RefuseMapIps(NatRangeData d) =>
        d.Has(NatRangeFlags.MapIps) ? RulesetEditor.InvalidArgument : null;
}
