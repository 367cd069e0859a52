using System.Buffers.Binary;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Extensions;
using Chainwalk.Extensions.Targets;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Wire;

namespace Chainwalk.Nat;

/// <summary>Which half of a tuple a NAT hook rewrites (enum nf_nat_manip_type): the source after routing, the destination before.</summary>
public enum NatManip : byte
{
    Src = 0,
    Dst = 1,
}

/// <summary>A NAT range as nf_nat_setup_info takes it (struct nf_nat_range2): addresses, ports (or ICMP ids), base port.</summary>
public readonly record struct NatRange2(NatRangeFlags Flags, UInt128 MinAddress, UInt128 MaxAddress, ushort MinPort, ushort MaxPort, ushort BasePort = 0)
{
    /// <summary>NF_NAT_RANGE_PROTO_RANDOM_ALL.</summary>
    public const NatRangeFlags RandomAll = NatRangeFlags.ProtoRandom | NatRangeFlags.ProtoRandomFully;

    public bool Has(NatRangeFlags f) => (Flags & f) != 0;

    /// <summary>The range of a target's data (the kernel copies the rule's range, or builds one around an address).</summary>
    public static NatRange2 From(NatRangeData d) => new(d.Flags, d.MinAddress, d.MaxAddress, d.MinPort, d.MaxPort, d.BasePort);
}

/// <summary>
/// Test-only source of NAT port picks (<see cref="RuntimeState.NatKeyChooser"/>). The kernel starts a port (or ICMP
/// id) search at a random offset (nf_nat_l4proto_unique_tuple: source NAT, --random, --random-fully, a clash), so
/// any free key in the range is a pick it may make. The conformance harness reads the kernel's pick back from
/// <c>conntrack -L</c> and hands it over here; the engine takes it only when it lies in the set the kernel could
/// have chosen from (inside the range, tuple free) and otherwise reports the refusal and searches as usual, so a
/// wrong range or a wrong "taken" shows as a difference instead of being hidden.
/// </summary>
public interface INatKeyChooser
{
    /// <summary>The key (port, ICMP id) the connection with original tuple <paramref name="original"/> is to get for this manip.</summary>
    bool TryChoose(in ConnTuple original, NatManip manip, out ushort key);

    /// <summary>The pick from <see cref="TryChoose"/> is not one the kernel could make here (<paramref name="why"/>).</summary>
    void Refused(in ConnTuple original, NatManip manip, ushort key, string why);
}

/// <summary>
/// The binding of a connection (net/netfilter/nf_nat_core.c): nf_nat_setup_info chooses the tuple the
/// connection's packets will carry after this manip (get_unique_tuple: the original when it is free and in
/// range, an earlier mapping of the same source, the least-used address, then a free port), and alters the
/// reply tuple so that replies are recognised and un-NATed. Bindings live in the conntrack entries: flushing
/// the nat table does not touch them.
/// </summary>
public static class NatCore
{
    /// <summary>HOOK2MANIP: POSTROUTING and INPUT change the source, PREROUTING and OUTPUT the destination.</summary>
    public static NatManip ManipOf(Hook hook) => hook is Hook.Postrouting or Hook.Input ? NatManip.Src : NatManip.Dst;

    /// <summary>nf_nat_initialized: the binding for this manip type was set up (IPS_SRC_NAT_DONE / IPS_DST_NAT_DONE).</summary>
    public static bool Initialized(ConnEntry ct, NatManip manip) =>
        ct.Has(manip == NatManip.Src ? ConnStatus.SrcNatDone : ConnStatus.DstNatDone);

    /// <summary>The conntrack table NAT checks tuples against (the namespace's).</summary>
    internal static ConntrackTable? TableOf(PacketContext ctx) => (ctx.Netfilter.Conntrack as ConntrackHooks)?.Table;

    /// <summary>
    /// <c>a == b</c> of two tuples taken by reference: the record's operator takes both by value, two 64-byte copies of a
    /// tuple just returned field by field (a store the copy's wide load cannot forward: a stall per binding).
    /// </summary>
    private static bool SameTuple(in ConnTuple a, in ConnTuple b) =>
        a.Family == b.Family && a.Protocol == b.Protocol && a.SourcePort == b.SourcePort && a.DestinationPort == b.DestinationPort
        && a.Source == b.Source && a.Destination == b.Destination;

    /// <summary>
    /// nf_nat_setup_info: binds an unconfirmed connection for <paramref name="manip"/>. Returns the chosen tuple's
    /// explanation ("kept", "clash …") through <paramref name="how"/>; the verdict is ACCEPT, or DROP when the
    /// binding was already made (the kernel's WARN_ON).
    /// </summary>
    // Inlined into the targets' binding (NatTargets.Bind, Masquerade): a call less per binding; the general search stays a call.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static Verdict SetupInfo(PacketContext ctx, ConnEntry ct, in NatRange2 range, NatManip manip, out string how)
    {
        how = "";
        // A confirmed connection keeps its binding (a looped-back packet, a retransmission).
        if (ct.IsConfirmed) return Verdict.Accept;
        if (Initialized(ct, manip)) return Verdict.Drop;

        if (TrySetupV4(ctx, ct, range, manip, out how))
        {
            ct.Status |= manip == NatManip.Src ? ConnStatus.SrcNatDone : ConnStatus.DstNatDone;
            return Verdict.Accept;
        }
        how = SetupGeneral(ctx, ct, range, manip);
        return Verdict.Accept;
    }

    /// <summary>
    /// <see cref="SetupInfo"/>'s general search (any family, protocol, range, zone, or a trace), out of line: its 64-byte
    /// tuples made SetupInfo's frame ~200 bytes, cleared on every call, the field path's (<see cref="TrySetupV4"/>) included.
    /// Returns the explanation.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static string SetupGeneral(PacketContext ctx, ConnEntry ct, in NatRange2 range, NatManip manip)
    {
        // What the packet looks like now: the inverse of the reply tuple (it already carries an earlier manip).
        ct.TryReplyInverse(out ConnTuple current);
        var search = new Search(ctx, ct);
        ConnTuple chosen = UniqueTuple(ref search, current, range, manip);
        if (!SameTuple(chosen, current))
        {
            // nf_conntrack_alter_reply: replies now carry the inverse of the new tuple (written into the entry's fields).
            ct.TrySetReplyInverseOf(chosen);
            ct.Status |= manip == NatManip.Src ? ConnStatus.SrcNat : ConnStatus.DstNat;
        }
        ct.Status |= manip == NatManip.Src ? ConnStatus.SrcNatDone : ConnStatus.DstNatDone;
        return search.How ?? "";
    }

    /// <summary>
    /// get_unique_tuple and the reply's change for the common IPv4 shapes, from the entry's fields (no 64-byte tuples built,
    /// copied, inverted and compared): a TCP or UDP connection in the default zone bound to one address (MASQUERADE, the
    /// null binding, a one-address SNAT or DNAT such as kube-proxy's endpoints), without --random/--random-fully or a shifted
    /// port map, and no trace. The same checks in the same order as <see cref="UniqueTuple"/>, with the same probes
    /// (<see cref="ConntrackTable.TryFindV4"/>, as <see cref="TupleTaken"/> makes them), as far as they keep the tuple's ports:
    /// where the search would go on (the source has a by-source chain, the tuple is taken, the port is out of range) nothing
    /// was decided or changed and false sends it to the general search, which then makes the same probes again (a repeated
    /// probe finds what the first found: only hits come before a false, and an expired holder is removed by the first).
    /// </summary>
    private static bool TrySetupV4(PacketContext ctx, ConnEntry ct, in NatRange2 range, NatManip manip, out string how)
    {
        how = "";
        if (range.MinAddress != range.MaxAddress || range.MaxAddress > uint.MaxValue || !range.Has(NatRangeFlags.MapIps)
            || range.Has(NatRange2.RandomAll | NatRangeFlags.ProtoOffset)) return false;
        if (ctx.Netfilter.Conntrack is not ConntrackHooks { NatByFields: true } hooks || ct.Zone != 0 || ct.ZoneDirections != 0
            || ctx.Netfilter.Current?.Trace is not null) return false;
        // What the packet looks like now: the inverse of the reply (source = the reply's destination, …).
        if (!ct.TryTupleV4(ConnDirection.Reply, out byte proto, out uint rs, out uint rd, out ushort rsp, out ushort rdp)
            || ct.Family != IpFamily.V4 || proto is not (IpProtocol.Tcp or IpProtocol.Udp) || ct.Protocol != proto) return false;
        uint cs = rd, cd = rs;
        ushort csp = rdp, cdp = rsp;
        ConntrackTable table = hooks.Table;
        var addr = (uint)range.MinAddress;
        bool ports = range.Has(NatRangeFlags.ProtoSpecified);
        uint ns = cs, nd = cd;
        if (manip == NatManip.Src)
        {
            // 1) The original source when it is in range and free (nf_nat_used_tuple_new: for UDP a taken tuple needs more).
            if (cs == addr && (!ports || (csp >= range.MinPort && csp <= range.MaxPort)))
            {
                if (TakenV4(ctx, ct, table, proto, cd, cs, cdp, csp)) return false;
                hooks.NatFieldBindings++;
                how = "the original source is in range and free: kept";
                return true;
            }
            // An earlier mapping of the same source: the general search (find_appropriate_src).
            if (table.HasBySourceV4(proto, cs, csp)) return false;
            ns = addr;
        }
        else
        {
            nd = addr;
        }
        // 3) The port kept: in range (a one-port range needs no probe) or, without a port range, the tuple free.
        if (ports)
        {
            ushort port = manip == NatManip.Src ? csp : cdp;
            if (port < range.MinPort || port > range.MaxPort) return false;
            if (range.MinPort != range.MaxPort && TakenV4(ctx, ct, table, proto, nd, ns, cdp, csp)) return false;
            how = range.MinPort == range.MaxPort ? "the port is in range" : "the port is in range and free";
        }
        else
        {
            if (TakenV4(ctx, ct, table, proto, nd, ns, cdp, csp)) return false;
            how = "the tuple is free";
        }
        hooks.NatFieldBindings++;
        if (ns != cs || nd != cd)
        {
            // nf_conntrack_alter_reply: replies carry the inverse of the chosen tuple.
            ct.SetReplyV4(nd, ns, cdp, csp);
            ct.Status |= manip == NatManip.Src ? ConnStatus.SrcNat : ConnStatus.DstNat;
        }
        return true;
    }

    /// <summary>
    /// <see cref="TupleTaken"/> of the IPv4 reply tuple given by its fields (the inverse of the tuple nf_nat_used_tuple is
    /// asked about), for a connection in the default zone.
    /// </summary>
    private static bool TakenV4(PacketContext ctx, ConnEntry ct, ConntrackTable table, byte proto, uint source, uint destination, ushort sourcePort, ushort destinationPort)
    {
        if (!table.TryFindV4(proto, source, destination, sourcePort, destinationPort, -1, ctx.Now, out ConnEntry other, out _)) return false;
        if (ReferenceEquals(other, ct)) return false;
        return !(other.OriginalEquals(ct) && other.ZoneFor(ConnDirection.Original) == 0);
    }

    /// <summary>
    /// nf_nat_alloc_null_binding: no rule bound the connection at this hook; it is bound to its own address (the
    /// port may still move when another connection already uses the tuple: the implicit source port clash resolution).
    /// </summary>
    public static Verdict NullBinding(PacketContext ctx, ConnEntry ct, NatManip manip, out string how)
    {
        UInt128 ip = manip == NatManip.Src ? ct.Reply.Destination : ct.Reply.Source;
        var range = new NatRange2(NatRangeFlags.MapIps, ip, ip, 0, 0);
        return SetupInfo(ctx, ct, range, manip, out how);
    }

    /// <summary>The state of one tuple search: the connection, its table and the explanation found on the way.</summary>
    private ref struct Search(PacketContext ctx, ConnEntry ct)
    {
        public readonly PacketContext Ctx = ctx;
        public readonly ConnEntry Ct = ct;
        public readonly ConntrackTable? Table = TableOf(ctx);
        public string? How;
    }

    // ------------------------------------------------------------------ get_unique_tuple

    // No zeroing of the frame on entry: the inlined helpers' tuples (64 bytes each) made a 576-byte frame cleared per
    // binding; every local here is assigned before it is read (no stackalloc in this method).
    [System.Runtime.CompilerServices.SkipLocalsInit]
    private static ConnTuple UniqueTuple(ref Search s, in ConnTuple orig, in NatRange2 range, NatManip manip)
    {
        bool trace = s.Ctx.Netfilter.Current?.Trace is not null;
        // 1) Source NAT: the original tuple when it is in range and free; else an earlier mapping of the same source.
        if (manip == NatManip.Src && !range.Has(NatRange2.RandomAll))
        {
            if (InRange(orig, range))
            {
                if (!UsedTupleNew(ref s, orig))
                {
                    s.How = "the original source is in range and free: kept";
                    return orig;
                }
            }
            else if (FindAppropriateSource(ref s, orig, range, out ConnTuple earlier))
            {
                if (!UsedTuple(ref s, earlier))
                {
                    if (trace) s.How = "the same mapping as an earlier connection from " + Endpoint(orig.Family, orig.Source, orig.SourcePort, orig);
                    return earlier;
                }
            }
        }

        // 2) The address: one choice, or a hash of the addresses over the range.
        ConnTuple t = FindBestIps(ref s, orig, range, manip);

        // 3) The port: left alone when in range and free.
        if (!range.Has(NatRange2.RandomAll))
        {
            if (range.Has(NatRangeFlags.ProtoSpecified))
            {
                if (!range.Has(NatRangeFlags.ProtoOffset) && L4InRange(t, manip, range.MinPort, range.MaxPort)
                    && (range.MinPort == range.MaxPort || !UsedTuple(ref s, t)))
                {
                    s.How ??= range.MinPort == range.MaxPort ? "the port is in range" : "the port is in range and free";
                    return t;
                }
            }
            else if (!UsedTuple(ref s, t))
            {
                s.How ??= "the tuple is free";
                return t;
            }
        }
        ushort before = KeyOf(t, manip);
        bool clash = !range.Has(NatRange2.RandomAll) && !range.Has(NatRangeFlags.ProtoOffset) && (!range.Has(NatRangeFlags.ProtoSpecified) || L4InRange(t, manip, range.MinPort, range.MaxPort));
        L4UniqueTuple(ref s, ref t, range, manip);
        if (trace)
        {
            string key = t.IsIcmp ? "id" : "port";
            ushort after = KeyOf(t, manip);
            s.How = range.Has(NatRange2.RandomAll)
                ? $"random {key} {after}" + (range.Has(NatRangeFlags.ProtoRandomFully) ? " (--random-fully)" : " (--random)")
                : clash
                    ? $"clash: {key} {before} is taken by another connection, {after} chosen"
                    : range.Has(NatRangeFlags.ProtoOffset) ? $"{key} {after} (shifted port map)" : $"{key} {before} is outside the range, {after} chosen";
        }
        return t;
    }

    private static ushort KeyOf(in ConnTuple t, NatManip manip) =>
        t.IsIcmp || manip == NatManip.Src ? t.SourcePort : t.DestinationPort;

    /// <summary>nf_nat_inet_in_range + in_range: the source address (with MAP_IPS) and the source port (with PROTO_SPECIFIED).</summary>
    private static bool InRange(in ConnTuple t, in NatRange2 range)
    {
        if (range.Has(NatRangeFlags.MapIps) && (t.Source < range.MinAddress || t.Source > range.MaxAddress)) return false;
        if (!range.Has(NatRangeFlags.ProtoSpecified)) return true;
        return L4InRange(t, NatManip.Src, range.MinPort, range.MaxPort);
    }

    /// <summary>l4proto_in_range: the ICMP id, or the port the manip changes; other protocols are always in range.</summary>
    private static bool L4InRange(in ConnTuple t, NatManip manip, ushort min, ushort max)
    {
        if (t.IsIcmp) return t.SourcePort >= min && t.SourcePort <= max;
        if (t.Protocol == IpProtocol.Gre || ConnTuple.HasPortTuple(t.Protocol))
        {
            ushort port = manip == NatManip.Src ? t.SourcePort : t.DestinationPort;
            return port >= min && port <= max;
        }
        return true;
    }

    /// <summary>nf_nat_used_tuple: another connection already expects replies to the inverse of <paramref name="t"/>.</summary>
    private static bool UsedTuple(ref Search s, in ConnTuple t)
    {
        if (s.Table is null || !t.TryInvert(out ConnTuple reply)) return false;
        return TupleTaken(ref s, reply);
    }

    /// <summary>nf_conntrack_tuple_taken: a live entry holds the tuple, unless it is the same flow (identical original tuples).</summary>
    private static bool TupleTaken(ref Search s, in ConnTuple tuple)
    {
        ConnEntry ignored = s.Ct;
        ushort zone = ignored.ZoneFor(ConnDirection.Reply);
        ConnEntry other;
        // An IPv4 tuple in the default zone is probed by its fields (TryFindV4: the same slot, probe and expiry as TryFind).
        bool found = zone == 0 && tuple.Family == IpFamily.V4 && tuple.Source <= uint.MaxValue && tuple.Destination <= uint.MaxValue
            ? s.Table!.TryFindV4(tuple.Protocol, (uint)tuple.Source, (uint)tuple.Destination, tuple.SourcePort, tuple.DestinationPort, -1, s.Ctx.Now, out other, out _)
            : s.Table!.TryFind(tuple, zone, s.Ctx.Now, out other, out _);
        if (!found) return false;
        if (ReferenceEquals(other, ignored)) return false;
        if (other.OriginalEquals(ignored) && other.ZoneFor(ConnDirection.Original) == ignored.ZoneFor(ConnDirection.Original)) return false;
        return true;
    }

    /// <summary>
    /// nf_nat_used_tuple_new: as <see cref="UsedTuple"/>, but for protocols that allow clashes (UDP, UDP-Lite) a
    /// connection without NAT whose original tuple is our reply (the same flow seen from the other side first)
    /// does not count.
    /// </summary>
    private static bool UsedTupleNew(ref Search s, in ConnTuple t)
    {
        if (!UsedTuple(ref s, t)) return false;
        if (t.Protocol is not (IpProtocol.Udp or IpProtocol.UdpLite)) return true;
        if (!t.TryInvert(out ConnTuple reply)) return true;
        ushort zone = s.Ct.ZoneFor(ConnDirection.Original);
        if (!s.Table!.TryFind(t, zone, s.Ctx.Now, out ConnEntry other, out _) && !s.Table.TryFind(reply, zone, s.Ctx.Now, out other, out _)) return false;
        if (other.Has(ConnStatus.SrcNat | ConnStatus.DstNat | ConnStatus.SeqAdjust)) return true;
        return other.Original != s.Ct.Reply;
    }

    /// <summary>
    /// find_appropriate_src: a connection from the same source (protocol, address, port) already source-mapped
    /// (nf_nat_bysource, newest first; ConntrackTable keeps the index) whose mapping is in range: the same mapping again.
    /// </summary>
    private static bool FindAppropriateSource(ref Search s, in ConnTuple tuple, in NatRange2 range, out ConnTuple result)
    {
        result = default;
        if (s.Table is null) return false;
        for (ConnEntry? ct = s.Table.BySourceNewest(tuple); ct is not null; ct = ct.NextBySource)
        {
            if (ct.Timeout <= s.Ctx.Now) continue;
            if (ct.ZoneFor(ConnDirection.Original) != s.Ct.ZoneFor(ConnDirection.Original)) continue;
            if (!ct.Reply.TryInvert(out ConnTuple inv)) continue;
            ConnTuple candidate = inv with { Destination = tuple.Destination, DestinationPort = tuple.DestinationPort, Protocol = tuple.Protocol };
            if (InRange(candidate, range))
            {
                result = candidate;
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// find_best_ips_proto: the address the manip sets. One address in the range: that one. Otherwise a jhash2 of
    /// the source address (seeded with the destination's last word and the zone, unless --persistent) scaled
    /// into the range word by word, as the kernel computes it on a little-endian machine.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static ConnTuple FindBestIps(ref Search s, in ConnTuple t, in NatRange2 range, NatManip manip)
    {
        if (!range.Has(NatRangeFlags.MapIps)) return t;
        // Built field by field (not `t with { … }`: a copy of the whole tuple, then a 16-byte store into it, then the
        // copy read back whole, which the store buffer cannot forward: a stall per binding).
        if (range.MinAddress == range.MaxAddress)
        {
            return manip == NatManip.Src
                ? new ConnTuple(t.Family, t.Protocol, range.MinAddress, t.Destination, t.SourcePort, t.DestinationPort)
                : new ConnTuple(t.Family, t.Protocol, t.Source, range.MinAddress, t.SourcePort, t.DestinationPort);
        }
        return HashedIps(ref s, t, range, manip);
    }

    /// <summary><see cref="FindBestIps"/> for a range of more than one address (kept out of the one-address path).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static ConnTuple HashedIps(ref Search s, in ConnTuple t, in NatRange2 range, NatManip manip)
    {
        bool v4 = t.Family == IpFamily.V4;
        int max = v4 ? 0 : 3;
        Span<uint> src = stackalloc uint[4];
        Span<uint> dst = stackalloc uint[4];
        Span<uint> min = stackalloc uint[4];
        Span<uint> top = stackalloc uint[4];
        Words(t.Source, v4, src);
        Words(t.Destination, v4, dst);
        Words(range.MinAddress, v4, min);
        Words(range.MaxAddress, v4, top);
        bool persistent = range.Has(NatRangeFlags.Persistent);
        uint zone = s.Ct.ZoneFor(ConnDirection.Original);
        uint j = Jhash.Words(src, persistent ? 0 : dst[max] ^ zone);
        Span<uint> result = stackalloc uint[4];
        bool fullRange = false;
        for (int i = 0; i <= max; i++)
        {
            uint minip, dist;
            if (!fullRange)
            {
                minip = BinaryPrimitives.ReverseEndianness(min[i]);
                uint maxip = BinaryPrimitives.ReverseEndianness(top[i]);
                dist = maxip - minip + 1;
            }
            else
            {
                minip = 0;
                dist = ~0u;
            }
            result[i] = BinaryPrimitives.ReverseEndianness(minip + Jhash.Scale(j, dist));
            if (result[i] != top[i]) fullRange = true;
            if (!persistent) j ^= dst[i];
        }
        UInt128 addr = FromWords(result, v4);
        return manip == NatManip.Src ? t with { Source = addr } : t with { Destination = addr };
    }

    /// <summary>The address as the kernel's u32 words read it from memory on x86 (network bytes, little-endian load).</summary>
    private static void Words(UInt128 a, bool v4, Span<uint> w)
    {
        if (v4)
        {
            w[0] = BinaryPrimitives.ReverseEndianness((uint)a);
            w[1] = w[2] = w[3] = 0;
            return;
        }
        for (int i = 0; i < 4; i++) w[i] = BinaryPrimitives.ReverseEndianness((uint)(a >> (96 - 32 * i)));
    }

    private static UInt128 FromWords(ReadOnlySpan<uint> w, bool v4)
    {
        if (v4) return BinaryPrimitives.ReverseEndianness(w[0]);
        UInt128 a = 0;
        for (int i = 0; i < 4; i++) a = (a << 32) | BinaryPrimitives.ReverseEndianness(w[i]);
        return a;
    }

    /// <summary>NF_NAT_MAX_ATTEMPTS: the search gives up after this many tries per round.</summary>
    private const int MaxAttempts = 128;

    /// <summary>
    /// nf_nat_l4proto_unique_tuple: a free port (or ICMP id) in the range. Without a port range a source port
    /// keeps its class (below 512 into 1-511, below 1024 into 600-1023, else 1024-65535) and a destination port
    /// is not changed. The search starts at a random offset (source, or --random), at 0 (destination), or at the
    /// shifted port map's offset, tries up to 128 values, then halves the window from a new random offset.
    /// </summary>
    private static void L4UniqueTuple(ref Search s, ref ConnTuple t, in NatRange2 range, NatManip manip)
    {
        uint min, rangeSize;
        bool icmpKey = false;
        if (t.IsIcmp)
        {
            icmpKey = true;
            if (!range.Has(NatRangeFlags.ProtoSpecified))
            {
                min = 0;
                rangeSize = 65536;
            }
            else
            {
                min = range.MinPort;
                rangeSize = (uint)(range.MaxPort - range.MinPort + 1);
            }
        }
        else if (t.Protocol == IpProtocol.Gre)
        {
            // Without a PPTP master connection the keys are not changed.
            return;
        }
        else if (ConnTuple.HasPortTuple(t.Protocol))
        {
            if (!range.Has(NatRangeFlags.ProtoSpecified))
            {
                if (manip == NatManip.Dst) return;
                ushort port = t.SourcePort;
                if (port < 1024)
                {
                    if (port < 512)
                    {
                        min = 1;
                        rangeSize = 511;
                    }
                    else
                    {
                        min = 600;
                        rangeSize = 1023 - 600 + 1;
                    }
                }
                else
                {
                    min = 1024;
                    rangeSize = 65535 - 1024 + 1;
                }
            }
            else
            {
                uint lo = range.MinPort, hi = range.MaxPort;
                if (hi < lo) (lo, hi) = (hi, lo);
                min = lo;
                rangeSize = hi - lo + 1;
            }
        }
        else
        {
            return;
        }

        ushort key = icmpKey || manip == NatManip.Src ? t.SourcePort : t.DestinationPort;
        if (s.Ctx.State.NatKeyChooser is { } chooser && chooser.TryChoose(s.Ct.Original, manip, out ushort pick))
        {
            // The allowed set: every free key in [min, min + rangeSize) is the first free one from some offset.
            ConnTuple picked = icmpKey || manip == NatManip.Src ? t with { SourcePort = pick } : t with { DestinationPort = pick };
            if ((uint)(pick - min) >= rangeSize)
                chooser.Refused(s.Ct.Original, manip, pick, $"outside {min}-{min + rangeSize - 1}");
            // A range of at most 32 keys is searched with eviction on every try (see UsedTupleHarder); larger ones only
            // after 96 taken keys, which a pick from outside cannot show: there the tuple must be free.
            else if (rangeSize <= HarderThreshold ? UsedTupleHarder(ref s, picked, 1) : UsedTuple(ref s, picked))
                chooser.Refused(s.Ct.Original, manip, pick, "the tuple is taken by another connection");
            else
            {
                t = picked;
                return;
            }
        }
        ushort off;
        if (range.Has(NatRangeFlags.ProtoOffset)) off = (ushort)(key - range.BasePort);
        else if (range.Has(NatRange2.RandomAll) || manip != NatManip.Dst) off = RandomU16(s.Ctx);
        else off = 0;

        uint attempts = Math.Min(rangeSize, MaxAttempts);
        while (true)
        {
            for (uint i = 0; i < attempts; i++, off++)
            {
                var k = (ushort)(min + off % rangeSize);
                t = icmpKey || manip == NatManip.Src ? t with { SourcePort = k } : t with { DestinationPort = k };
                if (!UsedTupleHarder(ref s, t, attempts - i)) return;
            }
            if (attempts >= rangeSize || attempts < 16) return;
            attempts /= 2;
            off = RandomU16(s.Ctx);
        }
    }

    /// <summary>NF_NAT_HARDER_THRESH: the last tries of a round may evict a closing connection.</summary>
    private const int HarderThreshold = MaxAttempts / 4;

    /// <summary>
    /// nf_nat_used_tuple_harder (nf_nat_core.c, Linux 6.5+): as <see cref="UsedTuple"/>, but in the last 32 tries for
    /// a new TCP connection (SYN_SENT) a source-NATed connection that holds the tuple and is closing (TIME_WAIT, CLOSE,
    /// SYN_SENT2; no fixed timeout, not dying) is evicted when the new connection's sequence has advanced past the old
    /// one's (seen[0].td_end), so that a reused port does not end in a clash at confirmation. A fixed port
    /// (<c>--to-source a:p-p</c>) is such a range of one key.
    /// </summary>
    private static bool UsedTupleHarder(ref Search s, ConnTuple t, uint attemptsLeft)
    {
        if (attemptsLeft > HarderThreshold || t.Protocol != IpProtocol.Tcp || s.Ct.TcpState != TcpCtState.SynSent)
            return UsedTuple(ref s, t);
        if (s.Table is null || !t.TryInvert(out ConnTuple reply)) return false;
        if (!s.Table.TryFind(reply, s.Ct.ZoneFor(ConnDirection.Reply), s.Ctx.Now, out ConnEntry other, out ConnDirection dir)) return false;
        if (dir == ConnDirection.Original || ReferenceEquals(other, s.Ct)) return true;
        // nf_nat_may_kill and nf_seq_has_advanced.
        if (other.TcpState is not { } old || old < TcpCtState.TimeWait) return true;
        if ((other.Status & (ConnStatus.FixedTimeout | ConnStatus.Dying)) != 0 || (other.Status & ConnStatus.SrcNat) == 0) return true;
        if ((int)(s.Ct.Tcp.Seen[0].End - other.Tcp.Seen[0].End) <= 0) return true;
        s.Table.Remove(other);
        if (s.Ctx.Netfilter.Current?.Trace is not null) s.Ctx.Note("nat: a closing connection holding the tuple was evicted (nf_nat_used_tuple_harder)");
        return (other.Status & ConnStatus.Offload) != 0;
    }

    private static ushort RandomU16(PacketContext ctx) => (ushort)ctx.Random.Next(65536);

    /// <summary>"10.0.0.1:443" ("[2001:db8::1]:443", or the address alone for protocols without ports).</summary>
    internal static string Endpoint(IpFamily family, UInt128 addr, ushort port, ConnTuple shape)
    {
        string a = IpNet.FormatAddress(addr, family);
        if (!ConnTuple.HasPortTuple(shape.Protocol)) return a;
        string p = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return family == IpFamily.V6 ? "[" + a + "]:" + p : a + ":" + p;
    }
}
