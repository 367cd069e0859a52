using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Matches;

/// <summary>Route types (RTN_*): bit i = type i, UNSPEC = bit 0.</summary>
[Flags]
public enum AddrType : ushort
{
    None = 0,
    Unspec = 1 << 0,
    Unicast = 1 << 1,
    Local = 1 << 2,
    Broadcast = 1 << 3,
    Anycast = 1 << 4,
    Multicast = 1 << 5,
    Blackhole = 1 << 6,
    Unreachable = 1 << 7,
    Prohibit = 1 << 8,
    Throw = 1 << 9,
    Nat = 1 << 10,
    Xresolve = 1 << 11,
}

/// <summary>Options of <c>-m addrtype</c> revision 1 (struct xt_addrtype_info_v1).</summary>
public sealed class AddrtypeData : ExtensionData
{
    public AddrType Source;
    public AddrType Dest;
    public bool InvertSource;
    public bool InvertDest;
    public bool LimitIfaceIn;
    public bool LimitIfaceOut;
}

/// <summary>
/// <c>-m addrtype</c> (libxt_addrtype.c revision 1, xt_addrtype.c): source/destination route types,
/// optionally limited to the incoming or outgoing interface. The kernel refuses --limit-iface-out in
/// PREROUTING/INPUT, --limit-iface-in in POSTROUTING/OUTPUT, and for IPv6 BLACKHOLE, BROADCAST and
/// every type from PROHIBIT on.
/// </summary>
public sealed class AddrtypeMatch : XtExtension<AddrtypeData>
{
    private const int OSrc = 0, ODst = 1, OIn = 2, OOut = 3;

    public override string Name => "addrtype";

    /// <summary>The revision iptables 1.8.9 uses with this kernel.</summary>
    protected override void Init(ParseContext ctx, AddrtypeData data) => data.Revision = 1;

    public override ExtensionKind Kind => ExtensionKind.Match;

    /// <inheritdoc/>
    public override bool SharesEqualData => true;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("src-type", OSrc, OptionArg.Required, OptFlags.Invert),
        new("dst-type", ODst, OptionArg.Required, OptFlags.Invert),
        new("limit-iface-in", OIn, OptionArg.None) { Excludes = 1UL << OOut },
        new("limit-iface-out", OOut, OptionArg.None) { Excludes = 1UL << OIn },
    ];

    private static readonly (string Name, AddrType Value)[] TypeNames =
    [
        ("UNSPEC", AddrType.Unspec), ("UNICAST", AddrType.Unicast), ("LOCAL", AddrType.Local), ("BROADCAST", AddrType.Broadcast),
        ("ANYCAST", AddrType.Anycast), ("MULTICAST", AddrType.Multicast), ("BLACKHOLE", AddrType.Blackhole),
        ("UNREACHABLE", AddrType.Unreachable), ("PROHIBIT", AddrType.Prohibit), ("THROW", AddrType.Throw), ("NAT", AddrType.Nat),
        ("XRESOLVE", AddrType.Xresolve),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, AddrtypeData d)
    {
        switch (option.Id)
        {
            case OSrc:
                d.Source |= ParseTypes(argument!);
                if (invert) d.InvertSource = true;
                break;
            case ODst:
                d.Dest |= ParseTypes(argument!);
                if (invert) d.InvertDest = true;
                break;
            case OIn:
                d.LimitIfaceIn = true;
                break;
            case OOut:
                d.LimitIfaceOut = true;
                break;
        }
    }

    private static AddrType ParseTypes(string arg)
    {
        AddrType mask = AddrType.None;
        int pos = 0;
        int comma;
        while ((comma = arg.IndexOf(',', pos)) >= 0)
        {
            if (comma == pos || !XtParse.TryPrefixName(arg.AsSpan(pos, comma - pos), TypeNames, out AddrType t))
                throw XtablesException.Param($"addrtype: bad type `{arg[pos..]}'");
            mask |= t;
            pos = comma + 1;
        }
        if (pos == arg.Length || !XtParse.TryPrefixName(arg.AsSpan(pos), TypeNames, out AddrType last))
            throw XtablesException.Param($"addrtype: bad type \"{arg[pos..]}\"");
        return mask | last;
    }

    protected override void FinalCheck(ParseContext ctx, AddrtypeData d)
    {
        if ((d.Given & ((1UL << OSrc) | (1UL << ODst))) == 0)
            throw ctx.Error("addrtype: you must specify --src-type or --dst-type");
    }

    protected override string? CheckEntry(RuleCheckContext ctx, AddrtypeData d)
    {
        if (d.LimitIfaceIn && d.LimitIfaceOut) return RulesetEditor.InvalidArgument;
        if ((ctx.EntryHooks & (HookMask.Prerouting | HookMask.Input)) != 0 && d.LimitIfaceOut) return RulesetEditor.InvalidArgument;
        if ((ctx.EntryHooks & (HookMask.Postrouting | HookMask.Output)) != 0 && d.LimitIfaceIn) return RulesetEditor.InvalidArgument;
        if (ctx.Family == IpFamily.V6)
        {
            AddrType both = d.Source | d.Dest;
            if ((both & AddrType.Blackhole) != 0 || (ushort)both >= (ushort)AddrType.Prohibit || (both & AddrType.Broadcast) != 0)
                return RulesetEditor.InvalidArgument;
        }
        return null;
    }

    private static void AppendTypes(StringBuilder sb, AddrType mask)
    {
        string sep = string.Empty;
        foreach (var (name, v) in TypeNames)
        {
            if ((mask & v) == 0) continue;
            sb.Append(sep).Append(name);
            sep = ",";
        }
    }

    protected override void Save(StringBuilder sb, AddrtypeData d, IpFamily family)
    {
        if (d.Source != 0)
        {
            if (d.InvertSource) sb.Append(" !");
            sb.Append(" --src-type ");
            AppendTypes(sb, d.Source);
        }
        if (d.Dest != 0)
        {
            if (d.InvertDest) sb.Append(" !");
            sb.Append(" --dst-type ");
            AppendTypes(sb, d.Dest);
        }
        if (d.LimitIfaceIn) sb.Append(" --limit-iface-in");
        if (d.LimitIfaceOut) sb.Append(" --limit-iface-out");
    }

    protected override void Print(StringBuilder sb, AddrtypeData d, IpFamily family, bool numeric)
    {
        sb.Append(" ADDRTYPE match");
        if (d.Source != 0)
        {
            sb.Append(" src-type ");
            if (d.InvertSource) sb.Append('!');
            AppendTypes(sb, d.Source);
        }
        if (d.Dest != 0)
        {
            sb.Append(" dst-type ");
            if (d.InvertDest) sb.Append('!');
            AppendTypes(sb, d.Dest);
        }
        if (d.LimitIfaceIn) sb.Append(" limit-in");
        if (d.LimitIfaceOut) sb.Append(" limit-out");
    }

    /// <summary>
    /// xt_addrtype.c (revision 1): IPv4 asks inet_dev_addr_type for each address (limited to the in or out
    /// device with --limit-iface-*), one type per address; IPv6 requires each of MULTICAST/UNICAST/UNSPEC
    /// asked for and then any of LOCAL/ANYCAST/UNREACHABLE from a route lookup.
    /// </summary>
    /// <summary>Addresses and devices, read against the host's addresses and routes (the walk memo checks the host generation).</summary>
    public override bool FlowStable(ExtensionData data) => true;

    protected override bool Match(PacketContext ctx, AddrtypeData d)
    {
        string? dev = d.LimitIfaceIn ? ctx.InDev : d.LimitIfaceOut ? ctx.OutDev : null;
        if (d.Source != AddrType.None && !(TypeMatches(ctx, dev, ctx.Packet.Source, d.Source) ^ d.InvertSource)) return false;
        if (d.Dest != AddrType.None && !(TypeMatches(ctx, dev, ctx.Packet.Destination, d.Dest) ^ d.InvertDest)) return false;
        return true;
    }

    private static bool TypeMatches(PacketContext ctx, string? dev, UInt128 address, AddrType mask)
    {
        if (ctx.Family == IpFamily.V4)
        {
            Routing.RouteType t = Routing.RouteLookup.AddressType4(ctx.Host, address, dev);
            return ((ushort)mask & (1 << (int)t)) != 0;
        }
        IReadOnlySet<Routing.RouteType> types = Routing.RouteLookup.AddressTypes6(ctx.Host, address, dev);
        if ((mask & AddrType.Multicast) != 0 && !types.Contains(Routing.RouteType.Multicast)) return false;
        if ((mask & AddrType.Unicast) != 0 && !types.Contains(Routing.RouteType.Unicast)) return false;
        if ((mask & AddrType.Unspec) != 0 && !types.Contains(Routing.RouteType.Unspec)) return false;
        if ((mask & (AddrType.Local | AddrType.Anycast | AddrType.Unreachable)) != 0)
        {
            return ((mask & AddrType.Local) != 0 && types.Contains(Routing.RouteType.Local))
                || ((mask & AddrType.Anycast) != 0 && types.Contains(Routing.RouteType.Anycast))
                || ((mask & AddrType.Unreachable) != 0 && types.Contains(Routing.RouteType.Unreachable));
        }
        return true;
    }
}
