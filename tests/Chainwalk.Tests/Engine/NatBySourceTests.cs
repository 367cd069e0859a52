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
