// The tuple index as it was before the flat-array layout (session 3), kept only so the speed harness can
// measure old and new in one run (--only probe). Not used by the engine.
using System.Numerics;
using System.Runtime.CompilerServices;

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
public sealed class TupleIndexV1
{
    /// <summary>The prefix lengths the address fields are cut to (a /27 is filed under /24, and checked in full).</summary>
    public static int[] Classes { get; set; } = [0, 8, 16, 24, 32];

    /// <summary>Whether the protocol and a single destination port are part of a tuple (else they are only checked in the bucket).</summary>
    public static bool PortTuples { get; set; } = true;

    private readonly Group[] _groups;

    /// <summary>First rule index (in the chain) of the run and one past its last.</summary>
    public int Start { get; }

    public int End { get; }

    public int GroupCount => _groups.Length;

    private TupleIndexV1(int start, int end, Group[] groups)
    {
        Start = start;
        End = end;
        _groups = groups;
    }

    /// <summary>The approximate size in bytes of the index's arrays (for the benchmark's bytes per rule).</summary>
    public long Bytes
    {
        get
        {
            long n = 0;
            foreach (Group g in _groups) n += g.Bytes;
            return n;
        }
    }

    /// <summary>
    /// The index of the first rule at or after <paramref name="from"/> (chain indices) that matches
    /// <paramref name="k"/>, or <see cref="End"/> when none does.
    /// </summary>
    public int FirstMatch(in FlowKey k, int from)
    {
        int best = End - Start;
        int floor = from - Start;
        foreach (Group g in _groups)
        {
            if (g.MinRule >= best) break;
            if (g.MaxRule < floor) continue;
            int slot = g.Find(k);
            if (slot < 0) continue;
            ref readonly Slot sl = ref g.Slots[slot];
            BucketEntry[] entries = g.Entries;
            int end = sl.First + sl.Count;
            for (int j = sl.First; j < end; j++)
            {
                ref readonly BucketEntry e = ref entries[j];
                if (e.Id >= best) break;
                if (e.Id >= floor && e.Rule.Matches(k))
                {
                    best = e.Id;
                    break;
                }
            }
        }
        return best + Start;
    }

    public static TupleIndexV1 Build(int start, IReadOnlyList<FlatRule> run)
    {
        var rules = new FlatRule[run.Count];
        var byTuple = new Dictionary<int, Dictionary<(ulong, uint), List<int>>>();
        for (int i = 0; i < rules.Length; i++)
        {
            FlatRule r = run[i];
            rules[i] = r;
            int sc = ClassOf(r.SourceMask), dc = ClassOf(r.DestinationMask);
            bool useProto = PortTuples && r.Protocol != 0;
            bool useDport = useProto && r.DportLow == r.DportHigh;
            int tuple = (sc << 8) | (dc << 2) | (useProto ? 2 : 0) | (useDport ? 1 : 0);
            if (!byTuple.TryGetValue(tuple, out var table)) byTuple[tuple] = table = new Dictionary<(ulong, uint), List<int>>();
            uint sm = PrefixMask(sc), dm = PrefixMask(dc);
            var key = Group.Key(r.SourceAddress & sm, r.DestinationAddress & dm, useProto ? r.Protocol : (byte)0, useDport ? r.DportLow : (ushort)0);
            if (!table.TryGetValue(key, out List<int>? ids)) table[key] = ids = new List<int>();
            ids.Add(i);
        }
        Merge(byTuple, rules);
        var groups = new List<Group>();
        foreach (var (tuple, table) in byTuple)
        {
            int sc = tuple >> 8, dc = (tuple >> 2) & 0x3f;
            groups.Add(new Group(PrefixMask(sc), PrefixMask(dc), (tuple & 2) != 0, (tuple & 1) != 0, table, rules));
        }
        groups.Sort((a, b) => a.MinRule.CompareTo(b.MinRule));
        return new TupleIndexV1(start, start + rules.Length, groups.ToArray());
    }

    /// <summary>How many rules a bucket may hold after tuples are merged.</summary>
    public static int MergeLimit { get; set; } = 8;

    /// <summary>
    /// TupleMerge's idea: a tuple's rules may live in a more general tuple (shorter prefixes, fewer exact fields),
    /// so fewer tables are probed per packet, as long as no bucket grows beyond <see cref="MergeLimit"/> rules.
    /// The smallest tuples are moved first, each into the most specific tuple that takes all its rules.
    /// </summary>
    private static void Merge(Dictionary<int, Dictionary<(ulong, uint), List<int>>> byTuple, FlatRule[] rules)
    {
        if (MergeLimit <= 0) return;
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
            return Group.Key(r.SourceAddress & PrefixMask(sc), r.DestinationAddress & PrefixMask(dc),
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
                        if (n + (into.TryGetValue(key, out List<int>? have) ? have.Count : 0) > MergeLimit)
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

    private static int ClassOf(uint mask)
    {
        int len = BitOperations.LeadingZeroCount(~mask);
        int c = 0;
        foreach (int cl in Classes)
        {
            if (cl <= len) c = cl;
        }
        return c;
    }

    private static uint PrefixMask(int len) => len == 0 ? 0u : uint.MaxValue << (32 - len);

    /// <summary>A hash slot: the cut fields (B has its top bit set, 0 = empty) and where its rules are in <see cref="Group.Entries"/>.</summary>
    private struct Slot
    {
        public ulong A;
        public uint B;
        public int First;
        public int Count;
    }

    /// <summary>A rule filed in a bucket, stored inline so a bucket is scanned sequentially.</summary>
    private struct BucketEntry
    {
        public FlatRule Rule;
        public int Id;
    }

    /// <summary>
    /// One tuple: an open-addressing hash table from cut fields to the rules filed there (ascending), with a
    /// one-bit-per-key filter in front of it that turns away most misses without touching the table.
    /// </summary>
    private sealed class Group
    {
        public readonly uint SourceMask, DestinationMask;
        public readonly bool UseProtocol, UseDport;
        public readonly int MinRule, MaxRule;
        public readonly Slot[] Slots;
        public readonly BucketEntry[] Entries;
        private readonly ulong[] _filter;
        private readonly int _mask;
        private readonly int _filterMask;

        public Group(uint sm, uint dm, bool useProto, bool useDport, Dictionary<(ulong, uint), List<int>> table, FlatRule[] rules)
        {
            SourceMask = sm;
            DestinationMask = dm;
            UseProtocol = useProto;
            UseDport = useDport;
            int cap = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(4, table.Count * 2));
            _mask = cap - 1;
            Slots = new Slot[cap];
            int bits = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(64, table.Count * 16));
            _filter = new ulong[bits / 64];
            _filterMask = bits - 1;
            var entries = new List<BucketEntry>();
            MinRule = int.MaxValue;
            MaxRule = -1;
            foreach (var ((a, b), list) in table)
            {
                ulong x = Mix(a, b);
                _filter[(int)((x >> 8) & (uint)_filterMask) >> 6] |= 1UL << (int)((x >> 8) & 63);
                int h = (int)(x >> 40) & _mask;
                while (Slots[h].B != 0) h = (h + 1) & _mask;
                Slots[h] = new Slot { A = a, B = b, First = entries.Count, Count = list.Count };
                foreach (int id in list) entries.Add(new BucketEntry { Rule = rules[id], Id = id });
                MinRule = Math.Min(MinRule, list[0]);
                MaxRule = Math.Max(MaxRule, list[^1]);
            }
            Entries = entries.ToArray();
        }

        public long Bytes => (long)Slots.Length * Unsafe.SizeOf<Slot>() + (long)Entries.Length * Unsafe.SizeOf<BucketEntry>() + _filter.Length * 8L + 96;

        /// <summary>The hash key; the second word always has its top bit set so 0 marks an empty slot.</summary>
        public static (ulong, uint) Key(uint src, uint dst, byte proto, ushort dport) =>
            (((ulong)src << 32) | dst, 0x8000_0000u | ((uint)proto << 16) | dport);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static ulong Mix(ulong a, uint b)
        {
            ulong x = (a ^ ((ulong)b * 0x9E37_79B9_7F4A_7C15UL)) * 0xBF58_476D_1CE4_E5B9UL;
            return x ^ (x >> 31);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Find(in FlowKey k)
        {
            ulong a = ((ulong)(k.Source & SourceMask) << 32) | (k.Destination & DestinationMask);
            uint b = 0x8000_0000u | (UseProtocol ? (uint)k.Protocol << 16 : 0) | (UseDport ? k.DestinationPort : 0u);
            ulong x = Mix(a, b);
            int bit = (int)((x >> 8) & (uint)_filterMask);
            if ((_filter[bit >> 6] & (1UL << (bit & 63))) == 0) return -1;
            Slot[] slots = Slots;
            int h = (int)(x >> 40) & _mask;
            while (true)
            {
                ref readonly Slot s = ref slots[h];
                if (s.B == 0) return -1;
                if (s.B == b && s.A == a) return h;
                h = (h + 1) & _mask;
            }
        }
    }
}
