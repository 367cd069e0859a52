using System.Reflection;
using System.Runtime.CompilerServices;
using Chainwalk.Compat;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Chainwalk.Tracing;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The conntrack table's pool (<see cref="ConntrackTable.NewEntry"/>): an entry removed from the table (flushed, deleted,
/// expired) becomes a later new connection after two packet boundaries, and nothing of the connection it held before shows:
/// the new connection's packets, its conntrack listing and the events are what a host that never had the first
/// connection gives.
/// </summary>
public class ConntrackPoolTests
{
    /// <summary>
    /// A gateway whose first connection (LAN client 10.0.1.10) collects every kind of state: zone, helper and event mask
    /// (CT), connmark, a label, accounting, MASQUERADE's binding (by-source link, device), TCP state, the flow path's memos.
    /// The second connection comes from outside to the port forward (DNAT) and has none of the first's marks.
    /// </summary>
    private const string Rules = """
        *raw
        :PREROUTING ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        -A PREROUTING -s 10.0.1.10/32 -p tcp -j CT --zone-orig 5 --helper ftp --ctevents new,destroy
        COMMIT
        *mangle
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -s 10.0.1.10/32 -j CONNMARK --set-mark 0x2a
        -A PREROUTING -s 10.0.1.10/32 -m connlabel --label 9 --set
        COMMIT
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -i eth1 -j ACCEPT
        -A FORWARD -i eth0 -d 10.0.1.20/32 -p tcp -m tcp --dport 80 -j ACCEPT
        -A FORWARD -m connmark --mark 0x2a -j LOG --log-prefix "old mark: "
        -A FORWARD -m connlabel --label 9 -j LOG --log-prefix "old label: "
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -d 198.51.100.2/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.1.20:80
        -A POSTROUTING -o eth0 -j MASQUERADE
        COMMIT
        """;

    private sealed class Gateway
    {
        public Gateway()
        {
            Host = EngineHost.Create(Rules, "", [.. Chainwalk.Tests.Nat.NatRig.Gateway4, "sysctl -w net.netfilter.nf_conntrack_acct=1"]);
            Nf = new Netfilter(Host);
            Ct = ConntrackLoader.Enable(Nf) ?? throw new InvalidOperationException("conntrack not loaded");
            Events = ConntrackEvents.For(Nf)!;
        }

        public VirtualHost Host { get; }

        public Netfilter Nf { get; }

        public ConntrackHooks Ct { get; }

        public ConntrackEvents Events { get; }

        public List<string> EventLines => Nf.State.Get(ConntrackCompat.ConntrackEventLog.Key, () => new ConntrackCompat.ConntrackEventLog()).Lines;

        public PacketResult Send(string iface, byte[] bytes, double now)
        {
            PacketResult r = Nf.Process(EngineHost.In(iface, bytes, now));
            Events.After(r, Nf.State.Now);
            return r;
        }

        /// <summary>A packet every host drops before any hook (not an IP packet): only a packet boundary.</summary>
        public void Boundary(double now) => Send("eth1", [0x00, 0x01, 0x02], now);
    }

    private static string Describe(PacketResult r) =>
        string.Join(',', r.Fate) + " ct=" + r.CtState + " err=" + r.Error + " logs=" + string.Join('|', r.Logs)
        + string.Concat(r.Outputs.Select(o => " out " + o.Interface + " " + Convert.ToHexString(o.Bytes)));

    /// <summary>The first connection: a masqueraded TCP connection with its handshake and data both ways (flow memos made).</summary>
    private static ConnEntry OpenOld(Gateway g, ref double now)
    {
        PacketResult syn = g.Send("eth1", PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Tcp(40000, 80, TcpFlags.Syn, seq: 1000).Build(), now += 1);
        var ct = (ConnEntry)syn.Connection!;
        ConnTuple reply = ct.Reply;
        byte[] Server(TcpFlags f, uint seq, uint ack, int len) =>
            PacketBuilder.Ipv4((uint)reply.Source, (uint)reply.Destination).Tcp(reply.SourcePort, reply.DestinationPort, f, seq: seq, ack: ack).PayloadLength(len).Build();
        byte[] Client(TcpFlags f, uint seq, uint ack, int len) =>
            PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Tcp(40000, 80, f, seq: seq, ack: ack).PayloadLength(len).Build();
        g.Send("eth0", Server(TcpFlags.Syn | TcpFlags.Ack, 5000, 1001, 0), now += 1);
        g.Send("eth1", Client(TcpFlags.Ack, 1001, 5001, 0), now += 1);
        g.Send("eth1", Client(TcpFlags.Ack | TcpFlags.Psh, 1001, 5001, 100), now += 1);
        g.Send("eth1", Client(TcpFlags.Ack | TcpFlags.Psh, 1101, 5001, 100), now += 1);
        g.Send("eth0", Server(TcpFlags.Ack | TcpFlags.Psh, 5001, 1201, 50), now += 1);
        g.Send("eth0", Server(TcpFlags.Ack | TcpFlags.Psh, 5051, 1201, 50), now += 1);
        // The state the test means to see reset.
        ct.Mark.ShouldBe(0x2au);
        ct.Zone.ShouldBe((ushort)5);
        ct.Helper.ShouldBe("ftp");
        ct.Labels.ShouldNotBe(UInt128.Zero);
        ct.MasqueradeDevice.ShouldBe("eth0");
        ct.Has(ConnStatus.Assured | ConnStatus.SrcNatDone).ShouldBeTrue();
        // The flow path saw its established packets (no memo: these rule sets are not flow-stable; Reuse_leaves_every_field… covers Flow).
        ct.FlowSeen.ShouldNotBe((byte)0);
        return ct;
    }

    /// <summary>The second connection: from outside to the port forward, handshake and data; the results of its packets.</summary>
    private static List<string> OpenNew(Gateway g, double now)
    {
        var seen = new List<string>();
        PacketResult syn = g.Send("eth0", PacketBuilder.Ipv4("203.0.113.7", "198.51.100.2").Tcp(50000, 8080, TcpFlags.Syn, seq: 7000).Build(), now += 1);
        seen.Add(Describe(syn));
        ConnTuple reply = ((ConnEntry)syn.Connection!).Reply;
        seen.Add(Describe(g.Send("eth1", PacketBuilder.Ipv4((uint)reply.Source, (uint)reply.Destination).Tcp(reply.SourcePort, reply.DestinationPort, TcpFlags.Syn | TcpFlags.Ack, seq: 9000, ack: 7001).Build(), now += 1)));
        for (int i = 0; i < 3; i++)
            seen.Add(Describe(g.Send("eth0", PacketBuilder.Ipv4("203.0.113.7", "198.51.100.2").Tcp(50000, 8080, TcpFlags.Ack, seq: 7001, ack: 9001).Build(), now += 1)));
        return seen;
    }

    public static TheoryData<string> Removals => new() { "flush", "delete", "expire" };

    [Theory]
    [MemberData(nameof(Removals))]
    public void A_reused_entry_carries_nothing_of_its_old_connection(string removal)
    {
        var pooled = new Gateway();
        double now = 1000;
        ConnEntry old = OpenOld(pooled, ref now);
        switch (removal)
        {
            case "flush":
                pooled.Ct.Table.Clear();
                break;
            case "delete":
                pooled.Ct.Table.Remove(old);
                break;
            case "expire":
                // Past the established timeout (5 days): the gc worker removes it.
                now += 432_001;
                pooled.Ct.Table.Expire(now);
                break;
        }
        pooled.Ct.Table.Count.ShouldBe(0);
        pooled.Boundary(now += 1);
        pooled.Boundary(now += 1);
        pooled.Ct.Table.PoolCounts.Free.ShouldBe(1);

        // The reference: a host that never had the first connection, the same packets at the same times.
        var fresh = new Gateway();
        List<string> expected = OpenNew(fresh, now);
        List<string> got = OpenNew(pooled, now);
        double end = now + 10;

        got.ShouldBe(expected);
        pooled.Ct.Table.Entries.Single().ShouldBeSameAs(old, "the removed entry was reused");
        ConntrackStore.Format(pooled.Ct.Table, end).ShouldBe(ConntrackStore.Format(fresh.Ct.Table, end));
        string.Join('\n', pooled.Ct.Table.List(end)).ShouldBe(string.Join('\n', fresh.Ct.Table.List(end)));
        ConnEntry reference = fresh.Ct.Table.Entries.Single();
        (old.Flow is null).ShouldBe(reference.Flow is null);
        old.FlowSeen.ShouldBe(reference.FlowSeen);
        // NAT's by-source index holds the new connection only where it belongs: the old client's source finds nothing.
        pooled.Ct.Table.BySource(new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0A00010Au, 0, 40000, 80)).ShouldBeEmpty();
    }

    [Fact]
    public void Events_after_reuse_are_the_old_connections_destroy_then_the_new_ones_new()
    {
        var g = new Gateway();
        double now = 1000;
        ConnEntry old = OpenOld(g, ref now);
        g.Ct.Table.Remove(old);
        g.Boundary(now += 1);
        g.Boundary(now += 1);
        int before = g.EventLines.Count;
        OpenNew(g, now);
        g.Ct.Table.Entries.Single().ShouldBeSameAs(old);
        List<string> lines = g.EventLines.Skip(before).ToList();
        // The DESTROY of the old connection was logged when it left (before the boundaries), the new one is NEW, then UPDATEs.
        g.EventLines.Take(before).Count(l => l.StartsWith("[DESTROY] ", StringComparison.Ordinal) && l.Contains("src=10.0.1.10", StringComparison.Ordinal)).ShouldBe(1);
        lines[0].ShouldStartWith("[NEW] ");
        lines[0].ShouldContain("src=203.0.113.7");
        lines.ShouldAllBe(l => !l.Contains("10.0.1.10", StringComparison.Ordinal));
    }

    [Fact]
    public void A_connection_removed_and_replaced_in_one_packet_gets_its_destroy_event()
    {
        // A SYN that reopens a closed connection's tuple (TCP's Repeat: the old entry is removed and a new one made in the
        // same packet): the table's size does not change and the packet has a connection, yet the old one's DESTROY is due.
        var g = new Gateway();
        double now = 1000;
        byte[] Client(TcpFlags f, uint seq, uint ack) => PacketBuilder.Ipv4("10.0.1.30", "93.184.216.34").Tcp(41000, 80, f, seq: seq, ack: ack).Build();
        PacketResult syn = g.Send("eth1", Client(TcpFlags.Syn, 1000, 0), now += 1);
        ConnTuple reply = ((ConnEntry)syn.Connection!).Reply;
        byte[] Server(TcpFlags f, uint seq, uint ack) => PacketBuilder.Ipv4((uint)reply.Source, (uint)reply.Destination).Tcp(reply.SourcePort, reply.DestinationPort, f, seq: seq, ack: ack).Build();
        g.Send("eth0", Server(TcpFlags.Syn | TcpFlags.Ack, 5000, 1001), now += 1);
        g.Send("eth1", Client(TcpFlags.Ack, 1001, 5001), now += 1);
        g.Send("eth1", Client(TcpFlags.Fin | TcpFlags.Ack, 1001, 5001), now += 1);
        g.Send("eth0", Server(TcpFlags.Fin | TcpFlags.Ack, 5001, 1002), now += 1);
        g.Send("eth1", Client(TcpFlags.Ack, 1002, 5002), now += 1);
        ((ConnEntry)syn.Connection!).TcpState.ShouldBe(TcpCtState.TimeWait);
        int before = g.EventLines.Count;
        PacketResult again = g.Send("eth1", Client(TcpFlags.Syn, 90000, 0), now += 1);
        again.Connection.ShouldNotBeSameAs(syn.Connection);
        g.Ct.Table.Count.ShouldBe(1);
        List<string> lines = g.EventLines.Skip(before).ToList();
        lines.Count(l => l.StartsWith("[DESTROY] ", StringComparison.Ordinal)).ShouldBe(1);
        lines.Count(l => l.StartsWith("[NEW] ", StringComparison.Ordinal)).ShouldBe(1);
    }

    [Fact]
    public void A_removed_entry_is_reused_from_the_second_packet_after_its_removal()
    {
        var g = new Gateway();
        double now = 1000;
        ConnEntry old = OpenOld(g, ref now);
        g.Ct.Table.Clear();
        // Removed between packets N and N+1: packet N+1 makes a new entry (its observers, run after packet N+1, may still
        // look at the removed one), packet N+2 reuses it.
        var made = new List<object>();
        for (int i = 0; i < 2; i++)
        {
            PacketResult r = g.Send("eth1", PacketBuilder.Ipv4("10.0.1." + (40 + i), "93.184.216.34").Udp(5000, 53).Build(), now += 1);
            made.Add(r.Connection!);
        }
        made[0].ShouldNotBeSameAs(old);
        made[1].ShouldBeSameAs(old);
    }

    [Fact]
    public void A_packet_that_removes_an_entry_does_not_get_it_back()
    {
        // The removal and the new connection in one packet (an expired entry met by the lookup of its own tuple): the
        // packet's new entry is another object, so the removed one is not changed while this packet may still see it.
        var g = new Gateway();
        double now = 1000;
        PacketResult first = g.Send("eth1", PacketBuilder.Ipv4("10.0.1.50", "93.184.216.34").Udp(5000, 53).Build(), now += 1);
        var old = (ConnEntry)first.Connection!;
        g.Boundary(now += 1);
        g.Boundary(now += 1);
        PacketResult second = g.Send("eth1", PacketBuilder.Ipv4("10.0.1.50", "93.184.216.34").Udp(5000, 53).Build(), now += 100);
        second.Connection.ShouldNotBeSameAs(old);
        old.Has(ConnStatus.Dying).ShouldBeTrue();
        old.Original.ShouldBe(((ConnEntry)second.Connection!).Original);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Confirmation_without_a_context_inserts_or_leaves_a_clash_to_the_explained_path(bool clash)
    {
        // Netfilter.ConfirmConntrack tries IConntrackHooks.TryConfirmQuick first and rents a context for Confirm only when
        // it refuses: a refusal must leave the table as it was, so that Confirm meets the same clash and explains it.
        var g = new Gateway();
        ConntrackTable table = g.Ct.Table;
        var o = new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0A00010Au, 0x5DB8D822u, 5000, 80);
        o.TryInvert(out ConnTuple r).ShouldBeTrue();
        ConnEntry? holder = null;
        if (clash)
        {
            holder = new ConnEntry(o, r) { Timeout = 1e9 };
            table.Insert(holder);
        }
        var ct = new ConnEntry(o, r) { Timeout = 1e9 };
        var skb = new Skb(PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Tcp(5000, 80, TcpFlags.Syn).BuildPacket()) { Conntrack = ct, CtInfo = CtInfo.New };
        g.Ct.TryConfirmQuick(skb, 1000).ShouldBe(!clash);
        ct.IsConfirmed.ShouldBe(!clash);
        table.Count.ShouldBe(1);
        table.Entries.Single().ShouldBeSameAs(clash ? holder : ct);
        if (!clash) return;
        var ctx = new PacketContext(g.Nf, skb);
        ctx.Reset(skb, Chainwalk.Rules.Hook.Postrouting);
        g.Ct.Confirm(ctx).ShouldBeFalse();
        table.Entries.Single().ShouldBeSameAs(holder);
    }

    /// <summary>
    /// Every field of <see cref="ConnEntry"/> (found by reflection, so a field added later is covered) set to a value other
    /// than its default, then <see cref="ConnEntry.Reuse"/>: the entry equals a new one field by field.
    /// </summary>
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void Reuse_leaves_every_field_as_a_new_entry_has_it(bool oldV6, bool newV6)
    {
        ConnTuple o4 = new(IpFamily.V4, IpProtocol.Udp, 0x0A000001, 0x0A000002, 1000, 53);
        ConnTuple o6 = new(IpFamily.V6, IpProtocol.Udp, V6("2001:db8::1"), V6("2001:db8::2"), 1000, 53);
        ConnTuple oldTuple = oldV6 ? o6 : o4;
        oldTuple.TryInvert(out ConnTuple oldReply).ShouldBeTrue();
        var e = new ConnEntry(oldTuple, oldReply);
        FieldInfo[] fields = EveryFieldSet(e);
        foreach (FieldInfo f in fields) IsDefault(f.GetValue(e)).ShouldBeFalse("field " + f.Name + " could not be given a non-default value");

        ConnTuple newTuple = newV6 ? o6 with { SourcePort = 2000 } : o4 with { SourcePort = 2000 };
        newTuple.TryInvert(out ConnTuple newReply).ShouldBeTrue();
        e.Reuse(newTuple, newReply);
        var fresh = new ConnEntry(newTuple, newReply);
        foreach (FieldInfo f in fields)
        {
            object? got = f.GetValue(e), want = f.GetValue(fresh);
            if (f.Name == "_v6")
            {
                // The IPv6 side object: made again for an IPv6 tuple (its addresses compared through the tuples below).
                (got is null).ShouldBe(want is null);
                continue;
            }
            Same(got, want).ShouldBeTrue("field " + f.Name + " after reuse: " + got + ", a new entry: " + want);
        }
        e.Original.ShouldBe(newTuple);
        e.Reply.ShouldBe(newReply);
    }

    /// <summary>
    /// <see cref="ConnEntry.ReuseV4"/> and the fields constructor (a new IPv4 connection's entry written from the packet's
    /// fields, the reply their inverse) leave every field as <c>new ConnEntry(tuple, inverse)</c> does, whatever the entry
    /// held before (an IPv6 connection included), for each protocol with ports.
    /// </summary>
    [Theory]
    [InlineData(false, IpProtocol.Tcp)]
    [InlineData(true, IpProtocol.Tcp)]
    [InlineData(false, IpProtocol.Udp)]
    [InlineData(true, IpProtocol.UdpLite)]
    [InlineData(false, IpProtocol.Sctp)]
    [InlineData(true, (byte)33)]
    public void ReuseV4_leaves_every_field_as_a_new_entry_of_the_tuple_and_its_inverse(bool oldV6, byte protocol)
    {
        ConnTuple old = oldV6 ? new(IpFamily.V6, IpProtocol.Udp, V6("2001:db8::1"), V6("2001:db8::2"), 1000, 53)
            : new(IpFamily.V4, IpProtocol.Icmp, 0x0A000001, 0x0A000002, 77, 0x0800);
        old.TryInvert(out ConnTuple oldReply).ShouldBeTrue();
        var e = new ConnEntry(old, oldReply);
        FieldInfo[] fields = EveryFieldSet(e);

        ConnTuple tuple = new(IpFamily.V4, protocol, 0xC0A80105, 0x0A600001, 40000, 443);
        tuple.TryInvert(out ConnTuple reply).ShouldBeTrue();
        e.ReuseV4(protocol, 0xC0A80105, 0x0A600001, 40000, 443);
        var byFields = new ConnEntry(protocol, 0xC0A80105, 0x0A600001, 40000, 443);
        var fresh = new ConnEntry(tuple, reply);
        foreach (FieldInfo f in fields)
        {
            object? want = f.GetValue(fresh);
            Same(f.GetValue(e), want).ShouldBeTrue("field " + f.Name + " after ReuseV4: " + f.GetValue(e) + ", a new entry: " + want);
            Same(f.GetValue(byFields), want).ShouldBeTrue("field " + f.Name + " of the fields constructor: " + f.GetValue(byFields) + ", a new entry: " + want);
        }
        e.Original.ShouldBe(tuple);
        e.Reply.ShouldBe(reply);
    }

    /// <summary>Gives every field of <paramref name="e"/> still at its default a non-default value (what a used entry may hold); returns the fields.</summary>
    private static FieldInfo[] EveryFieldSet(ConnEntry e)
    {
        FieldInfo[] fields = typeof(ConnEntry).GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
        foreach (FieldInfo f in fields)
        {
            object? value = f.GetValue(e);
            if (value is not null && !IsDefault(value)) continue;
            f.SetValue(e, NonDefault(f.FieldType));
        }
        return fields;
    }

    private static UInt128 V6(string text) => IpNet.TryParseStrict(text, IpFamily.V6, out UInt128 a) ? a : throw new FormatException(text);

    private static bool Same(object? a, object? b)
    {
        if (a is null || b is null) return a is null && b is null;
        if (a.GetType().IsValueType) return StructEquals(a, b);
        return ReferenceEquals(a, b) || a.Equals(b);
    }

    /// <summary>Value types compared field by field (arrays inside compared by element: TcpConnState's inline buffers).</summary>
    private static bool StructEquals(object a, object b)
    {
        if (a.GetType().IsPrimitive || a.GetType().IsEnum || a is UInt128 or decimal) return a.Equals(b);
        foreach (FieldInfo f in a.GetType().GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
        {
            if (!Same(f.GetValue(a), f.GetValue(b))) return false;
        }
        return true;
    }

    private static bool IsDefault(object? v)
    {
        if (v is null) return true;
        Type t = v.GetType();
        if (!t.IsValueType) return false;
        if (t.IsPrimitive || t.IsEnum || v is UInt128) return v.Equals(Activator.CreateInstance(t));
        foreach (FieldInfo f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
        {
            if (!IsDefault(f.GetValue(v))) return false;
        }
        return true;
    }

    /// <summary>A value of <paramref name="t"/> that is not its default (a struct: its first settable field made non-default).</summary>
    private static object NonDefault(Type t)
    {
        if (t == typeof(bool)) return true;
        if (t.IsEnum) return Enum.ToObject(t, 1);
        if (t == typeof(UInt128)) return (UInt128)7;
        if (t == typeof(double)) return 1.5;
        if (t.IsPrimitive) return Convert.ChangeType(1, t, System.Globalization.CultureInfo.InvariantCulture);
        if (t == typeof(string)) return "x";
        if (t.IsValueType)
        {
            object boxed = Activator.CreateInstance(t)!;
            foreach (FieldInfo f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            {
                if (f.FieldType.IsPrimitive || f.FieldType.IsEnum)
                {
                    f.SetValue(boxed, NonDefault(f.FieldType));
                    return boxed;
                }
            }
            foreach (FieldInfo f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            {
                f.SetValue(boxed, NonDefault(f.FieldType));
                return boxed;
            }
            return boxed;
        }
        if (t.IsArray) return Array.CreateInstance(t.GetElementType()!, 1);
        return RuntimeHelpers.GetUninitializedObject(t);
    }
}
