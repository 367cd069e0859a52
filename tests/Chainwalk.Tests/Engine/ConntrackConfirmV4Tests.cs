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

    public static TheoryData<Holder, bool> Cases()
    {
        var d = new TheoryData<Holder, bool>();
        foreach (Holder h in Enum.GetValues<Holder>())
        {
            d.Add(h, false);
            d.Add(h, true);
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Fields_confirmation_agrees_with_clash_test_then_insert(Holder holder, bool natted)
    {
        var fast = new ConntrackTable();
        var reference = new ConntrackTable();
        ConnTuple o = new(IpFamily.V4, IpProtocol.Tcp, 0xC0A80105, 0x0A600001, 40000, 80);
        // With a NAT binding the reply is no longer the original's inverse (DNAT to 10.244.0.7:8080).
        ConnTuple r = natted ? new(IpFamily.V4, IpProtocol.Tcp, 0x0AF40007, 0xC0A80105, 8080, 40000) : new(IpFamily.V4, IpProtocol.Tcp, 0x0A600001, 0xC0A80105, 80, 40000);
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

    private static ConnTuple Inverse(ConnTuple t) => t.TryInvert(out ConnTuple i) ? i : throw new InvalidOperationException();
}
