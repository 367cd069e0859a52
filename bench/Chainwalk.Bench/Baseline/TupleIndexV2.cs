// The tuple index as it was at the start of session 4 (filter bit, linear-probing slots, branchy probe), kept only so
// the speed harness can measure old and new in one run (--only indexloop --old v2). Not used by the engine.
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

using Chainwalk.Engine.Compiled;

namespace Chainwalk.Bench.Baseline;

/// <summary>
/// A tuple-space index (Srinivasan et al., "Packet classification using tuple space search", with the
/// coarsened tuples of TupleMerge, Daly et al. 2019) over a run of indexable rules of one chain: rules are
/// grouped by (source prefix class, destination prefix class, protocol given, single destination port);
/// each group is a hash table keyed by the packet's fields cut to the group's lengths, whose buckets list
/// the rules in chain order. A lookup probes the groups in order of their first rule and stops as soon as
/// no group can hold an earlier match, so it returns exactly the first rule a linear walk would match.
/// Lookups allocate nothing.
/// </summary>
/// <remarks>
/// Layout: a lookup is bound by memory latency and branch mispredictions (a ClassBench lookup probes 2.5–4
/// groups and scans about 2 bucket entries), so everything is in four flat arrays of structs with no object per
/// group: the groups' descriptors (a few cache lines, read in order), one bit filter, one open-addressing slot
/// table and one array of bucket entries shared by all groups; a probe is filter word, then slot, then the
/// bucket's entries stored one after another, read without bounds checks.
/// </remarks>
public sealed class TupleIndexV2
{
    /// <summary>
    /// Fixed prefix classes for every index (experiments: the speed harness's CW_CLASSES); null, the default, lets
    /// <see cref="Build"/> choose among <see cref="Layouts"/>.
    /// </summary>
    public static int[]? Classes { get; set; }

    /// <summary>
    /// The layouts <see cref="Build"/> tries on a run of at least <see cref="ChooseFrom"/> rules: the prefix lengths
    /// the address fields are cut to (a /27 is filed under /24 and checked in full) and the merge limit. Finer classes
    /// mean more groups to probe; coarser ones longer buckets. Which wins depends on the rule set (ClassBench: the
    /// 10k sets and ipc1_100k prefer coarse classes, fw1_100k fine ones), so each run gets the one the cost model prefers.
    /// </summary>
    public static (int[] Classes, int MergeLimit)[] Layouts { get; set; } =
        [([0, 8, 16, 24, 32], 8), ([0, 16, 24, 32], 16), ([0, 16, 32], 8)];

    /// <summary>Shorter runs get the first layout without a comparison.</summary>
    public const int ChooseFrom = 256;

    /// <summary>Whether the protocol and a single destination port are part of a tuple (else they are only checked in the bucket).</summary>
    public static bool PortTuples { get; set; } = true;

    private readonly GroupInfo[] _groups;
    private readonly ulong[] _filter;
    private readonly Slot[] _slots;
    private readonly Entry[] _entries;

    /// <summary>First rule index (in the chain) of the run and one past its last.</summary>
    public int Start { get; }

    public int End { get; }

    public int GroupCount => _groups.Length;

    /// <summary>The layout chosen: prefix classes and merge limit, as "0,16,32/8".</summary>
    public string Layout { get; }

    private TupleIndexV2(int start, int end, GroupInfo[] groups, ulong[] filter, Slot[] slots, Entry[] entries, string layout)
    {
        Layout = layout;
        Start = start;
        End = end;
        _groups = groups;
        _filter = filter;
        _slots = slots;
        _entries = entries;
    }

    /// <summary>The size in bytes of the index's arrays (for the benchmark's bytes per rule).</summary>
    public long Bytes =>
        (long)_groups.Length * Unsafe.SizeOf<GroupInfo>() + _filter.Length * 8L
        + (long)_slots.Length * Unsafe.SizeOf<Slot>() + (long)_entries.Length * Unsafe.SizeOf<Entry>() + 4 * 24;

    /// <summary>
    /// The index of the first rule at or after <paramref name="from"/> (chain indices) that matches
    /// <paramref name="k"/>, or <see cref="End"/> when none does.
    /// </summary>
    public int FirstMatch(in FlowKey k, int from)
    {
        int best = End - Start;
        int floor = from - Start;
        ref GroupInfo g0 = ref MemoryMarshal.GetArrayDataReference(_groups);
        int groups = _groups.Length;
        for (int gi = 0; gi < groups; gi++)
        {
            ref GroupInfo g = ref Unsafe.Add(ref g0, gi);
            if (g.MinRule >= best) break;
            if (g.MaxRule < floor) continue;
            best = Probe(ref g, k, floor, best);
        }
        return best + Start;
    }

    /// <summary>
    /// <see cref="FirstMatch"/> from the run's start for several keys at once (the chain indices, or <see cref="End"/>,
    /// into <paramref name="result"/>): the groups are visited in order and each is probed for every key that a group
    /// so early may still improve, so the probes of different keys are independent loads in flight together (what
    /// rte_acl does with 16 tuples at a time) instead of one key's filter, slot and bucket waited for one after another.
    /// </summary>
    public void FirstMatchBatch(ReadOnlySpan<FlowKey> keys, Span<int> result)
    {
        int n = keys.Length;
        if (result.Length < n) throw new ArgumentException("result shorter than keys", nameof(result));
        int none = End - Start;
        for (int q = 0; q < n; q++) result[q] = none;
        ref GroupInfo g0 = ref MemoryMarshal.GetArrayDataReference(_groups);
        ref FlowKey k0 = ref MemoryMarshal.GetReference(keys);
        ref int r0 = ref MemoryMarshal.GetReference(result);
        int groups = _groups.Length;
        int worst = none;
        for (int gi = 0; gi < groups && worst > 0; gi++)
        {
            ref GroupInfo g = ref Unsafe.Add(ref g0, gi);
            int min = g.MinRule;
            if (min >= worst) break;
            int nextWorst = 0;
            for (int q = 0; q < n; q++)
            {
                ref int best = ref Unsafe.Add(ref r0, q);
                if (min < best) best = Probe(ref g, Unsafe.Add(ref k0, q), 0, best);
                if (best > nextWorst) nextWorst = best;
            }
            worst = nextWorst;
        }
        for (int q = 0; q < n; q++) result[q] += Start;
    }

    /// <summary>One group: filter, slot, bucket; the better of <paramref name="best"/> and the group's first match.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Probe(ref GroupInfo g, in FlowKey k, int floor, int best)
    {
        uint src = k.Source, dst = k.Destination;
        ulong a = ((ulong)(src & g.SourceMask) << 32) | (dst & g.DestinationMask);
        uint b = 0x8000_0000u | ((((uint)k.Protocol << 16) | k.DestinationPort) & g.ExtraMask);
        ulong x = Mix(a, b);
        int bit = (int)(x >> 8) & g.FilterMask;
        if ((Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_filter), g.FilterBase + (bit >> 6)) & (1UL << bit)) == 0) return best;
        ref Slot s0 = ref MemoryMarshal.GetArrayDataReference(_slots);
        int h = Home(x, g.SlotCount);
        ref Slot sl = ref Unsafe.Add(ref s0, g.SlotBase + h);
        while (sl.B != b || sl.A != a)
        {
            if (sl.B == 0) return best;
            h = h + 1 == g.SlotCount ? 0 : h + 1;
            sl = ref Unsafe.Add(ref s0, g.SlotBase + h);
        }
        // The bucket's entries, ascending; the last one is flagged.
        ref Entry e = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_entries), sl.First);
        while (e.Id < best)
        {
            if (e.Id >= floor && e.Matches(src, dst, k.Protocol, k.SourcePort, k.DestinationPort)) return e.Id;
            if (e.Last) break;
            e = ref Unsafe.Add(ref e, 1);
        }
        return best;
    }

    /// <summary>
    /// Builds the index of a run of rules (chain positions <paramref name="start"/> on). On a long run each of the
    /// <see cref="Layouts"/> is built and the one with the lowest <see cref="Cost"/> over keys drawn from the rules
    /// themselves is kept (deterministic: the same rules always give the same index).
    /// </summary>
    public static TupleIndexV2 Build(int start, IReadOnlyList<FlatRule> run)
    {
        if (Classes is { } fixedClasses) return BuildWith(start, run, fixedClasses, MergeLimit);
        (int[] Classes, int MergeLimit)[] layouts = Layouts;
        if (run.Count < ChooseFrom || layouts.Length == 1) return BuildWith(start, run, layouts[0].Classes, layouts[0].MergeLimit);
        FlowKey[] sample = SampleKeys(run, 2048, seed: run.Count);
        TupleIndexV2? best = null;
        double bestCost = double.MaxValue;
        foreach (var (classes, limit) in layouts)
        {
            TupleIndexV2 t = BuildWith(start, run, classes, limit);
            double cost = t.Cost(sample);
            if (cost < bestCost)
            {
                best = t;
                bestCost = cost;
            }
        }
        return best!;
    }

    /// <summary>
    /// Keys inside randomly chosen rules of the run (a random point of each field's range; an any-protocol rule
    /// gets TCP, UDP or ICMP), the way ClassBench makes its traces: what the layouts are compared on.
    /// </summary>
    public static FlowKey[] SampleKeys(IReadOnlyList<FlatRule> run, int count, int seed)
    {
        var rnd = new Random(seed);
        var keys = new FlowKey[count];
        for (int i = 0; i < count; i++)
        {
            FlatRule r = run[rnd.Next(run.Count)];
            byte proto = r.Protocol != 0 ? r.Protocol : rnd.Next(3) switch { 0 => (byte)6, 1 => (byte)17, _ => (byte)1 };
            bool ports = proto is 6 or 17;
            keys[i] = new FlowKey(
                r.SourceAddress | ((uint)rnd.NextInt64(1L << 32) & ~r.SourceMask),
                r.DestinationAddress | ((uint)rnd.NextInt64(1L << 32) & ~r.DestinationMask),
                proto,
                ports ? (ushort)rnd.Next(r.SportLow, r.SportHigh + 1) : (ushort)0,
                ports ? (ushort)rnd.Next(r.DportLow, r.DportHigh + 1) : (ushort)0);
        }
        return keys;
    }

    /// <summary>
    /// The modelled cost of looking up <paramref name="keys"/>: per key, the groups whose filter is tested (weight 1),
    /// the slots visited (1) and the bucket entries checked (0.5), the steps <see cref="FirstMatch"/> takes.
    /// </summary>
    public double Cost(ReadOnlySpan<FlowKey> keys)
    {
        double cost = 0;
        foreach (FlowKey k in keys)
        {
            int best = End - Start;
            for (int gi = 0; gi < _groups.Length; gi++)
            {
                ref GroupInfo g = ref _groups[gi];
                if (g.MinRule >= best) break;
                cost += 1;
                ulong a = ((ulong)(k.Source & g.SourceMask) << 32) | (k.Destination & g.DestinationMask);
                uint b = 0x8000_0000u | ((((uint)k.Protocol << 16) | k.DestinationPort) & g.ExtraMask);
                ulong x = Mix(a, b);
                int bit = (int)(x >> 8) & g.FilterMask;
                if ((_filter[g.FilterBase + (bit >> 6)] & (1UL << bit)) == 0) continue;
                int h = Home(x, g.SlotCount);
                cost += 1;
                while (_slots[g.SlotBase + h].B != b || _slots[g.SlotBase + h].A != a)
                {
                    if (_slots[g.SlotBase + h].B == 0) goto NextGroup;
                    h = h + 1 == g.SlotCount ? 0 : h + 1;
                    cost += 1;
                }
                for (int j = _slots[g.SlotBase + h].First; _entries[j].Id < best; j++)
                {
                    cost += 0.5;
                    if (_entries[j].Matches(k.Source, k.Destination, k.Protocol, k.SourcePort, k.DestinationPort))
                    {
                        best = _entries[j].Id;
                        break;
                    }
                    if (_entries[j].Last) break;
                }
            NextGroup:;
            }
        }
        return cost / Math.Max(1, keys.Length);
    }

    /// <summary>Builds the index with one given layout (prefix classes, merge limit).</summary>
    public static TupleIndexV2 BuildWith(int start, IReadOnlyList<FlatRule> run, int[] classes, int mergeLimit)
    {
        var rules = new FlatRule[run.Count];
        var byTuple = new Dictionary<int, Dictionary<(ulong, uint), List<int>>>();
        for (int i = 0; i < rules.Length; i++)
        {
            FlatRule r = run[i];
            rules[i] = r;
            int sc = ClassOf(r.SourceMask, classes), dc = ClassOf(r.DestinationMask, classes);
            bool useProto = PortTuples && r.Protocol != 0;
            bool useDport = useProto && r.DportLow == r.DportHigh;
            int tuple = (sc << 8) | (dc << 2) | (useProto ? 2 : 0) | (useDport ? 1 : 0);
            if (!byTuple.TryGetValue(tuple, out var table)) byTuple[tuple] = table = new Dictionary<(ulong, uint), List<int>>();
            uint sm = PrefixMask(sc), dm = PrefixMask(dc);
            var key = Key(r.SourceAddress & sm, r.DestinationAddress & dm, useProto ? r.Protocol : (byte)0, useDport ? r.DportLow : (ushort)0);
            if (!table.TryGetValue(key, out List<int>? ids)) table[key] = ids = new List<int>();
            ids.Add(i);
        }
        Merge(byTuple, rules, mergeLimit);
        // Groups in order of their first rule (the lookup stops at the first group that cannot improve on its best).
        var order = new List<(int Tuple, Dictionary<(ulong, uint), List<int>> Table, int MinRule)>();
        foreach (var (tuple, table) in byTuple)
        {
            int min = int.MaxValue;
            foreach (List<int> ids in table.Values) min = Math.Min(min, ids[0]);
            order.Add((tuple, table, min));
        }
        order.Sort((a, b) => a.MinRule.CompareTo(b.MinRule));
        var infos = new GroupInfo[order.Count];
        int slotTotal = 0, filterTotal = 0;
        for (int gi = 0; gi < order.Count; gi++)
        {
            int keys = order[gi].Table.Count;
            int cap = Math.Max(4, (int)(keys / SlotLoad) + 1);
            int bits = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(64, keys * 16));
            infos[gi].SlotBase = slotTotal;
            infos[gi].SlotCount = cap;
            infos[gi].FilterBase = filterTotal;
            infos[gi].FilterMask = bits - 1;
            slotTotal += cap;
            filterTotal += bits / 64;
        }
        var slots = new Slot[slotTotal];
        var filter = new ulong[filterTotal];
        var entries = new Entry[CountAll(byTuple)];
        int next = 0;
        for (int gi = 0; gi < order.Count; gi++)
        {
            var (tuple, table, min) = order[gi];
            ref GroupInfo g = ref infos[gi];
            int sc = tuple >> 8, dc = (tuple >> 2) & 0x3f;
            g.SourceMask = PrefixMask(sc);
            g.DestinationMask = PrefixMask(dc);
            g.ExtraMask = ((tuple & 2) != 0 ? 0xFFu << 16 : 0) | ((tuple & 1) != 0 ? 0xFFFFu : 0);
            g.MinRule = min;
            g.MaxRule = -1;
            foreach (var ((a, b), list) in table)
            {
                ulong x = Mix(a, b);
                int bit = (int)(x >> 8) & g.FilterMask;
                filter[g.FilterBase + (bit >> 6)] |= 1UL << bit;
                int h = Home(x, g.SlotCount);
                while (slots[g.SlotBase + h].B != 0) h = h + 1 == g.SlotCount ? 0 : h + 1;
                slots[g.SlotBase + h] = new Slot { A = a, B = b, First = next };
                for (int n = 0; n < list.Count; n++) entries[next++] = new Entry(rules[list[n]], list[n], n == list.Count - 1);
                g.MaxRule = Math.Max(g.MaxRule, list[^1]);
            }
        }
        return new TupleIndexV2(start, start + rules.Length, infos, filter, slots, entries, string.Join(",", classes) + "/" + mergeLimit.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    private static int CountAll(Dictionary<int, Dictionary<(ulong, uint), List<int>>> byTuple)
    {
        int n = 0;
        foreach (var table in byTuple.Values)
        {
            foreach (List<int> l in table.Values) n += l.Count;
        }
        return n;
    }

    /// <summary>How many rules a bucket may hold after tuples are merged, with fixed <see cref="Classes"/>.</summary>
    public static int MergeLimit { get; set; } = 8;

    /// <summary>
    /// TupleMerge's idea: a tuple's rules may live in a more general tuple (shorter prefixes, fewer exact fields),
    /// so fewer tables are probed per packet, as long as no bucket grows beyond <see cref="MergeLimit"/> rules.
    /// The smallest tuples are moved first, each into the most specific tuple that takes all its rules.
    /// </summary>
    private static void Merge(Dictionary<int, Dictionary<(ulong, uint), List<int>>> byTuple, FlatRule[] rules, int mergeLimit)
    {
        if (mergeLimit <= 0) return;
        static int Count(Dictionary<(ulong, uint), List<int>> t)
        {
            int n = 0;
            foreach (List<int> l in t.Values) n += l.Count;
            return n;
        }
        static bool Covers(int general, int specific) =>
            (general >> 8) <= (specific >> 8) && ((general >> 2) & 0x3f) <= ((specific >> 2) & 0x3f)
            && ((general & 2) == 0 || (specific & 2) != 0) && ((general & 1) == 0 || (specific & 1) != 0);
        static (ulong, uint) KeyIn(int tuple, in FlatRule r)
        {
            int sc = tuple >> 8, dc = (tuple >> 2) & 0x3f;
            return Key(r.SourceAddress & PrefixMask(sc), r.DestinationAddress & PrefixMask(dc),
                (tuple & 2) != 0 ? r.Protocol : (byte)0, (tuple & 1) != 0 ? r.DportLow : (ushort)0);
        }
        foreach (int tuple in byTuple.Keys.OrderBy(t => Count(byTuple[t])).ToList())
        {
            var from = byTuple[tuple];
            int size = Count(from);
            var targets = byTuple.Keys.Where(t => t != tuple && Covers(t, tuple))
                .OrderByDescending(t => (t >> 8) + ((t >> 2) & 0x3f) + (t & 3) * 8).ToList();
            foreach (int target in targets)
            {
                var into = byTuple[target];
                var added = new Dictionary<(ulong, uint), int>();
                bool fits = true;
                foreach (List<int> ids in from.Values)
                {
                    foreach (int id in ids)
                    {
                        var key = KeyIn(target, rules[id]);
                        int n = added.GetValueOrDefault(key) + 1;
                        added[key] = n;
                        if (n + (into.TryGetValue(key, out List<int>? have) ? have.Count : 0) > mergeLimit)
                        {
                            fits = false;
                            break;
                        }
                    }
                    if (!fits) break;
                }
                if (!fits) continue;
                foreach (List<int> ids in from.Values)
                {
                    foreach (int id in ids)
                    {
                        var key = KeyIn(target, rules[id]);
                        if (!into.TryGetValue(key, out List<int>? list)) into[key] = list = new List<int>();
                        list.Add(id);
                    }
                }
                foreach (List<int> list in into.Values) list.Sort();
                byTuple.Remove(tuple);
                _ = size;
                break;
            }
        }
    }

    private static int ClassOf(uint mask, int[] classes)
    {
        int len = BitOperations.LeadingZeroCount(~mask);
        int c = 0;
        foreach (int cl in classes)
        {
            if (cl <= len) c = cl;
        }
        return c;
    }

    private static uint PrefixMask(int len) => len == 0 ? 0u : uint.MaxValue << (32 - len);

    /// <summary>The hash key; the second word always has its top bit set so 0 marks an empty slot.</summary>
    private static (ulong, uint) Key(uint src, uint dst, byte proto, ushort dport) =>
        (((ulong)src << 32) | dst, 0x8000_0000u | ((uint)proto << 16) | dport);

    /// <summary>
    /// How full a group's slot table is at most (keys / slots). The table is not a power of two: the home slot is
    /// the hash's high half scaled to the table (Lemire's multiply-shift), so the load is what is asked for, and the
    /// index stays small enough to share the cache with the packets streaming through.
    /// </summary>
    public static double SlotLoad { get; set; } = 0.6;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Home(ulong x, int count) => (int)(((x >> 32) * (uint)count) >> 32);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mix(ulong a, uint b)
    {
        // Two independent multiplications (they overlap) and a fold of the high half into the low bits.
        ulong x = (a * 0xBF58_476D_1CE4_E5B9UL) ^ ((ulong)b * 0x9E37_79B9_7F4A_7C15UL);
        return x ^ (x >> 29);
    }

    /// <summary>
    /// One tuple: the masks the packet's fields are cut to (<see cref="ExtraMask"/> selects protocol and
    /// destination port in <c>proto &lt;&lt; 16 | dport</c>), its rules' range, and where its slots and filter bits are.
    /// </summary>
    private struct GroupInfo
    {
        public uint SourceMask, DestinationMask, ExtraMask;
        public int MinRule, MaxRule;
        public int SlotBase, SlotCount, FilterBase, FilterMask;
    }

    /// <summary>A hash slot: the cut fields (B has its top bit set, 0 = empty) and its first bucket entry.</summary>
    private struct Slot
    {
        public ulong A;
        public uint B;
        public int First;
    }

    /// <summary>A rule filed in a bucket (its whole condition, stored inline so a bucket is scanned sequentially).</summary>
    private readonly struct Entry
    {
        private readonly uint _source, _sourceMask, _destination, _destinationMask;
        private readonly ushort _sportLow, _sportSpan, _dportLow, _dportSpan;
        public readonly int Id;
        private readonly byte _protocol;

        /// <summary>The bucket's last entry.</summary>
        public readonly bool Last;

        public Entry(in FlatRule r, int id, bool last)
        {
            _source = r.SourceAddress;
            _sourceMask = r.SourceMask;
            _destination = r.DestinationAddress;
            _destinationMask = r.DestinationMask;
            _sportLow = r.SportLow;
            _sportSpan = (ushort)(r.SportHigh - r.SportLow);
            _dportLow = r.DportLow;
            _dportSpan = (ushort)(r.DportHigh - r.DportLow);
            _protocol = r.Protocol;
            Id = id;
            Last = last;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool Matches(uint src, uint dst, byte proto, ushort sport, ushort dport) =>
            (src & _sourceMask) == _source
            && (dst & _destinationMask) == _destination
            && (_protocol == 0 || _protocol == proto)
            && (uint)(sport - _sportLow) <= _sportSpan
            && (uint)(dport - _dportLow) <= _dportSpan;
    }
}
