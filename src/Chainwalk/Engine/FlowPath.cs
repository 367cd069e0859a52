using Chainwalk.Conntrack;
using Chainwalk.Host;
using Chainwalk.Rules;

namespace Chainwalk.Engine;

/// <summary>
/// What the flow path (<see cref="Netfilter.FlowPath"/>) keeps in a conntrack entry (<see cref="ConnEntry.Flow"/>), made
/// with its first established packet: per direction the input route decision, and the table walks.
/// </summary>
internal sealed class FlowState
{
    public FlowWalkMemo? Walks;
    public FlowRoute Original;
    public FlowRoute Reply;
}

/// <summary>
/// An IPv4 input route decision for one connection direction (the route cached with the flow, as the kernel keeps a
/// socket's or an early-demuxed packet's dst): the FIB's answer for this destination, source and input device while the
/// host generation (<see cref="HostGeneration"/>) stands.
/// </summary>
internal struct FlowRoute
{
    public long Generation;
    public uint Destination;
    public uint Source;
    public string? Device;
    public Routing.InputDecision? Decision;
}

/// <summary>
/// What one walk of a table did for an established packet of one connection direction: the rules (and the built-in
/// policy) whose counters it moved and its verdict (ACCEPT), with everything the walk's path depended on. Kept in the
/// conntrack entry (<see cref="FlowState.Walks"/>, a short list by hook, table and ctinfo) and replayed for the
/// direction's next packets while it all holds (<see cref="Netfilter.FlowPath"/>).
/// </summary>
internal sealed class FlowWalkMemo
{
    public FlowWalkMemo? Next;
    public Hook Hook;
    public CtInfo CtInfo;
    public Table Table = null!;
    public Ruleset Rules = null!;
    public long RulesGeneration;
    public long HostGeneration;
    public uint Mark;
    public string? InDev;
    public string? OutDev;
    public Rule[] Hits = [];
    public Chain? Policy;
}

/// <summary>Collects, during one walk, the rules it counted and whether every counted rule's target was pure.</summary>
internal sealed class FlowWalkRecorder
{
    private Rule[] _hits = new Rule[16];

    public int Count { get; private set; }

    public Chain? Policy { get; private set; }

    /// <summary>Every counted rule's target is none, ACCEPT, DROP, RETURN or a jump/goto: nothing but the verdict and the counters came of the walk.</summary>
    public bool Pure { get; private set; } = true;

    public void Clear()
    {
        Count = 0;
        Policy = null;
        Pure = true;
    }

    public void Hit(Rule rule)
    {
        TargetUse? t = rule.Target;
        if (t is not null && !(t.IsChainJump || (t.IsStandardVerdict && t.Name != Verdicts.Queue))) Pure = false;
        if (Count == _hits.Length) Array.Resize(ref _hits, _hits.Length * 2);
        _hits[Count++] = rule;
    }

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
    /// way: no trace, the rule sets (<see cref="RulesGeneration"/>), the host (<see cref="HostGeneration"/>), the ctinfo,
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
        if (!FlowPath || skb.CtInfo is not (CtInfo.Established or CtInfo.EstablishedReply) || skb.Conntrack is not ConnEntry ct
            || skb.Trace || Current?.Trace is not null)
            return RunTable(ctx, table, hook);
        if (!LaterFlowPacket(skb, ct)) return RunTable(ctx, table, hook);
        long rulesGeneration = RulesGeneration.Value, hostGeneration = HostGeneration.Value;
        Ruleset rules = Host.Rules(skb.Family);
        FlowState flow = ct.Flow ??= new FlowState();
        FlowWalkMemo? memo = flow.Walks;
        while (memo is not null && !(memo.Hook == hook && memo.CtInfo == skb.CtInfo && ReferenceEquals(memo.Table, table))) memo = memo.Next;
        if (memo is not null && memo.RulesGeneration == rulesGeneration && memo.HostGeneration == hostGeneration
            && ReferenceEquals(memo.Rules, rules) && memo.Mark == skb.Mark
            && string.Equals(memo.InDev, skb.InDev, StringComparison.Ordinal) && string.Equals(memo.OutDev, skb.OutDev, StringComparison.Ordinal))
        {
            ulong length = (ulong)skb.Length;
            foreach (Rule r in memo.Hits)
            {
                r.Counters.Packets++;
                r.Counters.Bytes += length;
            }
            if (memo.Policy is { } policy)
            {
                policy.Counters.Packets++;
                policy.Counters.Bytes += length;
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
        if (v.Kind != VerdictKind.Accept || !rec.Pure || skb.Mark != mark || RulesGeneration.Value != rulesGeneration
            || HostGeneration.Value != hostGeneration || !TableFlowStable(table, rulesGeneration))
            return v;
        if (memo is null)
        {
            memo = new FlowWalkMemo { Hook = hook, CtInfo = skb.CtInfo, Table = table, Next = flow.Walks };
            flow.Walks = memo;
        }
        memo.Rules = rules;
        memo.RulesGeneration = rulesGeneration;
        memo.HostGeneration = hostGeneration;
        memo.Mark = mark;
        memo.InDev = inDev;
        memo.OutDev = outDev;
        memo.Hits = rec.Hits();
        memo.Policy = rec.Policy;
        return v;
    }

    /// <summary>
    /// <see cref="InputRoute4"/> for an established packet, kept per connection direction (<see cref="FlowRoute"/>): the
    /// same decision while the host generation, destination, source and input device are the recorded ones (a packet of
    /// the direction has them all, unless NAT was set up since or the host changed), without the shared memo's lookup.
    /// </summary>
    private Routing.InputDecision InputRouteFlow4(Skb skb, uint dst, uint src, string dev)
    {
        if (!FlowPath || skb.CtInfo is not (CtInfo.Established or CtInfo.EstablishedReply) || skb.Conntrack is not ConnEntry ct)
            return InputRoute4(dst, src, dev);
        if (!LaterFlowPacket(skb, ct)) return InputRoute4(dst, src, dev);
        long g = HostGeneration.Value;
        FlowState flow = ct.Flow ??= new FlowState();
        ref FlowRoute r = ref skb.CtInfo == CtInfo.EstablishedReply ? ref flow.Reply : ref flow.Original;
        if (r.Decision is { } known && r.Generation == g && r.Destination == dst && r.Source == src
            && (ReferenceEquals(r.Device, dev) || string.Equals(r.Device, dev, StringComparison.Ordinal)))
            return known;
        Routing.InputDecision d = InputRoute4(dst, src, dev);
        // The decisions the shared memo keeps (forward, local unicast) are kept here too.
        if (d.Verdict is Routing.InputVerdict.Forward or Routing.InputVerdict.Local && !IsMulticast4(dst))
        {
            r.Generation = g;
            r.Destination = dst;
            r.Source = src;
            r.Device = dev;
            r.Decision = d;
        }
        return d;
    }

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

    /// <summary>Whether every rule of the table has only flow-stable parts (no -f, only flow-stable matches); found once per rules generation.</summary>
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
