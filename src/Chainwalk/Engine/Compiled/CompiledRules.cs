using Chainwalk.Extensions.Matches;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Engine.Compiled;

/// <summary>
/// The compiled form of one chain: its maximal runs of indexable rules (only <c>-s</c>/<c>-d</c> prefixes or
/// masks, <c>-p</c>, tcp/udp port ranges and comments, none inverted, no interfaces or <c>-f</c>) each get a
/// <see cref="TupleIndex"/>; every other rule stays where it is and is walked. The walker asks
/// <see cref="Next"/> where the next rule worth testing is; it then tests that rule itself, so a rule is
/// only ever skipped when the index proved it cannot match.
/// </summary>
public sealed class ChainIndex
{
    /// <summary>Shorter runs are not worth an index: they are walked.</summary>
    public const int MinRun = 4;

    private readonly int[] _runAt;
    private readonly TupleIndex[] _runs;

    /// <summary>
    /// Per rule of an indexed run: the rule and ACCEPT or DROP when its target is that standard verdict, else
    /// Continue; one array read for the walker's fast return instead of the chain's list and the rule's target.
    /// </summary>
    private readonly PlainHit[] _plain;

    /// <summary>A rule of an indexed run and its verdict when that is a plain ACCEPT or DROP (else Continue).</summary>
    public readonly record struct PlainHit(Rule? Rule, VerdictKind Kind);

    private ChainIndex(int count, int[] runAt, TupleIndex[] runs, PlainHit[] plain)
    {
        RuleCount = count;
        _runAt = runAt;
        _runs = runs;
        _plain = plain;
    }

    /// <summary>The chain's length when compiled; a chain of another length is walked linearly.</summary>
    public int RuleCount { get; }

    public IReadOnlyList<TupleIndex> Runs => _runs;

    public long Bytes
    {
        get
        {
            long n = (long)_runAt.Length * 4 + (long)_plain.Length * 16;
            foreach (TupleIndex t in _runs) n += t.Bytes;
            return n;
        }
    }

    /// <summary>
    /// The first rule at or after <paramref name="i"/> that may match <paramref name="k"/> (the chain's length: none).
    /// <paramref name="proven"/> is true when the index checked that rule's whole condition and it matches (the
    /// walker need not test it again); false when the rule is one the index does not cover.
    /// </summary>
    public int Next(int i, in FlowKey k, out bool proven)
    {
        int[] runAt = _runAt;
        proven = false;
        if ((uint)i >= (uint)runAt.Length) return i;
        int run = runAt[i];
        if (run < 0) return i;
        TupleIndex t = _runs[run];
        int j = t.FirstMatch(k, i);
        proven = j < t.End;
        return j;
    }

    /// <summary>
    /// The same index for the chain with <paramref name="newCount"/> rules, after rules were appended to it or
    /// deleted after its last run: those rules are walked linearly, the runs before them are unchanged. O(1).
    /// </summary>
    public ChainIndex WithAppended(int newCount) => new(newCount, _runAt, _runs, _plain);

    /// <summary>
    /// The rule at <paramref name="i"/> (one the index proved) with ACCEPT or DROP when that standard verdict is its
    /// target, so the walker may count it and return; Kind Continue otherwise (the walker dispatches the target).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public PlainHit PlainVerdict(int i) => (uint)i < (uint)_plain.Length ? _plain[i] : default;

    /// <summary>Compiles <paramref name="chain"/>; null when it has no run worth indexing.</summary>
    public static ChainIndex? Build(Chain chain)
    {
        List<Rule> rules = chain.Rules;
        if (rules.Count < MinRun) return null;
        var runAt = new int[rules.Count];
        Array.Fill(runAt, -1);
        var plain = new PlainHit[rules.Count];
        var runs = new List<TupleIndex>();
        var flat = new List<FlatRule>();
        int i = 0;
        while (i < rules.Count)
        {
            int start = i;
            flat.Clear();
            while (i < rules.Count && TryFlatten(rules[i], out FlatRule f))
            {
                flat.Add(f);
                i++;
            }
            if (flat.Count >= MinRun)
            {
                for (int j = start; j < i; j++)
                {
                    runAt[j] = runs.Count;
                    VerdictKind kind = rules[j].Target is { Extension: null } t
                        ? t.Name switch { Verdicts.Accept => VerdictKind.Accept, Verdicts.Drop => VerdictKind.Drop, _ => VerdictKind.Continue }
                        : VerdictKind.Continue;
                    plain[j] = new PlainHit(kind == VerdictKind.Continue ? null : rules[j], kind);
                }
                runs.Add(TupleIndex.Build(start, flat));
            }
            if (i == start) i++;
        }
        return runs.Count == 0 ? null : new ChainIndex(rules.Count, runAt, runs.ToArray(), plain);
    }

    /// <summary>The rule as flat fields when its whole condition is one the index decides; false otherwise.</summary>
    public static bool TryFlatten(Rule r, out FlatRule f)
    {
        f = default;
        if (r.Family != IpFamily.V4) return false;
        if (r.SourceInverted || r.DestinationInverted || r.ProtocolInverted || r.Fragment) return false;
        if (r.InInterface.Length != 0 || r.OutInterface.Length != 0 || r.InInverted || r.OutInverted) return false;
        if (r.Protocol > byte.MaxValue) return false;
        f.SourceAddress = (uint)r.Source.Address;
        f.SourceMask = (uint)r.Source.Mask;
        f.DestinationAddress = (uint)r.Destination.Address;
        f.DestinationMask = (uint)r.Destination.Mask;
        // An address not cut to its mask never matches (ip_packet_match compares masked values): leave it to the walk.
        if ((f.SourceAddress & ~f.SourceMask) != 0 || (f.DestinationAddress & ~f.DestinationMask) != 0) return false;
        f.Protocol = (byte)r.Protocol;
        f.SportHigh = f.DportHigh = ushort.MaxValue;
        foreach (MatchUse m in r.Matches)
        {
            switch (m.Data)
            {
                case CommentData when m.Extension is CommentMatch:
                    break;
                case TcpData t when m.Extension is TcpMatch:
                    if (r.Protocol != IpProtocolNumbers.Tcp || t.InvSport || t.InvDport || t.InvOption || t.Option != 0
                        || t.FlagMask != 0 || t.FlagCompare != 0 || t.InvFlags) return false;
                    if (!Narrow(ref f, t.SportMin, t.SportMax, t.DportMin, t.DportMax)) return false;
                    break;
                case UdpData u when m.Extension is UdpMatch:
                    if (r.Protocol != IpProtocolNumbers.Udp || u.InvSport || u.InvDport) return false;
                    if (!Narrow(ref f, u.SportMin, u.SportMax, u.DportMin, u.DportMax)) return false;
                    break;
                default:
                    return false;
            }
        }
        return true;
    }

    private static bool Narrow(ref FlatRule f, ushort slo, ushort shi, ushort dlo, ushort dhi)
    {
        // An empty range (min > max) never matches: leave such a rule to the walk.
        if (slo > shi || dlo > dhi) return false;
        f.SportLow = Math.Max(f.SportLow, slo);
        f.SportHigh = Math.Min(f.SportHigh, shi);
        f.DportLow = Math.Max(f.DportLow, dlo);
        f.DportHigh = Math.Min(f.DportHigh, dhi);
        return f.SportLow <= f.SportHigh && f.DportLow <= f.DportHigh;
    }

    private static class IpProtocolNumbers
    {
        public const ushort Tcp = 6, Udp = 17;
    }
}

/// <summary>
/// The compiled form of a rule set (IPv4): a <see cref="ChainIndex"/> per chain worth one. Built from a
/// snapshot; whoever edits the rules afterwards calls <see cref="Invalidate"/> (or builds a new one), and a
/// chain whose length changed is walked linearly until then.
/// </summary>
public sealed class CompiledRules
{
    private readonly Dictionary<Chain, ChainIndex> _chains = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<TargetUse, Chain> _jumps = new(ReferenceEqualityComparer.Instance);

    public static CompiledRules Build(Ruleset rules)
    {
        var c = new CompiledRules();
        if (rules.Family != IpFamily.V4) return c;
        foreach (Table t in rules.Tables)
        {
            foreach (Chain chain in t.Chains)
            {
                c.Recompile(chain);
                c.ResolveJumps(t, chain);
            }
        }
        return c;
    }

    /// <summary>Remembers the chain each jump or goto of <paramref name="chain"/> enters (no lookup by name per packet).</summary>
    public void ResolveJumps(Table table, Chain chain)
    {
        foreach (Rule r in chain.Rules)
        {
            if (r.Target is { IsChainJump: true } t && table.Find(t.Name) is { } next) _jumps[t] = next;
        }
    }

    /// <summary>The chain a jump enters, when resolved and still of that name; null: look it up.</summary>
    public Chain? JumpTarget(TargetUse target) =>
        _jumps.TryGetValue(target, out Chain? c) && string.Equals(c.Name, target.Name, StringComparison.Ordinal) ? c : null;

    /// <summary>Compiles (again) one chain, after it was edited.</summary>
    public void Recompile(Chain chain)
    {
        _lastChain = null;
        ChainIndex? ci = ChainIndex.Build(chain);
        if (ci is null) _chains.Remove(chain);
        else _chains[chain] = ci;
    }

    /// <summary>
    /// After rules were only appended to <paramref name="chain"/> (<c>-A</c>): keeps its index for the rules it
    /// had and walks the appended ones linearly, without rebuilding (a chain whose tail grew past the index by
    /// more than <paramref name="rebuildAfter"/> rules is recompiled). The caller vouches that nothing else changed.
    /// </summary>
    public void Appended(Chain chain, int rebuildAfter = 256)
    {
        _lastChain = null;
        if (!_chains.TryGetValue(chain, out ChainIndex? ci) || chain.Rules.Count < ci.RuleCount)
        {
            Recompile(chain);
            return;
        }
        int indexed = ci.Runs.Count == 0 ? 0 : ci.Runs[^1].End;
        if (chain.Rules.Count - indexed > rebuildAfter) Recompile(chain);
        else _chains[chain] = ci.WithAppended(chain.Rules.Count);
    }

    /// <summary>
    /// After the rule at <paramref name="position"/> (0-based, as it was) was deleted from <paramref name="chain"/>
    /// (<c>-D</c>): a rule after every indexed run keeps the index as it is; any other is recompiled.
    /// </summary>
    public void Deleted(Chain chain, int position)
    {
        _lastChain = null;
        if (_chains.TryGetValue(chain, out ChainIndex? ci) && chain.Rules.Count == ci.RuleCount - 1
            && (ci.Runs.Count == 0 || position >= ci.Runs[^1].End))
        {
            _chains[chain] = ci.WithAppended(chain.Rules.Count);
            return;
        }
        Recompile(chain);
    }

    /// <summary>Forgets one chain (it is walked linearly until recompiled).</summary>
    public void Invalidate(Chain chain)
    {
        _lastChain = null;
        _chains.Remove(chain);
    }

    private Chain? _lastChain;
    private ChainIndex? _lastIndex;

    /// <summary>The chain's index, or null when it has none or the chain changed length since it was compiled.</summary>
    public ChainIndex? For(Chain chain)
    {
        if (!ReferenceEquals(chain, _lastChain))
        {
            _lastIndex = _chains.GetValueOrDefault(chain);
            _lastChain = chain;
        }
        return _lastIndex is { } ci && ci.RuleCount == chain.Rules.Count ? ci : null;
    }

    public int IndexedChains => _chains.Count;

    public long Bytes
    {
        get
        {
            long n = 0;
            foreach (ChainIndex ci in _chains.Values) n += ci.Bytes + 64;
            return n;
        }
    }
}
