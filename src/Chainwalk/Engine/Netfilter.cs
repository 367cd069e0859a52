using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Routing;
using Chainwalk.Rules;
using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>
/// The conntrack and NAT hooks the pipeline calls (implemented in the Conntrack and Nat rooms). Without
/// them no packet is tracked: <c>--ctstate</c> sees INVALID and the nat table is never consulted, as in
/// a kernel without nf_conntrack.
/// </summary>
public interface IConntrackHooks
{
    /// <summary>nf_conntrack_in at PREROUTING / OUTPUT (priority -200): sets <see cref="Skb.CtInfo"/> and <see cref="Skb.Conntrack"/>; false = drop.</summary>
    bool Track(PacketContext ctx);

    /// <summary>nf_conntrack_confirm at the end of INPUT / POSTROUTING; false = drop.</summary>
    bool Confirm(PacketContext ctx);

    /// <summary>Whether the nat table's chain at this hook must be walked for the packet (first packet of its connection, no binding yet).</summary>
    bool NeedsNatRules(PacketContext ctx);

    /// <summary>After the nat chain (or without it): sets up the binding if none and applies the translation; false = drop.</summary>
    bool ApplyNat(PacketContext ctx);

    /// <summary>Called when a generated packet (REJECT reply, ICMP error) is attached to the packet it answers (nf_ct_attach).</summary>
    void Attach(Skb generated, Skb original);

    /// <summary>
    /// A hint given when a packet arrives, before it is parsed (<paramref name="ipPacket"/>: its IP bytes, unchecked): the
    /// connection lookup it will need may be fetched into the cache meanwhile. Returns a token for <see cref="PrefetchMore"/>
    /// (-1: nothing to follow). Changes nothing.
    /// </summary>
    long Prefetch(ReadOnlySpan<byte> ipPacket) => -1;

    /// <summary>The second step of <see cref="Prefetch"/>, a little later: what the first fetched leads to. Changes nothing.</summary>
    void PrefetchMore(long token)
    {
    }

    /// <summary>How many connections are tracked now (a burst fetches ahead only when they are many); unknown: int.MaxValue.</summary>
    int Connections => int.MaxValue;

    /// <summary>
    /// A hint for the input route: the IPv4 destination the packet will have once PREROUTING's NAT has applied its
    /// connection's binding (false: not known). Decides nothing; the route is looked up with the packet as it is then.
    /// </summary>
    bool TryRoutedDestination4(Skb skb, out uint destination)
    {
        destination = 0;
        return false;
    }

    /// <summary>Whether <see cref="Confirm"/> has anything to do for the packet (false: it would return true at once, e.g. an already confirmed connection).</summary>
    bool NeedsConfirm(Skb skb) => true;

    /// <summary>
    /// A top-level packet starts (not one generated while another is processed): what the previous packets were done with
    /// may be reused (the conntrack table's pool of removed entries).
    /// </summary>
    void PacketStarts()
    {
    }

    /// <summary>
    /// A hint given when a packet is about to be forwarded (its output device and route known, FORWARD and POSTROUTING
    /// still to walk): what POSTROUTING's source NAT and the confirmation will look up may be fetched meanwhile. Changes
    /// nothing.
    /// </summary>
    void PrefetchForward(Skb skb)
    {
    }

    /// <summary>
    /// <see cref="Confirm"/> without a context, for the common case: true when the packet's connection was confirmed or
    /// had nothing to confirm; false when <see cref="Confirm"/> must decide (it explains a refusal), the state unchanged.
    /// </summary>
    bool TryConfirmQuick(Skb skb, double now) => false;
}

/// <summary>
/// The virtual kernel's netfilter: the five hooks with the tables registered at them in priority order,
/// the routing decisions between them, and the chain walker (ipt_do_table / nft_do_chain). One instance
/// per host and batch of packets; packets are processed in order against the same state.
/// </summary>
public sealed partial class Netfilter
{
    /// <summary>A table registered at a hook, with the kernel's priority (NF_IP_PRI_*).</summary>
    private readonly record struct Registration(string Table, int Priority)
    {
        /// <summary>The table's place in <see cref="_tables"/>.</summary>
        public int Slot { get; } = TableSlot(Table);
    }

    private const int PriorityConntrack = -200;

    /// <summary>
    /// The order at each hook: raw -300, conntrack -200, mangle -150, nat (DNAT) -100, filter 0, nat (SNAT) 100,
    /// security 150. iptables-nft registers its security chains at priority 150, not at the kernel's
    /// NF_IP_PRI_SECURITY (50) that iptables-legacy uses (seen with `nft list ruleset`), so on INPUT the nat chain
    /// runs before security.
    /// </summary>
    private static readonly Registration[][] Order =
    [
        /* PREROUTING  */ [new("raw", -300), new("mangle", -150), new("nat", -100)],
        /* INPUT       */ [new("mangle", -150), new("filter", 0), new("nat", 100), new("security", 150)],
        /* FORWARD     */ [new("mangle", -150), new("filter", 0), new("security", 150)],
        /* OUTPUT      */ [new("raw", -300), new("mangle", -150), new("nat", -100), new("filter", 0), new("security", 150)],
        /* POSTROUTING */ [new("mangle", -150), new("nat", 100)],
    ];

    /// <summary>nft's jump stack (NFT_JUMP_STACK_SIZE): deeper nesting is refused at load time; the walker guards it too.</summary>
    public const int JumpStackSize = 16;

    public Netfilter(VirtualHost host, RuntimeState? state = null)
    {
        Host = host;
        State = state ?? new RuntimeState { Now = host.Clock };
    }

    public VirtualHost Host { get; }

    public RuntimeState State { get; }

    /// <summary>
    /// The host's ipset sets (ipset.rules), read and changed by <c>-m set</c> and <c>-j SET</c>; the caller
    /// loads them before processing and saves them after (counters, added and deleted entries). Null: no sets.
    /// </summary>
    public IpsetStore? Ipsets { get; set; }

    /// <summary>The host's nfacct objects (nfacct.conf) that <c>-m nfacct</c> counts into; loaded and saved by the caller. Null: none.</summary>
    public NfacctStore? Nfacct { get; set; }

    /// <summary>Connection tracking and NAT; null = not loaded.</summary>
    public IConntrackHooks? Conntrack { get; set; }

    /// <summary>
    /// Kept for callers of earlier versions; it changes nothing now. Routing always works from tables derived once
    /// per host generation (<see cref="VirtualHost.Generation"/>: Routing.Fib), so a change of the host is seen by the next
    /// packet and nothing is derived again while the host stands still.
    /// </summary>
    public bool CacheRoutes { get; set; }

    private InputDecision InputRoute(RouteQuery q) => RouteLookup.Input(Host, q);

    /// <summary>One remembered IPv4 input decision: destination, source, input device → the shared decision.</summary>
    private struct InputRouteEntry
    {
        public uint Destination;
        public uint Source;
        public string? Device;
        public InputDecision? Decision;
    }

    /// <summary>
    /// IPv4 input decisions (ip_route_input_noref's answer) remembered for one host generation, two entries per set, by
    /// destination and source: the decision is a function of those, the input device and the host (routes,
    /// addresses, links, sysctls; any change of them moves <see cref="VirtualHost.Generation"/>), so a flow's packets ask
    /// the FIB once. Grows with the misses up to <see cref="InputRoutesMax"/> entries. The key has no mark or TOS because
    /// the virtual host has no policy routing (<c>ip rule</c>); when it gets one, the mark joins the key. Used only where the
    /// host's input plan (<see cref="_inputPlan"/>: a handful of routes) gives no answer.
    /// </summary>
    private InputRouteEntry[] _inputRoutes = new InputRouteEntry[64];

    private long _inputRoutesGeneration = -1;

    private int _inputRouteMisses;

    private const int InputRoutesMax = 1 << 14;

    /// <summary>The host's input plan for <see cref="_inputRoutesGeneration"/> (null: a large table, the memo answers).</summary>
    private Routing.InputPlan4? _inputPlan;

    private InputDecision InputRoute4(uint dst, uint src, string dev)
    {
        long g = Host.Generation;
        InputRouteEntry[] cache = _inputRoutes;
        if (g != _inputRoutesGeneration)
        {
            Array.Clear(cache);
            _inputRoutesGeneration = g;
            _inputRouteMisses = 0;
            _inputPlan = Routing.Fib.Of(Host).Input4Plan;
        }
        // A host with a handful of routes: the decision from the tables themselves, a few lines that stay in the cache, instead
        // of a memo entry per (destination, source), another line for every new flow (Routing.InputPlan4).
        if (_inputPlan is { } plan && plan.Decide(dst, src, dev) is { } planned) return planned;
        // Two ways per set (the slot and its neighbour): keys whose slots collide (many destinations, a few sources: the
        // endpoints DNAT picks) no longer evict each other packet after packet.
        int at = InputRouteSlot(dst, src, cache.Length);
        ref InputRouteEntry e = ref cache[at];
        if (e.Decision is { } known && e.Destination == dst && e.Source == src
            && (ReferenceEquals(e.Device, dev) || string.Equals(e.Device, dev, StringComparison.Ordinal)))
        {
            return known;
        }
        ref InputRouteEntry e1 = ref cache[at + 1];
        if (e1.Decision is { } known1 && e1.Destination == dst && e1.Source == src
            && (ReferenceEquals(e1.Device, dev) || string.Equals(e1.Device, dev, StringComparison.Ordinal)))
        {
            return known1;
        }
        InputDecision d = RouteLookup.Input4(Host, dst, src, dev);
        // Only the decisions the FIB shares between packets (forward, local unicast) are kept; the rest are rare.
        if (d.Verdict is InputVerdict.Forward or InputVerdict.Local && !IsMulticast4(dst))
        {
            if (++_inputRouteMisses > cache.Length && cache.Length < InputRoutesMax)
            {
                _inputRoutes = new InputRouteEntry[cache.Length * 4];
                _inputRouteMisses = 0;
                return d;
            }
            // The newest first: the older of the set gives way.
            if (e.Decision is not null) e1 = e;
            e.Destination = dst;
            e.Source = src;
            e.Device = dev;
            e.Decision = d;
        }
        return d;
    }

    private static bool IsMulticast4(uint a) => (a >> 28) == 0xe;

    /// <summary>Where (destination, source) is remembered in an input route memo of <paramref name="length"/> entries: the first of its set of two (an even index).</summary>
    private static int InputRouteSlot(uint dst, uint src, int length)
    {
        uint h = (dst * 0x9E3779B1u) ^ (src * 0x85EBCA77u);
        return (int)((h ^ (h >> 15)) & (uint)(length - 2));
    }

    /// <summary>
    /// A hint: fetches the input route memo's entry for (<paramref name="dst"/>, <paramref name="src"/>) into the cache,
    /// where <see cref="InputRoute4"/> will look once PREROUTING is done (the NAT rewrite and the tables in between
    /// overlap the fetch). Changes nothing. Nothing to fetch where the host's input plan answers.
    /// </summary>
    private unsafe void PrefetchInputRoute(uint dst, uint src)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported || _inputPlan is not null) return;
        InputRouteEntry[] cache = _inputRoutes;
        int at = InputRouteSlot(dst, src, cache.Length);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(System.Runtime.CompilerServices.Unsafe.AsPointer(ref cache[at]));
        // The set's second entry, when it starts on the next line.
        System.Runtime.Intrinsics.X86.Sse.Prefetch0((byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref cache[at + 1]) + System.Runtime.CompilerServices.Unsafe.SizeOf<InputRouteEntry>() - 1);
    }

    /// <summary>
    /// A hint from NAT when a new connection's destination binding is made at PREROUTING (DNAT, REDIRECT, NETMAP): the
    /// input route memo's entry for the address the packet will carry is fetched while the rest of the nat chain, the
    /// rewrite and the hook run (the entry fetched after conntrack was for the old destination). Changes nothing.
    /// </summary>
    internal void PrefetchInputRouteAfterDnat(uint dst, uint src)
    {
        if (Current?.Trace is null) PrefetchInputRoute(dst, src);
    }

    /// <summary>Called after the conntrack lookup when a trace is recorded, to explain it (set by the front end).</summary>
    public Action<PacketContext>? ConnectionExplainer { get; set; }

    /// <summary>
    /// The compiled form of the IPv4 rules (<see cref="Compiled.CompiledRules"/>), used by the walker when no trace
    /// is recorded; null = every chain is walked linearly (the reference). Whoever edits the rules afterwards
    /// recompiles the chain or drops this.
    /// </summary>
    public Compiled.CompiledRules? Compiled { get; set; }

    /// <summary>
    /// Whether a compiled walk reads the flat entries (<see cref="Compiled.FlatEntry"/>, FlatWalk.cs) rather than the rule
    /// objects with the index alone (default true; false: the compiled walk as before, for comparisons).
    /// </summary>
    public bool FlatWalk { get; set; } = true;

    /// <summary>Record the trace events of every packet (for explanations); off on the fast path.</summary>
    public bool RecordTrace { get; set; }

    /// <summary>The result of the packet being processed (the one given to <see cref="Process"/>).</summary>
    internal PacketResult? Current { get; private set; }

    private int _generatedDepth;

    /// <summary>True while a packet the host generated (REJECT reply, ICMP error) goes through the hooks.</summary>
    internal bool InGenerated => _generatedDepth > 0;

    /// <summary>Processes one packet: received on an interface, or sent by a local process.</summary>
    public PacketResult Process(PacketInput input) => Run(input, new PacketResult(), reuse: false);

    /// <summary>
    /// Processes one packet into <paramref name="into"/>, a result the caller reuses packet after packet (a replay, a
    /// benchmark): it is cleared first, and what it held for the previous packet (lists, output records and their
    /// bytes, the skb, the copy of the input) is overwritten; keep nothing of it across calls. Same processing as
    /// <see cref="Process(PacketInput)"/>, without allocating the per-packet objects again.
    /// </summary>
    public PacketResult Process(PacketInput input, PacketResult into)
    {
        ArgumentNullException.ThrowIfNull(into);
        // The input's fields are read all through Run's start; its lines are asked for first, while the result is cleared.
        PrefetchInput(input);
        into.Reset();
        return Run(input, into, reuse: true);
    }

    /// <summary>
    /// A hint: the input object's lines (its fields span two or three: 112 bytes at any 8-byte offset), from the reference
    /// alone; nothing is read. A benchmark's or a capture's inputs are met once each, out of the cache.
    /// </summary>
    private static unsafe void PrefetchInput(PacketInput input)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        byte* at = *(byte**)System.Runtime.CompilerServices.Unsafe.AsPointer(ref input);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(at);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(at + 56);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(at + 104);
    }

    private PacketResult Run(PacketInput input, PacketResult result, bool reuse)
    {
        // A reused result keeps the previous packet's input references (Reset leaves them): stored only when they change.
        if (!ReferenceEquals(result.Input, input.Bytes)) result.Input = input.Bytes;
        if (!ReferenceEquals(result.InputInterface, input.InInterface)) result.InputInterface = input.InInterface;
        result.Local = input.Local;
        // A result comes cleared (new, or Reset): null is stored only over a list (no write barrier per packet).
        if (RecordTrace) result.Trace = new List<TraceEvent>();
        else if (result.Trace is not null) result.Trace = null;
        // The reused result's objects serve the next packet only on the fast path (no trace kept).
        reuse = reuse && !RecordTrace && !input.Trace;
        if (input.At is double at)
        {
            if (at < State.Now) at = State.Now;
            State.Now = at;
            Host.Clock = at;
        }
        PacketResult? outer = Current;
        if (outer is null) Conntrack?.PacketStarts();
        Current = result;
        try
        {
            // The connection lookup's slot is fetched while the input is parsed and checked, then the entry it holds.
            // A burst fetched all of it some packets ahead (Burst.cs) and hands its token over: nothing fetched here.
            long hint = result.Ahead;
            long more = -1;
            int walkHint = -1;
            if (hint == PacketResult.NotAhead)
            {
                more = hint = Conntrack?.Prefetch(input.Bytes) ?? -1;
                // A new connection's first rule-walk lookup (kube-proxy's KUBE-SERVICES slot, and the form's record of what the
                // slot's rule jumps to), fetched while the packet is parsed.
                walkHint = input.Local || Compiled is not { } arrivalForm ? -1 : arrivalForm.PrefetchArrival(input.Bytes, out _walkArrivalTag);
                _walkArrivalFetched = false;
            }
            else
            {
                result.Ahead = PacketResult.NotAhead;
            }
            _arrivalToken = hint;
            _walkArrivalToken = walkHint;
            Packet? packet = input.Parsed is { } given && ReferenceEquals(given.Bytes, input.Bytes) && !given.IsQuoted ? given : null;
            if (packet is null && reuse && result.SparePacket is { } spare)
            {
                // The previous packet's copy, overwritten when this one is as long (else it is dropped from the pool).
                result.SparePacket = null;
                if (spare.TryReuseFor(input.Bytes))
                {
                    packet = spare;
                    result.SparePacket = spare;
                }
            }
            if (packet is null)
            {
                if (!Packet.TryParse(input.Bytes, out packet, out PacketError error))
                {
                    // ip_rcv_core / ipv6_rcv drop what is not a whole IP packet before any hook sees it.
                    Drop(result, "malformed IP header: " + Packet.Describe(error));
                    return result;
                }
                if (reuse) result.SparePacket = packet;
            }
            Skb skb;
            if (reuse && result.SpareSkb is { } spareSkb)
            {
                spareSkb.ResetFor(packet);
                skb = spareSkb;
            }
            else
            {
                skb = new Skb(packet);
                if (reuse) result.SpareSkb = skb;
            }
            skb.Trace = input.Trace;
            if (input.Local)
            {
                skb.OutDev = input.OutInterface;
                skb.Mark = input.Mark;
                skb.Socket = input.Owner ?? SocketOwner.Root;
                skb.PacketType = PacketType.Outgoing;
                LocalOut(skb, result, generated: false, boundDevice: input.OutInterface);
            }
            else
            {
                skb.InDev = input.InInterface;
                skb.SourceMac = input.SourceMac;
                skb.DestinationMac = input.DestinationMac;
                // The slot fetched above is read (and its entry fetched) only right before the lookup (FetchArrivalEntry):
                // the receive checks and the one pass's first steps run while the slot is on its way.
                _arrivalSlot = more;
                if (walkHint >= 0)
                {
                    var form = Compiled!;
                    form.PrefetchArrivalMore(walkHint);
                    PrefetchWalkService(form);
                }
                Receive(skb, result);
            }
        }
        catch (NotEvaluatedException ex)
        {
            result.Error = ex.Message;
            result.Fate.Clear();
            result.Fate.Add("error");
        }
        catch (Exception ex) when (ex is not (OutOfMemoryException or StackOverflowException))
        {
            // A fault in Chainwalk itself: this packet's result says so, the batch goes on.
            result.Error = "chainwalk: internal error while processing the packet: " + ex.GetType().Name + ": " + ex.Message;
            result.Fate.Clear();
            result.Fate.Add("error");
        }
        finally
        {
            Current = outer;
            Host.Clock = State.Now;
            // A packet dropped before its lookup leaves its slot unread: no later packet reads it.
            _arrivalSlot = -1;
        }
        return result;
    }

    private readonly Dictionary<(string Kind, string Device), string> _fateNames = new();

    /// <summary>The last fate names given, by the identity of their parts (the route's device string is the same object packet after packet).</summary>
    private readonly (string? Kind, string? Device, string? Name)[] _lastFates = new (string?, string?, string?)[4];

    /// <summary>"forwarded:eth0", "sent:eth1": made once per device, not per packet.</summary>
    private string FateName(string kind, string? device)
    {
        device ??= "";
        (string? Kind, string? Device, string? Name)[] last = _lastFates;
        for (int i = 0; i < last.Length; i++)
        {
            if (ReferenceEquals(last[i].Kind, kind) && ReferenceEquals(last[i].Device, device)) return last[i].Name!;
        }
        string found = FateNameSlow(kind, device);
        Array.Copy(last, 0, last, 1, last.Length - 1);
        last[0] = (kind, device, found);
        return found;
    }

    private string FateNameSlow(string kind, string device)
    {
        if (!_fateNames.TryGetValue((kind, device), out string? name))
        {
            name = kind + device;
            if (_fateNames.Count < 1024) _fateNames[(kind, device)] = name;
        }
        return name;
    }

    /// <summary>Links found lately, by the identity of the name string, for one host generation (any change of the host's links moves it).</summary>
    private readonly (string? Name, Link? Link)[] _links = new (string?, Link?)[4];

    private long _linksGeneration = -1;

    /// <summary><see cref="VirtualHost.FindLink"/>, without comparing names again packet after packet.</summary>
    private Link? LinkNamed(string name)
    {
        long g = Host.Generation;
        if (g != _linksGeneration)
        {
            Array.Clear(_links);
            _linksGeneration = g;
        }
        for (int i = 0; i < _links.Length; i++)
        {
            if (ReferenceEquals(_links[i].Name, name)) return _links[i].Link;
        }
        Link? link = Host.FindLink(name);
        Array.Copy(_links, 0, _links, 1, _links.Length - 1);
        _links[0] = (name, link);
        return link;
    }

    private static void Drop(PacketResult r, string? reason)
    {
        r.Fate.Add("dropped");
        r.DropReason ??= reason;
    }

    private void Event(TraceEvent e) => Current?.Trace?.Add(e);

    /// <summary>Whether the packet's trace is recorded: events (and their texts) are built only then.</summary>
    private bool Tracing
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get => Current?.Trace is not null;
    }

    // ------------------------------------------------------------------ receive path (ip_rcv … ip_local_deliver / ip_forward)

    private void Receive(Skb skb, PacketResult result)
    {
        Link? link = skb.InDev is null ? null : LinkNamed(skb.InDev);
        if (link is null)
        {
            result.Error = $"no such interface: {skb.InDev}";
            Drop(result, result.Error);
            return;
        }
        if (!link.Up)
        {
            Drop(result, $"interface {link.Name} is down");
            return;
        }
        skb.PacketType = ClassifyLinkDestination(skb, link);
        if (skb.PacketType == PacketType.OtherHost)
        {
            Drop(result, "addressed to another host's MAC (PACKET_OTHERHOST)");
            return;
        }
        if (ReceiveChecks(skb) is { } bad)
        {
            Drop(result, bad);
            return;
        }
        // nf_defrag_ipv4 / nf_defrag_ipv6 (priority -400): with conntrack, netfilter sees whole datagrams only.
        if (Conntrack is not null && skb.Packet.IsFragment && !Defragment(skb, result)) return;
        // A confirmed flow whose memos all hold goes through in one pass (OnePass.cs); else on hook by hook, after the
        // conntrack lookup when the one pass made it already.
        bool afterConntrack = false;
        if (FlowPath && Conntrack is not null)
        {
            // (OnePass reads the arrival's slot right before its lookup; a packet it does not take reads it below.)
            OnePassOutcome pass = OnePass(skb, result);
            if (pass == OnePassOutcome.Done) return;
            afterConntrack = pass == OnePassOutcome.AfterConntrack;
        }
        FetchArrivalEntry();
        if (!RunHook(skb, Hook.Prerouting, result, afterConntrack: afterConntrack)) return;

        // A packet on lo was sent by this host and keeps the route it was sent with (ip_rcv_finish skips the input
        // lookup when the skb already has a dst): it is for one of our addresses.
        InputDecision decision = skb.InDev == "lo" ? LoopbackDecision(skb)
            : skb.Family == IpFamily.V4 ? InputRouteFlow4(skb, (uint)skb.Packet.Destination, (uint)skb.Packet.Source, skb.InDev!)
            : InputRouteFlow6(skb);
        // The skb carries its input route from here on (skb_dst_set): its gateway is what rt_nexthop reads in POSTROUTING.
        skb.RouteGateway = decision.Route.Gateway ?? UInt128.Zero;
        switch (decision.Verdict)
        {
            case InputVerdict.Local:
                if (Tracing) Event(new RouteEvent($"local delivery (route type {decision.Route.Type.ToString().ToLowerInvariant()})"));
                skb.OutDev = null;
                // ip_local_deliver reassembles IPv4 before INPUT; IPv6 reassembles after it (the fragment header's handler).
                if (skb.Family == IpFamily.V4 && skb.Packet.IsFragment && !Defragment(skb, result)) return;
                if (!RunHook(skb, Hook.Input, result)) return;
                if (!ConfirmConntrack(skb, Hook.Input, result)) return;
                if (skb.Family == IpFamily.V6 && skb.Packet.IsFragment && !Defragment(skb, result)) return;
                result.Fate.Add("delivered-local");
                return;
            case InputVerdict.Forward:
                if (Tracing) Event(new RouteEvent($"forward via {decision.Route.Device}" + (decision.Route.Gateway is { } gw ? " gateway " + IpNet.FormatAddress(gw, skb.Family) : "")));
                Forward(skb, decision, result);
                return;
            default:
                RouteDrop(skb, decision, result);
                return;
        }
    }

    /// <summary>
    /// Queues a fragment; when it completes its datagram, the skb carries the whole datagram on and true is
    /// returned. Otherwise the fragment is held (fate <c>held:reassembly</c>) or its queue discarded.
    /// </summary>
    private bool Defragment(Skb skb, PacketResult result)
    {
        Reassembly r = State.Get(Reassembly.StateKey, () => new Reassembly());
        string key = skb.Family == IpFamily.V4 ? "net.ipv4.ipfrag_time" : "net.ipv6.ip6frag_time";
        double timeout = double.TryParse(Host.GetSysctl(key), System.Globalization.CultureInfo.InvariantCulture, out double t) ? t : 30;
        byte[]? whole = r.Add(skb.Packet, State.Now, timeout, out int maxFragment, out bool discarded);
        if (whole is null)
        {
            if (discarded) Drop(result, "overlapping fragment: the datagram's fragments are discarded");
            else
            {
                Event(new RouteEvent("fragment held until its datagram is complete"));
                result.Fate.Add("held:reassembly");
            }
            return false;
        }
        Event(new RouteEvent($"fragments reassembled into a datagram of {whole.Length} bytes"));
        skb.Replace(whole);
        skb.FragMaxSize = maxFragment;
        return true;
    }

    private InputDecision LoopbackDecision(Skb skb)
    {
        UInt128 dst = skb.Packet.Destination;
        bool local = RouteLookup.IsLocalAddress(Host, skb.Family, dst)
            || (skb.Family == IpFamily.V4 && (dst >> 24) == 127)
            || (skb.Family == IpFamily.V4 ? RouteLookup.AddressType4(Host, dst) is RouteType.Local or RouteType.Broadcast : false);
        var route = new RouteResult(RouteType.Local, RouteError.None) { Device = "lo" };
        return local
            ? new InputDecision(InputVerdict.Local, InputDropReason.None, route)
            : new InputDecision(InputVerdict.Drop, InputDropReason.MartianDestination, RouteResult.Fail(RouteError.NetworkUnreachable));
    }

    /// <summary>What the Ethernet destination says: ours, broadcast, multicast or another host's.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static PacketType ClassifyLinkDestination(Skb skb, Link link)
    {
        if (skb.DestinationMac is not ulong dst) return PacketType.Host;
        if (dst == 0xffff_ffff_ffffUL) return PacketType.Broadcast;
        if ((dst & 0x0100_0000_0000UL) != 0) return PacketType.Multicast;
        if (link.Name == "lo") return PacketType.Host;
        return EthernetFrame.TryParseMac(link.Mac, out ulong own) && own == dst ? PacketType.Host : PacketType.OtherHost;
    }

    /// <summary>The header checks of ip_rcv_core / ipv6_rcv: a packet failing them never reaches netfilter.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static string? ReceiveChecks(Skb skb)
    {
        Packet p = skb.Packet;
        if (p.Family == IpFamily.V4)
        {
            if (!p.IpChecksumValid) return "bad IPv4 header checksum (ip_rcv: InCsumErrors)";
            if (p.Bytes.Length < p.TotalLength) return "IPv4 total length beyond the packet (ip_rcv: InTruncatedPkts)";
            return null;
        }
        // ipv6_rcv: a multicast source is never valid; loopback and node-local multicast destinations only on lo;
        // a multicast destination of the reserved scope 0 is dropped.
        if ((p.Source >> 120) == 0xff) return "multicast source address (ipv6_rcv)";
        bool onLoopback = skb.InDev == "lo";
        if (!onLoopback && p.Destination == UInt128.One) return "loopback destination on a non-loopback interface (ipv6_rcv)";
        if ((p.Destination >> 120) == 0xff)
        {
            int scope = (int)((p.Destination >> 112) & 0xf);
            if (scope == 0) return "multicast destination of reserved scope 0 (ipv6_rcv)";
            if (scope == 1 && !onLoopback) return "interface-local multicast on a non-loopback interface (ipv6_rcv)";
        }
        return null;
    }

    private void RouteDrop(Skb skb, InputDecision decision, PacketResult result)
    {
        string why = decision.Reason switch
        {
            InputDropReason.MartianSource => "martian source",
            InputDropReason.MartianDestination => "martian destination",
            InputDropReason.SourceValidation => "source validation failed (rp_filter or own address as source)",
            InputDropReason.NoRoute => "no route to the destination",
            InputDropReason.ForwardingDisabled => "not for this host and forwarding is disabled",
            InputDropReason.RejectRoute => $"route of type {decision.Route.Type.ToString().ToLowerInvariant()}",
            InputDropReason.BeyondScope => "link-local address may not be forwarded (beyond scope)",
            InputDropReason.NotJoined => "multicast group not joined",
            _ => decision.Reason.ToString(),
        };
        Event(new RouteEvent("dropped by routing: " + why));
        Drop(result, why);
        // ip_error / ip6_pkt_drop answer some of these with an ICMP error.
        if (skb.Family == IpFamily.V4)
        {
            int? code = decision.Reason switch
            {
                InputDropReason.NoRoute => IcmpErrors.NetUnreachable,
                InputDropReason.RejectRoute when decision.Route.Type == RouteType.Unreachable => IcmpErrors.HostUnreachable,
                InputDropReason.RejectRoute when decision.Route.Type == RouteType.Prohibit => IcmpErrors.AdminProhibited,
                _ => null,
            };
            if (code is int c) SendIcmpError(skb, 3, (byte)c, 0, "ICMP destination unreachable");
        }
        else
        {
            (byte type, byte code)? err = decision.Reason switch
            {
                InputDropReason.NoRoute => (1, 0),
                InputDropReason.RejectRoute when decision.Route.Type == RouteType.Unreachable => (1, 0),
                InputDropReason.RejectRoute when decision.Route.Type == RouteType.Prohibit => (1, 1),
                InputDropReason.BeyondScope => (1, 2),
                _ => null,
            };
            if (err is var (t, c6)) SendIcmpError(skb, t, c6, 0, "ICMPv6 destination unreachable");
        }
    }

    /// <summary>ip_forward / ip6_forward: host-addressed frames only, TTL, MTU, TTL decrement, FORWARD, then out.</summary>
    private void Forward(Skb skb, InputDecision decision, PacketResult result)
    {
        if (skb.PacketType != PacketType.Host)
        {
            Drop(result, "not forwarded: the frame was not addressed to this host's MAC");
            return;
        }
        string outDev = decision.Route.Device ?? "";
        Packet p = skb.Packet;
        byte ttl = p.Ttl;
        if (ttl <= 1)
        {
            Event(new RouteEvent(skb.Family == IpFamily.V4 ? "TTL exceeded in transit" : "hop limit exceeded in transit"));
            Drop(result, skb.Family == IpFamily.V4 ? "TTL exceeded" : "hop limit exceeded");
            if (skb.Family == IpFamily.V4) SendIcmpError(skb, 11, 0, 0, "ICMP time exceeded");
            else SendIcmpError(skb, 3, 0, 0, "ICMPv6 time exceeded");
            return;
        }
        int mtu = LinkNamed(outDev)?.Mtu ?? 1500;
        if (p.TotalLength > mtu && (skb.Family == IpFamily.V6 || p.DontFragment))
        {
            Event(new RouteEvent($"packet of {p.TotalLength} bytes exceeds the MTU {mtu} of {outDev}"));
            Drop(result, "packet too big for the outgoing interface");
            if (skb.Family == IpFamily.V4) SendIcmpError(skb, 3, 4, (uint)mtu, "ICMP fragmentation needed");
            else SendIcmpError(skb, 2, 0, (uint)mtu, "ICMPv6 packet too big");
            return;
        }
        DecrementTtl(skb);
        // ip_forward sends the redirect after the TTL decrement: the quoted header shows the new TTL.
        // IN_DEV_TX_REDIRECTS: conf.all or the device's send_redirects (both 1 by default).
        if (decision.Redirect && skb.Family == IpFamily.V4 && (Host.GetSysctl($"net.ipv4.conf.{skb.InDev}.send_redirects") != "0"
            || Host.GetSysctl("net.ipv4.conf.all.send_redirects") != "0"))
        {
            // ip_rt_send_redirect: tell the sender about the better gateway (the first one is sent at once).
            uint gateway = (uint)(decision.Route.Gateway ?? skb.Packet.Destination);
            SendIcmpError(skb, 5, 1, gateway, "ICMP redirect");
        }
        skb.OutDev = outDev;
        Conntrack?.PrefetchForward(skb);
        if (!RunHook(skb, Hook.Forward, result)) return;
        if (!Postrouting(skb, result)) return;
        // The output device's MTU found above: nothing between (the hooks, a packet they generate) changes the host's links.
        Emit(skb, result, "forwarded", mtu);
        result.Fate.Add(FateName("forwarded:", outDev));
    }

    private static void DecrementTtl(Skb skb)
    {
        byte[] b = skb.Bytes;
        if (skb.Family == IpFamily.V4)
        {
            // ip_decrease_ttl (include/net/ip.h): TTL - 1, and the checksum word plus 0x0100 plus one more when the
            // sum reaches 0xFFFF. Not a one's-complement fold: where the sum is exactly 0xFFFF the kernel writes
            // 0x0000, where a fold would keep 0xFFFF (both valid; the recorded cases 0091-0261 and 0091-2850 show it).
            b[8]--;
            uint sum = (uint)((b[10] << 8) | b[11]) + 0x0100;
            if (sum >= 0xFFFF) sum++;
            b[10] = (byte)(sum >> 8);
            b[11] = (byte)sum;
        }
        else
        {
            b[7]--;
        }
        // Only the TTL (and the IPv4 checksum, kept valid incrementally) changed: the other facts stand.
        skb.Packet.TtlChanged();
    }

    // ------------------------------------------------------------------ local output (ip_local_out)

    /// <summary>A locally generated packet: output route, OUTPUT, re-route, POSTROUTING, then out (or back in by loopback).</summary>
    private void LocalOut(Skb skb, PacketResult result, bool generated, string? boundDevice, Skb? answering = null)
    {
        RouteResult route = OutputRoute(skb, boundDevice, anySource: generated);
        if (!route.Ok)
        {
            Event(new RouteEvent($"no output route: {route.ErrorMessage}"));
            if (!generated) Drop(result, $"no route: the sender gets \"{route.ErrorMessage}\"");
            else Event(new GeneratedEndEvent("dropped (no route)"));
            return;
        }
        skb.OutDev = route.Device;
        skb.RouteGateway = route.Gateway ?? UInt128.Zero;
        if (Tracing) Event(new RouteEvent($"output route via {route.Device}" + (route.Gateway is { } gw ? " gateway " + IpNet.FormatAddress(gw, skb.Family) : "")));
        if (answering is not null) Conntrack?.Attach(skb, answering);

        uint mark = skb.Mark;
        UInt128 src = skb.Packet.Source, dst = skb.Packet.Destination;
        byte tos = skb.Packet.Tos;
        // A local process's packet of a confirmed flow whose memos all hold goes out in one pass (OnePass.cs).
        bool afterConntrack = false;
        if (!generated && answering is null && FlowPath && Conntrack is not null)
        {
            OnePassOutcome pass = OnePass(skb, result, Hook.Output);
            if (pass == OnePassOutcome.Done) return;
            afterConntrack = pass == OnePassOutcome.AfterConntrack;
        }
        if (!RunHook(skb, Hook.Output, result, generated, afterConntrack)) return;
        // ip_route_me_harder: mangle (mark, addresses, TOS) or nat (DNAT) changed what the route depends on.
        if (skb.Mark != mark || skb.Packet.Source != src || skb.Packet.Destination != dst || skb.Packet.Tos != tos)
        {
            RouteResult again = OutputRoute(skb, boundDevice, anySource: generated);
            if (!again.Ok)
            {
                Event(new RouteEvent($"re-routing failed: {again.ErrorMessage}"));
                if (!generated) Drop(result, "re-routing after OUTPUT failed: " + again.ErrorMessage);
                return;
            }
            if (again.Device != skb.OutDev) Event(new RouteEvent($"re-routed via {again.Device}"));
            skb.OutDev = again.Device;
            skb.RouteGateway = again.Gateway ?? UInt128.Zero;
        }
        if (!Postrouting(skb, result, generated)) return;
        if (skb.OutDev == "lo")
        {
            // Looped back: the packet arrives again on lo (PREROUTING, INPUT).
            Event(new RouteEvent("looped back to this host by lo"));
            var again = skb.Clone();
            again.InDev = "lo";
            again.OutDev = null;
            again.Socket = null;
            again.PacketType = PacketType.Host;
            if (!RunHook(again, Hook.Prerouting, result, generated)) return;
            if (!RunHook(again, Hook.Input, result, generated)) return;
            if (!ConfirmConntrack(again, Hook.Input, result, generated)) return;
            if (!generated) result.Fate.Add("delivered-local");
            else Event(new GeneratedEndEvent("delivered-local"));
            return;
        }
        Emit(skb, result, generated ? "generated" : "sent");
        if (!generated) result.Fate.Add(FateName("sent:", skb.OutDev));
        else Event(new GeneratedEndEvent("sent:" + skb.OutDev));
    }

    /// <summary>
    /// The output route. Packets the kernel builds itself (a reset for a forwarded packet carries the
    /// original destination as its source) are routed with FLOWI_FLAG_ANYSRC: the source need not be ours.
    /// </summary>
    private RouteResult OutputRoute(Skb skb, string? boundDevice, bool anySource = false)
    {
        UInt128? source = anySource && !RouteLookup.IsLocalAddress(Host, skb.Family, skb.Packet.Source) ? null : skb.Packet.Source;
        return RouteLookup.OutputShared(Host, skb.Family, skb.Packet.Destination, source, boundDevice, skb.Mark);
    }

    /// <summary>POSTROUTING and the conntrack confirmation at its end.</summary>
    private bool Postrouting(Skb skb, PacketResult result, bool generated = false)
    {
        if (!RunHook(skb, Hook.Postrouting, result, generated)) return false;
        return ConfirmConntrack(skb, Hook.Postrouting, result, generated);
    }

    private bool ConfirmConntrack(Skb skb, Hook hook, PacketResult result, bool generated = false)
    {
        // Most packets belong to a confirmed connection: nothing to do, no context to set up.
        if (Conntrack is null || !Conntrack.NeedsConfirm(skb)) return true;
        // A new connection's confirmation needs no context unless it is refused (then explained).
        if (!Tracing && Conntrack.TryConfirmQuick(skb, State.Now)) return true;
        PacketContext ctx = RentContext(skb, hook);
        try
        {
            if (Conntrack.Confirm(ctx)) return true;
        }
        finally
        {
            _contextDepth--;
        }
        if (!generated) Drop(result, "conntrack confirmation failed");
        return false;
    }

    /// <param name="mtu">The output device's MTU when the caller knows it (<see cref="Forward"/>), else -1: looked up.</param>
    private void Emit(Skb skb, PacketResult result, string kind, int mtu = -1)
    {
        // The skb's bytes are its own (parsed from a copy) and the packet ends here: handed over, copied only when cut.
        byte[] bytes = skb.Bytes.Length == skb.Packet.TotalLength ? skb.Bytes : skb.Bytes[..skb.Packet.TotalLength];
        if (mtu < 0) mtu = (skb.OutDev is null ? null : LinkNamed(skb.OutDev))?.Mtu ?? 1500;
        // A reassembled datagram leaves in fragments no larger than the largest one that came in (frag_max_size).
        if (skb.FragMaxSize > 0 && skb.FragMaxSize < mtu) mtu = skb.FragMaxSize;
        if (skb.Family == IpFamily.V4 && bytes.Length > mtu && !skb.Packet.DontFragment)
        {
            // ip_finish_output → ip_fragment: a datagram larger than the MTU leaves as fragments.
            foreach (byte[] fragment in Fragmentation.FragmentV4(bytes, mtu))
            {
                result.Outputs.Add(result.Output(skb.OutDev ?? "", fragment, kind));
                if (Tracing) Event(new OutputEvent(skb.OutDev ?? "", fragment, kind));
            }
            return;
        }
        result.Outputs.Add(result.Output(skb.OutDev ?? "", bytes, kind));
        if (Tracing) Event(new OutputEvent(skb.OutDev ?? "", bytes, kind));
    }

    // ------------------------------------------------------------------ generated packets (icmp_send, nf_send_reset)

    /// <summary>icmp_send / icmpv6_send for an error about <paramref name="about"/>, when the kernel would send one.</summary>
    private void SendIcmpError(Skb about, byte type, byte code, uint info, string what)
    {
        byte[]? reply = IcmpErrors.Build(Host, about, type, code, info, State);
        if (reply is null) return;
        Generate(reply, about, what);
    }

    internal void SendGenerated(byte[] ipPacket, Skb? routeFrom, PacketContext ctx) =>
        Generate(ipPacket, routeFrom ?? ctx.Skb, "reply");

    /// <summary>True while a duplicate made by TEE is on its way out (nf_skb_duplicated): TEE does not duplicate it again.</summary>
    internal bool Duplicating { get; private set; }

    /// <summary>
    /// nf_dup_ipv4 / nf_dup_ipv6 (TEE): the copy is routed to <paramref name="gateway"/> (as the next hop, its IP
    /// destination unchanged), leaving by <paramref name="oif"/> when given, and sent like a local packet through
    /// OUTPUT and POSTROUTING. No route: no copy. Returns whether a route was found.
    /// </summary>
    internal bool SendDuplicate(Skb clone, UInt128 gateway, string? oif)
    {
        PacketResult? result = Current;
        if (result is null || Duplicating) return false;
        RouteResult route = RouteLookup.Output(Host, new RouteQuery(clone.Family, gateway) { OutputInterface = oif, Mark = clone.Mark });
        if (!route.Ok) return false;
        Duplicating = true;
        try
        {
            Event(new GeneratedEvent("TEE duplicate to " + IpNet.FormatAddress(gateway, clone.Family)));
            clone.InDev = null;
            clone.OutDev = route.Device;
            // nf_dup_ipv4_route routes with FLOWI_FLAG_KNOWN_NH: a route without a gateway is not cached and takes the
            // looked-up address (the TEE gateway) as its rt_gw4 (rt_set_nexthop, net/ipv4/route.c); a gateway route keeps its own.
            clone.RouteGateway = route.Gateway ?? gateway;
            if (!RunHook(clone, Hook.Output, result, generated: true)) return true;
            if (!Postrouting(clone, result, generated: true)) return true;
            Emit(clone, result, "tee");
            Event(new GeneratedEndEvent("sent:" + clone.OutDev));
            return true;
        }
        finally
        {
            Duplicating = false;
        }
    }

    private void Generate(byte[] ipPacket, Skb answering, string what)
    {
        if (_generatedDepth > 4) return;
        PacketResult? result = Current;
        if (result is null) return;
        _generatedDepth++;
        try
        {
            Event(new GeneratedEvent(what));
            var skb = new Skb(Packet.Parse(ipPacket)) { PacketType = PacketType.Outgoing };
            LocalOut(skb, result, generated: true, boundDevice: null, answering: answering);
        }
        finally
        {
            _generatedDepth--;
        }
    }

    // ------------------------------------------------------------------ hooks and tables

    /// <summary>Runs every table registered at <paramref name="hook"/> in priority order; false when the packet did not survive.</summary>
    private bool RunHook(Skb skb, Hook hook, PacketResult result, bool generated = false, bool afterConntrack = false)
    {
        if (Tracing) Event(new HookEvent(hook, skb.InDev, skb.OutDev));
        HookPlan plan = HookPlanOf(Host.Rules(skb.Family), hook, skb.Family);
        // A hook with no table to walk and no conntrack lookup to make (a forwarded packet's POSTROUTING without mangle
        // or nat, its PREROUTING after the one pass's lookup) decides nothing: no context is set up for it.
        if (plan.Tables.Length == 0 && (afterConntrack || !plan.Conntrack || Conntrack is null)) return true;
        PacketContext ctx = RentContext(skb, hook);
        try
        {
            return RunHook(ctx, skb, hook, result, plan, generated, afterConntrack);
        }
        finally
        {
            _contextDepth--;
        }
    }

    /// <summary>Contexts by nesting depth (a generated packet walks its hooks while its cause's context is live), reused packet after packet.</summary>
    private readonly List<PacketContext> _contexts = new();

    private int _contextDepth;

    /// <summary>The context of the next nesting level, reset for <paramref name="skb"/> at <paramref name="hook"/>; the caller gives it back (<c>_contextDepth--</c>).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private PacketContext RentContext(Skb skb, Hook hook)
    {
        if (_contextDepth == _contexts.Count) _contexts.Add(new PacketContext(this, skb));
        PacketContext ctx = _contexts[_contextDepth++];
        ctx.Reset(skb, hook);
        return ctx;
    }

    /// <summary>The tables of the ruleset last walked, by name (raw, mangle, nat, filter, security), for its <see cref="Ruleset.Version"/>.</summary>
    private readonly Table?[] _tables = new Table?[5];

    private Ruleset? _tablesOf;

    private int _tablesVersion;

    private static int TableSlot(string name) => name switch { "raw" => 0, "mangle" => 1, "nat" => 2, "filter" => 3, _ => 4 };

    private static int TableSlot(TableInfo info) =>
        ReferenceEquals(info, TableInfo.Filter) ? 3 : ReferenceEquals(info, TableInfo.Nat) ? 2 : ReferenceEquals(info, TableInfo.Mangle) ? 1
        : ReferenceEquals(info, TableInfo.Raw) ? 0 : TableSlot(info.Name);

    /// <summary><see cref="Ruleset.Find"/> of a registered table, without a lookup by name while the ruleset keeps its tables.</summary>
    /// <summary>Makes <see cref="_tables"/> the tables of <paramref name="rules"/> (as they are now).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void TablesOf(Ruleset rules)
    {
        if (!ReferenceEquals(rules, _tablesOf) || rules.Version != _tablesVersion)
        {
            _tables[0] = rules.Find("raw");
            _tables[1] = rules.Find("mangle");
            _tables[2] = rules.Find("nat");
            _tables[3] = rules.Find("filter");
            _tables[4] = rules.Find("security");
            _tablesOf = rules;
            _tablesVersion = rules.Version;
        }
    }

    /// <summary>
    /// The tables a hook walks as a ruleset has them at one <see cref="Ruleset.Version"/>: the registered tables that
    /// exist, in priority order (<see cref="Order"/> less the absent ones, which a walk of the order skips), and where
    /// conntrack (priority -200) comes among them.
    /// </summary>
    private sealed class HookPlan
    {
        public Ruleset? Rules;
        public int Version;

        /// <summary>The existing tables in priority order, with their <see cref="_tables"/> slots (2: nat).</summary>
        public Table[] Tables = [];
        public int[] Slots = [];

        /// <summary>How many of <see cref="Tables"/> come before conntrack (raw, -300).</summary>
        public int BeforeConntrack;

        /// <summary>Conntrack runs at this hook (PREROUTING, OUTPUT: a registration above -200 follows it).</summary>
        public bool Conntrack;
    }

    /// <summary>Plans by hook and family (IPv4 first), remade when the ruleset or its version moves.</summary>
    private readonly HookPlan[] _hookPlans = new HookPlan[10];

    /// <summary>Drops the hook plans (tests: a pipeline that makes every plan anew is the reference).</summary>
    internal void ForgetHookPlans() => Array.Clear(_hookPlans);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private HookPlan HookPlanOf(Ruleset rules, Hook hook, IpFamily family)
    {
        HookPlan? plan = _hookPlans[(int)hook * 2 + (family == IpFamily.V6 ? 1 : 0)];
        if (plan is not null && ReferenceEquals(plan.Rules, rules) && plan.Version == rules.Version) return plan;
        return MakeHookPlan(rules, hook, family);
    }

    private HookPlan MakeHookPlan(Ruleset rules, Hook hook, IpFamily family)
    {
        var tables = new List<Table>(5);
        var slots = new List<int>(5);
        int before = 0;
        bool conntrack = false;
        bool conntrackHook = hook is Hook.Prerouting or Hook.Output;
        foreach (Registration reg in Order[(int)hook])
        {
            if (conntrackHook && reg.Priority > PriorityConntrack) conntrack = true;
            if (rules.Find(reg.Table) is not { } table) continue;
            tables.Add(table);
            slots.Add(reg.Slot);
            if (reg.Priority < PriorityConntrack) before++;
        }
        var plan = new HookPlan
        {
            Rules = rules,
            Version = rules.Version,
            Tables = tables.ToArray(),
            Slots = slots.ToArray(),
            BeforeConntrack = before,
            Conntrack = conntrack,
        };
        _hookPlans[(int)hook * 2 + (family == IpFamily.V6 ? 1 : 0)] = plan;
        return plan;
    }

    /// <param name="afterConntrack">
    /// The tables before conntrack and conntrack itself were done already (by the one pass, <see cref="OnePass"/>): the
    /// hook goes on from the first table after it.
    /// </param>
    /// <param name="plan">The hook's tables (<see cref="HookPlanOf"/> of the packet's family's ruleset).</param>
    private bool RunHook(PacketContext ctx, Skb skb, Hook hook, PacketResult result, HookPlan plan, bool generated, bool afterConntrack)
    {
        Table[] tables = plan.Tables;
        int i = 0;
        if (afterConntrack)
        {
            i = plan.BeforeConntrack;
        }
        else if (plan.Conntrack)
        {
            for (; i < plan.BeforeConntrack; i++)
            {
                if (!RunHookTable(ctx, skb, hook, result, generated, tables[i], plan.Slots[i])) return false;
            }
            if (Conntrack is not null)
            {
                bool ok = Conntrack.Track(ctx);
                if (!generated)
                {
                    result.CtState ??= CtStateName(skb.CtInfo);
                    result.Connection ??= skb.Conntrack;
                    // The input route will be asked for the destination the connection's binding gives the packet.
                    if (hook == Hook.Prerouting && Conntrack.TryRoutedDestination4(skb, out uint routed)) PrefetchInputRoute(routed, (uint)skb.Packet.Source);
                }
                if (Current?.Trace is not null) ConnectionExplainer?.Invoke(ctx);
                if (!ok)
                {
                    if (!generated) Drop(result, "dropped by connection tracking");
                    return false;
                }
            }
        }
        for (; i < tables.Length; i++)
        {
            if (!RunHookTable(ctx, skb, hook, result, generated, tables[i], plan.Slots[i])) return false;
        }
        return true;
    }

    /// <summary>
    /// The nat step of a hook plan calls the namespace's own conntrack's NAT steps directly (<see cref="RunHookTable"/>);
    /// false: through <see cref="IConntrackHooks"/> as any conntrack (tests compare the two).
    /// </summary>
    internal bool NatStepDirect { get; set; } = true;

    /// <summary>One table of a hook (<paramref name="slot"/>: its place in <see cref="_tables"/>, 2 for nat); false when the packet did not survive.</summary>
    private bool RunHookTable(PacketContext ctx, Skb skb, Hook hook, PacketResult result, bool generated, Table table, int slot)
    {
        if (slot == 2)
        {
            // The nat table is consulted only for a connection's first packet; later ones get its binding. Without a
            // nat table the nat hooks are not registered at all (nf_nat_register_fn comes with the first nat chain):
            // nothing is bound or translated (the plan has no nat step then).
            if (Conntrack is null) return true;
            ctx.Table = "nat";
            if (NatStepDirect && Conntrack is Chainwalk.Conntrack.ConntrackHooks hooks)
            {
                // The namespace's own conntrack: its NAT steps called directly, the nat table's presence known from the plan,
                // and whether the rules were walked handed over (nf_nat_inet_fn: a binding just made goes to do_nat).
                if (!(skb.Family == IpFamily.V4 ? hooks.TrackV4 : hooks.TrackV6)) return true;
                bool walk = Nat.NatHooks.NeedsRules(ctx);
                if (walk && !Survives(RunTable(ctx, table, hook), result, generated)) return false;
                if (!Nat.NatHooks.ApplyAfterRules(ctx, hooks.Table, walk))
                {
                    if (!generated) Drop(result, "dropped by NAT");
                    else Event(new GeneratedEndEvent("dropped (NAT)"));
                    return false;
                }
                return true;
            }
            if (Conntrack.NeedsNatRules(ctx))
            {
                Verdict nv = RunTable(ctx, table, hook);
                if (!Survives(nv, result, generated)) return false;
            }
            if (!Conntrack.ApplyNat(ctx))
            {
                if (!generated) Drop(result, "dropped by NAT");
                else Event(new GeneratedEndEvent("dropped (NAT)"));
                return false;
            }
            return true;
        }
        Verdict v;
        if (BaseChain(table, hook) is { Rules.Count: 0 } empty && !skb.Trace && Current?.Trace is null)
        {
            // A built-in chain without rules: its policy decides and is counted, as a walk would (no walk set up).
            ctx.Hook = hook;
            ctx.Table = table.Name;
            v = Policy(ctx, empty, null, skb);
        }
        else
        {
            v = RunTableFlow(ctx, skb, table, hook);
        }
        return Survives(v, result, generated);
    }

    /// <summary>The state as --ctstate names it.</summary>
    public static string CtStateName(CtInfo info) => info switch
    {
        CtInfo.New => "NEW",
        CtInfo.Established or CtInfo.EstablishedReply => "ESTABLISHED",
        CtInfo.Related or CtInfo.RelatedReply => "RELATED",
        CtInfo.Untracked => "UNTRACKED",
        _ => "INVALID",
    };

    /// <summary>Turns a table's verdict into the packet's fate; true for ACCEPT.</summary>
    private bool Survives(Verdict v, PacketResult result, bool generated)
    {
        switch (v.Kind)
        {
            case VerdictKind.Accept:
                return true;
            case VerdictKind.Queue:
                if (generated) Event(new GeneratedEndEvent("queued:" + v.QueueNumber.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                else result.Fate.Add("queued:" + v.QueueNumber.ToString(System.Globalization.CultureInfo.InvariantCulture));
                return false;
            case VerdictKind.Stolen:
                if (generated) Event(new GeneratedEndEvent("stolen"));
                else result.Fate.Add("stolen");
                return false;
            default:
                if (generated)
                {
                    Event(new GeneratedEndEvent("dropped"));
                }
                else if (result.RejectedWith is { } rw)
                {
                    result.Fate.Add("rejected:" + rw);
                }
                else
                {
                    Drop(result, null);
                }
                return false;
        }
    }

    // ------------------------------------------------------------------ the chain walker

    /// <summary>Jump stacks, one per nesting level (a REJECT reply walks OUTPUT while its packet is still mid-walk).</summary>
    private readonly List<(Chain Chain, int Next)[]> _stacks = new();

    private int _walkDepth;

    /// <summary>
    /// Walks a table's base chain for <paramref name="hook"/>: first match wins; jumps push a return point,
    /// gotos do not; RETURN (or the end of a user chain) pops it, or falls to the base chain's policy.
    /// Counters of matching rules and of the policy are updated as the kernel does.
    /// </summary>
    public Verdict RunTable(PacketContext ctx, Table table, Hook hook)
    {
        if (_walkDepth == _stacks.Count) _stacks.Add(new (Chain, int)[JumpStackSize + 1]);
        (Chain Chain, int Next)[] stack = _stacks[_walkDepth];
        _walkDepth++;
        try
        {
            return Walk(ctx, table, hook, stack);
        }
        finally
        {
            _walkDepth--;
        }
    }

    /// <summary>
    /// A rule the index proved first and whose target is a plain ACCEPT or DROP (<see cref="ChainIndex.PlainVerdict"/>):
    /// counted, and the walk ends with its verdict, without the general target dispatch (the same counters and verdict
    /// as the linear walk). Shared by <c>Walk</c> and the flat walk.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static Verdict PlainHit(PacketContext ctx, Chain chain, int i, Compiled.ChainIndex index, Rule hit, VerdictKind kind, int length)
    {
        ctx.RuleNumber = i + 1;
        ctx.Rule = hit;
        ctx.CurrentChain = chain;
        ctx.RuleIndex = i;
        // In the index's line when the rule's counters live there (a chain without flat entries), else the rule's.
        ref Counters counts = ref index.PlainCounters(i, hit);
        counts.Packets++;
        counts.Bytes += (ulong)length;
        ctx.Recording?.Hit(hit);
        return new Verdict(kind);
    }

    /// <summary>
    /// The chain a jump or goto enters, or null when the table has no chain of that name. With a compiled form, its
    /// answer for the jump never changes: remembered on the target and used while the chain still has the very name
    /// string checked when the memo was made (a rename sets another), so no name is read; else looked up by name.
    /// Shared by <c>Walk</c> and the flat walk.
    /// </summary>
    private static Chain? JumpChain(Chainwalk.Engine.Compiled.CompiledRules? compiled, Table table, TargetUse target)
    {
        if (compiled is not null)
        {
            TargetUse.JumpMemo? memo = target.ResolvedJump;
            if (memo is null || !ReferenceEquals(memo.ResolvedBy, compiled)) target.ResolvedJump = memo = TargetUse.JumpMemo.Of(compiled, table.Find(target.Name), target.Name);
            if (memo.Chain is { } resolved && ReferenceEquals(resolved.Name, memo.Name)) return resolved;
        }
        return table.Find(target.Name);
    }

    /// <summary>
    /// What a walk of a table at a hook finds before it starts, remembered per table slot and hook: the base chain (a table's
    /// built-in chains never change) and its number in the compiled form <see cref="Form"/> (-1: none), so that a walk asks
    /// neither the table nor the form per packet (three walks per new connection).
    /// </summary>
    private struct WalkStart
    {
        public Table? Table;
        public Chain? Chain;
        public Compiled.CompiledRules? Form;
        public int Number;

        /// <summary>Whether the base chain is a class chain, and its remembered paths (ClassWalk.cs).</summary>
        public ClassWalkMemo? Class;
    }

    private readonly WalkStart[] _walkStarts = new WalkStart[5 * 5];

    private Verdict Walk(PacketContext ctx, Table table, Hook hook, (Chain Chain, int Next)[] stack)
    {
        ref WalkStart start = ref _walkStarts[TableSlot(table.Info) * 5 + (int)hook];
        if (!ReferenceEquals(start.Table, table))
        {
            start.Table = table;
            start.Chain = table.Find(hook.ChainName());
            start.Form = null;
            start.Class = null;
        }
        Chain? chain = start.Chain;
        if (chain is null) return Verdict.Accept;
        Chain baseChain = chain;
        List<TraceEvent>? trace = Current?.Trace;
        Skb skb = ctx.Skb;
        ctx.Hook = hook;
        ctx.Table = table.Name;
        trace?.Add(new TableEvent(table.Name, hook, PriorityOf(table.Name, hook)));
        trace?.Add(new ChainEvent(table.Name, chain.Name, null, 0, false) { Entered = chain });
        // The flat walk (FlatWalk.cs) when the base chain has a flat form worth it (FlatChain.Worth) and the packet a flow key.
        if (trace is null && !skb.Trace && FlatWalk && Compiled is { } flatForm)
        {
            if (!ReferenceEquals(start.Form, flatForm))
            {
                start.Form = flatForm;
                start.Number = flatForm.FlatFor(chain) is { } f ? f.Number : -1;
            }
            int number = start.Number;
            if (number >= 0 && flatForm.Spans[number].Worth && Chainwalk.Engine.Compiled.FlowKey.TryRead(skb.Packet, out Compiled.FlowKey flatKey))
                return WalkFlatOrClass(ctx, table, chain, number, flatForm, ref flatKey, ref start.Class); // by ref: a key just stored field by field and copied whole stalls
        }
        int sp = 0;
        int i = 0;
        // Compiled fast path (Engine/Compiled): a chain's index says which rule is the next that can match, and
        // proves the match for the rules it covers; others are tested as in the linear walk. Off whenever a
        // trace is recorded or the packet has no flow key (not IPv4, a fragment, a truncated TCP/UDP header).
        Compiled.CompiledRules? compiled = trace is null && !skb.Trace ? Compiled : null;
        Compiled.FlowKey key = default;
        // The flow key is read when a chain with an index is first met: 0 not read yet, 1 read, -1 none (linear walk).
        int keyState = compiled is null ? -1 : 0;
        Chain? indexedChain = null;
        Compiled.ChainIndex? index = null;
        bool proven = false;
        while (true)
        {
            if (keyState >= 0)
            {
                if (!ReferenceEquals(chain, indexedChain))
                {
                    indexedChain = chain;
                    index = compiled!.For(chain);
                }
                if (index is not null && keyState == 0) keyState = Chainwalk.Engine.Compiled.FlowKey.TryRead(skb.Packet, out key) ? 1 : -1;
                if (index is not null && keyState == 1)
                {
                    i = index.Next(i, key, out proven);
                    // A proven rule whose target is a plain ACCEPT or DROP ends the walk here: count it and return,
                    // without the general target dispatch below (the same counters and verdict as the linear walk).
                    if (proven && index.PlainVerdict(i) is { Kind: not VerdictKind.Continue, Rule: { } hit } plain)
                        return PlainHit(ctx, chain, i, index, hit, plain.Kind, skb.Length);
                }
            }
            if (i >= chain.Rules.Count)
            {
                if (sp == 0 || chain.IsBuiltin)
                {
                    return Policy(ctx, baseChain, trace, skb);
                }
                // The implicit RETURN at a user chain's end.
                trace?.Add(new ChainEndEvent(table.Name, chain.Name, chain.Rules.Count + 1, false, "RETURN"));
                TraceLine(ctx, chain, chain.Rules.Count + 1, "return");
                (chain, i) = stack[--sp];
                continue;
            }
            Rule rule = chain.Rules[i];
            ctx.RuleNumber = i + 1;
            ctx.RuleIndex = i;
            // References are stored only when they change (each store of one costs a GC write barrier).
            if (!ReferenceEquals(ctx.Rule, rule)) ctx.Rule = rule;
            if (!ReferenceEquals(ctx.CurrentChain, chain)) ctx.CurrentChain = chain;
            // A rule the index proved to match (its whole condition is in the index) is not tested again.
            string? failed = proven ? null : MatchRule(ctx, rule, trace is not null);
            proven = false;
            if (ctx.HotDrop)
            {
                ctx.HotDrop = false;
                trace?.Add(new RuleEvent(table.Name, chain.Name, i + 1, rule, false, failed) { Verdict = "DROP (malformed packet)" });
                return Verdict.Drop;
            }
            if (failed is not null)
            {
                trace?.Add(new RuleEvent(table.Name, chain.Name, i + 1, rule, false, failed));
                i++;
                continue;
            }
            ref Counters counts = ref rule.CountersCell;
            counts.Packets++;
            counts.Bytes += (ulong)skb.Length;
            ctx.Recording?.Hit(rule);
            var ev = trace is null ? null : new RuleEvent(table.Name, chain.Name, i + 1, rule, true, null);
            if (ev is not null) trace!.Add(ev);
            if (skb.Trace)
            {
                TraceLine(ctx, chain, i + 1, Unconditional(rule) && rule.Target is { IsStandardVerdict: true } t0 && t0.Name != Verdicts.Queue
                    ? (chain.IsBuiltin ? "policy" : "return") : "rule");
            }
            TargetUse? target = rule.Target;
            if (target is null)
            {
                if (ev is not null) ev.Verdict = "no target (counted)";
                i++;
                continue;
            }
            if (target.IsStandardVerdict)
            {
                if (ev is not null) ev.Verdict = target.Name;
                switch (target.Name)
                {
                    case Verdicts.Accept: return Verdict.Accept;
                    case Verdicts.Drop: return Verdict.Drop;
                    case Verdicts.Queue: return Verdict.Queue(0);
                    default:
                        if (sp == 0) return Policy(ctx, baseChain, trace, skb);
                        (chain, i) = stack[--sp];
                        continue;
                }
            }
            if (target.IsChainJump)
            {
                Chain? next = JumpChain(compiled, table, target);
                if (next is null)
                {
                    i++;
                    continue;
                }
                if (ev is not null) ev.Verdict = (target.Goto ? "goto " : "jump ") + target.Name;
                if (!target.Goto)
                {
                    if (sp >= JumpStackSize)
                    {
                        trace?.Add(new NoteEvent($"jump stack exhausted ({JumpStackSize} levels): dropped"));
                        return Verdict.Drop;
                    }
                    stack[sp++] = (chain, i + 1);
                }
                trace?.Add(new ChainEvent(table.Name, target.Name, chain.Name, i + 1, target.Goto) { Entered = next });
                chain = next;
                i = 0;
                continue;
            }
            if (!ReferenceEquals(ctx.CurrentChain, chain)) ctx.CurrentChain = chain;
            ctx.RuleIndex = i;
            ctx.Slot = -1;
            uint markBefore = skb.Mark, priorityBefore = skb.Priority;
            bool traceBefore = skb.Trace;
            Verdict v = target.Extension!.Execute(ctx, target.Data!);
            if (trace is not null)
            {
                // Metadata changes are shown for every target (header changes are reported by the target itself).
                if (skb.Mark != markBefore) trace.Add(new ChangeEvent(table.Name, chain.Name, i + 1, $"mark 0x{markBefore:x}→0x{skb.Mark:x}"));
                if (skb.Priority != priorityBefore) trace.Add(new ChangeEvent(table.Name, chain.Name, i + 1, $"priority {priorityBefore >> 16:x}:{priorityBefore & 0xffff:x}→{skb.Priority >> 16:x}:{skb.Priority & 0xffff:x}"));
                if (skb.Trace != traceBefore) trace.Add(new ChangeEvent(table.Name, chain.Name, i + 1, "traced from here on (nf_trace)"));
            }
            if (ev is not null) ev.Verdict = v.Kind == VerdictKind.Continue ? "CONTINUE (" + target.Name + ")" : v.ToString();
            // A target that goes on may have changed the header: read the key again (or walk on linearly).
            if (keyState == 1 && v.Kind is VerdictKind.Continue or VerdictKind.Return) keyState = skb.Trace ? -1 : 0;
            switch (v.Kind)
            {
                case VerdictKind.Continue:
                    i++;
                    continue;
                case VerdictKind.Return:
                    if (sp == 0) return Policy(ctx, baseChain, trace, skb);
                    (chain, i) = stack[--sp];
                    continue;
                default:
                    return v;
            }
        }
    
    }

    /// <summary>The base chains of the tables walked lately, by table slot and hook (a table's built-in chains never change).</summary>
    private readonly (Table? Table, Chain? Chain)[] _baseChains = new (Table?, Chain?)[5 * 5];

    private Chain? BaseChain(Table table, Hook hook)
    {
        ref (Table? Table, Chain? Chain) slot = ref _baseChains[TableSlot(table.Info) * 5 + (int)hook];
        if (!ReferenceEquals(slot.Table, table)) slot = (table, table.Find(hook.ChainName()));
        return slot.Chain;
    }

    /// <summary>The family's nat table, if any (what the NAT hooks check per packet), without a lookup by name.</summary>
    internal Table? NatTable(IpFamily family)
    {
        TablesOf(Host.Rules(family));
        return _tables[2];
    }

    private Verdict Policy(PacketContext ctx, Chain baseChain, List<TraceEvent>? trace, Skb skb)
    {
        ref Counters baseChainCounts = ref baseChain.CountersCell;
        baseChainCounts.Packets++;
        baseChainCounts.Bytes += (ulong)skb.Length;
        ctx.Recording?.PolicyHit(baseChain);
        string policy = baseChain.Policy ?? Verdicts.Accept;
        trace?.Add(new ChainEndEvent(ctx.Table, baseChain.Name, baseChain.Rules.Count + 1, true, policy));
        TraceLine(ctx, baseChain, baseChain.Rules.Count + 1, "policy");
        return policy == Verdicts.Drop ? Verdict.Drop : Verdict.Accept;
    }

    /// <summary>The kernel's TRACE line for a traced packet (ipt_do_table's trace_packet).</summary>
    private void TraceLine(PacketContext ctx, Chain chain, int number, string comment)
    {
        if (!ctx.Skb.Trace || Current is null) return;
        string prefix = $"TRACE: {ctx.Table}:{chain.Name}:{comment}:{number.ToString(System.Globalization.CultureInfo.InvariantCulture)} ";
        string line = LogFormat.TraceLine(ctx, prefix);
        Current.Logs.Add(line);
        Current.LogLevels.Add(LogFormat.WarningLevel);
        Current.Trace?.Add(new KernelTraceEvent(line));
    }

    /// <summary>A rule with no condition at all (the kernel's "unconditional" entry: zero IP part, no matches).</summary>
    private static bool Unconditional(Rule r) =>
        r.Matches.Count == 0 && r.Source.IsAny && r.Destination.IsAny && !r.SourceInverted && !r.DestinationInverted
        && r.InInterface.Length == 0 && r.OutInterface.Length == 0 && !r.InInverted && !r.OutInverted
        && r.Protocol == 0 && !r.ProtocolInverted && !r.Fragment && !r.FragmentInverted;

    private static int PriorityOf(string table, Hook hook)
    {
        foreach (Registration r in Order[(int)hook])
        {
            if (r.Table == table) return r.Priority;
        }
        return 0;
    }

    /// <summary>
    /// Tests the rule's IP part (ip_packet_match / ip6_packet_match) and its matches in order. Returns null
    /// when everything matched, else the first part that did not (its text only when <paramref name="explain"/>).
    /// </summary>
    private string? MatchRule(PacketContext ctx, Rule rule, bool explain)
    {
        Packet p = ctx.Skb.Packet;
        if (!rule.Source.IsAny || rule.SourceInverted)
        {
            if (rule.Source.Contains(p.Source) == rule.SourceInverted) return explain ? RuleParts.Source(rule) : "";
        }
        if (!rule.Destination.IsAny || rule.DestinationInverted)
        {
            if (rule.Destination.Contains(p.Destination) == rule.DestinationInverted) return explain ? RuleParts.Destination(rule) : "";
        }
        if (rule.InInterface.Length != 0 && InterfaceMatches(rule.InInterface, ctx.Skb.InDev) == rule.InInverted)
            return explain ? RuleParts.In(rule) : "";
        if (rule.OutInterface.Length != 0 && InterfaceMatches(rule.OutInterface, ctx.Skb.OutDev) == rule.OutInverted)
            return explain ? RuleParts.Out(rule) : "";
        if (rule.Protocol != 0 || rule.ProtocolInverted)
        {
            int proto = UpperProtocol(p);
            if (proto < 0)
            {
                return explain ? RuleParts.Protocol(rule) : "";
            }
            if ((proto == rule.Protocol) == rule.ProtocolInverted) return explain ? RuleParts.Protocol(rule) : "";
        }
        if (rule.Fragment && p.IsNonFirstFragment == rule.FragmentInverted)
            return explain ? (rule.FragmentInverted ? "! -f" : "-f") : "";
        for (int m = 0; m < rule.Matches.Count; m++)
        {
            MatchUse use = rule.Matches[m];
            if (use.Extension.MatchesEveryPacket) continue;
            ctx.Slot = m;
            bool ok = use.Extension.Match(ctx, use.Data);
            if (!ok || ctx.HotDrop) return explain ? RuleParts.Match(use, p.Family) : "";
        }
        return null;
    }

    /// <summary>The upper-layer protocol the rule's -p is compared with (IPv6: after the extension headers); -1 when none can be found.</summary>
    private static int UpperProtocol(Packet p) => p.Protocol;

    /// <summary>Interface name match with iptables' '+' wildcard (prefix match).</summary>
    public static bool InterfaceMatches(string pattern, string? device)
    {
        string dev = device ?? "";
        if (pattern.EndsWith('+')) return dev.AsSpan().StartsWith(pattern.AsSpan(0, pattern.Length - 1), StringComparison.Ordinal);
        return string.Equals(pattern, dev, StringComparison.Ordinal);
    }
}
