using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Extensions.Targets;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Routing;

namespace Chainwalk.Nat;

/// <summary>
/// What the NAT targets do when a rule hits (net/netfilter/xt_nat.c, nf_nat_masquerade.c, nf_nat_redirect.c,
/// xt_NETMAP.c): build the range and hand it to <see cref="NatCore.SetupInfo"/>. The verdict is ACCEPT (the
/// nat chain stops there); the packet is rewritten by the nat hook after the chain.
/// </summary>
public static class NatTargets
{
    /// <summary>SNAT and DNAT (all revisions: the range as parsed).</summary>
    public static Verdict Bind(PacketContext ctx, in NatRange2 range, NatManip manip, string target)
    {
        if (ctx.Skb.Conntrack is not ConnEntry ct) return Verdict.Accept;
        // With a trace the binding is explained (out of line: its tuples and string building kept out of this frame,
        // which every new connection's binding sets up and clears).
        if (ctx.Netfilter.Current?.Trace is not null) return BindExplained(ctx, ct, range, manip, target);
        // A one-address DNAT range (kube-proxy's endpoints) gives the address the packet will carry before the binding is
        // worked out: the input route memo's entry is fetched that much earlier (the binding's own work overlaps it).
        bool early = manip == NatManip.Dst && range.MinAddress == range.MaxAddress && range.Has(NatRangeFlags.MapIps);
        if (early) PrefetchRouteForDnat(ctx, ct, range.MinAddress);
        Verdict v = NatCore.SetupInfo(ctx, ct, range, manip, out _);
        if (!early) PrefetchRouteAfterDnat(ctx, ct, manip);
        return v;
    }

    /// <summary>
    /// <see cref="PrefetchRouteAfterDnat"/> for the one address of a DNAT range, before the binding is made (a hint: a
    /// binding that keeps the destination, or a clash, only fetched another entry).
    /// </summary>
    private static void PrefetchRouteForDnat(PacketContext ctx, ConnEntry ct, UInt128 address)
    {
        if (ctx.Hook == Rules.Hook.Prerouting && ct.Family == IpFamily.V4 && address <= uint.MaxValue && ctx.Skb.InDev is not null)
            ctx.Netfilter.PrefetchInputRouteAfterDnat((uint)address, (uint)ctx.Packet.Source);
    }

    /// <summary>The input route will be asked for the bound destination of this IPv4 packet, after the rewrite: fetched meanwhile.</summary>
    private static void PrefetchRouteAfterDnat(PacketContext ctx, ConnEntry ct, NatManip manip)
    {
        if (manip == NatManip.Dst && ctx.Hook == Rules.Hook.Prerouting && ct.Family == IpFamily.V4 && ctx.Skb.InDev is not null)
            ctx.Netfilter.PrefetchInputRouteAfterDnat(ct.SourceV4(ConnDirection.Reply), (uint)ctx.Packet.Source);
    }

    /// <summary><see cref="Bind"/> with the binding explained (what the packet looked like before and after it).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static Verdict BindExplained(PacketContext ctx, ConnEntry ct, in NatRange2 range, NatManip manip, string target)
    {
        ct.Reply.TryInvert(out ConnTuple before);
        Verdict v = NatCore.SetupInfo(ctx, ct, range, manip, out string how);
        PrefetchRouteAfterDnat(ctx, ct, manip);
        ct.Reply.TryInvert(out ConnTuple after);
        string from = manip == NatManip.Src ? NatCore.Endpoint(before.Family, before.Source, before.SourcePort, before) : NatCore.Endpoint(before.Family, before.Destination, before.DestinationPort, before);
        string to = manip == NatManip.Src ? NatCore.Endpoint(after.Family, after.Source, after.SourcePort, after) : NatCore.Endpoint(after.Family, after.Destination, after.DestinationPort, after);
        ctx.Note($"{target} binding chosen by {ctx.Table} {ctx.Chain} rule {ctx.RuleNumber.ToString(System.Globalization.CultureInfo.InvariantCulture)}: {from} -> {to} ({how})");
        return v;
    }

    /// <summary>
    /// nf_nat_masquerade_ipv4 / _ipv6 (net/netfilter/nf_nat_masquerade.c): IPv4, the out interface's address for the next
    /// hop of the route the packet carries (rt_nexthop: the route's gateway, else the destination when on link), as
    /// inet_select_addr picks it; IPv6, ipv6_dev_get_saddr on the out interface for the packet's destination (the
    /// route's gateway plays no part). The connection remembers the interface: leaving by another one later kills it
    /// (nf_nat_oif_changed).
    /// </summary>
    // No zeroing of the frame on entry (the range and the address, ~80 bytes, were cleared per binding): every local is
    // assigned before it is read (no stackalloc here).
    [System.Runtime.CompilerServices.SkipLocalsInit]
    public static Verdict Masquerade(PacketContext ctx, NatRangeData d)
    {
        if (ctx.Skb.Conntrack is not ConnEntry ct) return Verdict.Accept;
        // A locally generated packet with source 0.0.0.0 is probably not meant to be masqueraded.
        if (ctx.Family == IpFamily.V4 && ct.SourceV4(ConnDirection.Original) == 0) return Verdict.Accept;
        string? outDev = ctx.OutDev;
        // IPv4's answer by a flag and an address (not a 32-byte UInt128? returned through memory and read back).
        UInt128 newsrc;
        bool found;
        if (ctx.Family == IpFamily.V4)
        {
            found = TrySource4(ctx, outDev, ctx.Skb.NextHop, out newsrc);
        }
        else
        {
            UInt128? src6 = RouteLookup.SelectSource6(ctx.Host, outDev, ctx.Packet.Destination);
            found = src6.HasValue;
            newsrc = src6.GetValueOrDefault();
        }
        if (!found)
        {
            if (ctx.Family == IpFamily.V4) ctx.Log((outDev ?? "") + " ate my IP address", 6); // pr_info
            ctx.Note($"MASQUERADE: {outDev} has no address to masquerade with: dropped");
            return Verdict.Drop;
        }
        ct.MasqueradeDevice = outDev;
        var range = new NatRange2(d.Flags | NatRangeFlags.MapIps, newsrc, newsrc, d.MinPort, d.MaxPort);
        // Bind's steps for a source binding (no route to fetch: that is DNAT's), without its second connection check.
        if (ctx.Netfilter.Current?.Trace is not null) return BindExplained(ctx, ct, range, NatManip.Src, "MASQUERADE");
        return NatCore.SetupInfo(ctx, ct, range, NatManip.Src, out _);
    }

    /// <summary>The last MASQUERADE source choice (inet_select_addr for a device and next hop) while the host is unchanged.</summary>
    internal sealed class SourceMemo
    {
        /// <summary>The host's <see cref="VirtualHost.Generation"/> the answer is for (0: none yet; a generation is never 0 and
        /// never another host's, so it names the host's FIB as <see cref="Fib.Of"/> would, without reading the FIB object).</summary>
        public long Generation;
        public string? Device;
        public UInt128 NextHop;
        /// <summary>The address chosen, when <see cref="HasSource"/> (the device had one).</summary>
        public UInt128 Source;
        public bool HasSource;
    }

    /// <summary>The memo of a netfilter without conntrack hooks of its own (per thread).</summary>
    [ThreadStatic]
    private static SourceMemo? _memo;

    /// <summary>
    /// inet_select_addr(out, nexthop, RT_SCOPE_UNIVERSE), remembered for the last (host generation, device, next hop):
    /// connections masqueraded through one gateway (the common case) ask for the same address again and again.
    /// </summary>
    private static bool TrySource4(PacketContext ctx, string? outDev, UInt128 nexthop, out UInt128 source)
    {
        long generation = ctx.Host.Generation;
        // The netfilter's own memo (no thread-static read: that is a call into the runtime per packet).
        SourceMemo m = (ctx.Netfilter.Conntrack as ConntrackHooks)?.MasqueradeSource ?? (_memo ??= new SourceMemo());
        if (m.Generation == generation && m.NextHop == nexthop && string.Equals(m.Device, outDev, StringComparison.Ordinal))
        {
            source = m.Source;
            return m.HasSource;
        }
        UInt128? src = RouteLookup.SelectSource4(ctx.Host, outDev, nexthop, 0);
        m.Generation = generation;
        m.Device = outDev;
        m.NextHop = nexthop;
        m.Source = src.GetValueOrDefault();
        m.HasSource = src.HasValue;
        source = m.Source;
        return m.HasSource;
    }

    /// <summary>
    /// The address MASQUERADE chose last (<see cref="TrySource4"/>'s memo) when it was for this device and next hop, else null;
    /// no route lookup (a hint for the conntrack slot NAT will probe; the host generation is not checked: a stale answer
    /// only fetches another slot).
    /// </summary>
    internal static UInt128? LastMasqueradeSource4(SourceMemo m, string? outDev, UInt128 nexthop) =>
        m.Generation != 0 && m.HasSource && m.NextHop == nexthop && ReferenceEquals(m.Device, outDev) ? m.Source : null;

    /// <summary>
    /// nf_nat_redirect_ipv4 / _ipv6: the destination becomes the incoming interface's first address (127.0.0.1 or
    /// ::1 for locally generated packets); an interface without one drops the packet.
    /// </summary>
    public static Verdict Redirect(PacketContext ctx, NatRangeData d)
    {
        if (ctx.Skb.Conntrack is not ConnEntry) return Verdict.Accept;
        UInt128 newdst;
        if (ctx.Hook == Rules.Hook.Output)
        {
            newdst = ctx.Family == IpFamily.V4 ? 0x7f000001 : UInt128.One;
        }
        else
        {
            InterfaceAddress? first = ctx.InDev is { } dev ? Network.AddressesOf(ctx.Host, dev, ctx.Family).FirstOrDefault() : null;
            if (first is null)
            {
                ctx.Note($"REDIRECT: {ctx.InDev} has no address: dropped");
                return Verdict.Drop;
            }
            newdst = first.Address;
        }
        var range = new NatRange2(d.Flags | NatRangeFlags.MapIps, newdst, newdst, d.MinPort, d.MaxPort);
        return Bind(ctx, range, NatManip.Dst, "REDIRECT");
    }

    /// <summary>
    /// netmap_tg4 / netmap_tg6: the host part of the packet's address (destination at PREROUTING and OUTPUT,
    /// source at POSTROUTING and INPUT) kept, the network part taken from the rule's prefix.
    /// </summary>
    public static Verdict Netmap(PacketContext ctx, NetmapData d)
    {
        if (ctx.Skb.Conntrack is not ConnEntry) return Verdict.Accept;
        NatManip manip = NatCore.ManipOf(ctx.Hook);
        UInt128 mask = d.Mask(ctx.Family);
        UInt128 full = IpNet.FullMask(ctx.Family);
        UInt128 addr = manip == NatManip.Dst ? ctx.Packet.Destination : ctx.Packet.Source;
        UInt128 mapped = (addr & ~mask & full) | (d.MinAddress & mask);
        var range = new NatRange2(d.Flags | NatRangeFlags.MapIps, mapped, mapped, 0, 0);
        return Bind(ctx, range, manip, "NETMAP");
    }
}
