using Chainwalk.Conntrack;
using Chainwalk.Host;
using Chainwalk.Nat;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>
/// Everything the one pass (<see cref="Netfilter"/>, OnePass.cs) needs for an established TCP/UDP packet of one connection
/// direction (received: forwarded or delivered; or sent by a local process), made once from the direction's
/// <see cref="FlowState"/> (its walk memos and its input route) and the rule sets as they were: the rules and built-in
/// policies whose counters every table of every hook after conntrack moves (the memos' and the empty built-in chains'
/// policies), the route's verdict, device, gateway and MTU, whether the nat hooks are registered. Shared by the connections that share the state. <see cref="Usable"/> false: some table's walk is
/// not remembered (or not replayable) for this direction; remembered as such while the generations stand.
/// </summary>
internal sealed class OnePassPlan
{
    /// <summary><see cref="Rules"/>' generation when the plan was made.</summary>
    public required long RulesGeneration { get; init; }

    /// <summary>The host's generation (<see cref="VirtualHost.Generation"/>) when the plan was made.</summary>
    public required long HostGeneration { get; init; }

    public required Ruleset Rules { get; init; }
    public required string InDev { get; init; }
    public bool Usable { get; init; }

    /// <summary>Delivered to this host (INPUT) rather than forwarded.</summary>
    public bool Local { get; init; }

    /// <summary>Sent by a local process (OUTPUT, POSTROUTING); <see cref="InDev"/> is then the output route's device.</summary>
    public bool Output { get; init; }

    /// <summary>The skb mark every walk saw (a local sender's; 0 for received packets).</summary>
    public uint Mark { get; init; }

    /// <summary>The nat table exists: the nat hooks are registered and the connection's bindings are applied.</summary>
    public bool Nat { get; init; }

    /// <summary>The output device of a forwarded or sent packet.</summary>
    public string? OutDev { get; init; }

    /// <summary>
    /// <see cref="OutDev"/>'s number among the device names conntrack keeps (<see cref="DeviceNames"/>) when the plan was
    /// made, or 0 (none yet): what a masqueraded connection's device is compared with.
    /// </summary>
    public byte OutDevNumber { get; init; }

    /// <summary>The input route's gateway (what the skb carries on: rt_nexthop), zero without one.</summary>
    public UInt128 Gateway { get; init; }

    /// <summary>The output device's MTU (forwarded packets: ip_forward's check and the output).</summary>
    public int Mtu { get; init; }

    /// <summary>"forwarded:DEV", "delivered-local" or "sent:DEV".</summary>
    public string Fate { get; init; } = "";

    public Rule[] Hits { get; init; } = [];

    /// <summary>
    /// Per hit, where its counters are in <see cref="Entries"/> (the compiled form's entries, as the memos recorded them),
    /// or -1: on the rule (<see cref="Rule.CountersCell"/>); null when every hit counts on its rule.
    /// </summary>
    public int[]? Slots { get; init; }

    /// <summary>The compiled form whose entries hold the counters named by <see cref="Slots"/>.</summary>
    public Compiled.CompiledRules? Form { get; init; }

    /// <summary>That form's entries array when the memos were made.</summary>
    public Compiled.FlatEntry[]? Entries { get; init; }

    /// <summary>Whether the counters named by <see cref="Slots"/> are still there (as <see cref="FlowWalkMemo.SlotsHold"/>).</summary>
    public bool SlotsHold
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get => Slots is null || Form is { Superseded: false } f && ReferenceEquals(f.Entries, Entries);
    }


    public Chain[] Policies { get; init; } = [];

    /// <summary>
    /// Whether the plan (usable or not) was made for the rule set, host and input device as they are now: the rule set's
    /// generation (<see cref="Ruleset.Generation"/>, read from the rule set the packet's pass loaded) and the host's
    /// (<paramref name="hostGeneration"/>); no other rule set's or host's change drops it.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public bool Holds(Ruleset rules, long hostGeneration, string inDev) =>
        ReferenceEquals(Rules, rules) && RulesGeneration == rules.Generation && HostGeneration == hostGeneration
        && !Output && (ReferenceEquals(InDev, inDev) || string.Equals(InDev, inDev, StringComparison.Ordinal)) && SlotsHold;

    /// <summary>Whether the output plan (usable or not) was made for the rule set, host, output device and mark as they are now.</summary>
    public bool HoldsOutput(Ruleset rules, long hostGeneration, string outDev, uint mark) =>
        ReferenceEquals(Rules, rules) && RulesGeneration == rules.Generation && HostGeneration == hostGeneration
        && Output && Mark == mark && (ReferenceEquals(InDev, outDev) || string.Equals(InDev, outDev, StringComparison.Ordinal)) && SlotsHold;
}

public sealed partial class Netfilter
{
    /// <summary>The token the conntrack prefetch gave for the packet being processed (<see cref="Skb.TupleHint"/>).</summary>
    private long _arrivalToken = -1;

    /// <summary>
    /// The arrival's conntrack slot, fetched at <see cref="Run"/>'s start and not read yet (<see cref="FetchArrivalEntry"/>),
    /// or -1 (read already, handed over by a burst, or none).
    /// </summary>
    private long _arrivalSlot = -1;

    /// <summary>
    /// The second step of the arrival's conntrack prefetch, as late as it can be: the slot fetched at <see cref="Run"/>'s
    /// start is read and the entry it names fetched, right before the lookup. Everything a received packet does before
    /// its lookup (the parse, the receive checks, the one pass's first steps) needs neither, so it runs while the slot is
    /// on its way instead of waiting for it after the parse; the entry's fetch then overlaps the lookup's own start (an
    /// entry met in the order connections began often comes early anyway: the CPU's stream prefetch). A hint: changes
    /// nothing.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void FetchArrivalEntry()
    {
        long slot = _arrivalSlot;
        if (slot < 0) return;
        _arrivalSlot = -1;
        Conntrack!.PrefetchMore(slot);
    }

    /// <summary>Packets that went through the one pass (for tests and diagnostics).</summary>
    internal long OnePassPackets { get; private set; }

    /// <summary>What <see cref="OnePass"/> did with a received or locally sent packet.</summary>
    private enum OnePassOutcome : byte
    {
        /// <summary>Nothing: the packet goes hook by hook from the start.</summary>
        NotTaken,

        /// <summary>The tables before conntrack and the conntrack lookup are done; the rest goes hook by hook.</summary>
        AfterConntrack,

        /// <summary>The packet went through (or conntrack dropped it): its result is complete.</summary>
        Done,
    }

    /// <summary>
    /// The one pass for a received packet of a confirmed flow whose memos all hold (<see cref="FlowPath"/>): raw's
    /// PREROUTING (absent, or an empty built-in chain: its policy counted), the conntrack lookup and TCP tracking (always,
    /// as the slow path: it may find the packet INVALID or drop it), then — only when everything below holds for this
    /// packet — every table's remembered walk replayed at once (<see cref="OnePassPlan.Hits"/>), the connection's bindings
    /// and the TTL decrement in one rewrite (<see cref="NatPacket.RewriteEstablishedV4"/>), the kept route, the output and
    /// the fate: the same result, counters, conntrack state and bytes as the hooks one by one. Whatever does not hold is
    /// found before anything after conntrack changed, and the packet then goes on hook by hook from after conntrack
    /// (<see cref="OnePassOutcome.AfterConntrack"/>): nothing is done twice.
    /// </summary>
    /// <remarks>
    /// <paramref name="hook"/> is PREROUTING for a received packet, OUTPUT for one a local process sends (routed already:
    /// <see cref="Skb.OutDev"/> is the output route's device; the pass then ends in POSTROUTING and <c>sent:DEV</c>).
    /// </remarks>
    private OnePassOutcome OnePass(Skb skb, PacketResult result, Hook hook = Hook.Prerouting)
    {
        Packet p = skb.Packet;
        bool output = hook == Hook.Output;
        // IPv4, or IPv6 without extension headers (the transport header right after the fixed one), TCP or UDP, whole;
        // nothing looped back (lo).
        string? dev = output ? skb.OutDev : skb.InDev;
        if (RecordTrace || skb.Trace || Current?.Trace is not null || p.IsFragment
            || p.Protocol is not (IpProtocol.Tcp or IpProtocol.Udp) || dev is null || dev == "lo"
            || (p.Family == IpFamily.V6 && (p.TransportOffset != 40 || p.Bytes[6] != p.Protocol)))
            return OnePassOutcome.NotTaken;
        Ruleset rules = Host.Rules(p.Family);
        TablesOf(rules);
        // raw (-300) comes before conntrack: taken only when it decides nothing (no table, no chain, or an empty chain
        // whose policy accepts; that policy is counted as the slow path counts it).
        Chain? rawPolicy = null;
        if (_tables[0] is { } raw && BaseChain(raw, hook) is { } rawChain)
        {
            if (rawChain.Rules.Count != 0 || rawChain.Policy == Verdicts.Drop) return OnePassOutcome.NotTaken;
            rawPolicy = rawChain;
        }
        PacketContext ctx = RentContext(skb, hook);
        try
        {
            if (rawPolicy is not null)
            {
                ctx.Table = "raw";
                Policy(ctx, rawPolicy, null, skb);
            }
            // The bytes are as they arrived (raw walked nothing): the prefetch's hash of the tuple is the lookup's.
            skb.TupleHint = _arrivalToken;
            FetchArrivalEntry();
            // The usual tracker called directly (no interface dispatch per packet); any other implementation as before.
            IConntrackHooks tracker = Conntrack!;
            bool ok = tracker is ConntrackHooks hooks ? hooks.Track(ctx) : tracker.Track(ctx);
            result.CtState ??= CtStateName(skb.CtInfo);
            result.Connection ??= skb.Conntrack;
            if (!ok)
            {
                Drop(result, "dropped by connection tracking");
                return OnePassOutcome.Done;
            }
        }
        finally
        {
            _contextDepth--;
        }
        if (output) return OnePassOutAfterTrack(skb, p, rules, dev, result) ? OnePassOutcome.Done : OnePassOutcome.AfterConntrack;
        if (OnePassAfterTrack(skb, p, rules, dev, result)) return OnePassOutcome.Done;
        // On hook by hook: the input route will be asked for the destination the connection's binding gives the packet
        // (the hint RunHook gives after conntrack).
        if (p.Family == IpFamily.V4 && Conntrack!.TryRoutedDestination4(skb, out uint routed)) PrefetchInputRoute(routed, (uint)skb.Packet.Source);
        return OnePassOutcome.AfterConntrack;
    }

    /// <summary>The one pass after the conntrack lookup: false (nothing changed) when the packet must go hook by hook.</summary>
    private bool OnePassAfterTrack(Skb skb, Packet p, Ruleset rules, string inDev, PacketResult result)
    {
        if (skb.CtInfo is not (CtInfo.Established or CtInfo.EstablishedReply) || skb.Conntrack is not ConnEntry ct
            || !ct.IsConfirmed || skb.Mark != 0)
            return false;
        bool reply = skb.CtInfo == CtInfo.EstablishedReply;
        // Memos are made from a direction's second packet on (LaterFlowPacket): a plan implies this bit; checked anyway.
        if ((ct.FlowSeen & (reply ? 2 : 1)) == 0 || ct.Flow is not { } flow) return false;
        ref OnePassPlan? kept = ref flow.PlanSlot(reply);
        OnePassPlan plan = kept is { } k && k.Holds(rules, Host.Generation, inDev) ? k : kept = MakeOnePassPlan(flow, reply, rules, inDev);
        if (!plan.Usable || !WholeSegment(p, skb.Bytes)) return false;
        // IPv6 (128-bit addresses, the tuples' general inverse) apart: the IPv4 pass keeps 32-bit values only.
        if (p.Family != IpFamily.V4) return OnePassAfterTrackV6(skb, p, ct, reply, plan, result);

        // This packet: everything the hooks would decide otherwise than the plan is found before anything changes.
        byte[] b = skb.Bytes;
        int length = p.TotalLength;
        byte proto = p.Protocol;
        ConnDirection dir = reply ? ConnDirection.Reply : ConnDirection.Original;
        bool dnat = plan.Nat && NatHooks.Applies(ct, NatManip.Dst, dir);
        bool snat = plan.Nat && NatHooks.Applies(ct, NatManip.Src, dir);
        uint newDst = 0, newSrc = 0;
        ushort newDstPort = 0, newSrcPort = 0;
        if (dnat && !ct.TryNatTargetV4(dir, NatManip.Dst, out newDst, out newDstPort)) return false;
        if (snat && !ct.TryNatTargetV4(dir, NatManip.Src, out newSrc, out newSrcPort)) return false;
        if (!plan.Local && !OnePassForwardHolds(skb, p, ct, reply, plan, length, v4: true)) return false;

        // From here the packet goes through.
        OnePassPackets++;
        skb.FlowPacket = 2;
        AddFlowCounters(plan, (ulong)length);
        NatPacket.RewriteEstablishedV4(b, proto, snat, newSrc, newSrcPort, dnat, newDst, newDstPort, decrementTtl: !plan.Local);
        // The packet's facts as a re-read would give them (whole, TCP/UDP: the addresses and ports written, the TTL).
        p.Rewritten(snat || dnat, snat ? newSrc : p.Source, dnat ? newDst : p.Destination,
            snat ? newSrcPort : p.SourcePort, dnat ? newDstPort : p.DestinationPort, b[8]);
        OnePassDeliver(skb, plan, result, b, length);
        return true;
    }

    /// <summary><see cref="OnePassAfterTrack"/> for IPv6 (without extension headers: OnePass checked), from its plan on.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private bool OnePassAfterTrackV6(Skb skb, Packet p, ConnEntry ct, bool reply, OnePassPlan plan, PacketResult result)
    {
        byte[] b = skb.Bytes;
        int length = p.TotalLength;
        byte proto = p.Protocol;
        ConnDirection dir = reply ? ConnDirection.Reply : ConnDirection.Original;
        bool dnat = plan.Nat && NatHooks.Applies(ct, NatManip.Dst, dir);
        bool snat = plan.Nat && NatHooks.Applies(ct, NatManip.Src, dir);
        UInt128 newDst = 0, newSrc = 0;
        ushort newDstPort = 0, newSrcPort = 0;
        if (dnat || snat)
        {
            // nf_nat_packet: the packet made the inverse of the other direction's tuple (NatHooks.Packet's general way).
            ConnTuple other = dir == ConnDirection.Original ? ct.Reply : ct.Original;
            if (!other.TryInvert(out ConnTuple target) || target.Protocol != proto) return false;
            (newSrc, newSrcPort, newDst, newDstPort) = (target.Source, target.SourcePort, target.Destination, target.DestinationPort);
        }
        if (!plan.Local && !OnePassForwardHolds(skb, p, ct, reply, plan, length, v4: false)) return false;

        OnePassPackets++;
        skb.FlowPacket = 2;
        AddFlowCounters(plan, (ulong)length);
        NatPacket.RewriteEstablishedV6(b, proto, snat, newSrc, newSrcPort, dnat, newDst, newDstPort, decrementHopLimit: !plan.Local);
        p.Rewritten(snat || dnat, snat ? newSrc : p.Source, dnat ? newDst : p.Destination,
            snat ? newSrcPort : p.SourcePort, dnat ? newDstPort : p.DestinationPort, b[7]);
        OnePassDeliver(skb, plan, result, b, length);
        return true;
    }

    /// <summary>
    /// A forwarded packet of the one pass: whether the forward path decides nothing else (no ICMP error from ip_forward's
    /// checks, no masqueraded connection leaving by another device).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool OnePassForwardHolds(Skb skb, Packet p, ConnEntry ct, bool reply, OnePassPlan plan, int length, bool v4)
    {
        // ip_forward's checks (TTL expiry, fragmentation needed) answer with an ICMP error: the slow path does that.
        // ip6_forward: a packet larger than the MTU is always too big.
        if (skb.PacketType != PacketType.Host || p.Ttl <= 1 || (length > plan.Mtu && (!v4 || p.DontFragment))) return false;
        // nf_nat_oif_changed: a masqueraded connection leaving by another device is killed (NatHooks.Apply).
        return !plan.Nat || reply || ct.MasqueradeDeviceIsNoneOr(plan.OutDev!, plan.OutDevNumber);
    }

    /// <summary>The one pass's end for a packet that went through: the kept route, and delivery or the output and fate.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void OnePassDeliver(Skb skb, OnePassPlan plan, PacketResult result, byte[] b, int length)
    {
        skb.RouteGateway = plan.Gateway;
        if (plan.Local)
        {
            skb.OutDev = null;
            result.Fate.Add("delivered-local");
            return;
        }
        skb.OutDev = plan.OutDev;
        if (b.Length == length && length <= plan.Mtu && skb.FragMaxSize == 0)
        {
            // Emit's common case: the whole packet leaves as it is (no copy, no fragments).
            result.Outputs.Add(result.Output(plan.OutDev!, b, "forwarded"));
        }
        else
        {
            Emit(skb, result, "forwarded");
        }
        result.Fate.Add(plan.Fate);
    }

    /// <summary>A flow state for connections that have none yet (no memo, no route): output plans that need no memo are kept on it.</summary>
    private readonly FlowState _noFlow = new([], default, default);

    /// <summary>
    /// The one pass after the conntrack lookup at OUTPUT, for a packet a local process sends: false (nothing changed) when
    /// it must go hook by hook. OUTPUT's destination binding (a DNAT of a local connection) makes the kernel route again
    /// (ip_route_me_harder): left to the slow path, as is anything leaving by lo.
    /// </summary>
    private bool OnePassOutAfterTrack(Skb skb, Packet p, Ruleset rules, string outDev, PacketResult result)
    {
        if (skb.CtInfo is not (CtInfo.Established or CtInfo.EstablishedReply) || skb.Conntrack is not ConnEntry ct || !ct.IsConfirmed)
            return false;
        bool reply = skb.CtInfo == CtInfo.EstablishedReply;
        // A connection without a flow state has remembered nothing: only a plan that needs no memo can serve it. Its
        // first packets are not told apart (FlowSeen is left alone): with no memo to make, the slow path would do the same.
        FlowState flow = ct.Flow ?? _noFlow;
        ref OnePassPlan? kept = ref flow.PlanSlot(reply);
        OnePassPlan plan = kept is { } k && k.HoldsOutput(rules, Host.Generation, outDev, skb.Mark) ? k : kept = MakeOnePassOutputPlan(flow, reply, rules, outDev, skb.Mark);
        if (!plan.Usable || !WholeSegment(p, skb.Bytes)) return false;
        byte[] b = skb.Bytes;
        int length = p.TotalLength;
        byte proto = p.Protocol;
        ConnDirection dir = reply ? ConnDirection.Reply : ConnDirection.Original;
        if (plan.Nat && NatHooks.Applies(ct, NatManip.Dst, dir)) return false;
        bool snat = plan.Nat && NatHooks.Applies(ct, NatManip.Src, dir);
        bool v4 = p.Family == IpFamily.V4;
        UInt128 newSrc = 0;
        ushort newSrcPort = 0;
        if (snat)
        {
            if (v4)
            {
                if (!ct.TryNatTargetV4(dir, NatManip.Src, out uint a, out newSrcPort)) return false;
                newSrc = a;
            }
            else
            {
                ConnTuple other = dir == ConnDirection.Original ? ct.Reply : ct.Original;
                if (!other.TryInvert(out ConnTuple target) || target.Protocol != proto) return false;
                (newSrc, newSrcPort) = (target.Source, target.SourcePort);
            }
            // nf_nat_oif_changed (NatHooks.Apply at POSTROUTING).
            if (!reply && ct.MasqueradeDevice is { } masq && !ReferenceEquals(masq, outDev) && !string.Equals(masq, outDev, StringComparison.Ordinal)) return false;
        }
        else if (plan.Nat && !reply && ct.MasqueradeDevice is { } masq && !ReferenceEquals(masq, outDev) && !string.Equals(masq, outDev, StringComparison.Ordinal))
        {
            return false;
        }

        OnePassPackets++;
        skb.FlowPacket = 2;
        AddFlowCounters(plan, (ulong)length);
        if (snat)
        {
            if (v4) NatPacket.RewriteEstablishedV4(b, proto, true, (uint)newSrc, newSrcPort, false, 0, 0, decrementTtl: false);
            else NatPacket.RewriteEstablishedV6(b, proto, true, newSrc, newSrcPort, false, 0, 0, decrementHopLimit: false);
            p.Rewritten(true, newSrc, p.Destination, newSrcPort, p.DestinationPort, p.Ttl);
        }
        Emit(skb, result, "sent");
        result.Fate.Add(plan.Fate);
        return true;
    }

    /// <summary>
    /// The plan of a locally sent direction: usable when every table after conntrack at OUTPUT and POSTROUTING has a
    /// current memo for the direction (with the output device and the mark) or an empty built-in chain whose policy accepts.
    /// </summary>
    private OnePassPlan MakeOnePassOutputPlan(FlowState flow, bool reply, Ruleset rules, string outDev, uint mark)
    {
        long rg = rules.Generation, hg = Host.Generation;
        var unusable = new OnePassPlan { RulesGeneration = rg, HostGeneration = hg, Rules = rules, InDev = outDev, Output = true, Mark = mark };
        CtInfo info = reply ? CtInfo.EstablishedReply : CtInfo.Established;
        TablesOf(rules);
        var hits = new PlanHits();
        var policies = new List<Chain>();
        if (!AddPlanHook(flow, info, rules, rg, hg, Hook.Output, null, outDev, mark, hits, policies)
            || !AddPlanHook(flow, info, rules, rg, hg, Hook.Postrouting, null, outDev, mark, hits, policies))
            return unusable;
        return new OnePassPlan
        {
            RulesGeneration = rg,
            HostGeneration = hg,
            Rules = rules,
            InDev = outDev,
            Usable = true,
            Output = true,
            Mark = mark,
            Nat = _tables[2] is not null,
            OutDev = outDev,
            Fate = FateName("sent:", outDev),
            Hits = [.. hits.Rules], Slots = hits.SlotArray(), Form = hits.Form, Entries = hits.Entries,
            Policies = [.. policies],
        };
    }

    /// <summary>
    /// Adds to a plan what the tables after conntrack at <paramref name="hook"/> count for the direction: an empty built-in
    /// chain's policy (false when it drops), else the current memo's rules and policy (false when there is none).
    /// </summary>
    private bool AddPlanHook(FlowState flow, CtInfo info, Ruleset rules, long rg, long hg, Hook hook, string? inDev, string? outDev,
        uint mark, PlanHits hits, List<Chain> policies)
    {
        foreach (Registration reg in Order[(int)hook])
        {
            // raw and conntrack were done before the plan is asked; nat is not walked for an established packet
            // (nf_nat_inet_fn): its bindings are applied by the rewrite.
            if (reg.Priority < PriorityConntrack || reg.Slot == 2) continue;
            if (_tables[reg.Slot] is not { } table) continue;
            if (BaseChain(table, hook) is { Rules.Count: 0 } empty)
            {
                if (empty.Policy == Verdicts.Drop) return false;
                policies.Add(empty);
                continue;
            }
            FlowWalkMemo? memo = null;
            foreach (FlowWalkMemo w in flow.Walks)
            {
                if (w.Hook == hook && w.CtInfo == info && ReferenceEquals(w.Table, table))
                {
                    memo = w;
                    break;
                }
            }
            if (memo is null || memo.RulesGeneration != rg || memo.HostGeneration != hg || !ReferenceEquals(memo.Rules, rules)
                || memo.Mark != mark || !string.Equals(memo.InDev, inDev, StringComparison.Ordinal)
                || !string.Equals(memo.OutDev, outDev, StringComparison.Ordinal) || !hits.Add(memo))
                return false;
            if (memo.Policy is { } policy) policies.Add(policy);
        }
        return true;
    }

    /// <summary>The packet's bytes hold its whole IP length, and that covers the whole TCP (20) or UDP (8) header.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool WholeSegment(Packet p, byte[] b) =>
        b.Length >= p.TotalLength && p.TotalLength >= p.IpHeaderLength + (p.Protocol == IpProtocol.Tcp ? 20 : 8);

    /// <summary>
    /// The counters of one packet of <paramref name="length"/> bytes on every rule and built-in policy the plan's walks
    /// moved (what each table's walk, or its memo's replay, adds). The one place the one pass touches counters.
    /// </summary>
    private static void AddFlowCounters(OnePassPlan plan, ulong length)
    {
        CountHits(plan.Hits, plan.Slots, plan.Entries, length);
        foreach (Chain c in plan.Policies)
        {
            ref Counters cell = ref c.CountersCell;
            cell.Packets++;
            cell.Bytes += length;
        }
    }

    /// <summary>
    /// The plan of one direction from its flow state and the rule sets as they are now: usable when the direction's
    /// input route is kept (forward or local, no redirect) and every table registered after conntrack at every hook the
    /// packet passes has a current memo for the direction, or an empty built-in chain whose policy accepts.
    /// </summary>
    private OnePassPlan MakeOnePassPlan(FlowState flow, bool reply, Ruleset rules, string inDev)
    {
        long rg = rules.Generation, hg = Host.Generation;
        var unusable = new OnePassPlan { RulesGeneration = rg, HostGeneration = hg, Rules = rules, InDev = inDev };
        FlowRoute route = reply ? flow.Reply : flow.Original;
        if (!route.Holds(hg, rg, inDev) || route.Decision is not { } d || d.Redirect) return unusable;
        bool local = d.Verdict == Routing.InputVerdict.Local;
        if (!local && d.Verdict != Routing.InputVerdict.Forward) return unusable;
        string? outDev = local ? null : d.Route.Device ?? "";
        CtInfo info = reply ? CtInfo.EstablishedReply : CtInfo.Established;
        TablesOf(rules);
        var hits = new PlanHits();
        var policies = new List<Chain>();
        bool Add(Hook hook, string? outDevAt) => AddPlanHook(flow, info, rules, rg, hg, hook, inDev, outDevAt, 0, hits, policies);
        if (!Add(Hook.Prerouting, null)) return unusable;
        if (local ? !Add(Hook.Input, null) : !(Add(Hook.Forward, outDev) && Add(Hook.Postrouting, outDev))) return unusable;
        return new OnePassPlan
        {
            RulesGeneration = rg,
            HostGeneration = hg,
            Rules = rules,
            InDev = inDev,
            Usable = true,
            Local = local,
            Nat = _tables[2] is not null,
            OutDev = outDev,
            OutDevNumber = outDev is null ? (byte)0 : DeviceNames.Known(outDev),
            Gateway = d.Route.Gateway ?? UInt128.Zero,
            Mtu = local ? 0 : LinkNamed(outDev!)?.Mtu ?? 1500,
            Fate = local ? "delivered-local" : FateName("forwarded:", outDev),
            Hits = [.. hits.Rules], Slots = hits.SlotArray(), Form = hits.Form, Entries = hits.Entries,
            Policies = [.. policies],
        };
    }
}

/// <summary>The hits a plan gathers from its memos, with where each is counted (one compiled form's entries, or the rule).</summary>
internal sealed class PlanHits
{
    public List<Rule> Rules { get; } = [];

    private readonly List<int> _slots = [];
    private bool _anySlot;

    public Compiled.CompiledRules? Form { get; private set; }

    public Compiled.FlatEntry[]? Entries { get; private set; }

    /// <summary>Adds a memo's hits; false when its counters are no longer where it recorded them or in another form's entries.</summary>
    public bool Add(FlowWalkMemo memo)
    {
        if (!memo.SlotsHold) return false;
        if (memo.Slots is { } slots)
        {
            if (Form is null)
            {
                Form = memo.Form;
                Entries = memo.Entries;
            }
            else if (!ReferenceEquals(Form, memo.Form) || !ReferenceEquals(Entries, memo.Entries))
            {
                return false;
            }
            _slots.AddRange(slots);
            _anySlot = true;
        }
        else
        {
            for (int k = 0; k < memo.Hits.Length; k++) _slots.Add(-1);
        }
        Rules.AddRange(memo.Hits);
        return true;
    }

    public int[]? SlotArray() => _anySlot ? [.. _slots] : null;
}
