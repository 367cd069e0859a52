using System.Globalization;
using Chainwalk.Host;
using Chainwalk.Net;

namespace Chainwalk.Routing;

/// <summary>
/// The kernel's routing decision on the virtual host, from its addresses, links and routes (the
/// tables <see cref="Network.Routes"/> derives): output routes for locally generated packets
/// (ip_route_output_key / ip6_route_output), input decisions for arriving packets (ip_route_input /
/// ip6_route_input), source address selection (inet_select_addr, RFC 6724 as ipv6_dev_get_saddr does
/// it) and address types as xt_addrtype asks for them. Rules are the default ones (IPv4: local, main,
/// default; IPv6: local, main), so the mark does not change the answer yet.
/// </summary>
public static class RouteLookup
{
    private const int ScopeUniverse = 0;
    private const int ScopeLink = 253;
    private const int ScopeHost = 254;

    /// <summary>The answer to <paramref name="q"/>: an input decision's route when it names an input interface, else an output route.</summary>
    public static RouteResult Lookup(VirtualHost host, RouteQuery q) =>
        q.InputInterface is null ? Output(host, q) : Input(host, q).Route;

    /// <summary>The route of a locally generated packet (what <c>ip route get DST [from SRC] [oif DEV]</c> answers).</summary>
    public static RouteResult Output(VirtualHost host, RouteQuery q) =>
        q.Family == IpFamily.V4 ? Output4(host, q) : Output6(host, q);

    /// <summary>
    /// <see cref="Output(VirtualHost, RouteQuery)"/> for the pipeline: the answer (an immutable record) is kept per
    /// destination, source and bound device while the host does not change (Fib), as the kernel's FIB and nexthop
    /// caches make a repeated lookup cheap. The mark is part of the query but, with the default rules only, not of the answer.
    /// </summary>
    internal static RouteResult OutputShared(VirtualHost host, IpFamily family, UInt128 dst, UInt128? src, string? oif, uint mark)
    {
        Fib fib = Fib.Of(host);
        if (fib.TryGetOutput(family, dst, src, oif, out RouteResult? r)) return r;
        r = Output(host, new RouteQuery(family, dst) { Source = src, OutputInterface = oif, Mark = mark });
        fib.KeepOutput(family, dst, src, oif, r);
        return r;
    }

    /// <summary>The decision for a packet arriving on <see cref="RouteQuery.InputInterface"/> (<c>ip route get DST from SRC iif DEV</c>).</summary>
    public static InputDecision Input(VirtualHost host, RouteQuery q)
    {
        if (q.InputInterface is null) throw new ArgumentException("an input decision needs the input interface", nameof(q));
        return q.Family == IpFamily.V4 ? Input4(host, q) : Input6(host, q);
    }

    /// <summary>Whether <paramref name="address"/> is one of the host's own addresses (any interface).</summary>
    public static bool IsLocalAddress(VirtualHost host, IpFamily family, UInt128 address)
    {
        foreach (InterfaceAddress a in host.Addresses)
        {
            if (a.Family == family && a.Address == address && !a.Tentative) return true;
        }
        return false;
    }

    // ------------------------------------------------------------------ IPv4

    private static bool IsMulticast4(UInt128 a) => (a >> 28) == 0xe;

    private static bool IsLimitedBroadcast(UInt128 a) => a == uint.MaxValue;

    private static bool IsZeroNet(UInt128 a) => (a >> 24) == 0;

    private static bool IsLoopback4(UInt128 a) => (a >> 24) == 127;

    private static bool IsLocalMulticast4(UInt128 a) => (a >> 8) == 0xe00000;

    private static int Scope4(InterfaceAddress a) => Network.AddressScope(a) == "host" ? ScopeHost : ScopeUniverse;

    private static int RouteScope(RouteView r) => r.Scope switch
    {
        "host" => ScopeHost,
        "link" => ScopeLink,
        _ => ScopeUniverse,
    };

    private static RouteType TypeOf(string type) => type switch
    {
        "unicast" => RouteType.Unicast,
        "local" => RouteType.Local,
        "broadcast" => RouteType.Broadcast,
        "anycast" => RouteType.Anycast,
        "multicast" => RouteType.Multicast,
        "blackhole" => RouteType.Blackhole,
        "unreachable" => RouteType.Unreachable,
        "prohibit" => RouteType.Prohibit,
        "throw" => RouteType.Throw,
        _ => RouteType.Unspec,
    };

    /// <summary>fib_props[type].error: the routes that answer with an error instead of a next hop.</summary>
    private static RouteError RejectError(RouteType t) => t switch
    {
        RouteType.Unreachable => RouteError.HostUnreachable,
        RouteType.Prohibit => RouteError.PermissionDenied,
        RouteType.Blackhole => RouteError.InvalidArgument,
        _ => RouteError.None,
    };

    private static bool Flag(VirtualHost host, string key, bool dflt = false) =>
        host.GetSysctl(key) is { } v ? v.Trim() != "0" : dflt;

    private static int IntSysctl(VirtualHost host, string key) =>
        host.GetSysctl(key) is { } v && int.TryParse(v.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) ? n : 0;

    /// <summary>IN_DEV_ORCONF: the interface's value or "all".</summary>
    private static bool OrConf(VirtualHost host, string dev, string name) =>
        Flag(host, $"net.ipv4.conf.all.{name}") || Flag(host, $"net.ipv4.conf.{dev}.{name}");

    private static bool Forwarding4(VirtualHost host, string dev) =>
        host.GetSysctl($"net.ipv4.conf.{dev}.forwarding") is { } v ? v.Trim() != "0" : Flag(host, "net.ipv4.ip_forward");

    /// <summary>IN_DEV_RPFILTER: the larger of net.ipv4.conf.all.rp_filter and the interface's.</summary>
    public static int ReversePathFilter(VirtualHost host, string dev) =>
        Math.Max(IntSysctl(host, "net.ipv4.conf.all.rp_filter"), IntSysctl(host, $"net.ipv4.conf.{dev}.rp_filter"));

    private static bool IgnoreLinkDown(VirtualHost host, IpFamily f, string? dev) => dev is not null &&
        (f == IpFamily.V4
            ? OrConf(host, dev, "ignore_routes_with_linkdown")
            : Flag(host, "net.ipv6.conf.all.ignore_routes_with_linkdown") || Flag(host, $"net.ipv6.conf.{dev}.ignore_routes_with_linkdown"));

    private static bool Covers(RouteView r, UInt128 a) => (a & IpNet.PrefixMask(r.Family, r.PrefixLength)) == r.Prefix;

    /// <summary>
    /// fib_lookup with the default rules: tables local and main (merged), then default; in each the
    /// longest prefix first, then the lowest metric; reject types answer with their error, throw goes
    /// on to the next table; next hops on another device than <paramref name="oif"/> are skipped.
    /// </summary>
    private static (RouteView? Route, RouteError Error) FibLookup4(VirtualHost host, UInt128 dst, string? oif)
    {
        // Without rules of its own the kernel keeps tables local and main in one trie (fib_unmerge
        // splits them only when a rule is added): one longest-prefix match over both, then table default.
        // The passes are kept in lookup order (longest prefix, then metric) while the host does not change (Fib).
        Fib fib = Fib.Of(host);
        for (int pass = 0; pass < 2; pass++)
        {
            foreach (RouteView r in pass == 0 ? fib.V4Main : fib.V4Default)
            {
                if (!Covers(r, dst)) continue;
                RouteType t = TypeOf(r.Type);
                if (t == RouteType.Throw) break;
                RouteError e = RejectError(t);
                if (e != RouteError.None) return (r, e);
                if (oif is not null && r.Device != oif) continue;
                if (r.LinkDown && IgnoreLinkDown(host, IpFamily.V4, r.Device)) continue;
                return (r, RouteError.None);
            }
        }
        return (null, RouteError.NetworkUnreachable);
    }

    /// <summary>The settings of <paramref name="dev"/> the IPv4 input path reads, from the sysctls (once per host generation).</summary>
    private static Fib.DeviceConf DeviceConf4(VirtualHost host, string dev) => Fib.Of(host).Device(dev, static (h, d) => new Fib.DeviceConf(
        RouteLocalnet: OrConf(h, d, "route_localnet"),
        Forwarding: Forwarding4(h, d),
        RpFilter: ReversePathFilter(h, d),
        AcceptLocal: OrConf(h, d, "accept_local"),
        TxRedirects: Flag(h, "net.ipv4.conf.all.send_redirects", true) && Flag(h, $"net.ipv4.conf.{d}.send_redirects", true),
        HasIpv4Address: h.Addresses.Any(a => a.Family == IpFamily.V4 && a.Device == d),
        IsLoopback: h.FindLink(d) is { Kind: "loopback" }));

    /// <summary>The IPv4 input plan of <paramref name="fib"/>'s host (<see cref="InputPlan4"/>), or null when its tables are too large.</summary>
    internal static InputPlan4? PlanInput4(Fib fib) =>
        InputPlan4.Make(fib, r => IgnoreLinkDown(fib.Host, IpFamily.V4, r.Device), d => DeviceConf4(fib.Host, d));

    /// <summary>inet_select_addr: a primary address of the device within the scope, the one on the destination's subnet first; else one from any device.</summary>
    public static UInt128? SelectSource4(VirtualHost host, string? dev, UInt128 dst, int scope) =>
        Fib.Of(host).Source4(dev, dst, scope, static (h, d, a, s) => SelectSource4Uncached(h, d, a, s));

    private static UInt128? SelectSource4Uncached(VirtualHost host, string? dev, UInt128 dst, int scope)
    {
        UInt128? first = null;
        if (dev is not null)
        {
            foreach (InterfaceAddress a in Network.AddressesOf(host, dev, IpFamily.V4))
            {
                if (Network.IsSecondary(host, a) || Scope4(a) > scope) continue;
                UInt128 m = IpNet.PrefixMask(IpFamily.V4, a.PrefixLength);
                if (dst == UInt128.Zero || (a.Address & m) == (dst & m)) return a.Address;
                first ??= a.Address;
            }
        }
        if (first is not null) return first;
        foreach (Link l in host.Links.OrderBy(l => l.Index))
        {
            foreach (InterfaceAddress a in Network.AddressesOf(host, l.Name, IpFamily.V4))
            {
                if (!Network.IsSecondary(host, a) && Scope4(a) <= scope && Scope4(a) != ScopeLink) return a.Address;
            }
        }
        return null;
    }

    /// <summary>fib_result_prefsrc: the route's src, else the next hop device's address for the route's scope.</summary>
    private static UInt128? PrefSrc4(VirtualHost host, RouteView r) =>
        r.Src ?? SelectSource4(host, r.Device, r.Via ?? UInt128.Zero, RouteScope(r));

    private static RouteResult Output4(VirtualHost host, RouteQuery q)
    {
        UInt128 dst = q.Destination;
        UInt128? src = q.Source is { } s && s != UInt128.Zero ? s : null;
        string? oif = q.OutputInterface;
        if (src is { } sa)
        {
            if (IsMulticast4(sa) || IsLimitedBroadcast(sa) || IsZeroNet(sa)) return RouteResult.Fail(RouteError.InvalidArgument);
            if (oif is null && (IsMulticast4(dst) || IsLimitedBroadcast(dst)))
            {
                InterfaceAddress? own = host.Addresses.FirstOrDefault(a => a.Family == IpFamily.V4 && a.Address == sa);
                if (own is null) return RouteResult.Fail(RouteError.NetworkUnreachable);
                return Make4(q, IsLimitedBroadcast(dst) ? RouteType.Broadcast : RouteType.Multicast, own.Device, null, null, src);
            }
            if (!IsLocalAddress(host, IpFamily.V4, sa)) return RouteResult.Fail(RouteError.NetworkUnreachable);
        }
        if (oif is not null)
        {
            Link? dev = host.FindLink(oif);
            if (dev is null) return RouteResult.Fail(RouteError.NoSuchDevice);
            if (!dev.Up) return RouteResult.Fail(RouteError.NetworkUnreachable);
            if (IsLocalMulticast4(dst) || IsLimitedBroadcast(dst))
            {
                src ??= SelectSource4(host, oif, UInt128.Zero, ScopeLink);
                return Make4(q, IsLimitedBroadcast(dst) ? RouteType.Broadcast : RouteType.Multicast, oif, null, null, src);
            }
            if (src is null)
            {
                if (IsMulticast4(dst)) src = SelectSource4(host, oif, UInt128.Zero, ScopeUniverse);
                else if (dst == UInt128.Zero) src = SelectSource4(host, oif, UInt128.Zero, ScopeHost);
            }
        }
        if (dst == UInt128.Zero)
        {
            // No destination: the packet goes to the source, else to 127.0.0.1, through lo.
            src ??= 0x7f000001;
            return new RouteResult(RouteType.Local, RouteError.None) { Device = "lo", PreferredSource = src };
        }
        (RouteView? r, RouteError err) = FibLookup4(host, dst, oif);
        if (err != RouteError.None || r is null)
        {
            if (oif is not null)
            {
                // The tables have no route through that device: the destination is taken to be on link.
                src ??= SelectSource4(host, oif, UInt128.Zero, ScopeLink);
                return Make4(q, RouteType.Unicast, oif, null, null, src);
            }
            return RouteResult.Fail(err) with { Route = r };
        }
        RouteType type = TypeOf(r.Type);
        if (type == RouteType.Local)
        {
            src ??= r.Src ?? dst;
            return new RouteResult(RouteType.Local, RouteError.None) { Device = "lo", PreferredSource = src, Route = r };
        }
        src ??= PrefSrc4(host, r);
        return Make4(q, type, r.Device, r.Via, r, src);
    }

    /// <summary>__mkroute_output: limited broadcast and multicast destinations change the type (and lose the gateway).</summary>
    private static RouteResult Make4(RouteQuery q, RouteType type, string? dev, UInt128? gw, RouteView? r, UInt128? src)
    {
        UInt128 dst = q.Destination;
        if (IsLimitedBroadcast(dst)) type = RouteType.Broadcast;
        else if (IsMulticast4(dst)) type = RouteType.Multicast;
        else if (IsZeroNet(dst)) return RouteResult.Fail(RouteError.InvalidArgument);
        if (type == RouteType.Broadcast || (type == RouteType.Multicast && r is not null && r.PrefixLength < 4)) gw = null;
        return new RouteResult(type, RouteError.None) { Device = dev, Gateway = gw, PreferredSource = src, Route = r };
    }

    private static InputDecision Drop(InputDropReason why, RouteError e, RouteResult? r = null) =>
        new(InputVerdict.Drop, why, r ?? RouteResult.Fail(e));

    private static InputDecision Input4(VirtualHost host, RouteQuery q) => Input4(host, q.Destination, q.Source ?? UInt128.Zero, q.InputInterface!);

    /// <summary>The IPv4 input decision without a query object (the pipeline's per-packet call).</summary>
    internal static InputDecision Input4(VirtualHost host, UInt128 dst, UInt128 src, string dev)
    {
        Link? link = host.FindLink(dev);
        if (link is null) return Drop(InputDropReason.NoRoute, RouteError.NoSuchDevice);
        if (IsMulticast4(dst))
        {
            // ip_check_mc_rcu: every interface with IPv4 that is up is in 224.0.0.1 (all hosts).
            if (dst != 0xe0000001 || !link.Up) return Drop(InputDropReason.NotJoined, RouteError.InvalidArgument);
            if (IsMulticast4(src) || IsLimitedBroadcast(src) || (IsLoopback4(src) && !OrConf(host, dev, "route_localnet")))
            {
                return Drop(InputDropReason.MartianSource, RouteError.InvalidArgument);
            }
            if (!IsZeroNet(src) && ValidateSource(host, src, dev, null) != RouteError.None) return Drop(InputDropReason.SourceValidation, RouteError.InvalidArgument);
            return new InputDecision(InputVerdict.Local, InputDropReason.None, new RouteResult(RouteType.Multicast, RouteError.None) { Device = "lo" });
        }
        if (IsMulticast4(src) || IsLimitedBroadcast(src)) return Drop(InputDropReason.MartianSource, RouteError.InvalidArgument);
        if (IsLimitedBroadcast(dst) || (src == UInt128.Zero && dst == UInt128.Zero)) return BroadcastInput(host, src, dev, null);
        if (IsZeroNet(src)) return Drop(InputDropReason.MartianSource, RouteError.InvalidArgument);
        if (IsZeroNet(dst)) return Drop(InputDropReason.MartianDestination, RouteError.InvalidArgument);
        Fib.DeviceConf conf = DeviceConf4(host, dev);
        bool localnet = conf.RouteLocalnet;
        if (IsLoopback4(dst))
        {
            if (!localnet) return Drop(InputDropReason.MartianDestination, RouteError.InvalidArgument);
        }
        else if (IsLoopback4(src) && !localnet)
        {
            return Drop(InputDropReason.MartianSource, RouteError.InvalidArgument);
        }
        bool forwarding = conf.Forwarding;
        (RouteView? r, RouteError err) = FibLookup4(host, dst, null);
        if (err != RouteError.None || r is null)
        {
            RouteError e = forwarding ? err : RouteError.HostUnreachable;
            return Drop(r is null ? InputDropReason.NoRoute : InputDropReason.RejectRoute, e, RouteResult.Fail(e) with { Route = r });
        }
        RouteType type = TypeOf(r.Type);
        if (type == RouteType.Broadcast) return BroadcastInput(host, src, dev, r);
        if (type == RouteType.Local)
        {
            if (ValidateSource(host, src, dev, null) != RouteError.None) return Drop(InputDropReason.SourceValidation, RouteError.InvalidArgument);
            return Fib.Of(host).Local(r);
        }
        if (!forwarding) return Drop(InputDropReason.ForwardingDisabled, RouteError.HostUnreachable);
        if (type != RouteType.Unicast) return Drop(InputDropReason.MartianDestination, RouteError.InvalidArgument);
        int valid = ValidateSourceCore(host, src, dev, r.Device);
        if (valid < 0) return Drop(InputDropReason.SourceValidation, RouteError.InvalidArgument);
        // __mkroute_input: out by the interface it came in on, with the source on that link (shared_media is on by default).
        // The decision holds nothing of the packet: one per route and redirect flag, shared.
        return Fib.Of(host).Forward(r, r.Device == dev && valid > 0);
    }

    private static InputDecision BroadcastInput(VirtualHost host, UInt128 src, string dev, RouteView? r)
    {
        if (!IsZeroNet(src) && ValidateSource(host, src, dev, null) != RouteError.None)
        {
            return Drop(InputDropReason.SourceValidation, RouteError.InvalidArgument);
        }
        return new InputDecision(InputVerdict.Local, InputDropReason.None, new RouteResult(RouteType.Broadcast, RouteError.None) { Device = "lo", Route = r });
    }

    /// <summary>
    /// fib_validate_source: without a reverse path filter only our own addresses are refused as source
    /// (unless accept_local); with one, the route back to the source must be unicast (or local with
    /// accept_local) and, in strict mode (1), leave by the interface the packet came in on; in loose
    /// mode (2) any route back will do. <paramref name="oif"/> is the forwarding route's device, if any.
    /// </summary>
    public static RouteError ValidateSource(VirtualHost host, UInt128 src, string dev, string? oif) =>
        ValidateSourceCore(host, src, dev, oif) < 0 ? RouteError.InvalidArgument : RouteError.None;

    /// <summary>-1 refused, 0 accepted, 1 accepted and the source is directly on <paramref name="dev"/> (a redirect may be sent).</summary>
    private static int ValidateSourceCore(VirtualHost host, UInt128 src, string dev, string? oif)
    {
        Fib.DeviceConf conf = DeviceConf4(host, dev);
        int rpf = conf.RpFilter;
        bool acceptLocal = conf.AcceptLocal;
        bool txRedirects = conf.TxRedirects;
        if (rpf == 0 && (dev != oif || !txRedirects))
        {
            if (acceptLocal) return 0;
            return IsLocalAddress(host, IpFamily.V4, src) ? -1 : 0;
        }
        (RouteView? back, RouteError err) = FibLookup4(host, src, null);
        bool noAddr = !conf.HasIpv4Address;
        if (err != RouteError.None || back is null) return rpf != 0 ? -1 : 0;
        RouteType t = TypeOf(back.Type);
        if (t != RouteType.Unicast && !(t == RouteType.Local && acceptLocal)) return -1;
        bool devMatch = back.Device == dev || (t == RouteType.Local && conf.IsLoopback);
        // A next hop without a gateway has scope host: the source is on the link.
        if (devMatch) return back.Via is null ? 1 : 0;
        if (noAddr) return rpf != 0 ? -1 : 0;
        if (rpf == 1) return -1;
        (RouteView? viaDev, RouteError err2) = FibLookup4(host, src, dev);
        return err2 == RouteError.None && viaDev is not null && TypeOf(viaDev.Type) == RouteType.Unicast && viaDev.Via is null ? 1 : 0;
    }

    // ------------------------------------------------------------------ IPv6

    private static bool IsMulticast6(UInt128 a) => (a >> 120) == 0xff;

    private static bool IsLinkLocal6(UInt128 a) => Network.IsLinkLocal(a);

    /// <summary>rt6_need_strict: multicast, link-local and loopback destinations need a route on the given device.</summary>
    private static bool NeedStrict(UInt128 a) => IsMulticast6(a) || IsLinkLocal6(a) || a == UInt128.One;

    /// <summary>
    /// fib6 lookup with the default rules (table local, then main): the longest prefix that has a
    /// usable route, the lowest metric first; within a metric the route on <paramref name="oif"/> is
    /// preferred, and with <paramref name="strict"/> only routes on it count.
    /// </summary>
    private static (RouteView? Route, RouteError Error) FibLookup6(VirtualHost host, UInt128 dst, string? oif, bool strict)
    {
        Fib fib = Fib.Of(host);
        for (int pass = 0; pass < 2; pass++)
        {
            // Tables local, then main, as Network.Routes lists them (derived once per host generation).
            var nodes = (pass == 0 ? fib.V6Local : fib.V6Main).Where(r => Covers(r, dst)).GroupBy(r => r.PrefixLength).OrderByDescending(g => g.Key);
            foreach (IGrouping<int, RouteView> node in nodes)
            {
                foreach (IGrouping<int, RouteView> sameMetric in node.GroupBy(r => r.Metric).OrderBy(g => g.Key))
                {
                    RouteView? best = null;
                    int bestScore = -1;
                    foreach (RouteView r in sameMetric)
                    {
                        RouteType t = TypeOf(r.Type);
                        RouteError e = RejectError(t);
                        if (e != RouteError.None) return (r, e);
                        if (r.LinkDown && IgnoreLinkDown(host, IpFamily.V6, r.Device)) continue;
                        bool devOk = oif is null || r.Device == oif;
                        if (!devOk && strict) continue;
                        int score = devOk ? 2 : 0;
                        if (score > bestScore)
                        {
                            best = r;
                            bestScore = score;
                        }
                    }
                    if (best is not null) return (best, RouteError.None);
                }
            }
        }
        return (null, RouteError.NetworkUnreachable);
    }

    private static RouteResult Output6(VirtualHost host, RouteQuery q)
    {
        UInt128 dst = q.Destination;
        string? oif = q.OutputInterface;
        if (oif is not null && host.FindLink(oif) is null) return RouteResult.Fail(RouteError.NoSuchDevice);
        bool strict = oif is not null || NeedStrict(dst);
        (RouteView? r, RouteError err) = FibLookup6(host, dst, oif, strict);
        if (err != RouteError.None || r is null) return RouteResult.Fail(err) with { Route = r };
        RouteType type = TypeOf(r.Type);
        UInt128? src = r.Src ?? SelectSource6(host, r.Device, dst);
        return new RouteResult(type, RouteError.None)
        {
            Device = type == RouteType.Local ? "lo" : r.Device,
            Gateway = r.Via,
            PreferredSource = src,
            Route = r,
        };
    }

    private static InputDecision Input6(VirtualHost host, RouteQuery q)
    {
        string dev = q.InputInterface!;
        Link? link = host.FindLink(dev);
        if (link is null) return Drop(InputDropReason.NoRoute, RouteError.NoSuchDevice);
        UInt128 dst = q.Destination;
        UInt128 src = q.Source ?? UInt128.Zero;
        (RouteView? r, RouteError err) = FibLookup6(host, dst, dev, NeedStrict(dst));
        RouteResult route = err != RouteError.None || r is null
            ? RouteResult.Fail(err) with { Route = r }
            : new RouteResult(TypeOf(r.Type), RouteError.None) { Device = r.Type == "local" ? "lo" : r.Device, Gateway = r.Via, Route = r };
        // ip6_rcv_core: checks made before PREROUTING.
        bool lo = link.Kind == "loopback";
        if (!lo && (src == UInt128.One || dst == UInt128.One))
        {
            return new InputDecision(InputVerdict.Drop, src == UInt128.One ? InputDropReason.MartianSource : InputDropReason.MartianDestination, route) { BeforePrerouting = true };
        }
        if (IsMulticast6(src)) return new InputDecision(InputVerdict.Drop, InputDropReason.MartianSource, route) { BeforePrerouting = true };
        if (IsMulticast6(dst) && (((int)(dst >> 112) & 0xf) is 0 or 1) && !lo)
        {
            return new InputDecision(InputVerdict.Drop, InputDropReason.MartianDestination, route) { BeforePrerouting = true };
        }
        if (!route.Ok) return new InputDecision(InputVerdict.Drop, r is null ? InputDropReason.NoRoute : InputDropReason.RejectRoute, route);
        if (route.Type == RouteType.Local) return new InputDecision(InputVerdict.Local, InputDropReason.None, route);
        if (route.Type == RouteType.Multicast)
        {
            // Every IPv6 interface is in ff02::1 (all nodes) and its solicited-node groups.
            bool joined = dst == (((UInt128)0xff02 << 112) | 1) || IsSolicitedNodeOfOwn(host, dev, dst);
            return joined
                ? new InputDecision(InputVerdict.Local, InputDropReason.None, route)
                : new InputDecision(InputVerdict.Drop, InputDropReason.NotJoined, route);
        }
        if (!Flag(host, "net.ipv6.conf.all.forwarding")) return new InputDecision(InputVerdict.Drop, InputDropReason.ForwardingDisabled, route);
        if (IsLinkLocal6(src) || IsLinkLocal6(dst)) return new InputDecision(InputVerdict.Drop, InputDropReason.BeyondScope, route);
        return new InputDecision(InputVerdict.Forward, InputDropReason.None, route) { Redirect = route.Device == dev };
    }

    private static bool IsSolicitedNodeOfOwn(VirtualHost host, string dev, UInt128 dst)
    {
        UInt128 prefix = ((UInt128)0xff02 << 112) | ((UInt128)1 << 32) | ((UInt128)0xff << 24);
        return host.Addresses.Any(a => a.Device == dev && a.Family == IpFamily.V6 && (prefix | (a.Address & 0xffffff)) == dst);
    }

    // RFC 6724 source address selection, as ipv6_dev_get_saddr does it.

    /// <summary>__ipv6_addr_src_scope: the scope value RFC 6724 compares (1 node, 2 link, 5 site, 14 global).</summary>
    private static int SrcScope6(UInt128 a)
    {
        if (IsMulticast6(a)) return (int)(a >> 112) & 0xf;
        if (a == UInt128.Zero) return 0;
        if (a == UInt128.One) return 1;
        if (IsLinkLocal6(a)) return 2;
        if ((a >> 118) == (0xfec0 >> 6)) return 5;
        if ((a >> 32) == 0xffff) return 14;
        return 14;
    }

    /// <summary>The default policy table's labels (ip addrlabel).</summary>
    private static int Label6(UInt128 a)
    {
        (UInt128 Prefix, int Len, int Label)[] table =
        [
            (UInt128.One, 128, 0),
            (UInt128.Zero, 96, 3),
            ((UInt128)0xffff << 32, 96, 4),
            ((UInt128)0x20010010 << 96, 28, 7),
            ((UInt128)0x20010020 << 96, 28, 7),
            ((UInt128)0x20010000 << 96, 32, 6),
            ((UInt128)0x3ffe << 112, 16, 12),
            ((UInt128)0x2002 << 112, 16, 2),
            ((UInt128)0xfec0 << 112, 10, 11),
            ((UInt128)0xfc00 << 112, 7, 5),
        ];
        foreach ((UInt128 p, int len, int label) in table)
        {
            if ((a & IpNet.PrefixMask(IpFamily.V6, len)) == p) return label;
        }
        return 1;
    }

    /// <summary>
    /// The source for <paramref name="dst"/> sent by <paramref name="dev"/>: for multicast and
    /// link-scope destinations only the device's addresses, else every device's; then RFC 6724's rules
    /// in order (same address, appropriate scope, outgoing interface, label, longest matching prefix),
    /// the first candidate winning ties.
    /// </summary>
    public static UInt128? SelectSource6(VirtualHost host, string? dev, UInt128 dst)
    {
        int dstScope = SrcScope6(dst);
        bool oifOnly = dev is not null && (IsMulticast6(dst) || dstScope <= 2);
        IEnumerable<string> devices = oifOnly ? [dev!] : host.Links.OrderBy(l => l.Index).Select(l => l.Name);
        int dstLabel = Label6(dst);
        InterfaceAddress? best = null;
        int[]? bestScore = null;
        foreach (string d in devices)
        {
            foreach (InterfaceAddress a in Network.AddressesOf(host, d, IpFamily.V6))
            {
                if (a.Tentative || a.Address == UInt128.Zero || IsMulticast6(a.Address)) continue;
                int s = SrcScope6(a.Address);
                int common = (int)UInt128.LeadingZeroCount(a.Address ^ dst);
                int[] score =
                [
                    a.Address == dst ? 1 : 0,
                    s >= dstScope ? -s : s - 128,
                    dev is null || a.Device == dev ? 1 : 0,
                    Label6(a.Address) == dstLabel ? 1 : 0,
                    Math.Min(common, a.PrefixLength),
                ];
                if (bestScore is null || Better(score, bestScore))
                {
                    best = a;
                    bestScore = score;
                }
            }
        }
        return best?.Address;
    }

    private static bool Better(int[] x, int[] y)
    {
        for (int i = 0; i < x.Length; i++)
        {
            if (x[i] != y[i]) return x[i] > y[i];
        }
        return false;
    }

    // ------------------------------------------------------------------ address types

    /// <summary>
    /// inet_addr_type / inet_dev_addr_type as xt_addrtype asks (IPv4): 0.0.0.0/8 and 255.255.255.255
    /// are BROADCAST, 224/4 MULTICAST, else the type of the matching route of table local (with
    /// <paramref name="dev"/>, only when the route is on that device), else UNICAST.
    /// </summary>
    public static RouteType AddressType4(VirtualHost host, UInt128 address, string? dev = null)
    {
        if (IsZeroNet(address) || IsLimitedBroadcast(address)) return RouteType.Broadcast;
        if (IsMulticast4(address)) return RouteType.Multicast;
        RouteView? r = null;
        foreach (RouteView l in Fib.Of(host).V4Local)
        {
            if (Covers(l, address))
            {
                r = l;
                break;
            }
        }
        if (r is null || RejectError(TypeOf(r.Type)) != RouteError.None) return RouteType.Unicast;
        if (dev is not null && r.Device != dev) return RouteType.Unicast;
        return TypeOf(r.Type);
    }

    /// <summary>
    /// The xt_addrtype types an IPv6 address has (match_type6): MULTICAST, UNICAST or UNSPEC from the
    /// address itself; LOCAL, ANYCAST and UNREACHABLE from an output route lookup (through
    /// <paramref name="dev"/> when given).
    /// </summary>
    public static IReadOnlySet<RouteType> AddressTypes6(VirtualHost host, UInt128 address, string? dev = null)
    {
        var set = new HashSet<RouteType>();
        if (address == UInt128.Zero) set.Add(RouteType.Unspec);
        else if (IsMulticast6(address)) set.Add(RouteType.Multicast);
        else set.Add(RouteType.Unicast);
        if (dev is not null && host.Addresses.Any(a => a.Family == IpFamily.V6 && a.Device == dev && a.Address == address)) set.Add(RouteType.Local);
        RouteResult r = Output6(host, new RouteQuery(IpFamily.V6, address) { OutputInterface = dev });
        if (!r.Ok || r.Type is RouteType.Unreachable or RouteType.Prohibit or RouteType.Blackhole)
        {
            set.Add(RouteType.Unreachable);
            return set;
        }
        if (r.Type == RouteType.Local) set.Add(RouteType.Local);
        if (r.Route is { } rv && rv.Type == "unicast" && rv.Via is null && rv.PrefixLength < 127 && rv.Prefix == address) set.Add(RouteType.Anycast);
        return set;
    }
}
