using Chainwalk.Conntrack;
using Chainwalk.Host;
using Chainwalk.Rules;

namespace Chainwalk.Engine;

/// <summary>
/// What the flow path (<see cref="Netfilter.FlowPath"/>) keeps for a connection (<see cref="ConnEntry.Flow"/>), made
/// with its established packets: per direction the input route decision, and the table walks. Immutable and shared:
/// connections whose walks and routes came out the same hold the same object (<see cref="Netfilter"/> interns them), so
/// a connection pays one reference for it, not a memo per walk (a kube node's connections all share a handful).
/// </summary>
internal sealed class FlowState : IEquatable<FlowState>
{
    public static readonly FlowState Empty = new([], default, default);

    public FlowState(FlowWalkMemo[] walks, FlowRoute original, FlowRoute reply)
    {
        Walks = walks;
        Original = original;
        Reply = reply;
        var h = new HashCode();
        foreach (FlowWalkMemo w in walks) h.Add(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(w));
        h.Add(original);
        h.Add(reply);
        _hash = h.ToHashCode();
    }

    private readonly int _hash;

    /// <summary>The remembered walks (interned memos), at most one per hook, table and ctinfo.</summary>
    public FlowWalkMemo[] Walks { get; }

    public FlowRoute Original { get; }

    public FlowRoute Reply { get; }

    /// <summary>
    /// The one pass's plan for each direction (<see cref="OnePassPlan"/>, OnePass.cs), made from this state on its first
    /// use and made again when the rule sets or the host moved: a cache beside the state, not part of its identity.
    /// </summary>
    internal OnePassPlan? OriginalPlan, ReplyPlan;

    /// <summary>The plan kept for one direction (the one pass reads and replaces it).</summary>
    internal ref OnePassPlan? PlanSlot(bool reply) => ref reply ? ref ReplyPlan : ref OriginalPlan;

    /// <summary>This state with <paramref name="memo"/> in place of the walk memo of its hook, table and ctinfo.</summary>
    public FlowState WithWalk(FlowWalkMemo memo)
    {
        int i = Array.FindIndex(Walks, w => w.Hook == memo.Hook && w.CtInfo == memo.CtInfo && ReferenceEquals(w.Table, memo.Table));
        FlowWalkMemo[] walks;
        if (i >= 0)
        {
            walks = (FlowWalkMemo[])Walks.Clone();
            walks[i] = memo;
        }
        else
        {
            // In one order whatever order the directions' packets came in, so that equal states are equal arrays.
            walks = [.. Walks, memo];
            Array.Sort(walks, static (a, b) => a.Hook != b.Hook ? a.Hook.CompareTo(b.Hook)
                : a.CtInfo != b.CtInfo ? a.CtInfo.CompareTo(b.CtInfo) : string.CompareOrdinal(a.Table.Name, b.Table.Name));
        }
        return new FlowState(walks, Original, Reply);
    }

    /// <summary>This state with <paramref name="route"/> as the route of the reply or the original direction.</summary>
    public FlowState WithRoute(bool reply, FlowRoute route) => reply ? new(Walks, Original, route) : new(Walks, route, Reply);

    public bool Equals(FlowState? other) =>
        other is not null && _hash == other._hash && Original.Equals(other.Original) && Reply.Equals(other.Reply)
        && Walks.AsSpan().SequenceEqual(other.Walks, ReferenceComparer.Instance);

    public override bool Equals(object? obj) => Equals(obj as FlowState);

    public override int GetHashCode() => _hash;

    /// <summary>Equality by reference (interned memos).</summary>
    internal sealed class ReferenceComparer : IEqualityComparer<FlowWalkMemo>, IEqualityComparer<Rule>
    {
        public static readonly ReferenceComparer Instance = new();

        public bool Equals(FlowWalkMemo? x, FlowWalkMemo? y) => ReferenceEquals(x, y);

        public int GetHashCode(FlowWalkMemo obj) => System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(obj);

        public bool Equals(Rule? x, Rule? y) => ReferenceEquals(x, y);

        public int GetHashCode(Rule obj) => System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(obj);
    }
}

/// <summary>
/// An IPv4 input route decision for one connection direction (the route cached with the flow, as the kernel keeps a
/// socket's or an early-demuxed packet's dst): the FIB's answer while the host and the rule sets are as they were and the
/// packet comes in on the same device. A confirmed connection's direction always has the same addresses after
/// PREROUTING (its NAT binding is fixed once confirmed: nf_nat_inet_fn walks no rules for an established packet), so the
/// addresses need no check; the generation of the packet's family's rule set is held as well, so a nat table made since
/// cannot slip past it (generations are unique to their host or rule set: a restore's new rule set has another).
/// </summary>
internal readonly record struct FlowRoute(long HostGeneration, long RulesGeneration, string? Device, Routing.InputDecision? Decision)
{
    /// <summary>Whether a decision is kept and was made under these generations for this input device.</summary>
    public bool Holds(long hostGeneration, long rulesGeneration, string device) =>
        Decision is not null && HostGeneration == hostGeneration && RulesGeneration == rulesGeneration
        && (ReferenceEquals(Device, device) || string.Equals(Device, device, StringComparison.Ordinal));
}

/// <summary>
/// What one walk of a table did for an established packet of one connection direction: the rules (and the built-in
/// policy) whose counters it moved and its verdict (ACCEPT), with everything the walk's path depended on. Immutable and
/// interned by content (<see cref="Netfilter"/>), held in <see cref="FlowState.Walks"/> and replayed for the direction's
/// next packets while it all holds (<see cref="Netfilter.FlowPath"/>).
/// </summary>
internal sealed class FlowWalkMemo : IEquatable<FlowWalkMemo>
{
    public required Hook Hook { get; init; }
    public required CtInfo CtInfo { get; init; }
    public required Table Table { get; init; }
    public required Ruleset Rules { get; init; }

    /// <summary><see cref="Rules"/>' generation (<see cref="Ruleset.Generation"/>) when the walk was made.</summary>
    public required long RulesGeneration { get; init; }

    /// <summary>The host's generation (<see cref="Host.VirtualHost.Generation"/>) when the walk was made.</summary>
    public required long HostGeneration { get; init; }

    public required uint Mark { get; init; }
    public required string? InDev { get; init; }
    public required string? OutDev { get; init; }
    public required Rule[] Hits { get; init; }
    public required Chain? Policy { get; init; }

    /// <summary>
    /// Per hit, where its counters are in <see cref="Entries"/> (the compiled form's entries, <see cref="Form"/>) when the
    /// walk counted them there, else -1 (counted through the rule); null: none there. The replay adds to them directly
    /// while the form's entries are still that array and the form still holds the counters (<see cref="SlotsHold"/>).
    /// </summary>
    public int[]? Slots { get; init; }

    public Compiled.CompiledRules? Form { get; init; }

    public Compiled.FlatEntry[]? Entries { get; init; }

    /// <summary>The slots are where the hits' counters are (the rules generation is checked beside: an edit may move them).</summary>
    public bool SlotsHold => Slots is null || Form is { Superseded: false } f && ReferenceEquals(f.Entries, Entries);

    public bool Equals(FlowWalkMemo? o) =>
        o is not null && Hook == o.Hook && CtInfo == o.CtInfo && ReferenceEquals(Table, o.Table) && ReferenceEquals(Rules, o.Rules)
        && RulesGeneration == o.RulesGeneration && HostGeneration == o.HostGeneration && Mark == o.Mark
        && string.Equals(InDev, o.InDev, StringComparison.Ordinal) && string.Equals(OutDev, o.OutDev, StringComparison.Ordinal)
        && ReferenceEquals(Policy, o.Policy) && Hits.AsSpan().SequenceEqual(o.Hits, FlowState.ReferenceComparer.Instance)
        && ReferenceEquals(Form, o.Form) && ReferenceEquals(Entries, o.Entries) && (Slots ?? []).AsSpan().SequenceEqual(o.Slots ?? []);

    public override bool Equals(object? obj) => Equals(obj as FlowWalkMemo);

    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(Hook);
        h.Add(CtInfo);
        h.Add(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(Table));
        h.Add(RulesGeneration);
        h.Add(Mark);
        h.Add(InDev, StringComparer.Ordinal);
        h.Add(OutDev, StringComparer.Ordinal);
        foreach (Rule r in Hits) h.Add(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(r));
        return h.ToHashCode();
    }
}

/// <summary>Collects, during one walk, the rules it counted and whether every counted rule's target was pure.</summary>
internal sealed class FlowWalkRecorder
{
    private Rule[] _hits = new Rule[16];

    /// <summary>Per hit: its counters' entry in the compiled form (-1: on the rule).</summary>
    private int[] _slots = new int[16];

    private bool _anySlot;

    public int Count { get; private set; }

    public Chain? Policy { get; private set; }

    /// <summary>Every counted rule's target is none, ACCEPT, DROP, RETURN or a jump/goto: nothing but the verdict and the counters came of the walk.</summary>
    public bool Pure { get; private set; } = true;

    public void Clear()
    {
        Count = 0;
        Policy = null;
        Pure = true;
        _anySlot = false;
    }

    public void Hit(Rule rule) => Hit(rule, -1);

    /// <summary>A counted rule; <paramref name="slot"/>: its counters' entry in the walk's compiled form (-1: counted on the rule).</summary>
    public void Hit(Rule rule, int slot)
    {
        TargetUse? t = rule.Target;
        if (t is not null && !(t.IsChainJump || (t.IsStandardVerdict && t.Name != Verdicts.Queue))) Pure = false;
        if (Count == _hits.Length)
        {
            Array.Resize(ref _hits, _hits.Length * 2);
            Array.Resize(ref _slots, _hits.Length);
        }
        _slots[Count] = slot;
        _anySlot |= slot >= 0;
        _hits[Count++] = rule;
    }

    /// <summary>The hits' entries, or null when none was counted in a compiled form's entries.</summary>
    public int[]? Slots() => _anySlot ? _slots.AsSpan(0, Count).ToArray() : null;

    public void PolicyHit(Chain chain)
    {
        if (Policy is not null) Pure = false;
        Policy = chain;
    }

    public Rule[] Hits() => Count == 0 ? [] : _hits.AsSpan(0, Count).ToArray();
}

public sealed partial class Netfilter
{
    /// <summary>
    /// The established flow path (default on): a table's walk for an ESTABLISHED packet is remembered per connection
    /// direction and replayed (counters, verdict) for the direction's later packets while the walk provably goes the same
    /// way: no trace, the packet's rule set (<see cref="Ruleset.Generation"/>), the host (<see cref="Host.VirtualHost.Generation"/>), the ctinfo,
    /// the skb mark and the devices as recorded, every rule of the table made of flow-stable parts
    /// (<see cref="Extensions.XtExtension.FlowStable"/>) and every counted rule's target pure. The kernel walks every
    /// packet; the counters and verdicts are the same. Off: every packet is walked (the reference the tests compare with).
    /// </summary>
    public bool FlowPath { get; set; } = true;

    private readonly FlowWalkRecorder _flowRecorder = new();

    /// <summary>Per table slot and family: whether every rule of the table is flow-stable, for the rules generation it was found at.</summary>
    private readonly (Table? Table, long Generation, bool Stable)[] _flowStable = new (Table?, long, bool)[10];

    /// <summary><see cref="RunTable"/>, or the replay of the connection direction's memo of it, or a walk that records one.</summary>
    private Verdict RunTableFlow(PacketContext ctx, Skb skb, Table table, Hook hook)
    {
        if (skb.Trace || Current?.Trace is not null || FlowConnection(skb) is not { } ct) return RunTable(ctx, table, hook);
        Ruleset rules = Host.Rules(skb.Family);
        long rulesGeneration = rules.Generation, hostGeneration = Host.Generation;
        FlowState flow = ct.Flow ?? FlowState.Empty;
        FlowWalkMemo? memo = null;
        foreach (FlowWalkMemo w in flow.Walks)
        {
            if (w.Hook == hook && w.CtInfo == skb.CtInfo && ReferenceEquals(w.Table, table))
            {
                memo = w;
                break;
            }
        }
        if (memo is not null && memo.RulesGeneration == rulesGeneration && memo.HostGeneration == hostGeneration
            && ReferenceEquals(memo.Rules, rules) && memo.Mark == skb.Mark
            && string.Equals(memo.InDev, skb.InDev, StringComparison.Ordinal) && string.Equals(memo.OutDev, skb.OutDev, StringComparison.Ordinal)
            && memo.SlotsHold)
        {
            ulong length = (ulong)skb.Length;
            CountHits(memo.Hits, memo.Slots, memo.Entries, length);
            if (memo.Policy is { } policy)
            {
                ref Counters policyCounts = ref policy.CountersCell;
                policyCounts.Packets++;
                policyCounts.Bytes += length;
            }
            ctx.Hook = hook;
            if (!ReferenceEquals(ctx.Table, table.Name)) ctx.Table = table.Name;
            return Verdict.Accept;
        }
        FlowWalkRecorder rec = _flowRecorder;
        rec.Clear();
        uint mark = skb.Mark;
        string? inDev = skb.InDev, outDev = skb.OutDev;
        Verdict v;
        ctx.Recording = rec;
        try
        {
            v = RunTable(ctx, table, hook);
        }
        finally
        {
            ctx.Recording = null;
        }
        // Kept only for an ACCEPT by pure targets of a table whose every rule is flow-stable, nothing changed meanwhile.
        if (v.Kind != VerdictKind.Accept || !rec.Pure || skb.Mark != mark || rules.Generation != rulesGeneration
            || Host.Generation != hostGeneration || !TableFlowStable(table, rulesGeneration))
            return v;
        memo = InternFlow(_flowMemos, new FlowWalkMemo
        {
            Hook = hook, CtInfo = skb.CtInfo, Table = table, Rules = rules, RulesGeneration = rulesGeneration,
            HostGeneration = hostGeneration, Mark = mark, InDev = inDev, OutDev = outDev, Hits = rec.Hits(), Policy = rec.Policy,
            Slots = rec.Slots(), Form = Compiled, Entries = Compiled?.Entries,
        });
        ct.Flow = InternFlow(_flowStates, flow.WithWalk(memo));
        return v;
    }

    /// <summary>
    /// One packet of <paramref name="length"/> bytes on each remembered hit: beside the compiled entry where the walk counted
    /// it (<paramref name="slots"/>[k] ≥ 0 in <paramref name="entries"/>; no load of the rule object), else on the rule.
    /// The flow path's replay and the one pass count through here.
    /// </summary>
    internal static void CountHits(Rule[] hits, int[]? slots, Compiled.FlatEntry[]? entries, ulong length)
    {
        for (int k = 0; k < hits.Length; k++)
        {
            int slot = slots is null ? -1 : slots[k];
            ref Counters c = ref slot >= 0 ? ref entries![slot].Counters : ref hits[k].CountersCell;
            c.Packets++;
            c.Bytes += length;
        }
    }

    /// <summary>
    /// <see cref="InputRoute4"/> for an established packet, kept per connection direction (<see cref="FlowRoute"/>): the
    /// same decision while the host and rules generations and the input device are the recorded ones (the direction's
    /// addresses are fixed once the connection is confirmed), without the shared memo's lookup.
    /// </summary>
    private Routing.InputDecision InputRouteFlow4(Skb skb, uint dst, uint src, string dev)
    {
        if (FlowConnection(skb) is not { } ct) return InputRoute4(dst, src, dev);
        long g = Host.Generation, rg = Host.V4.Generation;
        FlowState flow = ct.Flow ?? FlowState.Empty;
        bool reply = skb.CtInfo == CtInfo.EstablishedReply;
        FlowRoute r = reply ? flow.Reply : flow.Original;
        if (r.Holds(g, rg, dev)) return r.Decision!;
        Routing.InputDecision d = InputRoute4(dst, src, dev);
        // The decisions the shared memo keeps (forward, local unicast) are kept here too.
        if (d.Verdict is Routing.InputVerdict.Forward or Routing.InputVerdict.Local && !IsMulticast4(dst))
            ct.Flow = InternFlow(_flowStates, flow.WithRoute(reply, new FlowRoute(g, rg, dev, d)));
        return d;
    }

    /// <summary>
    /// The IPv6 input route (ip6_route_input) for an established packet, kept per connection direction as
    /// <see cref="InputRouteFlow4"/> keeps IPv4's: the same decision while the host and rules generations and the input
    /// device are the recorded ones. Only forward and local unicast decisions are kept.
    /// </summary>
    private Routing.InputDecision InputRouteFlow6(Skb skb)
    {
        var q = new Routing.RouteQuery(skb.Family, skb.Packet.Destination) { Source = skb.Packet.Source, InputInterface = skb.InDev, Mark = skb.Mark };
        if (FlowConnection(skb) is not { } ct || skb.InDev is not { } dev) return InputRoute(q);
        long g = Host.Generation, rg = Host.V6.Generation;
        FlowState flow = ct.Flow ?? FlowState.Empty;
        bool reply = skb.CtInfo == CtInfo.EstablishedReply;
        FlowRoute r = reply ? flow.Reply : flow.Original;
        if (r.Holds(g, rg, dev)) return r.Decision!;
        Routing.InputDecision d = InputRoute(q);
        if (d.Verdict is Routing.InputVerdict.Forward or Routing.InputVerdict.Local && !d.BeforePrerouting && (skb.Packet.Destination >> 120) != 0xff)
            ct.Flow = InternFlow(_flowStates, flow.WithRoute(reply, new FlowRoute(g, rg, dev, d)));
        return d;
    }

    /// <summary>The interned walk memos and flow states (<see cref="FlowState"/>), dropped whole when the host's rule sets or the host changed (the ones held then are mostly stale) or when they grew past a bound.</summary>
    private readonly Dictionary<FlowWalkMemo, FlowWalkMemo> _flowMemos = [];

    private readonly Dictionary<FlowState, FlowState> _flowStates = [];

    private (long V4, long V6, long Host) _flowInternedAt;

    private const int FlowInternLimit = 1 << 14;

    private T InternFlow<T>(Dictionary<T, T> interned, T value)
        where T : class
    {
        (long, long, long) now = (Host.V4.Generation, Host.V6.Generation, Host.Generation);
        if (now != _flowInternedAt || _flowMemos.Count + _flowStates.Count > FlowInternLimit)
        {
            _flowMemos.Clear();
            _flowStates.Clear();
            _flowInternedAt = now;
        }
        if (interned.TryGetValue(value, out T? known)) return known;
        interned.Add(value, value);
        return value;
    }

    /// <summary>The packet's connection when the flow path serves it: on, an established packet, a later one of its direction.</summary>
    private ConnEntry? FlowConnection(Skb skb) =>
        FlowPath && skb.CtInfo is (CtInfo.Established or CtInfo.EstablishedReply) && skb.Conntrack is ConnEntry ct && LaterFlowPacket(skb, ct) ? ct : null;

    /// <summary>
    /// Whether the packet is a later established packet of its connection direction: the first one (a SYN-ACK, the
    /// handshake's last ACK) goes the slow way and remembers nothing, so a connection that sends one packet each way costs
    /// no memo; the direction's second one makes the memos, the rest replay them.
    /// </summary>
    private static bool LaterFlowPacket(Skb skb, ConnEntry ct)
    {
        if (skb.FlowPacket == 0)
        {
            byte bit = skb.CtInfo == CtInfo.EstablishedReply ? (byte)2 : (byte)1;
            skb.FlowPacket = (ct.FlowSeen & bit) != 0 ? (byte)2 : (byte)1;
            ct.FlowSeen |= bit;
        }
        return skb.FlowPacket == 2;
    }

    /// <summary>Whether every rule of the table has only flow-stable parts (no -f, only flow-stable matches); found once per generation of its rule set.</summary>
    private bool TableFlowStable(Table table, long generation)
    {
        ref (Table? Table, long Generation, bool Stable) slot = ref _flowStable[TableSlot(table.Info) * 2 + (table.Family == Net.IpFamily.V4 ? 0 : 1)];
        if (ReferenceEquals(slot.Table, table) && slot.Generation == generation) return slot.Stable;
        bool stable = true;
        foreach (Chain c in table.Chains)
        {
            foreach (Rule r in c.Rules)
            {
                if (r.Fragment)
                {
                    stable = false;
                    break;
                }
                for (int m = 0; m < r.Matches.Count; m++)
                {
                    MatchUse use = r.Matches[m];
                    if (!use.Extension.FlowStable(use.Data))
                    {
                        stable = false;
                        break;
                    }
                }
                if (!stable) break;
            }
            if (!stable) break;
        }
        slot = (table, generation, stable);
        return stable;
    }
}
