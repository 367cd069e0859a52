using System.Numerics;
using System.Runtime.CompilerServices;

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
public sealed class TupleIndex
{
    /// <summary>The prefix lengths the address fields are cut to (a /27 is filed under /24, and checked in full).</summary>
    private static readonly int[] Classes = [0, 8, 16, 24, 32];

    private readonly FlatRule[] _rules;
    private readonly Group[] _groups;

    /// <summary>First rule index (in the chain) of the run and one past its last.</summary>
    public int Start { get; }

    public int End { get; }

    public int GroupCount => _groups.Length;

    private TupleIndex(int start, int end, FlatRule[] rules, Group[] groups)
    {
        Start = start;
        End = end;
        _rules = rules;
        _groups = groups;
    }

    /// <summary>The approximate size in bytes of the index's arrays (for the benchmark's bytes per rule).</summary>
    public long Bytes
    {
        get
        {
            long n = (long)_rules.Length * Unsafe.SizeOf<FlatRule>();
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
        FlatRule[] rules = _rules;
        foreach (Group g in _groups)
        {
            if (g.MinRule >= best) break;
            if (g.MaxRule < floor) continue;
            int slot = g.Find(k);
            if (slot < 0) continue;
            int[] ids = g.Ids;
            int end = g.First[slot] + g.Count[slot];
            for (int j = g.First[slot]; j < end; j++)
            {
                int id = ids[j];
                if (id >= best) break;
                if (id < floor) continue;
                if (rules[id].Matches(k))
                {
                    best = id;
                    break;
                }
            }
        }
        return best + Start;
    }

    public static TupleIndex Build(int start, IReadOnlyList<FlatRule> run)
    {
        var rules = new FlatRule[run.Count];
        var byTuple = new Dictionary<int, Dictionary<(ulong, uint), List<int>>>();
        for (int i = 0; i < rules.Length; i++)
        {
            FlatRule r = run[i];
            rules[i] = r;
            int sc = ClassOf(r.SourceMask), dc = ClassOf(r.DestinationMask);
            bool useProto = r.Protocol != 0;
            bool useDport = useProto && r.DportLow == r.DportHigh;
            int tuple = (sc << 8) | (dc << 2) | (useProto ? 2 : 0) | (useDport ? 1 : 0);
            if (!byTuple.TryGetValue(tuple, out var table)) byTuple[tuple] = table = new Dictionary<(ulong, uint), List<int>>();
            uint sm = PrefixMask(sc), dm = PrefixMask(dc);
            var key = Group.Key(r.SourceAddress & sm, r.DestinationAddress & dm, useProto ? r.Protocol : (byte)0, useDport ? r.DportLow : (ushort)0);
            if (!table.TryGetValue(key, out List<int>? ids)) table[key] = ids = new List<int>();
            ids.Add(i);
        }
        var groups = new List<Group>();
        foreach (var (tuple, table) in byTuple)
        {
            int sc = tuple >> 8, dc = (tuple >> 2) & 0x3f;
            groups.Add(new Group(PrefixMask(sc), PrefixMask(dc), (tuple & 2) != 0, (tuple & 1) != 0, table));
        }
        groups.Sort((a, b) => a.MinRule.CompareTo(b.MinRule));
        return new TupleIndex(start, start + rules.Length, rules, groups.ToArray());
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

    /// <summary>One tuple: an open-addressing hash table from cut fields to the rules filed there (ascending).</summary>
    private sealed class Group
    {
        public readonly uint SourceMask, DestinationMask;
        public readonly bool UseProtocol, UseDport;
        public readonly int MinRule, MaxRule;
        private readonly ulong[] _keyA;
        private readonly uint[] _keyB;
        private readonly int _mask;
        public readonly int[] First;
        public readonly int[] Count;
        public readonly int[] Ids;

        public Group(uint sm, uint dm, bool useProto, bool useDport, Dictionary<(ulong, uint), List<int>> table)
        {
            SourceMask = sm;
            DestinationMask = dm;
            UseProtocol = useProto;
            UseDport = useDport;
            int cap = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(4, table.Count * 2));
            _mask = cap - 1;
            _keyA = new ulong[cap];
            _keyB = new uint[cap];
            First = new int[cap];
            Count = new int[cap];
            var ids = new List<int>();
            MinRule = int.MaxValue;
            MaxRule = -1;
            foreach (var ((a, b), list) in table)
            {
                int h = Hash(a, b) & _mask;
                while (_keyB[h] != 0) h = (h + 1) & _mask;
                _keyA[h] = a;
                _keyB[h] = b;
                First[h] = ids.Count;
                Count[h] = list.Count;
                ids.AddRange(list);
                MinRule = Math.Min(MinRule, list[0]);
                MaxRule = Math.Max(MaxRule, list[^1]);
            }
            Ids = ids.ToArray();
        }

        public long Bytes => (long)_keyA.Length * (8 + 4 + 4 + 4) + (long)Ids.Length * 4 + 64;

        /// <summary>The hash key; the second word always has its top bit set so 0 marks an empty slot.</summary>
        public static (ulong, uint) Key(uint src, uint dst, byte proto, ushort dport) =>
            (((ulong)src << 32) | dst, 0x8000_0000u | ((uint)proto << 16) | dport);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int Hash(ulong a, uint b)
        {
            ulong x = (a ^ ((ulong)b * 0x9E37_79B9_7F4A_7C15UL)) * 0xBF58_476D_1CE4_E5B9UL;
            return (int)(x >> 33);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Find(in FlowKey k)
        {
            ulong a = ((ulong)(k.Source & SourceMask) << 32) | (k.Destination & DestinationMask);
            uint b = 0x8000_0000u | (UseProtocol ? (uint)k.Protocol << 16 : 0) | (UseDport ? k.DestinationPort : 0u);
            int h = Hash(a, b) & _mask;
            while (true)
            {
                uint kb = _keyB[h];
                if (kb == 0) return -1;
                if (kb == b && _keyA[h] == a) return h;
                h = (h + 1) & _mask;
            }
        }
    }
}
