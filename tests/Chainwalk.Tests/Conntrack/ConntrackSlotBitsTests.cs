using Chainwalk.Conntrack;
using Chainwalk.Net;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Conntrack;

/// <summary>
/// The hash's bit per slot (<c>ConntrackTable._nonEmpty</c>): a new connection's probe (<see cref="ConntrackTable.TryFindV4"/>
/// with a SYN-marked hash or none) ends at a home slot whose bit is clear without reading the slot. Random insertions
/// (NAT-changed replies among them), removals (tombstones), growth through many sizes and flushes, on few addresses and
/// ports so that probe runs form: after each step every key of the pool is looked up the three ways (no hash, the
/// prefetch's hash marked as a SYN's, the prefetch's hash unmarked: the slots read from the home slot on) and each must
/// give what a dictionary of the live keys gives.
/// </summary>
public class ConntrackSlotBitsTests
{
    private readonly record struct Key(byte Protocol, uint Source, uint Destination, ushort SourcePort, ushort DestinationPort);

    [Theory]
    [InlineData(1, 64, 1500)]
    [InlineData(2, 1024, 3000)]
    [InlineData(3, 64, 6000)]
    public void New_connection_probes_agree_with_the_live_keys(int seed, int buckets, int steps)
    {
        var rnd = new Random(seed);
        var table = new ConntrackTable();
        table.UseBuckets(buckets);
        var live = new Dictionary<Key, (ConnEntry Entry, ConnDirection Dir)>();
        var entries = new List<ConnEntry>();
        var pool = new List<Key>();
        for (int i = 0; i < 400; i++)
        {
            pool.Add(new Key(rnd.Next(2) == 0 ? IpProtocol.Tcp : IpProtocol.Udp, 0x0A000000u + (uint)rnd.Next(4),
                0x0A010000u + (uint)rnd.Next(4), (ushort)(1000 + rnd.Next(40)), (ushort)(80 + rnd.Next(3))));
        }
        for (int step = 0; step < steps; step++)
        {
            int op = rnd.Next(100);
            if (op < 60)
            {
                Key k = pool[rnd.Next(pool.Count)];
                Key r = new(k.Protocol, k.Destination, k.Source, k.DestinationPort, k.SourcePort);
                // A third of the connections get a NAT-changed reply (a key of its own, elsewhere in the hash).
                if (rnd.Next(3) == 0) r = r with { Destination = 0xC0A80000u + (uint)rnd.Next(2), DestinationPort = (ushort)(60000 + rnd.Next(30)) };
                if (live.ContainsKey(k) || live.ContainsKey(r) || k == r) continue;
                ConnEntry ct = table.NewEntryV4(k.Protocol, k.Source, k.Destination, k.SourcePort, k.DestinationPort);
                if (r != new Key(k.Protocol, k.Destination, k.Source, k.DestinationPort, k.SourcePort)) ct.SetReplyV4(r.Source, r.Destination, r.SourcePort, r.DestinationPort);
                ct.Timeout = 1e9;
                table.TryInsert(ct, 0).ShouldBeTrue();
                live[k] = (ct, ConnDirection.Original);
                live[r] = (ct, ConnDirection.Reply);
                entries.Add(ct);
            }
            else if (op < 95)
            {
                if (entries.Count == 0) continue;
                int i = rnd.Next(entries.Count);
                ConnEntry ct = entries[i];
                entries[i] = entries[^1];
                entries.RemoveAt(entries.Count - 1);
                foreach (Key key in live.Where(e => ReferenceEquals(e.Value.Entry, ct)).Select(e => e.Key).ToList()) live.Remove(key);
                table.Remove(ct);
            }
            else if (op < 97)
            {
                table.Clear();
                live.Clear();
                entries.Clear();
            }
            else
            {
                table.PacketBoundary();
                continue;
            }
            table.PacketBoundary();
            foreach (Key k in pool) Check(table, live, k, step);
            foreach ((Key k, _) in live) Check(table, live, k, step);
        }
    }

    private static void Check(ConntrackTable table, Dictionary<Key, (ConnEntry Entry, ConnDirection Dir)> live, Key k, int step)
    {
        bool expected = live.TryGetValue(k, out (ConnEntry Entry, ConnDirection Dir) want);
        long token = table.PrefetchV4(k.Protocol, k.Source, k.Destination, k.SourcePort, k.DestinationPort, opening: true);
        int hash = token >= 0 ? (int)(token >> 32) : -1;
        foreach (int h in new[] { -1, hash >= 0 ? hash | (int)(ConntrackTable.SynToken >> 32) : -1, hash })
        {
            bool found = table.TryFindV4(k.Protocol, k.Source, k.Destination, k.SourcePort, k.DestinationPort, h, 0, out ConnEntry e, out ConnDirection d);
            found.ShouldBe(expected, $"step {step}, key {k}, hash {h}");
            if (!found) continue;
            e.ShouldBeSameAs(want.Entry);
            d.ShouldBe(want.Dir);
        }
    }
}
