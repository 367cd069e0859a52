using Chainwalk.Conntrack;
using Chainwalk.Net;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// NAT's by-source index (nf_nat_bysource, <see cref="ConntrackTable.BySource"/>: open addressing, chains threaded
/// through the entries, tombstones) against its definition: the confirmed, source-bound entries (IPS_SRC_NAT_DONE) whose
/// original tuple has the key's protocol, source address and port, oldest first, found by a scan of every entry; after
/// random insertions, removals, flushes and the growth of the index (slots reused as tombstones, rehashed).
/// </summary>
public class NatBySourceTests
{
    public static TheoryData<int, int, int> Cases() => new()
    {
        // seed, operations, distinct source keys (few: long chains and tombstones; many: the index grows, mostly empty slots)
        { 1, 400, 8 },
        { 2, 3000, 40 },
        { 3, 6000, 2500 },
        { 4, 12000, 9000 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void By_source_chains_agree_with_a_scan_of_the_entries(int seed, int operations, int keys)
    {
        var rnd = new Random(seed);
        var table = new ConntrackTable();
        var live = new List<ConnEntry>();
        int serial = 0;
        for (int op = 0; op < operations; op++)
        {
            int what = rnd.Next(100);
            if (what < 60 || live.Count == 0)
            {
                // A connection from one of the keys (TCP or UDP, two source addresses), to a destination of its own.
                int k = rnd.Next(keys);
                byte proto = k % 3 == 0 ? IpProtocol.Udp : IpProtocol.Tcp;
                UInt128 src = 0xC0A80002u + (uint)(k % 2);
                ushort sport = (ushort)(1024 + k / 2);
                serial++;
                var o = new ConnTuple(IpFamily.V4, proto, src, 0x0A000000u + (uint)serial, sport, 80);
                var r = new ConnTuple(IpFamily.V4, proto, 0x0A000000u + (uint)serial, 0x0A000101u, 80, sport);
                var ct = new ConnEntry(o, r) { Timeout = 1000 };
                // Most are source-bound (in the index); some are not.
                if (rnd.Next(4) != 0) ct.Status |= ConnStatus.SrcNatDone | ConnStatus.SrcNat;
                table.TryInsert(ct, 0).ShouldBeTrue();
                live.Add(ct);
            }
            else if (what < 97)
            {
                int at = rnd.Next(live.Count);
                table.Remove(live[at]);
                live.RemoveAt(at);
            }
            else
            {
                table.Clear();
                live.Clear();
            }
            if (op % 97 == 0 || op == operations - 1) Check(table, keys);
        }
    }

    /// <summary>
    /// A source binding asks <see cref="ConntrackTable.HasBySourceV4"/> (find_appropriate_src) and confirmation adds the
    /// same key right after, reusing the miss's slot while the index is unchanged. Two tables take the same steps, one
    /// asked before its insertions (the key about to be inserted, often; another key, sometimes; with a removal, a flush,
    /// or another insertion in between, sometimes), the other never asked: the answers must be the definition's, and the
    /// chains, the index's size and its used slots the same in both (a slot taken that the probe would not have taken shows in either).
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void A_miss_remembered_for_the_add_leaves_the_chains_as_an_unasked_table_has_them(int seed, int operations, int keys)
    {
        var rnd = new Random(seed);
        var asked = new ConntrackTable();
        var plain = new ConntrackTable();
        var live = new List<(ConnEntry Asked, ConnEntry Plain)>();
        int serial = 0;
        int misses = 0, between = 0;
        (ConnEntry, ConnEntry) Make(int k, bool bound)
        {
            byte proto = k % 3 == 0 ? IpProtocol.Udp : IpProtocol.Tcp;
            UInt128 src = 0xC0A80002u + (uint)(k % 2);
            ushort sport = (ushort)(1024 + k / 2);
            serial++;
            var o = new ConnTuple(IpFamily.V4, proto, src, 0x0A000000u + (uint)serial, sport, 80);
            var r = new ConnTuple(IpFamily.V4, proto, 0x0A000000u + (uint)serial, 0x0A000101u, 80, sport);
            var a = new ConnEntry(o, r) { Timeout = 1000 };
            var b = new ConnEntry(o, r) { Timeout = 1000 };
            if (bound)
            {
                a.Status |= ConnStatus.SrcNatDone | ConnStatus.SrcNat;
                b.Status |= ConnStatus.SrcNatDone | ConnStatus.SrcNat;
            }
            return (a, b);
        }
        void Insert((ConnEntry A, ConnEntry B) p)
        {
            asked.TryInsert(p.A, 0).ShouldBeTrue();
            plain.TryInsert(p.B, 0).ShouldBeTrue();
            live.Add(p);
        }
        void RemoveOne()
        {
            int at = rnd.Next(live.Count);
            asked.Remove(live[at].Asked);
            plain.Remove(live[at].Plain);
            live.RemoveAt(at);
        }
        bool Defined(byte proto, UInt128 src, ushort sport) =>
            live.Exists(p => p.Plain.Has(ConnStatus.SrcNatDone) && p.Plain.Protocol == proto && p.Plain.Original.Source == src && p.Plain.Original.SourcePort == sport);
        for (int op = 0; op < operations; op++)
        {
            int what = rnd.Next(100);
            if (what < 60 || live.Count == 0)
            {
                int k = rnd.Next(keys);
                (ConnEntry A, ConnEntry B) p = Make(k, rnd.Next(4) != 0);
                int ask = rnd.Next(10);
                if (ask < 8)
                {
                    // The key about to be added (mostly), or another one.
                    int q = ask < 7 ? k : rnd.Next(keys);
                    byte proto = q % 3 == 0 ? IpProtocol.Udp : IpProtocol.Tcp;
                    uint src = 0xC0A80002u + (uint)(q % 2);
                    ushort sport = (ushort)(1024 + q / 2);
                    bool has = asked.HasBySourceV4(proto, src, sport);
                    has.ShouldBe(Defined(proto, src, sport), $"op {op}");
                    if (!has) misses++;
                    int step = rnd.Next(10);
                    if (step == 0 && live.Count > 0) { RemoveOne(); between++; }
                    else if (step == 1) { Insert(Make(rnd.Next(keys), true)); between++; }
                    else if (step == 2 && rnd.Next(10) == 0) { asked.Clear(); plain.Clear(); live.Clear(); between++; }
                }
                Insert(p);
            }
            else if (what < 98)
            {
                RemoveOne();
            }
            else
            {
                asked.Clear();
                plain.Clear();
                live.Clear();
            }
            if (op % 97 == 0 || op == operations - 1)
            {
                asked.SourceCapacity.ShouldBe(plain.SourceCapacity, $"op {op}");
                asked.SourceSlotsUsed.ShouldBe(plain.SourceSlotsUsed, $"op {op}");
                Check(asked, keys);
                Check(plain, keys);
            }
        }
        misses.ShouldBeGreaterThan(operations / 10);
        between.ShouldBeGreaterThan(operations / 100);
    }

    private static void Check(ConntrackTable table, int keys)
    {
        // The definition: every entry in table order (oldest first), grouped by source key.
        var expected = new Dictionary<(byte, UInt128, ushort), List<ConnEntry>>();
        foreach (ConnEntry e in table.Entries)
        {
            if (!e.Has(ConnStatus.SrcNatDone)) continue;
            var k = (e.Protocol, e.Original.Source, e.Original.SourcePort);
            if (!expected.TryGetValue(k, out List<ConnEntry>? list)) expected[k] = list = new List<ConnEntry>();
            list.Add(e);
        }
        for (int k = 0; k < keys; k++)
        {
            byte proto = k % 3 == 0 ? IpProtocol.Udp : IpProtocol.Tcp;
            UInt128 src = 0xC0A80002u + (uint)(k % 2);
            ushort sport = (ushort)(1024 + k / 2);
            var key = new ConnTuple(IpFamily.V4, proto, src, 0x01010101u, sport, 1);
            ConnEntry[] want = expected.TryGetValue((proto, src, sport), out List<ConnEntry>? l) ? l.ToArray() : [];
            table.BySource(key).ShouldBe(want, $"key {k}");
        }
        // A key no connection has.
        table.BySource(new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0B0B0B0Bu, 0x01010101u, 7, 1)).ShouldBeEmpty();
    }
}
