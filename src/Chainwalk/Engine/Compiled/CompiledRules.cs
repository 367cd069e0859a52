using Chainwalk.Extensions.Matches;
using Chainwalk.Net;
using Chainwalk.Rules;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Chainwalk.Engine.Compiled;

/// <summary>
/// The compiled form of one chain: its maximal runs of indexable rules (only <c>-s</c>/<c>-d</c> prefixes or
/// masks, <c>-p</c>, tcp/udp port ranges and comments, none inverted, no interfaces or <c>-f</c>) each get a
/// <see cref="TupleIndex"/>; every other rule stays where it is and is walked. The walker asks
/// <see cref="Next"/> where the next rule worth testing is; it then tests that rule itself, so a rule is
/// only ever skipped when the index proved it cannot match.
/// </summary>
public sealed class ChainIndex : RuleCounterHome
{
    /// <summary>Shorter runs are not worth an index: they are walked.</summary>
    public const int MinRun = 4;

    private readonly int[] _runAt;
    private readonly TupleIndex[] _runs;

    /// <summary>
    /// Per rule of an indexed run: the rule and ACCEPT or DROP when its target is that standard verdict, else
    /// Continue; one array read for the walker's fast return instead of the chain's list and the rule's target.
    /// </summary>
    private readonly PlainSlot[] _plain;

    /// <summary>
    /// A rule of an indexed run: the rule and its plain verdict (ACCEPT or DROP, else Continue), and, for a chain with no
    /// flat entries (a built-in chain its index decides alone: ClassBench's shape), the rule's counters (<see cref="Home"/>):
    /// a proven rule is counted in the line the walk read its verdict from, without a load of the rule object.
    /// </summary>
    private struct PlainSlot
    {
        public Rule? Rule;
        public Counters Counters;
        public VerdictKind Kind;

        /// <summary>The rule's counters are here (the rule names this index as their home).</summary>
        public bool Home;
    }

    /// <summary>A rule of an indexed run and its verdict when that is a plain ACCEPT or DROP (else Continue).</summary>
    public readonly record struct PlainHit(Rule? Rule, VerdictKind Kind);

    private ChainIndex(int count, int[] runAt, TupleIndex[] runs, PlainHit[] plain)
    {
        RuleCount = count;
        _runAt = runAt;
        _runs = runs;
        _plain = new PlainSlot[plain.Length];
        for (int i = 0; i < plain.Length; i++) _plain[i] = new PlainSlot { Rule = plain[i].Rule, Kind = plain[i].Kind };
    }

    // ------------------------------------------------------------------ counters of an index-decided chain

    /// <summary>Another index took the rules' counters: count through the rules (wherever their counters are now).</summary>
    private bool _homeless;

    internal void MarkHomeless() => _homeless = true;

    /// <summary>The plain rules' counters move here (a chain without flat entries: its walk reads nothing else of a rule).</summary>
    internal void AdoptCounters()
    {
        _slots = null;
        for (int i = 0; i < _plain.Length; i++)
        {
            ref PlainSlot p = ref _plain[i];
            if (p.Rule is not { } r) continue;
            RuleCounterHome? home = r.CounterHome;
            if (ReferenceEquals(home, this))
            {
                // Held here already, or (one rule object twice in the chain) at an earlier slot.
                continue;
            }
            if (home is ChainIndex other) other.MarkHomeless();
            else if (home is CompiledRules form) form.Supersede();
            p.Counters = r.MoveCountersTo(this);
            p.Home = true;
        }
        _homeless = false;
    }

    /// <summary>The rules whose counters are here take them back (the index is replaced or dropped).</summary>
    internal void GiveBackCounters()
    {
        _slots = null;
        for (int i = 0; i < _plain.Length; i++)
        {
            ref PlainSlot p = ref _plain[i];
            if (!p.Home) continue;
            if (ReferenceEquals(p.Rule!.CounterHome, this)) p.Rule.TakeCountersBack(p.Counters);
            p.Home = false;
            p.Counters = default;
        }
    }

    /// <summary>
    /// The counters of the rule at <paramref name="i"/> (as <see cref="PlainVerdict"/> maps it), <paramref name="hit"/>: here
    /// when they live here, else the rule's own.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal ref Counters PlainCounters(int i, Rule hit)
    {
        if (_segs is not null)
        {
            ref readonly Segment s = ref _segs[SegmentAt(i)];
            if (s.Old < 0) return ref hit.CountersCell;
            i = s.Old + (i - s.Cur);
        }
        if ((uint)i < (uint)_plain.Length)
        {
            ref PlainSlot p = ref _plain[i];
            if (p.Home && ReferenceEquals(p.Rule, hit))
            {
                if (!_homeless) return ref p.Counters;
                // Another index took the counters (a form built later over the same rules): the index in use takes them back.
                AdoptCounters();
                if (p.Home && ReferenceEquals(p.Rule.CounterHome, this)) return ref p.Counters;
            }
        }
        return ref hit.CountersCell;
    }

    private int _hint;
    private Dictionary<Rule, int>? _slots;

    /// <inheritdoc/>
    protected internal override ref Counters CountersOf(Rule rule)
    {
        PlainSlot[] plain = _plain;
        for (int k = _hint; k <= _hint + 1; k++)
        {
            if ((uint)k < (uint)plain.Length && plain[k].Home && ReferenceEquals(plain[k].Rule, rule))
            {
                _hint = k;
                return ref plain[k].Counters;
            }
        }
        if (_slots is null)
        {
            var m = new Dictionary<Rule, int>(ReferenceEqualityComparer.Instance);
            for (int k = 0; k < plain.Length; k++)
            {
                if (plain[k].Home) m[plain[k].Rule!] = k;
            }
            _slots = m;
        }
        if (!_slots.TryGetValue(rule, out int slot)) throw new InvalidOperationException("A rule names a chain index as its counters' home that does not hold it.");
        _hint = slot;
        return ref plain[slot].Counters;
    }

    /// <summary>The chain's length when compiled; a chain of another length is walked linearly.</summary>
    public int RuleCount { get; private set; }

    /// <summary>The chain's <see cref="Chain.Edits"/> this index is in step with; a chain edited since is walked linearly.</summary>
    public int Edits { get; internal set; }

    public IReadOnlyList<TupleIndex> Runs => _runs;

    /// <summary>
    /// One indexed run covers the whole chain (as compiled, and still that length) and every rule's target is a
    /// plain ACCEPT or DROP: the index alone decides a key's verdict (<see cref="CompiledRules.ClassifyKeys"/>).
    /// </summary>
    public bool FullyPlain =>
        _segs is null && _runs.Length == 1 && _runs[0].Start == 0 && _runs[0].End == RuleCount && _allPlain;

    private bool _allPlain;

    /// <summary>Per rule: its plain verdict (the <see cref="PlainHit"/>'s kind, one byte: the key path reads it per key).</summary>
    private VerdictKind[] _kinds = [];

    /// <summary>
    /// The key path's counters during one call (<see cref="CompiledRules.ClassifyKeys"/>), per rule, and the rules they
    /// hold counts for: added to the rule objects when the call ends. Made on the first call.
    /// </summary>
    private Counters[]? _pending;

    private int[]? _touched;

    /// <summary>The key path's scratch once made (its first call): per rule 16 bytes of counts and 4 of the list of rules hit.</summary>
    public long KeyPathBytes => _pending is null ? 0 : (long)_pending.Length * 20;

    /// <summary>The kinds, and the key path's scratch counters (made once).</summary>
    internal (VerdictKind[] Kinds, Counters[] Pending, int[] Touched) KeyPathState()
    {
        if (_pending is null)
        {
            _pending = new Counters[_plain.Length];
            _touched = new int[_plain.Length];
        }
        return (_kinds, _pending, _touched!);
    }

    public long Bytes
    {
        get
        {
            // The key path's scratch (20 bytes a rule, made on its first call) is not counted: see KeyPathBytes.
            long n = (long)_runAt.Length * 4 + (long)_plain.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<PlainSlot>() + _kinds.Length;
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
        if (_segs is not null) return NextPatched(i, k, out proven);
        return BaseNext(i, k, out proven);
    }

    /// <summary><see cref="Next"/> in the rule positions the index was built for (no edits since).</summary>
    private int BaseNext(int i, in FlowKey k, out bool proven)
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
    /// The rule at <paramref name="i"/> (one the index proved) with ACCEPT or DROP when that standard verdict is its
    /// target, so the walker may count it and return; Kind Continue otherwise (the walker dispatches the target).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public PlainHit PlainVerdict(int i)
    {
        if (_segs is not null)
        {
            ref readonly Segment s = ref _segs[SegmentAt(i)];
            if (s.Old < 0) return s.NewIndex >= 0 ? _newRules[s.NewIndex].Plain : default;
            i = s.Old + (i - s.Cur);
        }
        if ((uint)i >= (uint)_plain.Length) return default;
        ref readonly PlainSlot p = ref _plain[i];
        return new PlainHit(p.Rule, p.Kind);
    }

    // ------------------------------------------------------------------ edits without a rebuild
    //
    // The index keeps the rule positions it was built with ("old" positions). An edit since is an overlay: old rules
    // deleted (or replaced) are dead, rules inserted (or the new rule of a replace) are "new" and walked linearly
    // where they stand, each anchored before an old position (the chain's old length for the tail). The chain as it
    // is now is a short list of segments, each a stretch of consecutive live old rules or one new rule, in chain
    // order; a lookup maps the walker's position to an old one, asks the index, skips dead rules, and maps back.
    // Each edit costs O(edits so far); the chain is rebuilt when too many new rules are walked linearly.

    /// <summary>A stretch of the chain as it is now: <see cref="Length"/> old rules from <see cref="Old"/>, or one new rule (Old -1).</summary>
    private readonly record struct Segment(int Cur, int Old, int Length, int NewIndex, int NextNew);

    private Segment[]? _segs;
    private int[] _oldSegs = [];
    private readonly List<int> _dead = [];
    private readonly List<int> _anchors = [];

    /// <summary>Per new rule (the order of <see cref="_anchors"/>): its flat condition when the index could hold it, and its plain verdict.</summary>
    private readonly List<NewRule> _newRules = [];

    /// <summary>A new rule: tested here by its flat fields when <see cref="Flat"/> (skipped when it cannot match), else left to the walker.</summary>
    private readonly record struct NewRule(bool Flat, FlatRule Condition, PlainHit Plain);

    private static NewRule MakeNew(Rule r)
    {
        if (!TryFlatten(r, out FlatRule f)) return default;
        return new NewRule(true, f, new PlainHit(r, PlainKind(r)) is { Kind: not VerdictKind.Continue } h ? h : default);
    }

    private static VerdictKind PlainKind(Rule r) =>
        r.Target is { Extension: null } t
            ? t.Name switch { Verdicts.Accept => VerdictKind.Accept, Verdicts.Drop => VerdictKind.Drop, _ => VerdictKind.Continue }
            : VerdictKind.Continue;

    /// <summary>Rules inserted (or replaced) since the build, walked linearly.</summary>
    public int PendingNew => _anchors.Count;

    /// <summary>Rules deleted (or replaced) since the build, skipped.</summary>
    public int PendingDead => _dead.Count;

    private int SegmentAt(int cur)
    {
        Segment[] segs = _segs!;
        int lo = 0, hi = segs.Length - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >> 1;
            if (segs[mid].Cur <= cur) lo = mid;
            else hi = mid - 1;
        }
        return lo;
    }

    /// <summary>The segment holding old position <paramref name="old"/>, or -1 when that rule is dead.</summary>
    private int SegmentOfOld(int old)
    {
        Segment[] segs = _segs!;
        int[] os = _oldSegs;
        int lo = 0, hi = os.Length - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (segs[os[mid]].Old <= old)
            {
                found = os[mid];
                lo = mid + 1;
            }
            else hi = mid - 1;
        }
        return found >= 0 && old < segs[found].Old + segs[found].Length ? found : -1;
    }

    private int NextPatched(int i, in FlowKey k, out bool proven)
    {
        proven = false;
        if ((uint)i >= (uint)RuleCount) return i;
        int si = SegmentAt(i);
        Segment[] segs = _segs!;
        Segment s = segs[si];
        // The old rules from here: after a new rule, the one it was inserted before (or a later one, if that is dead).
        int old = s.Old < 0 ? _anchors[s.NewIndex] : s.Old + (i - s.Cur);
        int firstNew = s.Old < 0 ? si : s.NextNew;
        int baseCount = _runAt.Length;
        int found = RuleCount;
        bool pr = false;
        while (true)
        {
            int j = BaseNext(old, k, out pr);
            if (j >= baseCount) break;
            int sj = SegmentOfOld(j);
            if (sj < 0)
            {
                old = j + 1;
                continue;
            }
            found = segs[sj].Cur + (j - segs[sj].Old);
            break;
        }
        // New rules before that one: the first that may match wins (a flat one is tested here, and skipped or proven).
        return NewFrom(firstNew, found, k, ref proven, found, pr);
    }

    /// <summary>
    /// From the new rule at segment <paramref name="seg"/> on, the first one standing before <paramref name="limit"/>
    /// that may match: a flat one that matches (proven) or one the index cannot judge; else <paramref name="found"/>
    /// with <paramref name="foundProven"/>.
    /// </summary>
    private int NewFrom(int seg, int limit, in FlowKey k, ref bool proven, int found, bool foundProven = false)
    {
        Segment[] segs = _segs!;
        while (seg < segs.Length && segs[seg].Cur < limit)
        {
            ref readonly Segment n = ref segs[seg];
            NewRule nr = _newRules[n.NewIndex];
            if (!nr.Flat)
            {
                proven = false;
                return n.Cur;
            }
            if (nr.Condition.Matches(k))
            {
                proven = true;
                return n.Cur;
            }
            seg = seg + 1 < segs.Length ? segs[seg + 1].NextNew : segs.Length;
        }
        proven = foundProven && found < RuleCount;
        return found;
    }

    /// <summary>Rebuilds the segment list from the dead positions and the new rules' anchors (both sorted).</summary>
    private void Resegment()
    {
        int baseCount = _runAt.Length;
        var segs = new List<Segment>(_dead.Count * 2 + _anchors.Count * 2 + 1);
        int cur = 0, old = 0, di = 0, ni = 0;
        while (old < baseCount || ni < _anchors.Count)
        {
            if (ni < _anchors.Count && _anchors[ni] <= old)
            {
                segs.Add(new Segment(cur++, -1, 1, ni++, 0));
                continue;
            }
            if (di < _dead.Count && _dead[di] == old)
            {
                old++;
                di++;
                continue;
            }
            int stop = baseCount;
            if (di < _dead.Count) stop = Math.Min(stop, _dead[di]);
            if (ni < _anchors.Count) stop = Math.Min(stop, _anchors[ni]);
            segs.Add(new Segment(cur, old, stop - old, -1, 0));
            cur += stop - old;
            old = stop;
        }
        if (segs.Count == 0) segs.Add(new Segment(0, -1, 0, -1, 0));
        var arr = segs.ToArray();
        int nextNew = arr.Length;
        var oldSegs = new List<int>(arr.Length);
        for (int n = arr.Length - 1; n >= 0; n--)
        {
            if (arr[n].Old < 0 && arr[n].Length > 0) nextNew = n;
            arr[n] = arr[n] with { NextNew = nextNew };
        }
        for (int n = 0; n < arr.Length; n++)
        {
            if (arr[n].Old >= 0) oldSegs.Add(n);
        }
        _segs = arr;
        _oldSegs = oldSegs.ToArray();
        RuleCount = cur;
    }

    /// <summary>The index after a rule was inserted at <paramref name="position"/> (0-based, where it now is).</summary>
    internal void Insert(int position, Rule rule)
    {
        NewRule nr = MakeNew(rule);
        if (_segs is null) Resegment();
        if ((uint)position > (uint)RuleCount) throw new ArgumentOutOfRangeException(nameof(position));
        if (position == RuleCount)
        {
            _anchors.Add(_runAt.Length);
            _newRules.Add(nr);
        }
        else
        {
            Segment s = _segs![SegmentAt(position)];
            if (s.Old < 0)
            {
                _anchors.Insert(s.NewIndex, _anchors[s.NewIndex]);
                _newRules.Insert(s.NewIndex, nr);
            }
            else
            {
                int x = s.Old + (position - s.Cur);
                int at = _anchors.BinarySearch(x);
                // After every rule already anchored at x (they stand before x, and so before the new one).
                if (at < 0) at = ~at;
                while (at < _anchors.Count && _anchors[at] <= x) at++;
                _anchors.Insert(at, x);
                _newRules.Insert(at, nr);
            }
        }
        Resegment();
    }

    /// <summary>The index after the rule at <paramref name="position"/> (0-based, as it was) was deleted.</summary>
    internal void Delete(int position)
    {
        if (_segs is null) Resegment();
        if ((uint)position >= (uint)RuleCount) throw new ArgumentOutOfRangeException(nameof(position));
        Segment s = _segs![SegmentAt(position)];
        if (s.Old < 0)
        {
            _anchors.RemoveAt(s.NewIndex);
            _newRules.RemoveAt(s.NewIndex);
        }
        else
        {
            int x = s.Old + (position - s.Cur);
            int at = _dead.BinarySearch(x);
            _dead.Insert(~at, x);
        }
        Resegment();
    }

    /// <summary>Compiles <paramref name="chain"/>; null when it has no run worth indexing.</summary>
    public static ChainIndex? Build(Chain chain)
    {
        RuleList rules = chain.Rules;
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
        if (runs.Count == 0) return null;
        bool allPlain = true;
        foreach (PlainHit h in plain) allPlain &= h.Kind != VerdictKind.Continue;
        var kinds = new VerdictKind[plain.Length];
        for (int k = 0; k < plain.Length; k++) kinds[k] = plain[k].Kind;
        return new ChainIndex(rules.Count, runAt, runs.ToArray(), plain) { _allPlain = allPlain, Edits = chain.Edits, _kinds = kinds };
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
/// The compiled form of a rule set (IPv4): a <see cref="ChainIndex"/> per chain worth one. Built from the rules as
/// they are; it listens to the chains it indexed (<see cref="Chain.EditListener"/>), so a one-rule change made through
/// <see cref="RulesetEditor"/> (<c>-A</c>, <c>-I</c>, <c>-R</c>, <c>-D</c>, one rule at a time in a restore) updates the
/// chain's index in place (<see cref="Inserted"/>, <see cref="Replaced"/>, <see cref="Deleted"/>), and <c>-F</c> drops it.
/// A chain changed any other way (its <see cref="Chain.Edits"/> moved past the index's, e.g. edited while another
/// compiled form was listening, or its length differs) is walked linearly until recompiled; a chain object it has not
/// seen (a table copied by a restore) has no index until <see cref="Recompile"/> or a new <see cref="Build"/>.
/// <para>
/// Beside the indexes: every chain's flat entries in one array (<see cref="Entries"/>, a <see cref="FlatSpan"/> per
/// chain), and the counters of the rules in them (<see cref="RuleCounterHome"/>: each rule's counters live in its entry,
/// or for a chain without entries in its index, and the rule reads through to them). One place holds a rule's counters
/// at a time: a rebuilt chain gives back and adopts, a later form over the same rules takes them (the form walked takes
/// them back: <see cref="Reclaim"/>), <see cref="Release"/> gives them all back.
/// </para>
/// </summary>
public sealed class CompiledRules : RuleCounterHome, IChainEdits
{
    private readonly Dictionary<Chain, ChainIndex> _chains = new(ReferenceEqualityComparer.Instance);

    public static CompiledRules Build(Ruleset rules)
    {
        var c = new CompiledRules();
        if (rules.Family != IpFamily.V4) return c;
        int n = 0, nt = 0;
        foreach (Table t in rules.Tables)
        {
            nt++;
            foreach (Chain _ in t.Chains) n++;
        }
        var spans = new FlatSpan[n];
        var tables = new FlatTable[nt];
        var builtins = new List<(Chain, int)>();
        // The map of chains to numbers is the build's: dropped at its end (10 bytes a kube rule), made again when asked.
        var numbers = new Dictionary<Chain, int>(n, ReferenceEqualityComparer.Instance);
        c.Spans = spans;
        c._numbers = numbers;
        int k = 0, ti = 0;
        foreach (Table t in rules.Tables)
        {
            tables[ti] = new FlatTable(t);
            // Numbered (and so laid out: entries, spans and first target slots go by number) in the order a walk reaches
            // the chains, not the table's name order: see CallOrder.
            foreach (Chain chain in CallOrder(t))
            {
                spans[k] = new FlatSpan { Chain = chain, Start = -1, Edits = -1, IndexNo = -1, Table = (short)ti };
                numbers[chain] = k;
                if (chain.IsBuiltin) builtins.Add((chain, k));
                k++;
            }
            // Jumps are resolved to chain numbers in the entries; no memo is left on the jump targets (40 bytes per jump
            // rule: a walk through the rule objects makes one on a jump's first use, as without a compiled form).
            foreach (Chain chain in t.Chains) c.Recompile(chain);
            ti++;
        }
        c._tables = tables;
        c._builtins = builtins.ToArray();
        // Every chain's entries in one array, chain after chain in their numbers' order (CallOrder), each at the length it has (room is
        // made when an edit outgrows it: see BuildEntries). Where each starts is known before any is built, so a jump's
        // entry holds where the entered chain's entries are (JumpStart) as well as its number.
        // A built-in chain its index decides alone (ClassBench's shape) is never walked the flat way: not as a base chain
        // (Worth), and nothing jumps to a built-in chain. Its entries would be 48 bytes per rule and half the build time
        // of a 100k-rule chain for nothing; left unbuilt (Worth stays false, also after an edit: such a chain keeps the
        // index walk until the next Build).
        int used = 0;
        for (int x = 0; x < spans.Length; x++)
        {
            ref FlatSpan s = ref spans[x];
            if (s.Chain.IsBuiltin && c.IndexOf(in s) is { FullyPlain: true }) continue;
            s.Start = used;
            s.Capacity = s.Chain.Rules.Count;
            used += s.Capacity;
        }
        c.Entries = new FlatEntry[used];
        c._used = used;
        c.Targets = new Extensions.ExtensionData?[spans.Length];
        c._targetsUsed = spans.Length;
        for (int x = 0; x < spans.Length; x++)
        {
            if (spans[x].Start >= 0) c.BuildEntries(x);
        }
        // A chain without entries (index-decided) has its rules' counters in its index.
        for (int x = 0; x < spans.Length; x++)
        {
            if (spans[x].Start < 0) c.IndexOf(in spans[x])?.AdoptCounters();
        }
        foreach (FlatTable owner in tables) owner.Edits = owner.Table.RuleEdits;
        c._arrival = c.ArrivalIndex(rules, out c._arrivalStart);
        c._arrivalJumps = c.ArrivalJumps();
        c._numbers = null;
        c._built = true;
        return c;
    }

    /// <summary>
    /// The table's chains in the order a walk reaches them: depth first from the built-in chains (in hook order), each
    /// user chain right after the chain that first jumps or goes to it (after that chain's earlier callees and theirs),
    /// then the chains no built-in chain reaches (by name, each followed the same way by what it reaches first). Each
    /// chain once. kube-proxy's chains are named by hashes, so in name order a service's KUBE-SVC-… chain and its
    /// KUBE-SEP-… chains are far apart (at 30k services tens of MB of entries); in this order a new connection's walk
    /// from KUBE-SERVICES reads KUBE-SVC-X's entries and then its endpoints' chains right after them. Only the compiled
    /// form's order: listings, save and counters go by the table.
    /// </summary>
    internal static List<Chain> CallOrder(Table t)
    {
        var order = new List<Chain>();
        var placed = new HashSet<Chain>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(Chain Chain, int Next)>();
        foreach (Chain root in t.Chains)
        {
            if (!placed.Add(root)) continue;
            order.Add(root);
            stack.Push((root, 0));
            while (stack.Count > 0)
            {
                (Chain c, int next) = stack.Pop();
                RuleList rules = c.Rules;
                for (; next < rules.Count; next++)
                {
                    if (rules[next].Target is { IsChainJump: true } jump && t.Find(jump.Name) is { } callee && placed.Add(callee))
                    {
                        order.Add(callee);
                        stack.Push((c, next + 1));
                        stack.Push((callee, 0));
                        break;
                    }
                }
            }
        }
        return order;
    }

    // ------------------------------------------------------------------ the arrival hint (before conntrack)

    /// <summary>
    /// The index a new connection arriving from outside meets first in PREROUTING (raw, mangle, nat in hook order: the
    /// first whose base chain, or a chain it enters by unconditional jumps at its head, starts with an indexed run), or
    /// null: kube-proxy's nat KUBE-SERVICES, entered by PREROUTING's first rule. Found once at the build; a hint only
    /// (a chain edited or re-indexed since makes the prefetch a wasted one).
    /// </summary>
    private TupleIndex? _arrival;

    /// <summary>Where the <see cref="_arrival"/> index's chain's entries start in <see cref="Entries"/> (-1: none), as at the build.</summary>
    private int _arrivalStart = -1;

    private TupleIndex? ArrivalIndex(Ruleset rules, out int entriesStart)
    {
        entriesStart = -1;
        foreach (string name in (ReadOnlySpan<string>)["raw", "mangle", "nat"])
        {
            if (rules.Tables.FirstOrDefault(t => t.Name == name)?.Find("PREROUTING") is not { } chain) continue;
            int number = NumberOf(chain);
            for (int depth = 0; depth < 4 && number >= 0; depth++)
            {
                ref FlatSpan s = ref Spans[number];
                if (IndexOf(in s) is { } ci && ci.Runs.Count > 0 && ci.Runs[0].Start == 0)
                {
                    entriesStart = s.Start;
                    return ci.Runs[0];
                }
                if (s.Start < 0 || s.Count == 0) break;
                ref FlatEntry e = ref Entries[s.Start];
                bool unconditional = e.Target == FlatTarget.Jump && e.Ops == 0 && e.SourceShift == 32 && e.DestinationShift == 32
                    && (e.Flags & (FlatFlags.Generic | FlatFlags.GenericOps | FlatFlags.Protocol | FlatFlags.SourceInverted | FlatFlags.DestinationInverted)) == 0;
                if (!unconditional) break;
                number = e.Jump;
            }
        }
        return null;
    }

    /// <summary>
    /// Per hash slot of the <see cref="_arrival"/> index (by its position), what the rule of the slot's bucket's first
    /// entry jumps to, as at the build: the arrival's chain known from the slot's position alone, which the packet's hash
    /// gives before any of the index is read. Fetched with the slot, it lets the candidate's entry and the entered chain's
    /// lines (kube: the service's KUBE-SVC-… chain) start loading one step after the slot's, not three (slot → bucket →
    /// entry → chain). Hints only: edits since the build leave it stale (a wasted fetch), never wrong.
    /// </summary>
    private ArrivalJump[] _arrivalJumps = [];

    private ArrivalJump[] ArrivalJumps()
    {
        if (_arrival is not { } t || _arrivalStart < 0) return [];
        var jumps = new ArrivalJump[t.SlotCount];
        for (int slot = 0; slot < jumps.Length; slot++)
        {
            int id = t.BucketFirstId(slot);
            int at = _arrivalStart + id;
            if (id < 0 || (uint)at >= (uint)Entries.Length)
            {
                jumps[slot] = new ArrivalJump(0, -1, -1, -1);
                continue;
            }
            ref FlatEntry e = ref Entries[at];
            uint tag = t.SlotTag(slot);
            jumps[slot] = e.Target is FlatTarget.Jump or FlatTarget.Goto ? new ArrivalJump(tag, at, e.Jump, e.JumpStart) : new ArrivalJump(tag, at, -1, -1);
        }
        return jumps;
    }

    /// <summary>
    /// The second step's other half (for a packet not in a burst): the <see cref="_arrivalJumps"/> record of the packet's
    /// bucket, found as the index's probe finds the slot, from the home slot <see cref="PrefetchArrival"/> fetched (its
    /// line was fetched with the slot) on to the first record with the packet's tag, a few slots at most. False when
    /// there is none (an empty slot first: the key has no bucket). Changes nothing.
    /// </summary>
    internal bool ArrivalJumpOf(int token, uint tag, out ArrivalJump jump)
    {
        ArrivalJump[] jumps = _arrivalJumps;
        jump = default;
        if ((uint)token >= (uint)jumps.Length) return false;
        for (int slot = token, end = Math.Min(jumps.Length, token + ArrivalProbe); slot < end; slot++)
        {
            jump = jumps[slot];
            if (jump.Tag == tag) return jump.At >= 0;
            if (jump.Tag == 0) break;
        }
        return false;
    }

    /// <summary>Records <see cref="ArrivalJumpOf"/> looks at, from the home slot on (a key further from its home is not hinted).</summary>
    private const int ArrivalProbe = 4;

    /// <summary>
    /// Starts loading the first group's filter word and slot of the <see cref="ArrivalIndex"/> for an IPv4 TCP SYN (no
    /// ACK, options-free header, not a fragment: a new connection's first packet, the one the nat table walks) given as its
    /// bytes, before conntrack runs: by the time the walk reaches the index the lines are there. Returns a token for
    /// <see cref="PrefetchArrivalMore"/>, or -1 (nothing done). Changes nothing.
    /// </summary>
    internal int PrefetchArrival(ReadOnlySpan<byte> ip) => PrefetchArrival(ip, out _);

    /// <summary><see cref="PrefetchArrival(ReadOnlySpan{byte})"/>, giving the packet's tag in the index too (for <see cref="ArrivalJumpOf"/>).</summary>
    internal int PrefetchArrival(ReadOnlySpan<byte> ip, out uint tag)
    {
        tag = 0;
        if (_arrival is not { } t || ip.Length < 40 || ip[0] != 0x45 || ip[9] != 6) return -1;
        if ((System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x3FFF) != 0 || (ip[33] & 0x12) != 0x02) return -1;
        var k = new FlowKey(System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(ip[12..]), System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(ip[16..]),
            6, System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(ip[20..]), System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(ip[22..]));
        int slot = t.PrefetchFirstGroup(k, out tag);
        if ((uint)slot < (uint)_arrivalJumps.Length && System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            CacheHint.Whole(ref _arrivalJumps[slot]);
        }
        return slot;
    }

    /// <summary>The second step of <see cref="PrefetchArrival"/>, a little later: the bucket the fetched slot names. Changes nothing.</summary>
    internal void PrefetchArrivalMore(int token)
    {
        if (token >= 0) _arrival?.PrefetchBucket(token);
    }

    // ------------------------------------------------------------------ the flat form (one entries array, a span per chain)

    /// <summary>Per chain, by number: where its entries are, its index, its edits (no object per chain).</summary>
    internal FlatSpan[] Spans { get; private set; } = [];

    /// <summary>The indexes of the chains that have one, by <see cref="FlatSpan.IndexNo"/> (a slot stays its chain's).</summary>
    internal ChainIndex?[] SpanIndexes { get; private set; } = [];

    private int _spanIndexCount;

    /// <summary>The span's chain's index, or null.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal ChainIndex? IndexOf(in FlatSpan s) => s.IndexNo < 0 ? null : SpanIndexes[s.IndexNo];

    private void SetIndex(ref FlatSpan s, ChainIndex? ci)
    {
        if (s.IndexNo < 0)
        {
            if (ci is null) return;
            if (_spanIndexCount == SpanIndexes.Length)
            {
                ChainIndex?[] grown = new ChainIndex?[Math.Max(4, SpanIndexes.Length * 2)];
                Array.Copy(SpanIndexes, grown, _spanIndexCount);
                SpanIndexes = grown;
            }
            s.IndexNo = _spanIndexCount++;
        }
        SpanIndexes[s.IndexNo] = ci;
    }

    /// <summary>Every chain's entries, each chain a range (<see cref="FlatSpan"/>); jumps hold the entered chain's number and where its entries start.</summary>
    public FlatEntry[] Entries { get; private set; } = [];

    /// <summary>Entries in use or held as a chain's room (the rest of <see cref="Entries"/> is free, at its end).</summary>
    private int _used;

    /// <summary>
    /// The data of the entries' target extensions, by the entry's <see cref="FlatEntry.Jump"/> (its extension is
    /// <see cref="TargetExtensions"/>[<see cref="FlatEntry.JumpStart"/>]): a chain's first at the chain's number (a jump
    /// prefetches it with the chain's span), the chain's others after all
    /// chains' slots (<see cref="_targetsUsed"/>; a rebuilt chain's others are appended again, the old ones left until the
    /// next <see cref="Build"/>). A slot never changes but for its chain's rebuild. 8 bytes a chain. A DNAT to one address
    /// (and port) has no slot: its range is in its entry (<see cref="FlatTarget.Dnat"/>; kube-proxy's KUBE-SEP-… chains).
    /// </summary>
    internal Extensions.ExtensionData?[] Targets { get; private set; } = [];

    /// <summary>The distinct target extensions of the entries (DNAT, MARK, MASQUERADE …): a few, read by number.</summary>
    internal Extensions.XtExtension[] TargetExtensions { get; private set; } = [];

    private int _targetsUsed;

    /// <summary>
    /// The data slot of the <paramref name="k"/>-th target extension (0: the first) of chain <paramref name="number"/>, its
    /// data stored, and its extension's number.
    /// </summary>
    private (int Slot, int Extension) TargetSlot(int number, int k, TargetUse t)
    {
        int slot = number;
        if (k > 0)
        {
            if (_targetsUsed == Targets.Length)
            {
                // Copied: a walk in progress keeps reading the array it has (a slot's content does not change).
                var grown = new Extensions.ExtensionData?[Math.Max(16, Targets.Length + Targets.Length / 4)];
                Array.Copy(Targets, grown, _targetsUsed);
                Targets = grown;
            }
            slot = _targetsUsed++;
        }
        Targets[slot] = t.Data;
        Extensions.XtExtension x = t.Extension!;
        int n = Array.IndexOf(TargetExtensions, x);
        if (n < 0)
        {
            // Replaced, not grown in place: a walk in progress keeps the array it read.
            n = TargetExtensions.Length;
            TargetExtensions = [.. TargetExtensions, x];
        }
        return (slot, n);
    }

    /// <summary>Entries left behind by chains rebuilt elsewhere (reclaimed by the next <see cref="Build"/>).</summary>
    public int AbandonedEntries => _abandoned;

    private int _abandoned;

    private FlatTable[] _tables = [];

    /// <summary>The built-in chains and their numbers (where a walk starts: found without the map).</summary>
    private (Chain Chain, int Number)[] _builtins = [];

    /// <summary>Chains to numbers: during the build, and made again on first need after it (a jump by name after an edit).</summary>
    private Dictionary<Chain, int>? _numbers;

    /// <summary>Every chain's flat form, by number.</summary>
    public FlatChain[] FlatChains
    {
        get
        {
            var a = new FlatChain[Spans.Length];
            for (int i = 0; i < a.Length; i++) a[i] = new FlatChain(this, i);
            return a;
        }
    }

    /// <summary>The chain's number in this form, or -1 (a chain made after the build, or of a copied table).</summary>
    internal int NumberOf(Chain chain)
    {
        foreach ((Chain c, int number) in _builtins)
        {
            if (ReferenceEquals(c, chain)) return number;
        }
        if (_numbers is null)
        {
            var m = new Dictionary<Chain, int>(Spans.Length, ReferenceEqualityComparer.Instance);
            for (int i = 0; i < Spans.Length; i++) m[Spans[i].Chain] = i;
            _numbers = m;
        }
        return _numbers.TryGetValue(chain, out int n) ? n : -1;
    }

    /// <summary>Whether the table of chain <paramref name="number"/> had no rule changed since it was compiled (its entries, indexes and jumps then hold, unchecked).</summary>
    internal bool Trusted(int number, Table table) => _tables[Spans[number].Table].Edits == table.RuleEdits;

    /// <summary>
    /// (Re)builds chain <paramref name="number"/>'s entries from its rules, resolving each jump to the entered chain's
    /// number and entries. In place when the chain still fits its room; else at the array's end (grown by an eighth when
    /// full) with room for half as many again, so that a chain edited often moves O(log n) times; the old range is left
    /// (<see cref="_abandoned"/>, reclaimed by the next build: a walk in progress may still read it, see FlatWalk).
    /// </summary>
    internal void BuildEntries(int number)
    {
        ref FlatSpan s = ref Spans[number];
        RuleList rules = s.Chain.Rules;
        int count = rules.Count;
        _slots = null;
        // The rules the entries held (the chain as it was) take their counters back first; the chain's rules now are
        // adopted below (a rule in both: back and forth, its counts unchanged).
        if (s.Start >= 0 && s.Edits >= 0) GiveBack(s.Start, s.Count);
        if (s.Start < 0 || count > s.Capacity)
        {
            int room = s.Start < 0 && s.Edits < 0 ? count : count + count / 2 + 2;
            if (_used + room > Entries.Length)
            {
                // An eighth more (and the room): a large form copied now and then, not half again of it kept free.
                var grown = new FlatEntry[Math.Max(_used + room, Entries.Length + Entries.Length / 8 + room)];
                Array.Copy(Entries, grown, _used);
                Entries = grown;
            }
            if (s.Start >= 0) _abandoned += s.Capacity;
            s.Start = _used;
            s.Capacity = room;
            _used += room;
        }
        FlatEntry[] entries = Entries;
        Table table = _tables[s.Table].Table;
        int extensions = 0;
        if (number < Targets.Length) Targets[number] = default;
        for (int i = 0; i < count; i++)
        {
            ref FlatEntry e = ref entries[s.Start + i];
            Rule r = rules[i];
            e = FlatEntry.Of(r, (this, table), static (st, t) => st.Item1.JumpNumber(st.table, t));
            if (e.Jump >= 0) e.JumpStart = Spans[e.Jump].Start;
            // During the build the slots are made with the array (after every chain's entries are laid out).
            // DNAT to one address (and port) holds its range in the entry: no slot (kube-proxy's KUBE-SEP-… chains).
            if (e.Target == FlatTarget.Extension && Targets.Length != 0 && r.Target!.Extension is not null && !FlatEntry.TryDnat(ref e, r.Target))
                (e.Jump, e.JumpStart) = TargetSlot(number, extensions++, r.Target);
            Adopt(ref e, r);
        }
        // Slots past the count hold nothing a walk reads (it stops at Count); cleared so they keep no rule alive.
        Array.Clear(entries, s.Start + count, s.Capacity - count);
        s.Count = count;
        s.Edits = s.Chain.Edits;
        Rate(ref s);
    }

    // ------------------------------------------------------------------ counters beside the entries

    /// <summary>
    /// Another form took (some of) this one's rules' counters (built later over the same rules), or <see cref="Release"/>
    /// gave them back: the walk counts through the rule objects. A walk with a form whose counters another took takes them
    /// back first (<see cref="Reclaim"/>: the form in use holds them; one that was released does not).
    /// </summary>
    public bool Superseded { get; private set; }

    /// <summary>Set at the end of <see cref="Build"/>: from then on a recompiled chain without entries hands its counters to its new index at once (during the build, after the entries are laid out).</summary>
    private bool _built;

    /// <summary><see cref="Release"/> was called: the form counts on the rules from now on and takes nothing back.</summary>
    private bool _released;

    /// <summary>Another form took (some of) this one's rules' counters.</summary>
    internal void Supersede() => Superseded = true;

    /// <summary>
    /// The entry <paramref name="e"/> becomes the home of <paramref name="rule"/>'s counters (they move from the rule, or
    /// from the form or index that held them). A rule already held here (one rule object in two chains) is counted on the
    /// rule at its second entry; while <see cref="Superseded"/> nothing is taken.
    /// </summary>
    private void Adopt(ref FlatEntry e, Rule rule)
    {
        RuleCounterHome? home = rule.CounterHome;
        if (ReferenceEquals(home, this))
        {
            e.Flags |= FlatFlags.CountOnRule;
            return;
        }
        if (Superseded) return;
        if (home is CompiledRules other) other.Superseded = true;
        else if (home is ChainIndex index) index.MarkHomeless();
        e.Counters = rule.MoveCountersTo(this);
    }

    /// <summary>The rules of entries [<paramref name="start"/>, +<paramref name="count"/>) whose counters are here take them back; the entries are cleared.</summary>
    private void GiveBack(int start, int count)
    {
        FlatEntry[] all = Entries;
        for (int k = start; k < start + count; k++)
        {
            ref FlatEntry e = ref all[k];
            if (e.Rule is { } r && (e.Flags & FlatFlags.CountOnRule) == 0 && ReferenceEquals(r.CounterHome, this)) r.TakeCountersBack(e.Counters);
            e = default;
        }
    }

    /// <summary>Gives every rule held here its counters back, and forgets which entries held a rule twice.</summary>
    private void GiveBackAll()
    {
        _slots = null;
        FlatSpan[] spans = Spans;
        FlatEntry[] all = Entries;
        for (int n = 0; n < spans.Length; n++)
        {
            ref FlatSpan s = ref spans[n];
            if (s.Start < 0 || s.Edits < 0) continue;
            for (int k = s.Start; k < s.Start + s.Count; k++)
            {
                ref FlatEntry e = ref all[k];
                if (e.Rule is { } r && (e.Flags & FlatFlags.CountOnRule) == 0 && ReferenceEquals(r.CounterHome, this)) r.TakeCountersBack(e.Counters);
                e.Counters = default;
                e.Flags &= ~FlatFlags.CountOnRule;
            }
        }
        foreach (ChainIndex ci in _chains.Values) ci.GiveBackCounters();
    }

    /// <summary>
    /// Gives every rule its counters back (they leave the entries: a form no longer used, so that its rules do not keep it
    /// alive or read through it). The form still walks, counting on the rules.
    /// </summary>
    public void Release()
    {
        GiveBackAll();
        _released = true;
        Superseded = true;
    }

    /// <summary>
    /// Takes the counters of this form's rules back from the form that took them (the walk of a form in use: it counts
    /// beside its entries again; the other form, if walked, takes them back in turn). O(rules), once per switch.
    /// </summary>
    internal void Reclaim()
    {
        if (!Superseded || _released) return;
        GiveBackAll();
        Superseded = false;
        FlatSpan[] spans = Spans;
        FlatEntry[] all = Entries;
        for (int n = 0; n < spans.Length; n++)
        {
            ref FlatSpan s = ref spans[n];
            if (s.Start < 0)
            {
                IndexOf(in s)?.AdoptCounters();
                continue;
            }
            if (s.Edits < 0) continue;
            for (int k = s.Start; k < s.Start + s.Count; k++)
            {
                if (all[k].Rule is { } r) Adopt(ref all[k], r);
            }
        }
    }

    /// <summary>Where <see cref="CountersOf"/> found a rule last: reads in the entries' order (save, -L of a chain) find the next at once.</summary>
    private int _hint;

    /// <summary>Rules to their entries (made when a rule is not found near <see cref="_hint"/>; dropped when entries move).</summary>
    private Dictionary<Rule, int>? _slots;

    /// <inheritdoc/>
    protected internal override ref Counters CountersOf(Rule rule)
    {
        FlatEntry[] all = Entries;
        int h = _hint;
        for (int k = h; k <= h + 1; k++)
        {
            if ((uint)k < (uint)all.Length && ReferenceEquals(all[k].Rule, rule) && (all[k].Flags & FlatFlags.CountOnRule) == 0)
            {
                _hint = k;
                return ref all[k].Counters;
            }
        }
        if (_slots is null)
        {
            var m = new Dictionary<Rule, int>(ReferenceEqualityComparer.Instance);
            foreach (FlatSpan s in Spans)
            {
                if (s.Start < 0 || s.Edits < 0) continue;
                for (int k = s.Start; k < s.Start + s.Count; k++)
                {
                    if (all[k].Rule is { } r && (all[k].Flags & FlatFlags.CountOnRule) == 0) m[r] = k;
                }
            }
            _slots = m;
        }
        if (!_slots.TryGetValue(rule, out int slot)) throw new InvalidOperationException("A rule names a compiled form as its counters' home that holds no entry of it.");
        _hint = slot;
        return ref all[slot].Counters;
    }

    private void Rate(ref FlatSpan s) => s.Worth = s.Start >= 0 && s.Count > 0 && IndexOf(in s) is not { FullyPlain: true };

    /// <summary>The number of the chain a jump enters (its memo when this form made one, else by name), or -1.</summary>
    internal int JumpNumber(Table table, TargetUse t) =>
        (JumpTarget(t) ?? table.Find(t.Name)) is { } next ? NumberOf(next) : -1;

    /// <summary>
    /// Where chain <paramref name="number"/>'s entries start, in step with the chain: as built, or built again now when the
    /// chain was edited since and is at most <see cref="FlatChain.RebuildLimit"/> rules long; -1: walk the rule objects.
    /// A rebuild may move the chain's entries or replace <see cref="Entries"/>: read it again after this.
    /// </summary>
    internal int StartOf(int number)
    {
        ref FlatSpan s = ref Spans[number];
        if (s.Start >= 0 && s.Edits == s.Chain.Edits && s.Count == s.Chain.Rules.Count) return s.Start;
        // Not built at the build (an index-decided built-in chain) stays so; a long chain waits for Recompile.
        if (s.Edits < 0 || s.Chain.Rules.Count > FlatChain.RebuildLimit) return -1;
        BuildEntries(number);
        return s.Start;
    }

    /// <summary>The index of chain <paramref name="number"/> when in step with the chain.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal ChainIndex? IndexInStep(int number, Chain chain) =>
        IndexOf(in Spans[number]) is { } ci && ci.RuleCount == chain.Rules.Count && ci.Edits == chain.Edits ? ci : null;

    private readonly (Chain? Chain, int Number)[] _flatMemo = new (Chain?, int)[8];
    private int _flatMemoNext;

    /// <summary>The chain's flat form, or null when it has none (a chain made after the build, or of a copied table).</summary>
    public FlatChain? FlatFor(Chain chain)
    {
        (Chain? Chain, int Number)[] memo = _flatMemo;
        for (int i = 0; i < memo.Length; i++)
        {
            if (ReferenceEquals(memo[i].Chain, chain)) return memo[i].Number < 0 ? null : new FlatChain(this, memo[i].Number);
        }
        int n = NumberOf(chain);
        memo[_flatMemoNext] = (chain, n);
        _flatMemoNext = (_flatMemoNext + 1) & (memo.Length - 1);
        return n < 0 ? null : new FlatChain(this, n);
    }

    /// <summary>
    /// Remembers on each jump or goto target of <paramref name="chain"/> the chain it enters (a memo the walk through the
    /// rule objects reads, <c>Netfilter.JumpChain</c>). <see cref="Build"/> no longer calls it (the flat entries jump by
    /// number; 40 bytes per jump rule): the walk makes a memo on a jump's first use.
    /// </summary>
    public void ResolveJumps(Table table, Chain chain)
    {
        foreach (Rule r in chain.Rules)
        {
            if (r.Target is { IsChainJump: true } t && table.Find(t.Name) is { } next)
            {
                // The memo on the target is the one record of what this form resolved (no map of its own beside: 10
                // bytes per kube rule). The walker's memo made now rather than on the jump's first use: a young memo stored into an old rule
                // object on the hot path dirtied GC cards all over a large rule set (kube new connections at 30k services).
                t.ResolvedJump = TargetUse.JumpMemo.Of(this, next, t.Name);
            }
        }
    }

    /// <summary>
    /// The chain a jump enters, when this form resolved it (the target's memo is this form's: another form compiled
    /// over the same rules since takes the memo over) and it still has that name; null: look it up.
    /// </summary>
    public Chain? JumpTarget(TargetUse target) =>
        target.ResolvedJump is { } memo && ReferenceEquals(memo.ResolvedBy, this) && memo.Chain is { } c
        && string.Equals(c.Name, target.Name, StringComparison.Ordinal) ? c : null;

    /// <summary>Compiles (again) one chain, after it was edited.</summary>
    public void Recompile(Chain chain)
    {
        _lastChain = null;
        ChainIndex? ci = ChainIndex.Build(chain);
        // An index holding counters (a chain without entries) gives them to its successor.
        _chains.GetValueOrDefault(chain)?.GiveBackCounters();
        if (NumberOf(chain) is var number and >= 0)
        {
            ref FlatSpan s = ref Spans[number];
            if (s.Start < 0 && _built && !Superseded) ci?.AdoptCounters();
            SetIndex(ref s, ci);
            Rate(ref s);
            // A long chain's edits since its entries were built are walked through the rule objects until now.
            if (s.Edits >= 0) BuildEntries(number);
        }
        if (ci is null)
        {
            _chains.Remove(chain);
            // Nothing to keep in step (a chain without an index stays walked until compiled again).
            if (ReferenceEquals(chain.EditListener, this)) chain.EditListener = null;
        }
        else
        {
            _chains[chain] = ci;
            chain.EditListener = this;
        }
    }

    /// <summary>
    /// Where the chain's index stands against the chain's <see cref="Chain.Edits"/>: 0 in step (nothing to do), 1 one
    /// edit behind (the one being reported), else -1 (no index, or edits missed: recompile).
    /// </summary>
    private int Behind(Chain chain, out ChainIndex? ci)
    {
        if (!_chains.TryGetValue(chain, out ci)) return -1;
        int d = chain.Edits - ci.Edits;
        return d is 0 or 1 ? d : -1;
    }

    /// <inheritdoc cref="IChainEdits.Cleared"/>
    public void Cleared(Chain chain) => Recompile(chain);

    /// <summary>Edits kept as an overlay at most: more new rules (walked linearly) than this rebuild the chain's index.</summary>
    public static int RebuildAfterNew { get; set; } = 256;

    /// <summary>More deleted rules than this (skipped by the overlay) rebuild the chain's index.</summary>
    public static int RebuildAfterDead { get; set; } = 1024;

    /// <summary>
    /// After rules were only appended to <paramref name="chain"/> (<c>-A</c>): keeps its index and walks the appended
    /// ones linearly (a chain with more than <paramref name="rebuildAfter"/> such rules is recompiled). The caller
    /// vouches that nothing else changed.
    /// </summary>
    public void Appended(Chain chain, int rebuildAfter = -1)
    {
        _lastChain = null;
        if (!_chains.TryGetValue(chain, out ChainIndex? ci) || chain.Rules.Count < ci.RuleCount)
        {
            Recompile(chain);
            return;
        }
        // Each appended rule is one edit: an index behind by other edits too cannot be brought along by appends.
        int appended = chain.Rules.Count - ci.RuleCount;
        if (chain.Edits - ci.Edits != appended)
        {
            Recompile(chain);
            return;
        }
        if (appended == 0) return;
        int limit = rebuildAfter < 0 ? RebuildAfterNew : rebuildAfter;
        if (ci.PendingNew + appended > limit)
        {
            Recompile(chain);
            return;
        }
        while (ci.RuleCount < chain.Rules.Count) ci.Insert(ci.RuleCount, chain.Rules[ci.RuleCount]);
        ci.Edits = chain.Edits;
    }

    /// <summary>
    /// After a rule was inserted at <paramref name="position"/> (0-based, where it now is) in <paramref name="chain"/>
    /// (<c>-I</c>, or <c>-A</c> at the end): the index is kept and the new rule walked linearly where it stands, O(edits
    /// pending); the chain is recompiled when more than <see cref="RebuildAfterNew"/> rules are walked so.
    /// </summary>
    public void Inserted(Chain chain, int position)
    {
        _lastChain = null;
        int behind = Behind(chain, out ChainIndex? ci);
        if (behind == 0) return;
        if (behind == 1 && chain.Rules.Count == ci!.RuleCount + 1
            && (uint)position <= (uint)ci.RuleCount && ci.PendingNew < RebuildAfterNew)
        {
            ci.Insert(position, chain.Rules[position]);
            ci.Edits = chain.Edits;
            return;
        }
        Recompile(chain);
    }

    /// <summary>
    /// After the rule at <paramref name="position"/> (0-based, as it was) was deleted from <paramref name="chain"/>
    /// (<c>-D</c>): the index is kept and skips that rule, O(edits pending); recompiled after <see cref="RebuildAfterDead"/>.
    /// </summary>
    public void Deleted(Chain chain, int position)
    {
        _lastChain = null;
        int behind = Behind(chain, out ChainIndex? ci);
        if (behind == 0) return;
        if (behind == 1 && chain.Rules.Count == ci!.RuleCount - 1
            && (uint)position < (uint)ci.RuleCount && ci.PendingDead < RebuildAfterDead)
        {
            ci.Delete(position);
            ci.Edits = chain.Edits;
            return;
        }
        Recompile(chain);
    }

    /// <summary>
    /// After the rule at <paramref name="position"/> (0-based) of <paramref name="chain"/> was replaced (<c>-R</c>): the
    /// old rule is skipped and the new one walked linearly in its place.
    /// </summary>
    public void Replaced(Chain chain, int position)
    {
        _lastChain = null;
        int behind = Behind(chain, out ChainIndex? ci);
        if (behind == 0) return;
        if (behind == 1 && chain.Rules.Count == ci!.RuleCount
            && (uint)position < (uint)ci.RuleCount && ci.PendingDead < RebuildAfterDead && ci.PendingNew < RebuildAfterNew)
        {
            ci.Delete(position);
            ci.Insert(position, chain.Rules[position]);
            ci.Edits = chain.Edits;
            return;
        }
        Recompile(chain);
    }

    /// <summary>Forgets one chain (it is walked linearly until recompiled).</summary>
    public void Invalidate(Chain chain)
    {
        _lastChain = null;
        if (_chains.Remove(chain, out ChainIndex? old)) old.GiveBackCounters();
        if (NumberOf(chain) is var number and >= 0)
        {
            ref FlatSpan s = ref Spans[number];
            SetIndex(ref s, null);
            Rate(ref s);
        }
        if (ReferenceEquals(chain.EditListener, this)) chain.EditListener = null;
    }

    private Chain? _lastChain;
    private ChainIndex? _lastIndex;

    /// <summary>The chain's index, or null when it has none or the chain was changed since without the index being told.</summary>
    public ChainIndex? For(Chain chain)
    {
        if (!ReferenceEquals(chain, _lastChain))
        {
            // Two chains remembered (a walk goes back and forth between a base chain and the chain it jumps to); the
            // second is trusted only while the first is set (every edit clears _lastChain, and so both).
            ChainIndex? index = _lastChain is not null && ReferenceEquals(chain, _otherChain) ? _otherIndex : _chains.GetValueOrDefault(chain);
            _otherChain = _lastChain;
            _otherIndex = _lastChain is null ? null : _lastIndex;
            _lastChain = chain;
            _lastIndex = index;
        }
        return _lastIndex is { } ci && ci.RuleCount == chain.Rules.Count && ci.Edits == chain.Edits ? ci : null;
    }

    private Chain? _otherChain;
    private ChainIndex? _otherIndex;

    /// <summary>How many keys <see cref="ClassifyKeys"/> looks up together in an index larger than <see cref="BatchFromBytes"/>.</summary>
    public static int KeyBatch { get; set; } = 16;

    /// <summary>
    /// An index at least this large (bytes) is looked up <see cref="KeyBatch"/> keys at a time (its probes miss the
    /// cache: several in flight hide the latency); a smaller one key at a time (its probes hit the cache, and one key's
    /// early stop saves more than the batch's overlap: measured on ClassBench 10k vs 100k).
    /// </summary>
    public static long BatchFromBytes { get; set; } = 2 << 20;

    /// <summary>
    /// The compiled first match of a built-in chain over compact header tuples, without packet objects: for each key
    /// the verdict the walk would give, with the matching rule's counters (or the policy's) counted by
    /// <paramref name="lengths"/> as the walk counts them. Only for a chain the index decides alone: one indexed run
    /// over the whole chain, every target a plain ACCEPT or DROP (then a key's first matching rule ends the walk, and
    /// no match means the policy); false, with nothing counted, for any other chain. Allocates nothing.
    /// </summary>
    public bool ClassifyKeys(Chain chain, ReadOnlySpan<FlowKey> keys, ReadOnlySpan<ushort> lengths, Span<VerdictKind> verdicts) =>
        ClassifyKeys(chain, keys, lengths, verdicts, batch: 0);

    /// <summary><see cref="ClassifyKeys(Chain, ReadOnlySpan{FlowKey}, ReadOnlySpan{ushort}, Span{VerdictKind})"/> with the keys looked up <paramref name="batch"/> at a time (1–64; 0: chosen by the index's size).</summary>
    public bool ClassifyKeys(Chain chain, ReadOnlySpan<FlowKey> keys, ReadOnlySpan<ushort> lengths, Span<VerdictKind> verdicts, int batch)
    {
        if (!chain.IsBuiltin || For(chain) is not { FullyPlain: true } ci || lengths.Length < keys.Length || verdicts.Length < keys.Length) return false;
        TupleIndex run = ci.Runs[0];
        int end = run.End;
        VerdictKind policy = chain.Policy == Verdicts.Drop ? VerdictKind.Drop : VerdictKind.Accept;
        batch = batch > 0 ? Math.Min(batch, 64) : run.Bytes >= BatchFromBytes ? Math.Clamp(KeyBatch, 1, 64) : -1;
        bool grouped = batch > 1;
        if (batch < 0) batch = KeyBatch;
        // A hit is counted in a compact array (16 bytes per rule, in the cache far more often than the rule objects, one
        // cache line of a separate object each) and the sums are added to the rules at the end: the counters are the
        // walk's when the call returns. The verdict comes from a byte per rule.
        var (kinds, pending, touched) = ci.KeyPathState();
        int nTouched = 0;
        ulong policyPackets = 0, policyBytes = 0;
        Span<int> hits = stackalloc int[64];
        if (!grouped)
        {
            // One key at a time, its counters and verdict at once (no list of hits in between), read without bounds
            // checks: the index returns a rule of the run or its end, and the run is the whole chain (FullyPlain), so
            // every j below end is a rule of kinds and pending.
            ref FlowKey k0 = ref MemoryMarshal.GetReference(keys);
            ref ushort l0 = ref MemoryMarshal.GetReference(lengths);
            ref VerdictKind v0 = ref MemoryMarshal.GetReference(verdicts);
            ref VerdictKind kind0 = ref MemoryMarshal.GetArrayDataReference(kinds);
            ref Counters p0 = ref MemoryMarshal.GetArrayDataReference(pending);
            ref int t0 = ref MemoryMarshal.GetArrayDataReference(touched);
            if (kinds.Length < end || pending.Length < end || touched.Length < end) throw new InvalidOperationException("key path state shorter than the chain");
            for (int q = 0; q < keys.Length; q++)
            {
                int j = run.FirstFromStart(Unsafe.Add(ref k0, q));
                ulong len = Unsafe.Add(ref l0, q);
                if (j < end)
                {
                    ref Counters c = ref Unsafe.Add(ref p0, j);
                    if (c.Packets == 0) Unsafe.Add(ref t0, nTouched++) = j;
                    c.Packets++;
                    c.Bytes += len;
                    Unsafe.Add(ref v0, q) = Unsafe.Add(ref kind0, j);
                }
                else
                {
                    policyPackets++;
                    policyBytes += len;
                    Unsafe.Add(ref v0, q) = policy;
                }
            }
        }
        for (int at = 0; grouped && at < keys.Length; at += batch)
        {
            int n = Math.Min(batch, keys.Length - at);
            run.FirstMatchBatch(keys.Slice(at, n), hits);
            for (int q = 0; q < n; q++)
            {
                int j = hits[q];
                ulong len = lengths[at + q];
                if (j < end)
                {
                    ref Counters c = ref pending[j];
                    if (c.Packets == 0) touched[nTouched++] = j;
                    c.Packets++;
                    c.Bytes += len;
                    verdicts[at + q] = kinds[j];
                }
                else
                {
                    policyPackets++;
                    policyBytes += len;
                    verdicts[at + q] = policy;
                }
            }
        }
        for (int t = 0; t < nTouched; t++)
        {
            int j = touched[t];
            ref Counters c = ref pending[j];
            ref Counters rc = ref ci.PlainCounters(j, ci.PlainVerdict(j).Rule!);
            rc.Packets += c.Packets;
            rc.Bytes += c.Bytes;
            c = default;
        }
        ref Counters chainCounts = ref chain.CountersCell;
        chainCounts.Packets += policyPackets;
        chainCounts.Bytes += policyBytes;
        return true;
    }

    public int IndexedChains => _chains.Count;

    public long Bytes
    {
        get
        {
            long n = 0;
            foreach (ChainIndex ci in _chains.Values) n += ci.Bytes + 64;
            // The entries array whole (room and abandoned ranges included), the spans, the target slots and the arrival records.
            n += (long)Entries.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<FlatEntry>()
                + (long)Spans.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<FlatSpan>()
                + (long)Targets.Length * 8
                + (long)_arrivalJumps.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<ArrivalJump>();
            return n;
        }
    }
}

/// <summary>
/// What an arrival index slot's first rule leads to (<see cref="CompiledRules.ArrivalJumpOf"/>): the slot's tag (0: empty),
/// where that rule's flat entry is, and for a jump the entered chain's number and where its entries start (-1: none). 16 bytes.
/// </summary>
internal readonly record struct ArrivalJump(uint Tag, int At, int Jump, int JumpStart);
