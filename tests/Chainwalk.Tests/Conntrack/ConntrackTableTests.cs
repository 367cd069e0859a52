using Chainwalk.Conntrack;
using Chainwalk.Net;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Conntrack;

/// <summary>
/// The conntrack hash (open addressing, entries found by either tuple and zone) against a plain dictionary model:
/// insertions, lookups in both directions, removals, expiry and re-insertion at a scale that makes the table grow
/// and rehash many times; the by-source chains NAT searches; the compact entry storing IPv4 and IPv6 tuples.
/// </summary>
public class ConntrackTableTests
{
    private static ConnTuple Tuple(Random r, bool v6)
    {
        UInt128 Addr() => v6 ? ((UInt128)0x20010db8UL << 96) | (UInt128)(ulong)r.NextInt64() : (UInt128)(uint)r.Next(1, 1 << 20);
        byte proto = r.Next(3) switch { 0 => IpProtocol.Tcp, 1 => IpProtocol.Udp, _ => IpProtocol.Gre };
        return new ConnTuple(v6 ? IpFamily.V6 : IpFamily.V4, proto, Addr(), Addr(), (ushort)r.Next(65536), (ushort)r.Next(65536));
    }

    [Theory]
    [InlineData(1, 2_000, false)]
    [InlineData(2, 20_000, false)]
    [InlineData(3, 5_000, true)]
    public void Lookups_agree_with_a_dictionary_through_growth_removal_and_reinsertion(int seed, int n, bool v6)
    {
        var r = new Random(seed);
        var table = new ConntrackTable();
        var model = new Dictionary<(ConnTuple, ushort), (ConnEntry, ConnDirection)>();
        var live = new List<ConnEntry>();
        for (int i = 0; i < n; i++)
        {
            ConnTuple o = Tuple(r, v6);
            o.TryInvert(out ConnTuple reply);
            // NAT moves some replies elsewhere, as a binding would.
            if (i % 3 == 0) reply = reply with { Source = reply.Source + 7, SourcePort = (ushort)(reply.SourcePort + 1) };
            var ct = new ConnEntry(o, reply) { Zone = (ushort)(i % 5 == 0 ? 3 : 0), ZoneDirections = (byte)(i % 10 == 0 ? 1 : 0), Timeout = 100 };
            if (model.ContainsKey((ct.Original, ct.ZoneFor(ConnDirection.Original))) || model.ContainsKey((ct.Reply, ct.ZoneFor(ConnDirection.Reply)))) continue;
            table.Insert(ct);
            model[(ct.Original, ct.ZoneFor(ConnDirection.Original))] = (ct, ConnDirection.Original);
            model[(ct.Reply, ct.ZoneFor(ConnDirection.Reply))] = (ct, ConnDirection.Reply);
            live.Add(ct);
            // Every fourth step removes a random live entry.
            if (i % 4 == 3)
            {
                ConnEntry gone = live[r.Next(live.Count)];
                live.Remove(gone);
                table.Remove(gone);
                model.Remove((gone.Original, gone.ZoneFor(ConnDirection.Original)));
                model.Remove((gone.Reply, gone.ZoneFor(ConnDirection.Reply)));
                gone.Has(ConnStatus.Dying).ShouldBeTrue();
            }
        }
        table.Count.ShouldBe(live.Count);
        table.Entries.ShouldBe(live);
        foreach (var ((tuple, zone), (entry, dir)) in model)
        {
            table.TryFind(tuple, zone, 0, out ConnEntry found, out ConnDirection d).ShouldBeTrue();
            found.ShouldBeSameAs(entry);
            d.ShouldBe(dir);
        }
        // Tuples never inserted are not found, in any zone.
        for (int i = 0; i < 2_000; i++)
        {
            ConnTuple t = Tuple(r, v6);
            bool expected = model.ContainsKey((t, 0));
            table.TryFind(t, 0, 0, out _, out _).ShouldBe(expected);
        }
        // The removed ones can come back.
        var again = new ConnEntry(Tuple(r, v6), default) { Timeout = 100 };
        again.Original.TryInvert(out ConnTuple inv);
        again.Reply = inv;
        table.Insert(again);
        table.TryFind(inv, 0, 0, out ConnEntry back, out ConnDirection bd).ShouldBeTrue();
        back.ShouldBeSameAs(again);
        bd.ShouldBe(ConnDirection.Reply);
    }

    [Fact]
    public void An_expired_entry_is_removed_when_met_and_expire_removes_the_rest_oldest_first_order_kept()
    {
        var table = new ConntrackTable();
        var r = new Random(5);
        var entries = new List<ConnEntry>();
        for (int i = 0; i < 300; i++)
        {
            ConnTuple o = Tuple(r, false);
            o.TryInvert(out ConnTuple reply);
            var ct = new ConnEntry(o, reply) { Timeout = i % 2 == 0 ? 10 : 50 };
            table.Insert(ct);
            entries.Add(ct);
        }
        table.TryFind(entries[0].Reply, 0, 20, out _, out _).ShouldBeFalse();
        table.Count.ShouldBe(299);
        table.Expire(20);
        table.Entries.ShouldBe(entries.Where(e => e.Timeout == 50));
        foreach (ConnEntry e in entries.Where(e => e.Timeout == 50)) table.TryFind(e.Original, 0, 20, out _, out _).ShouldBeTrue();
        table.List(20).Count().ShouldBe(150);
    }

    [Fact]
    public void The_same_tuple_in_both_directions_is_found_as_the_later_direction_as_a_dictionary_would()
    {
        // A connection from an address and port to itself: both keys are the same; the reply key wins (inserted last).
        var t = new ConnTuple(IpFamily.V4, IpProtocol.Udp, 0x0a000001, 0x0a000001, 53, 53);
        var table = new ConntrackTable();
        var ct = new ConnEntry(t, t) { Timeout = 10 };
        table.Insert(ct);
        table.TryFind(t, 0, 0, out ConnEntry e, out ConnDirection d).ShouldBeTrue();
        e.ShouldBeSameAs(ct);
        d.ShouldBe(ConnDirection.Reply);
        table.Remove(ct);
        table.TryFind(t, 0, 0, out _, out _).ShouldBeFalse();
        table.Count.ShouldBe(0);
    }

    [Fact]
    public void By_source_lists_the_source_bound_entries_of_one_source_oldest_first()
    {
        var table = new ConntrackTable();
        var list = new List<ConnEntry>();
        for (int i = 0; i < 200; i++)
        {
            // Ten sources, twenty connections each, interleaved.
            var o = new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0xc0a80000u + (uint)(i % 10), 0x08080808, 1000, (ushort)(i + 1));
            o.TryInvert(out ConnTuple reply);
            var ct = new ConnEntry(o, reply) { Timeout = 10, Status = i % 7 == 0 ? ConnStatus.None : ConnStatus.SrcNatDone };
            table.Insert(ct);
            list.Add(ct);
        }
        foreach (ConnEntry gone in list.Where((e, i) => i % 5 == 1).ToList())
        {
            table.Remove(gone);
            list.Remove(gone);
        }
        for (uint s = 0; s < 10; s++)
        {
            var key = new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0xc0a80000u + s, 0, 1000, 0);
            table.BySource(key).ShouldBe(list.Where(e => e.Original.Source == key.Source && e.Has(ConnStatus.SrcNatDone)));
        }
        table.BySource(new ConnTuple(IpFamily.V4, IpProtocol.Udp, 0xc0a80001u, 0, 1000, 0)).ShouldBeEmpty();
    }

    public static TheoryData<string, string, ushort, ushort> Tuples => new()
    {
        { "10.0.0.1", "192.168.1.2", 1234, 80 },
        { "255.255.255.255", "0.0.0.0", 0, 65535 },
        { "2001:db8::1", "fe80::2", 53, 5353 },
        { "::ffff:10.0.0.1", "::1", 1, 2 },
    };

    [Theory]
    [MemberData(nameof(Tuples))]
    public void An_entry_gives_back_the_tuples_it_was_given_and_the_ones_nat_sets_later(string src, string dst, ushort sport, ushort dport)
    {
        IpFamily f = src.Contains(':') ? IpFamily.V6 : IpFamily.V4;
        IpNet.TryParseStrict(src, f, out UInt128 s).ShouldBeTrue();
        IpNet.TryParseStrict(dst, f, out UInt128 d).ShouldBeTrue();
        var o = new ConnTuple(f, IpProtocol.Tcp, s, d, sport, dport);
        o.TryInvert(out ConnTuple reply);
        var ct = new ConnEntry(o, reply);
        ct.Original.ShouldBe(o);
        ct.Reply.ShouldBe(reply);
        ct.Family.ShouldBe(f);
        ct.Protocol.ShouldBe(IpProtocol.Tcp);
        ConnTuple moved = reply with { Destination = reply.Destination + 1, DestinationPort = 40000 };
        ct.Reply = moved;
        ct.Reply.ShouldBe(moved);
        ct.Original.ShouldBe(o);
        ct.Labels.ShouldBe(UInt128.Zero);
        ct.Labels = UInt128.One << 100;
        ct.Labels.ShouldBe(UInt128.One << 100);
        ct.Helper.ShouldBeNull();
        ct.MasqueradeDevice = "eth0";
        ct.MasqueradeDevice.ShouldBe("eth0");
    }

    [Theory]
    [InlineData(11, 3_000, false)]
    [InlineData(12, 3_000, true)]
    public void Try_insert_agrees_with_the_clash_test_then_insert_including_expired_holders(int seed, int n, bool v6)
    {
        // Confirmation's one-pass TryInsert against Clashes + Insert: the same refusals, the same expired entries
        // removed on the way, the same table afterwards. Tuples are drawn from a small pool so that clashes are common.
        var r = new Random(seed);
        var pool = new ConnTuple[n / 4];
        for (int i = 0; i < pool.Length; i++) pool[i] = Tuple(r, v6);
        var a = new ConntrackTable();
        var b = new ConntrackTable();
        for (int i = 0; i < n; i++)
        {
            ConnTuple o = pool[r.Next(pool.Length)];
            ConnTuple reply = r.Next(4) == 0 ? pool[r.Next(pool.Length)] : o.TryInvert(out ConnTuple inv) ? inv : o;
            if (r.Next(50) == 0) reply = o;
            double timeout = r.Next(3) == 0 ? 5 : 100;
            double now = i < n / 2 ? 1 : 10;
            var ea = new ConnEntry(o, reply) { Timeout = timeout };
            var eb = new ConnEntry(o, reply) { Timeout = timeout };
            bool clash = a.Clashes(ea, now);
            if (!clash) a.Insert(ea);
            b.TryInsert(eb, now).ShouldBe(!clash, $"insertion {i}");
            b.Count.ShouldBe(a.Count);
        }
        b.Entries.Select(e => (e.Original, e.Reply, e.Timeout)).ShouldBe(a.Entries.Select(e => (e.Original, e.Reply, e.Timeout)));
        foreach (ConnEntry e in a.Entries)
        {
            b.TryFind(e.Original, 0, 0, out ConnEntry hit, out _).ShouldBeTrue();
            hit.Original.ShouldBe(e.Original);
        }
    }

    [Fact]
    public void Try_insert_moves_an_entry_from_another_table_as_insert_does()
    {
        var t = new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0a000001, 0x0a000002, 1000, 80);
        t.TryInvert(out ConnTuple reply);
        var first = new ConntrackTable();
        var second = new ConntrackTable();
        var ct = new ConnEntry(t, reply) { Timeout = 10 };
        first.Insert(ct);
        second.TryInsert(ct, 0).ShouldBeTrue();
        first.Count.ShouldBe(0);
        second.Count.ShouldBe(1);
        second.TryFind(reply, 0, 0, out ConnEntry e, out ConnDirection d).ShouldBeTrue();
        (e, d).ShouldBe((ct, ConnDirection.Reply));
    }

    [Fact]
    public void By_source_chains_are_searched_newest_first_as_the_kernels_hlist()
    {
        // nf_nat_setup_info adds at the head of the bysource hlist and find_appropriate_src walks it from there.
        var table = new ConntrackTable();
        var entries = new List<ConnEntry>();
        for (int i = 0; i < 5; i++)
        {
            var o = new ConnTuple(IpFamily.V4, IpProtocol.Udp, 0xc0a80001u, 0x08080808u + (uint)i, 5000, 53);
            o.TryInvert(out ConnTuple reply);
            var ct = new ConnEntry(o, reply) { Timeout = 10, Status = ConnStatus.SrcNatDone };
            table.Insert(ct);
            entries.Add(ct);
        }
        var chain = new List<ConnEntry>();
        for (ConnEntry? e = table.BySourceNewest(entries[0].Original); e is not null; e = e.NextBySource) chain.Add(e);
        chain.ShouldBe(Enumerable.Reverse(entries));
        table.Remove(entries[4]);
        table.Remove(entries[2]);
        table.BySource(entries[0].Original).ShouldBe([entries[0], entries[1], entries[3]]);
        table.BySourceNewest(entries[0].Original).ShouldBeSameAs(entries[3]);
    }

    public static TheoryData<string?, bool> MasqueradeDevices => new()
    {
        { null, false }, { "eth0", false }, { "eth0", true }, { "wg-cluster.100", false }, { "a+b", true },
    };

    [Theory]
    [MemberData(nameof(MasqueradeDevices))]
    public void The_masquerade_device_and_counters_survive_a_copy_without_extras_for_the_device_alone(string? device, bool accounting)
    {
        var t = new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0a000001, 0x0a000002, 1000, 80);
        var ct = new ConnEntry(t, t) { MasqueradeDevice = device, Counters = accounting ? new ConnCounter[2] : null };
        ct.Account(ConnDirection.Reply, 60);
        ConnEntry copy = ct.Copy();
        copy.MasqueradeDevice.ShouldBe(device);
        ct.MasqueradeDevice.ShouldBe(device);
        if (accounting)
        {
            copy.Counters![1].Bytes.ShouldBe(60UL);
            copy.Counters.ShouldNotBeSameAs(ct.Counters);
        }
        else
        {
            copy.Counters.ShouldBeNull();
        }
        ct.MasqueradeDevice = null;
        ct.MasqueradeDevice.ShouldBeNull();
        copy.MasqueradeDevice.ShouldBe(device);
    }
}
