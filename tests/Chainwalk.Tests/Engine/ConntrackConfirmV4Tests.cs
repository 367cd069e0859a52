using Chainwalk.Conntrack;
using Chainwalk.Net;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The confirmation of a new IPv4 connection (<see cref="ConntrackTable.TryInsert"/>), which probes and stores from the
/// entry's fields, against its definition (__nf_conntrack_confirm: refused when a live entry holds either tuple, an expired
/// holder removed; else inserted under both): <see cref="ConntrackTable.Clashes"/> then <see cref="ConntrackTable.Insert"/>
/// on a second table given the same entries. Result, entries, and what each tuple finds afterwards agree.
/// </summary>
public class ConntrackConfirmV4Tests
{
    private const double Now = 100;

    /// <summary>The holder already in the table: none, or an entry holding the new connection's original or reply tuple (or its NAT-changed reply), live or expired.</summary>
    public enum Holder
    {
        None,
        OriginalLive,
        OriginalExpired,
        ReplyLive,
        ReplyExpired,
        NattedReplyLive,
        Unrelated,
    }

    public static TheoryData<Holder, bool> Cases() => EachWithAndWithoutNat<Holder>();

    /// <summary>Every value of <typeparamref name="T"/>, without and with a NAT binding.</summary>
    private static TheoryData<T, bool> EachWithAndWithoutNat<T>() where T : struct, Enum
    {
        var d = new TheoryData<T, bool>();
        foreach (T v in Enum.GetValues<T>())
        {
            d.Add(v, false);
            d.Add(v, true);
        }
        return d;
    }

    /// <summary>The new connection's original tuple (192.168.1.5:40000 to 10.96.0.1:80).</summary>
    private static readonly ConnTuple NewOriginal = new(IpFamily.V4, IpProtocol.Tcp, 0xC0A80105, 0x0A600001, 40000, 80);

    /// <summary>Its reply: the inverse, or with a NAT binding (DNAT to 10.244.0.7:8080) no longer the inverse.</summary>
    private static ConnTuple NewReply(bool natted) => natted
        ? new(IpFamily.V4, IpProtocol.Tcp, 0x0AF40007, 0xC0A80105, 8080, 40000)
        : new(IpFamily.V4, IpProtocol.Tcp, 0x0A600001, 0xC0A80105, 80, 40000);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Fields_confirmation_agrees_with_clash_test_then_insert(Holder holder, bool natted)
    {
        var fast = new ConntrackTable();
        var reference = new ConntrackTable();
        ConnTuple o = NewOriginal;
        ConnTuple r = NewReply(natted);
        (ConnTuple ho, ConnTuple hr, double timeout)? held = holder switch
        {
            Holder.OriginalLive => (o, Inverse(o), Now + 10),
            Holder.OriginalExpired => (o, Inverse(o), Now - 1),
            Holder.ReplyLive => (Inverse(r), r, Now + 10),
            Holder.ReplyExpired => (Inverse(r), r, Now - 1),
            Holder.NattedReplyLive => (new(IpFamily.V4, IpProtocol.Tcp, 0xC0A80106, 0x0AF40007, 1234, 8080), r, Now + 10),
            Holder.Unrelated => (new(IpFamily.V4, IpProtocol.Udp, 0x01020304, 0x05060708, 53, 53), new(IpFamily.V4, IpProtocol.Udp, 0x05060708, 0x01020304, 53, 53), Now + 10),
            _ => null,
        };
        foreach (ConntrackTable t in new[] { fast, reference })
        {
            if (held is not { } h) continue;
            t.Insert(new ConnEntry(h.ho, h.hr) { Timeout = h.timeout });
        }
        ConnEntry a = new(o, r) { Timeout = Now + 120 }, b = new(o, r) { Timeout = Now + 120 };

        bool inserted = fast.TryInsert(a, Now);
        bool expected = !reference.Clashes(b, Now);
        if (expected) reference.Insert(b);

        inserted.ShouldBe(expected);
        fast.Count.ShouldBe(reference.Count);
        a.IsConfirmed.ShouldBe(b.IsConfirmed);
        foreach (ConnTuple t in new[] { o, r, Inverse(o), Inverse(r) })
        {
            bool ff = fast.TryFind(t, 0, Now, out ConnEntry fe, out ConnDirection fd);
            bool rf = reference.TryFind(t, 0, Now, out ConnEntry re, out ConnDirection rd);
            ff.ShouldBe(rf, t.ToString());
            if (!ff) continue;
            fd.ShouldBe(rd, t.ToString());
            (fe == a).ShouldBe(re == b, t.ToString());
        }
    }

    /// <summary>What happens to the table between the probes that found the new connection's tuples free and its confirmation.</summary>
    public enum Between
    {
        Nothing,
        OriginalHolderInserted,
        ReplyHolderInserted,
        ExpiredReplyHolderInserted,
        UnrelatedInserted,
        UnrelatedRemoved,
        ReplyHolderInsertedThenRemoved,
        Flushed,
    }

    public static TheoryData<Between, bool> BetweenCases() => EachWithAndWithoutNat<Between>();

    /// <summary>
    /// Confirmation skips the probe of a tuple the table found free (the lookup's miss, NAT's probe of its chosen reply)
    /// while nothing was stored since; whatever happens in between, the result and the table agree with the clash test
    /// then insert on a table that went through the same changes.
    /// </summary>
    [Theory]
    [MemberData(nameof(BetweenCases))]
    public void Confirmation_after_free_probes_agrees_with_clash_test_then_insert(Between between, bool natted)
    {
        var fast = new ConntrackTable();
        var reference = new ConntrackTable();
        ConnTuple o = NewOriginal;
        ConnTuple r = NewReply(natted);
        ConnTuple u = new(IpFamily.V4, IpProtocol.Udp, 0x01020304, 0x05060708, 53, 53);
        var unrelated = new Dictionary<ConntrackTable, ConnEntry>();
        foreach (ConntrackTable t in new[] { fast, reference })
        {
            var e = new ConnEntry(u, Inverse(u)) { Timeout = Now + 10 };
            t.Insert(e);
            unrelated[t] = e;
        }
        // The probes a new connection's packet makes: its lookup (a miss), then NAT's of the reply it chose.
        fast.TryFindV4(o.Protocol, (uint)o.Source, (uint)o.Destination, o.SourcePort, o.DestinationPort, -1, Now, out _, out _).ShouldBeFalse();
        fast.TryFindV4(r.Protocol, (uint)r.Source, (uint)r.Destination, r.SourcePort, r.DestinationPort, -1, Now, out _, out _).ShouldBeFalse();
        foreach (ConntrackTable t in new[] { fast, reference })
        {
            switch (between)
            {
                case Between.OriginalHolderInserted:
                    t.Insert(new ConnEntry(o, Inverse(o)) { Timeout = Now + 10 });
                    break;
                case Between.ReplyHolderInserted:
                    t.Insert(new ConnEntry(Inverse(r), r) { Timeout = Now + 10 });
                    break;
                case Between.ExpiredReplyHolderInserted:
                    t.Insert(new ConnEntry(Inverse(r), r) { Timeout = Now - 1 });
                    break;
                case Between.UnrelatedInserted:
                    t.Insert(new ConnEntry(new(IpFamily.V4, IpProtocol.Udp, 0x01020305, 0x05060708, 53, 53), new(IpFamily.V4, IpProtocol.Udp, 0x05060708, 0x01020305, 53, 53)) { Timeout = Now + 10 });
                    break;
                case Between.UnrelatedRemoved:
                    t.Remove(unrelated[t]);
                    break;
                case Between.ReplyHolderInsertedThenRemoved:
                    var holder = new ConnEntry(Inverse(r), r) { Timeout = Now + 10 };
                    t.Insert(holder);
                    t.Remove(holder);
                    break;
                case Between.Flushed:
                    t.Clear();
                    break;
            }
        }
        ConnEntry a = new(o, r) { Timeout = Now + 120 }, b = new(o, r) { Timeout = Now + 120 };

        bool inserted = fast.TryInsert(a, Now);
        bool expected = !reference.Clashes(b, Now);
        if (expected) reference.Insert(b);

        inserted.ShouldBe(expected);
        inserted.ShouldBe(between is not (Between.OriginalHolderInserted or Between.ReplyHolderInserted));
        fast.Count.ShouldBe(reference.Count);
        foreach (ConnTuple t in new[] { o, r, Inverse(o), Inverse(r), u })
        {
            bool ff = fast.TryFind(t, 0, Now, out ConnEntry fe, out ConnDirection fd);
            bool rf = reference.TryFind(t, 0, Now, out ConnEntry re, out ConnDirection rd);
            ff.ShouldBe(rf, t.ToString());
            if (!ff) continue;
            fd.ShouldBe(rd, t.ToString());
            (fe == a).ShouldBe(re == b, t.ToString());
        }
    }

    public static TheoryData<string, string> OriginalPairs => new()
    {
        { "tcp 10.0.0.1:1000 > 10.0.0.2:80", "tcp 10.0.0.1:1000 > 10.0.0.2:80" },
        { "tcp 10.0.0.1:1000 > 10.0.0.2:80", "udp 10.0.0.1:1000 > 10.0.0.2:80" },
        { "tcp 10.0.0.1:1000 > 10.0.0.2:80", "tcp 10.0.0.3:1000 > 10.0.0.2:80" },
        { "tcp 10.0.0.1:1000 > 10.0.0.2:80", "tcp 10.0.0.1:1000 > 10.0.0.4:80" },
        { "tcp 10.0.0.1:1000 > 10.0.0.2:80", "tcp 10.0.0.1:1001 > 10.0.0.2:80" },
        { "tcp 10.0.0.1:1000 > 10.0.0.2:80", "tcp 10.0.0.1:1000 > 10.0.0.2:81" },
        { "tcp 10.0.0.1:1000 > 10.0.0.2:80", "tcp6 ::ffff:a00:1:1000 > ::ffff:a00:2:80" },
        { "tcp6 2001:db8::1:1000 > 2001:db8::2:80", "tcp6 2001:db8::1:1000 > 2001:db8::2:80" },
        { "tcp6 2001:db8::1:1000 > 2001:db8::2:80", "tcp6 2001:db8::1:1000 > 2001:db8::3:80" },
    };

    /// <summary>NAT's same-flow test (nf_conntrack_tuple_taken: identical original tuples) from the fields agrees with comparing the tuples.</summary>
    [Theory]
    [MemberData(nameof(OriginalPairs))]
    public void OriginalEquals_agrees_with_the_tuples(string a, string b)
    {
        ConnTuple ta = Tuple(a), tb = Tuple(b);
        var ea = new ConnEntry(ta, Inverse(ta));
        var eb = new ConnEntry(tb, Inverse(tb));
        ea.OriginalEquals(eb).ShouldBe(ta == tb);
        eb.OriginalEquals(ea).ShouldBe(ta == tb);
    }

    /// <summary>"tcp A:P > B:Q" (IPv4) or "tcp6 A:P > B:Q" (IPv6, the port after the last colon).</summary>
    private static ConnTuple Tuple(string text)
    {
        string[] w = text.Split(' ');
        IpFamily f = w[0].EndsWith('6') ? IpFamily.V6 : IpFamily.V4;
        byte proto = w[0].StartsWith("udp", StringComparison.Ordinal) ? IpProtocol.Udp : IpProtocol.Tcp;
        (UInt128 sa, ushort sp) = Endpoint(w[1], f);
        (UInt128 da, ushort dp) = Endpoint(w[3], f);
        return new ConnTuple(f, proto, sa, da, sp, dp);
    }

    private static (UInt128, ushort) Endpoint(string text, IpFamily f)
    {
        int colon = text.LastIndexOf(':');
        IpNet.TryParseStrict(text[..colon], f, out UInt128 a).ShouldBeTrue(text);
        return (a, ushort.Parse(text[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }

    private static ConnTuple Inverse(ConnTuple t) => t.TryInvert(out ConnTuple i) ? i : throw new InvalidOperationException();
}
