using Chainwalk.Conntrack;
using Chainwalk.Net;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Conntrack;

/// <summary>
/// The conntrack hash's slots name their entries by number (ConntrackTable's entries by number, numbers reused through a
/// free list) and keep only a tag of the key's hash: random churn (insertions, removals, expiry, lookups that remove an
/// expired holder, re-insertion of a live entry, moves between tables, bucket count changes that rehash, flushes) against a
/// plain model of what the table holds. Every entry must be found by both tuples, nothing else found, the listing in
/// insertion order, every entry's number naming it, and the numbers given never more than the most entries held at once.
/// </summary>
public class ConntrackNumberTests
{
    /// <summary>
    /// Connection <paramref name="i"/> of the universe: IPv4 TCP and UDP (some in zone 7), IPv6, and a few tuples that are
    /// their own reply (one hash key); no two connections share a tuple. Every third IPv4 TCP one is source-bound
    /// (<see cref="SourceBound"/>), in a chain of NAT's by-source index with the others of its source address and port.
    /// </summary>
    private static (ConnTuple Original, ConnTuple Reply, ushort Zone) Connection(int i)
    {
        ConnTuple o = (i % 11) switch
        {
            0 => new ConnTuple(IpFamily.V6, IpProtocol.Tcp, ((UInt128)0x20010db8 << 96) | (uint)i, ((UInt128)0x20010db8 << 96) | 0xffff, (ushort)(1024 + i % 50000), 443),
            1 => new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0A630000u + (uint)i, 0x0A630000u + (uint)i, 7, 7),
            2 or 3 => new ConnTuple(IpFamily.V4, IpProtocol.Udp, 0x0A010000u + (uint)(i >> 4), 0x0A020035u, (ushort)(1024 + i), 53),
            // Many share a source address and port (NAT's by-source chains), each its own destination.
            _ => new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0A010000u + (uint)(i % 7), 0x0A020000u + (uint)i, (ushort)(2048 + i % 64), 80),
        };
        o.TryInvert(out ConnTuple r).ShouldBeTrue();
        return (o, r, i % 13 == 5 ? (ushort)7 : (ushort)0);
    }

    private static bool SourceBound(int i) => i % 11 >= 4 && i % 3 == 0;

    [Theory]
    [InlineData(1, 262144, 600)]
    [InlineData(2, 64, 3000)]
    [InlineData(3, 8192, 3000)]
    [InlineData(4, 16384, 9000)]
    public void Churn_against_a_model(int seed, int buckets, int universe)
    {
        var rnd = new Random(seed);
        var table = new ConntrackTable();
        var other = new ConntrackTable();
        table.UseBuckets(buckets);
        var held = new Dictionary<int, ConnEntry>();
        var order = new List<ConnEntry>();
        var index = new Dictionary<ConnEntry, int>(ReferenceEqualityComparer.Instance);
        double now = 0;
        int peak = 0;
        int steps = universe * 12;
        for (int step = 0; step < steps; step++)
        {
            table.PacketBoundary();
            int i = rnd.Next(universe);
            (ConnTuple o, ConnTuple r, ushort zone) = Connection(i);
            int op = rnd.Next(100);
            if (op < 45)
            {
                // A new connection (from the pool when it has one): refused while a live one holds the tuples; an expired
                // holder is removed on the way.
                ConnEntry ct = table.NewEntry(o, r);
                ct.Zone = zone;
                ct.Timeout = now + 1 + rnd.Next(40);
                if (SourceBound(i)) ct.Status |= ConnStatus.SrcNatDone;
                bool live = held.TryGetValue(i, out ConnEntry? old) && old.Timeout > now;
                table.TryInsert(ct, now).ShouldBe(!live);
                if (!live)
                {
                    if (old is not null) Forget(i);
                    held[i] = ct;
                    order.Add(ct);
                    index[ct] = i;
                }
            }
            else if (op < 60)
            {
                if (held.TryGetValue(i, out ConnEntry? ct))
                {
                    table.Remove(ct);
                    Forget(i);
                }
            }
            else if (op < 63)
            {
                // Re-insertion of an entry the table holds: it keeps its place and its number.
                if (held.TryGetValue(i, out ConnEntry? ct))
                {
                    int number = ct.TableNumber;
                    table.Insert(ct);
                    ct.TableNumber.ShouldBe(number);
                }
            }
            else if (op < 65)
            {
                // To another table and back: the entry leaves this one (its number is given back) and comes back newest.
                if (held.TryGetValue(i, out ConnEntry? ct) && ct.Timeout > now)
                {
                    other.Insert(ct);
                    other.TryFind(ct.Reply, zone, now, out ConnEntry there, out _).ShouldBeTrue();
                    there.ShouldBeSameAs(ct);
                    table.TryFind(ct.Original, zone, now, out _, out _).ShouldBeFalse();
                    table.Insert(ct);
                    order.Remove(ct);
                    order.Add(ct);
                    other.Count.ShouldBe(0);
                }
            }
            else if (op < 67)
            {
                now += rnd.Next(10);
                table.Expire(now);
                foreach (int k in held.Where(kv => kv.Value.Timeout <= now).Select(kv => kv.Key).ToList()) Forget(k);
            }
            else if (op < 68 && rnd.Next(4) == 0)
            {
                // nf_conntrack_buckets written: the hash is rehashed into the new size.
                table.UseBuckets(rnd.Next(3) switch { 0 => 64, 1 => 8192, _ => 65536 });
            }
            else if (op < 68 && rnd.Next(40) == 0)
            {
                table.Clear();
                held.Clear();
                order.Clear();
                index.Clear();
                peak = 0;
            }
            else
            {
                // A lookup by either tuple (by fields too for IPv4 in zone 0): found when held and live; an expired holder
                // is removed.
                bool reply = rnd.Next(2) == 0;
                ConnTuple t = reply ? r : o;
                bool expect = held.TryGetValue(i, out ConnEntry? ct) && ct.Timeout > now;
                bool v4 = t.Family == IpFamily.V4 && zone == 0;
                bool found;
                ConnEntry hit;
                ConnDirection dir;
                if (v4 && rnd.Next(2) == 0)
                    found = table.TryFindV4(t.Protocol, (uint)t.Source, (uint)t.Destination, t.SourcePort, t.DestinationPort, -1, now, out hit, out dir);
                else
                    found = table.TryFind(t, zone, now, out hit, out dir);
                found.ShouldBe(expect);
                if (expect)
                {
                    hit.ShouldBeSameAs(ct);
                    // A tuple that is its own reply is one key: the reply's put overwrote the original's (as before slots had numbers).
                    dir.ShouldBe(reply || o == r ? ConnDirection.Reply : ConnDirection.Original);
                }
                else if (ct is not null)
                {
                    Forget(i);
                }
                // Another zone finds nothing.
                table.TryFind(t, (ushort)(zone + 1), now, out _, out _).ShouldBeFalse();
            }
            peak = Math.Max(peak, held.Count);
            if (step % 97 == 0 || step == steps - 1) Check();
        }

        void Forget(int k)
        {
            ConnEntry e = held[k];
            held.Remove(k);
            order.Remove(e);
            index.Remove(e);
        }

        void Check()
        {
            table.Count.ShouldBe(held.Count);
            table.Entries.ShouldBe(order);
            var numbers = new HashSet<int>();
            foreach (ConnEntry e in order)
            {
                numbers.Add(e.TableNumber).ShouldBeTrue("two entries numbered " + e.TableNumber);
                table.ByNumber(e.TableNumber).ShouldBeSameAs(e);
                ushort zone = Connection(index[e]).Zone;
                if (e.Timeout <= now) continue;
                table.TryFind(e.Original, zone, now, out ConnEntry a, out _).ShouldBeTrue();
                a.ShouldBeSameAs(e);
                table.TryFind(e.Reply, zone, now, out ConnEntry b, out _).ShouldBeTrue();
                b.ShouldBeSameAs(e);
            }
            table.NumbersGiven.ShouldBeLessThanOrEqualTo(peak);
            // NAT's by-source chains, oldest first, of a few entries' source keys.
            for (int k = 0; k < 8 && order.Count > 0; k++)
            {
                ConnEntry e = order[rnd.Next(order.Count)];
                ConnTuple t = e.Original;
                List<ConnEntry> want = order.Where(x => x.Has(ConnStatus.SrcNatDone) && x.Original.Protocol == t.Protocol
                    && x.Original.Source == t.Source && x.Original.SourcePort == t.SourcePort && x.Original.Family == t.Family).ToList();
                table.BySource(t).ShouldBe(want);
            }
        }
    }

    /// <summary>
    /// Many entries in a table that starts small: the entries by number double many times (each time every slot's number
    /// field widens by a bit taken from its tag) while the slot array doubles and is rehashed; all are found, a removal
    /// leaves the rest found, and a number given back is the next one taken.
    /// </summary>
    [Fact]
    public void Numbers_grow_and_are_reused()
    {
        var table = new ConntrackTable();
        table.UseBuckets(64);
        var entries = new List<ConnEntry>();
        for (int i = 0; i < 40000; i++)
        {
            var o = new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0A000000u + (uint)(i >> 8), 0x0B000001u, (ushort)(1000 + i), 443);
            o.TryInvert(out ConnTuple r);
            var ct = new ConnEntry(o, r) { Timeout = 100 };
            table.TryInsert(ct, 0).ShouldBeTrue();
            ct.TableNumber.ShouldBe(i);
            entries.Add(ct);
        }
        table.NumbersGiven.ShouldBe(40000);
        foreach (ConnEntry ct in entries)
        {
            table.TryFindV4(IpProtocol.Tcp, (uint)ct.Reply.Source, (uint)ct.Reply.Destination, ct.Reply.SourcePort, ct.Reply.DestinationPort, -1, 0, out ConnEntry hit, out ConnDirection dir).ShouldBeTrue();
            hit.ShouldBeSameAs(ct);
            dir.ShouldBe(ConnDirection.Reply);
        }
        ConnEntry gone = entries[12345];
        table.Remove(gone);
        table.TryFind(gone.Original, 0, 0, out _, out _).ShouldBeFalse();
        table.ByNumber(12345).ShouldBeNull();
        var o2 = new ConnTuple(IpFamily.V4, IpProtocol.Udp, 0x0C000001u, 0x0C000002u, 5, 6);
        o2.TryInvert(out ConnTuple r2);
        var next = new ConnEntry(o2, r2) { Timeout = 100 };
        table.TryInsert(next, 0).ShouldBeTrue();
        next.TableNumber.ShouldBe(12345);
        table.NumbersGiven.ShouldBe(40000);
        foreach (ConnEntry ct in entries)
        {
            if (ReferenceEquals(ct, gone)) continue;
            table.TryFind(ct.Original, 0, 0, out ConnEntry hit, out _).ShouldBeTrue();
            hit.ShouldBeSameAs(ct);
        }
        table.TryFind(o2, 0, 0, out ConnEntry n2, out _).ShouldBeTrue();
        n2.ShouldBeSameAs(next);
    }
}
