using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Chainwalk.Engine.Compiled;

/// <summary>
/// One indexable rule as flat fields: address value/mask pairs, protocol (0 = any), port ranges (full range
/// when the rule has no port match).
/// </summary>
public struct FlatRule
{
    public uint SourceAddress, SourceMask, DestinationAddress, DestinationMask;
    public ushort SportLow, SportHigh, DportLow, DportHigh;
    public byte Protocol;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly bool Matches(in FlowKey k) =>
        (k.Source & SourceMask) == SourceAddress
        && (k.Destination & DestinationMask) == DestinationAddress
        && (Protocol == 0 || Protocol == k.Protocol)
        && (uint)(k.SourcePort - SportLow) <= (uint)(SportHigh - SportLow)
        && (uint)(k.DestinationPort - DportLow) <= (uint)(DportHigh - DportLow);
}

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
public sealed class TupleIndex
{
    /// <summary>
    /// Fixed prefix classes for every index (experiments: the speed harness's CW_CLASSES); null, the default, lets
    /// <see cref="Build"/> choose among <see cref="Layouts"/>.
    /// </summary>
    public static int[]? Classes { get; set; }

    /// <summary>
    /// The layouts <see cref="Build"/> tries on a run of at least <see cref="ChooseFrom"/> rules: the prefix lengths
    /// the address fields are cut to (a /27 is filed under /24 and checked in full) and the merge limit. Finer classes
    /// mean more groups to probe; coarser ones and a higher limit longer buckets. Which wins depends on the rule set
    /// (ClassBench, session 4: acl1_10k 0,16,32/16, ipc1_10k 0,16,32/32, fw1 0,8,16,24,32/32, acl1_100k 0,8,16,24,32/8,
    /// ipc1_100k 0,16,32/8), so each run gets the one the cost model prefers.
    /// </summary>
    public static (int[] Classes, int MergeLimit)[] Layouts { get; set; } =
        [([0, 8, 16, 24, 32], 8), ([0, 16, 32], 8), ([0, 16, 32], 16), ([0, 16, 32], 32), ([0, 8, 16, 24, 32], 32)];

    /// <summary>
    /// The cost model's weights, relative to a group probed (hash, filter word, a mispredicted branch about half the
    /// time): a slot visited and a bucket entry checked. Fitted to ClassBench lookups timed on this VM (session 4: a
    /// group ≈ 5–8 ns, an entry ≈ 1–1.5 ns, entries read one after another in a line or two that are already on their way).
    /// </summary>
    public static double SlotWeight { get; set; } = 0.25;

    /// <inheritdoc cref="SlotWeight"/>
    public static double EntryWeight { get; set; } = 0.2;

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

    /// <summary>Groups whose keys needed a salt for distinct tags (diagnostics and tests).</summary>
    internal int SaltedGroups
    {
        get
        {
            int n = 0;
            foreach (GroupInfo g in _groups) n += g.Salt != 0 ? 1 : 0;
            return n;
        }
    }

    /// <summary>The layout chosen: prefix classes and merge limit, as "0,16,32/8".</summary>
    public string Layout { get; }

    private TupleIndex(int start, int end, GroupInfo[] groups, ulong[] filter, Slot[] slots, Entry[] entries, string layout)
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
    /// <see cref="FirstMatch"/> from the run's start, as a run-relative rule number (the run's length: none). Inlined into
    /// the key path's loop (<see cref="CompiledRules.ClassifyKeys(Chain, ReadOnlySpan{FlowKey}, ReadOnlySpan{ushort}, Span{VerdictKind}, int)"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int FirstFromStart(in FlowKey k)
    {
        int best = End - Start;
        ref GroupInfo g = ref MemoryMarshal.GetArrayDataReference(_groups);
        ref GroupInfo gEnd = ref Unsafe.Add(ref g, _groups.Length);
        // The key's two words, read once for all its groups.
        ulong pair = Pair(k);
        uint extra = ((uint)k.Protocol << 16) | k.DestinationPort;
        for (; Unsafe.IsAddressLessThan(ref g, ref gEnd) && g.MinRule < best; g = ref Unsafe.Add(ref g, 1))
        {
            best = ProbeCore(ref g, k, pair, extra, 0, best);
        }
        return best;
    }

    /// <summary>
    /// Starts loading what <see cref="FirstMatch"/> will read first for <paramref name="k"/>: the first group's filter
    /// word and home slot (no lookup: hints only). Returns where that slot is (for <see cref="PrefetchBucket"/>), or -1.
    /// </summary>
    internal int PrefetchFirstGroup(in FlowKey k) => PrefetchFirstGroup(k, out _);

    /// <summary><see cref="PrefetchFirstGroup(in FlowKey)"/>, giving the key's tag in the group too (what its bucket's slot holds, <see cref="SlotTag"/>).</summary>
    internal unsafe int PrefetchFirstGroup(in FlowKey k, out uint tag)
    {
        tag = 0;
        if (_groups.Length == 0 || !System.Runtime.Intrinsics.X86.Sse.IsSupported) return -1;
        ref GroupInfo g = ref _groups[0];
        ulong a = Cut(Pair(k), g.AddressMask);
        uint b = 0x8000_0000u | ((((uint)k.Protocol << 16) | k.DestinationPort) & g.ExtraMask);
        ulong x = Mix(a ^ g.Salt, b);
        int bit = (int)(x >> 8) & g.FilterMask;
        int word = g.FilterBase + (bit >> 6);
        int slot = g.SlotBase + Home(x, g.SlotCount);
        tag = Tag(x);
        if ((uint)word < (uint)_filter.Length) System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref _filter[word]));
        if ((uint)slot >= (uint)_slots.Length) return -1;
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref _slots[slot]));
        return slot;
    }

    /// <summary>
    /// The second step of <see cref="PrefetchFirstGroup"/>, a little later: the bucket's first entries of the slot it
    /// fetched (when the slot holds one; whether it is the key's is not checked). Hints only.
    /// </summary>
    internal unsafe void PrefetchBucket(int slot)
    {
        if ((uint)slot >= (uint)_slots.Length) return;
        uint first = (uint)_slots[slot].First;
        if (_slots[slot].Tag == 0 || first >= (uint)_entries.Length) return;
        // Both ends of the 32-byte entry: an array's elements start 8-byte aligned, so an entry can cross a line (its Id,
        // which the probe reads first, is at its end).
        CacheHint.Whole(ref _entries[first]);
    }

    /// <summary>The hash slots of all groups (positions <see cref="PrefetchFirstGroup(in FlowKey)"/> returns are below this).</summary>
    internal int SlotCount => _slots.Length;

    /// <summary>The tag a slot holds (0: empty); a key's bucket is the first slot from its home on with its tag.</summary>
    internal uint SlotTag(int slot) => (uint)slot < (uint)_slots.Length ? _slots[slot].Tag : 0;

    /// <summary>
    /// The rule (its position in the chain) of the first entry of the bucket a slot holds (the slot
    /// <see cref="PrefetchFirstGroup"/> named: whether it is the key's is not checked), or -1. For hints only.
    /// </summary>
    internal int BucketFirstId(int slot)
    {
        if ((uint)slot >= (uint)_slots.Length || _slots[slot].Tag == 0) return -1;
        uint first = (uint)_slots[slot].First;
        return first < (uint)_entries.Length ? _entries[first].Id : -1;
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
    private int Probe(ref GroupInfo g, in FlowKey k, int floor, int best) =>
        ProbeCore(ref g, k, Pair(k), ((uint)k.Protocol << 16) | k.DestinationPort, floor, best);

    /// <summary>
    /// The key's addresses as one word, destination in the high half: cut to a group's lengths by one AND with
    /// <see cref="GroupInfo.AddressMask"/>, compared with an entry's by one more (made once per key, not per group or entry).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Pair(in FlowKey k) => Pair(k.Source, k.Destination);

    /// <summary>
    /// The address word cut to a group's lengths, as the hash takes it: source in the high half (the halves swapped back,
    /// one rotate). The hash's low half depends only on its input's low half, so which address is there decides how well
    /// a group that cuts one address to /0 spreads its filter bits and slots; the index keeps the order it was tuned with
    /// (a trial with the destination high moved ipc1_100k's slots per key from 1.2 to 3.7 and its key path down 8-20 %).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Cut(ulong pair, ulong addressMask) => BitOperations.RotateLeft(pair & addressMask, 32);

    /// <inheritdoc cref="Pair(in FlowKey)"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Pair(uint source, uint destination) => ((ulong)destination << 32) | source;

    /// <summary><see cref="Probe"/> with the key's address word and its protocol/port word (<c>proto &lt;&lt; 16 | dport</c>) made once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int ProbeCore(ref GroupInfo g, in FlowKey k, ulong pair, uint extra, int floor, int best)
    {
        uint b = 0x8000_0000u | (extra & g.ExtraMask);
        ulong x = Mix(Cut(pair, g.AddressMask) ^ g.Salt, b);
        int bit = (int)(x >> 8) & g.FilterMask;
        if ((Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_filter), g.FilterBase + (bit >> 6)) & (1UL << bit)) == 0) return best;
        ref Slot s0 = ref MemoryMarshal.GetArrayDataReference(_slots);
        int h = Home(x, g.SlotCount);
        uint tag = Tag(x);
        ref Slot sl = ref Unsafe.Add(ref s0, g.SlotBase + h);
        // The first slot with the key's tag is its bucket, if the group has one (tags are unique in a group; see Slot).
        while (sl.Tag != tag)
        {
            if (sl.Tag == 0) return best;
            h = h + 1 == g.SlotCount ? 0 : h + 1;
            sl = ref Unsafe.Add(ref s0, g.SlotBase + h);
        }
        // The bucket's entries, ascending; the last one is flagged.
        ref Entry e = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_entries), sl.First);
        while (e.Id < best)
        {
            if (e.Id >= floor && e.Matches(pair, k.Protocol, k.SourcePort, k.DestinationPort)) return e.Id;
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
    public static TupleIndex Build(int start, IReadOnlyList<FlatRule> run)
    {
        if (Classes is { } fixedClasses) return BuildWith(start, run, fixedClasses, MergeLimit);
        (int[] Classes, int MergeLimit)[] layouts = Layouts;
        if (run.Count < ChooseFrom || layouts.Length == 1) return BuildWith(start, run, layouts[0].Classes, layouts[0].MergeLimit);
        FlowKey[] sample = SampleKeys(run, 2048, seed: run.Count);
        TupleIndex? best = null;
        double bestCost = double.MaxValue;
        foreach (var (classes, limit) in layouts)
        {
            TupleIndex t = BuildWith(start, run, classes, limit);
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
    /// the slots visited (<see cref="SlotWeight"/>) and the bucket entries checked (<see cref="EntryWeight"/>), the steps
    /// <see cref="FirstMatch"/> takes.
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
                ulong a = Cut(Pair(k), g.AddressMask);
                uint b = 0x8000_0000u | ((((uint)k.Protocol << 16) | k.DestinationPort) & g.ExtraMask);
                ulong x = Mix(a ^ g.Salt, b);
                int bit = (int)(x >> 8) & g.FilterMask;
                if ((_filter[g.FilterBase + (bit >> 6)] & (1UL << bit)) == 0) continue;
                int h = Home(x, g.SlotCount);
                cost += SlotWeight;
                while (_slots[g.SlotBase + h].Tag != Tag(x))
                {
                    if (_slots[g.SlotBase + h].Tag == 0) goto NextGroup;
                    h = h + 1 == g.SlotCount ? 0 : h + 1;
                    cost += SlotWeight;
                }
                for (int j = _slots[g.SlotBase + h].First; _entries[j].Id < best; j++)
                {
                    cost += EntryWeight;
                    if (_entries[j].Matches(Pair(k), k.Protocol, k.SourcePort, k.DestinationPort))
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

    /// <summary>
    /// Diagnostics: per group its tuple, keys, entries and rule range, and over <paramref name="keys"/> the average
    /// groups tested, filter passes, slots visited and entries checked per key, and where the matches were found.
    /// </summary>
    public string Describe(ReadOnlySpan<FlowKey> keys)
    {
        var sb = new System.Text.StringBuilder();
        var probed = new long[_groups.Length];
        var passed = new long[_groups.Length];
        var won = new long[_groups.Length];
        long slotsVisited = 0, entriesChecked = 0, none = 0;
        foreach (FlowKey k in keys)
        {
            int best = End - Start, winner = -1;
            for (int gi = 0; gi < _groups.Length; gi++)
            {
                ref GroupInfo g = ref _groups[gi];
                if (g.MinRule >= best) break;
                probed[gi]++;
                ulong a = Cut(Pair(k), g.AddressMask);
                uint b = 0x8000_0000u | ((((uint)k.Protocol << 16) | k.DestinationPort) & g.ExtraMask);
                ulong x = Mix(a ^ g.Salt, b);
                int bit = (int)(x >> 8) & g.FilterMask;
                if ((_filter[g.FilterBase + (bit >> 6)] & (1UL << bit)) == 0) continue;
                passed[gi]++;
                int h = Home(x, g.SlotCount);
                slotsVisited++;
                while (_slots[g.SlotBase + h].Tag != Tag(x))
                {
                    if (_slots[g.SlotBase + h].Tag == 0) goto NextGroup;
                    h = h + 1 == g.SlotCount ? 0 : h + 1;
                    slotsVisited++;
                }
                for (int j = _slots[g.SlotBase + h].First; _entries[j].Id < best; j++)
                {
                    entriesChecked++;
                    if (_entries[j].Matches(Pair(k), k.Protocol, k.SourcePort, k.DestinationPort))
                    {
                        best = _entries[j].Id;
                        winner = gi;
                        break;
                    }
                    if (_entries[j].Last) break;
                }
            NextGroup:;
            }
            if (winner >= 0) won[winner]++;
            else none++;
        }
        double n = Math.Max(1, keys.Length);
        for (int gi = 0; gi < _groups.Length; gi++)
        {
            ref GroupInfo g = ref _groups[gi];
            int keysIn = 0;
            for (int s = 0; s < g.SlotCount; s++)
            {
                if (_slots[g.SlotBase + s].Tag != 0) keysIn++;
            }
            sb.Append(System.Globalization.CultureInfo.InvariantCulture, $"group {gi}: src/{BitOperations.PopCount(g.SourceMask)} dst/{BitOperations.PopCount(g.DestinationMask)} extra {g.ExtraMask:x} keys {keysIn} rules {g.MinRule}..{g.MaxRule} probed {probed[gi] / n:F2} passed {passed[gi] / n:F2} won {won[gi] / n:F3}\n");
        }
        double tested = 0, pass = 0;
        foreach (long p in probed) tested += p;
        foreach (long p in passed) pass += p;
        sb.Append(System.Globalization.CultureInfo.InvariantCulture, $"per key: groups {tested / n:F2}, filter passes {pass / n:F2}, slots {slotsVisited / n:F2}, entries {entriesChecked / n:F2}, no match {none / n:F3}; bytes {Bytes}");
        return sb.ToString();
    }

    /// <summary>Builds the index with one given layout (prefix classes, merge limit).</summary>
    public static TupleIndex BuildWith(int start, IReadOnlyList<FlatRule> run, int[] classes, int mergeLimit)
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
            if (!byTuple.TryGetValue(tuple, out var table)) byTuple[tuple] = table = new Dictionary<(ulong, uint), List<int>>(KeyComparer.Instance);
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
            int bits = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(64, keys * FilterBitsPerKey));
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
            g.AddressMask = Pair(g.SourceMask, g.DestinationMask);
            g.ExtraMask = ((tuple & 2) != 0 ? 0xFFu << 16 : 0) | ((tuple & 1) != 0 ? 0xFFFFu : 0);
            g.MinRule = min;
            g.MaxRule = -1;
            g.Salt = SaltFor(table.Keys);
            foreach (var ((a, b), list) in table)
            {
                ulong x = Mix(a ^ g.Salt, b);
                int bit = (int)(x >> 8) & g.FilterMask;
                filter[g.FilterBase + (bit >> 6)] |= 1UL << bit;
                int h = Home(x, g.SlotCount);
                while (slots[g.SlotBase + h].Tag != 0) h = h + 1 == g.SlotCount ? 0 : h + 1;
                slots[g.SlotBase + h] = new Slot { Tag = Tag(x), First = next };
                for (int n = 0; n < list.Count; n++) entries[next++] = new Entry(rules[list[n]], list[n], n == list.Count - 1);
                g.MaxRule = Math.Max(g.MaxRule, list[^1]);
            }
        }
        return new TupleIndex(start, start + rules.Length, infos, filter, slots, entries, string.Join(",", classes) + "/" + mergeLimit.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// The bits of the first salt (0, 1, …) under which the group's keys have distinct tags (almost always 0). The salt
    /// goes into the address word before its multiplication: two keys that differ in that word have a difference after
    /// the mix that depends on it (a salt in the other word would cancel out: the mix is linear in XOR apart from the
    /// products).
    /// </summary>
    private static ulong SaltFor(IEnumerable<(ulong, uint)> keys)
    {
        var seen = new HashSet<uint>();
        for (uint salt = 0; ; salt++)
        {
            seen.Clear();
            bool unique = true;
            foreach (var (a, b) in keys)
            {
                if (!seen.Add(Tag(Mix(a ^ SaltBits(salt), b))))
                {
                    unique = false;
                    break;
                }
            }
            if (unique) return SaltBits(salt);
            if (salt == 1000) throw new InvalidOperationException("no salt gives distinct tags");
        }
    }

    private static ulong SaltBits(uint salt) => salt * 0xD6E8_FEB8_6659_FD93UL;

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
                var added = new Dictionary<(ulong, uint), int>(KeyComparer.Instance);
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
                // Only the buckets that took rules need sorting again (sorting every bucket of a large target after each
                // merge cost a 100k-rule build most of its time).
                var touched = new HashSet<List<int>>(ReferenceEqualityComparer.Instance);
                foreach (List<int> ids in from.Values)
                {
                    foreach (int id in ids)
                    {
                        var key = KeyIn(target, rules[id]);
                        if (!into.TryGetValue(key, out List<int>? list)) into[key] = list = new List<int>();
                        list.Add(id);
                        touched.Add(list);
                    }
                }
                foreach (List<int> list in touched) list.Sort();
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

    /// <summary>Bits of a group's filter per key it holds (rounded up to a power of two).</summary>
    public static int FilterBitsPerKey { get; set; } = 16;

    /// <summary>
    /// A slot's tag: the hash's high half with the top bit set (0 marks an empty slot). The high half, because every
    /// bit of the key reaches it (a product's low bits depend only on its factors' low bits).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Tag(ulong x) => (uint)(x >> 32) | 0x8000_0000u;

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
    /// The build's dictionaries of cut fields hash them with <see cref="Mix"/>: the default hash of a (ulong, uint) folds
    /// the address word to source XOR destination, which ClassBench's structured addresses make collide by the thousand
    /// (a 100k-rule build spent most of its time in those chains).
    /// </summary>
    private sealed class KeyComparer : IEqualityComparer<(ulong, uint)>
    {
        public static readonly KeyComparer Instance = new();

        public bool Equals((ulong, uint) x, (ulong, uint) y) => x.Item1 == y.Item1 && x.Item2 == y.Item2;

        public int GetHashCode((ulong, uint) k) => (int)(Mix(k.Item1, k.Item2) >> 32);
    }

    /// <summary>
    /// One tuple: the masks the packet's fields are cut to (<see cref="ExtraMask"/> selects protocol and
    /// destination port in <c>proto &lt;&lt; 16 | dport</c>), its rules' range, and where its slots and filter bits are.
    /// </summary>
    private struct GroupInfo
    {
        public uint SourceMask, DestinationMask, ExtraMask;

        /// <summary>Both masks as one word (<see cref="Pair(uint, uint)"/>).</summary>
        public ulong AddressMask;
        public int MinRule, MaxRule;
        public int SlotBase, SlotCount, FilterBase, FilterMask;

        /// <summary>Mixed into the hash so the group's keys have distinct tags.</summary>
        public ulong Salt;
    }

    /// <summary>
    /// A hash slot: its key's tag (a 31-bit hash of the cut fields, top bit set; 0 = empty) and its first bucket entry.
    /// The key itself is not kept: the tags of one group are made distinct (<see cref="SaltFor"/>), so the first slot a
    /// probe finds with the packet's tag is the bucket of the packet's cut fields when the group has one; when it has
    /// none, the slot found (if any) is another key's, none of whose rules can match the packet (every rule of a bucket
    /// has the bucket's cut fields), and its entries, checked in full, say so.
    /// </summary>
    private struct Slot
    {
        public uint Tag;
        public int First;
    }

    /// <summary>A rule filed in a bucket (its whole condition, stored inline so a bucket is scanned sequentially).</summary>
    private readonly struct Entry
    {
        /// <summary>The rule's addresses and masks, each as one word (<see cref="Pair(uint, uint)"/>).</summary>
        private readonly ulong _addresses, _masks;
        private readonly ushort _sportLow, _sportSpan, _dportLow, _dportSpan;
        public readonly int Id;
        private readonly byte _protocol;

        /// <summary>The bucket's last entry.</summary>
        public readonly bool Last;

        public Entry(in FlatRule r, int id, bool last)
        {
            _addresses = Pair(r.SourceAddress, r.DestinationAddress);
            _masks = Pair(r.SourceMask, r.DestinationMask);
            _sportLow = r.SportLow;
            _sportSpan = (ushort)(r.SportHigh - r.SportLow);
            _dportLow = r.DportLow;
            _dportSpan = (ushort)(r.DportHigh - r.DportLow);
            _protocol = r.Protocol;
            Id = id;
            Last = last;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool Matches(ulong pair, byte proto, ushort sport, ushort dport) =>
            (pair & _masks) == _addresses
            && (_protocol == 0 || _protocol == proto)
            && (uint)(sport - _sportLow) <= _sportSpan
            && (uint)(dport - _dportLow) <= _dportSpan;
    }
}
