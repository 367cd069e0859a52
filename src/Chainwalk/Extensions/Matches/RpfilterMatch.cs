using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Matches;

/// <summary>The XT_RPFILTER_* flags.</summary>
[Flags]
public enum RpfilterFlags : byte
{
    None = 0,
    Loose = 1,
    ValidMark = 2,
    AcceptLocal = 4,
    Invert = 8,
}

/// <summary>Options of <c>-m rpfilter</c> (struct xt_rpfilter_info).</summary>
public sealed class RpfilterData : ExtensionData
{
    public RpfilterFlags Flags;
}

/// <summary><c>-m rpfilter</c> (libxt_rpfilter.c, ipt_rpfilter.c/ip6t_rpfilter.c): raw or mangle PREROUTING only.</summary>
public sealed class RpfilterMatch : XtExtension<RpfilterData>
{
    private const int OLoose = 0, OValidMark = 1, OAcceptLocal = 2, OInvert = 3;

    public override string Name => "rpfilter";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<string>? Tables { get; } = ["mangle", "raw"];

    public override HookMask Hooks => HookMask.Prerouting;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("loose", OLoose, OptionArg.None),
        new("validmark", OValidMark, OptionArg.None),
        new("accept-local", OAcceptLocal, OptionArg.None),
        new("invert", OInvert, OptionArg.None),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, RpfilterData d)
    {
        d.Flags |= option.Id switch
        {
            OLoose => RpfilterFlags.Loose,
            OValidMark => RpfilterFlags.ValidMark,
            OAcceptLocal => RpfilterFlags.AcceptLocal,
            _ => RpfilterFlags.Invert,
        };
    }

    private static void Append(StringBuilder sb, RpfilterData d, string prefix)
    {
        if ((d.Flags & RpfilterFlags.Loose) != 0) sb.Append(' ').Append(prefix).Append("loose");
        if ((d.Flags & RpfilterFlags.ValidMark) != 0) sb.Append(' ').Append(prefix).Append("validmark");
        if ((d.Flags & RpfilterFlags.AcceptLocal) != 0) sb.Append(' ').Append(prefix).Append("accept-local");
        if ((d.Flags & RpfilterFlags.Invert) != 0) sb.Append(' ').Append(prefix).Append("invert");
    }

    protected override void Save(StringBuilder sb, RpfilterData d, IpFamily family) => Append(sb, d, "--");

    protected override void Print(StringBuilder sb, RpfilterData d, IpFamily family, bool numeric)
    {
        sb.Append(" rpfilter");
        Append(sb, d, string.Empty);
    }

    /// <summary>
    /// ipt_rpfilter.c / ip6t_rpfilter.c: a looped-back packet passes; an IPv4 0.0.0.0 source to the limited
    /// broadcast or 224.0.0.0/24 passes (DHCP); an IPv6 unspecified source passes; otherwise the source is
    /// looked up as a destination: the route must be unicast (local only with --accept-local) and leave by
    /// the input interface (any interface with --loose). --validmark uses the packet's mark in the lookup.
    /// The IPv6 strict lookup (RT6_LOOKUP_F_IFACE) is approximated by the best route's device.
    /// </summary>
    protected override bool Match(PacketContext ctx, RpfilterData d)
    {
        bool invert = (d.Flags & RpfilterFlags.Invert) != 0;
        string? inDev = ctx.InDev;
        if (ctx.Skb.PacketType == Engine.PacketType.Loopback || inDev is null || ctx.Host.FindLink(inDev)?.Kind == "loopback") return !invert;
        Wire.Packet p = ctx.Packet;
        if (ctx.Family == IpFamily.V4)
        {
            if ((p.Source >> 24) == 0 && (p.Destination == 0xffffffff || (p.Destination >> 8) == 0xe00000)) return !invert;
        }
        else if (p.Source == UInt128.Zero)
        {
            return !invert;
        }
        var q = new Routing.RouteQuery(ctx.Family, p.Source)
        {
            Mark = (d.Flags & RpfilterFlags.ValidMark) != 0 ? ctx.Skb.Mark : 0,
        };
        Routing.RouteResult r = Routing.RouteLookup.Output(ctx.Host, q);
        bool ok;
        if (!r.Ok) ok = false;
        else if (r.Type == Routing.RouteType.Local) ok = (d.Flags & RpfilterFlags.AcceptLocal) != 0
            && (ctx.Family == IpFamily.V6 || (d.Flags & RpfilterFlags.Loose) != 0 || r.Device == inDev || r.Device == "lo" && IsOwnAddressOn(ctx, p.Source, inDev));
        else if (r.Type != Routing.RouteType.Unicast) ok = false;
        else ok = (d.Flags & RpfilterFlags.Loose) != 0 || r.Device == inDev;
        return ok ^ invert;
    }

    private static bool IsOwnAddressOn(PacketContext ctx, UInt128 address, string dev)
    {
        foreach (Host.InterfaceAddress a in ctx.Host.Addresses)
        {
            if (a.Family == ctx.Family && a.Address == address && a.Device == dev) return true;
        }
        return false;
    }
}
