using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// When a received packet's conntrack slot, fetched as it arrives (<see cref="IConntrackHooks.Prefetch"/>), is read and its
/// entry fetched (<see cref="IConntrackHooks.PrefetchMore"/>; session 10): right before the lookup (<see cref="IConntrackHooks.Track"/>),
/// whichever way the packet goes there (the one pass, or PREROUTING's hooks one by one), so that the parse, the receive
/// checks and the one pass's first steps run while the slot is on its way; never for a packet dropped before its lookup,
/// and never with the token of an earlier packet. Recorded by a tracker that passes every call on to conntrack's and
/// notes the hints and lookups in order. The results are those of conntrack's own tracker (hints decide nothing).
/// Its one-pass counts are its own host's: the plans check that host's and its rule sets' generations, which no other
/// test's edits move (session 11; they were process-wide, and this class ran alone).
/// </summary>
public class ArrivalSlotTests
{
    private const string Rules = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -i eth1 -j ACCEPT
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A POSTROUTING -o eth0 -j MASQUERADE
        COMMIT
        """;

    /// <summary>A raw table whose PREROUTING has a rule (matching nothing here): the one pass is not taken.</summary>
    private const string RawRule = """
        *raw
        :PREROUTING ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        -A PREROUTING -p udp --dport 9 -j ACCEPT
        COMMIT

        """;

    /// <summary>Passes every call on to conntrack's tracker and notes the arrival's hints and the lookups.</summary>
    private sealed class Recording(ConntrackHooks inner) : IConntrackHooks
    {
        public List<string> Calls { get; } = [];

        private long _token = -1;

        public bool Track(PacketContext ctx)
        {
            Calls.Add("track");
            return inner.Track(ctx);
        }

        public bool Confirm(PacketContext ctx) => inner.Confirm(ctx);

        public bool NeedsNatRules(PacketContext ctx) => inner.NeedsNatRules(ctx);

        public bool ApplyNat(PacketContext ctx) => inner.ApplyNat(ctx);

        public void Attach(Skb generated, Skb original) => inner.Attach(generated, original);

        public long Prefetch(ReadOnlySpan<byte> ipPacket)
        {
            _token = inner.Prefetch(ipPacket);
            Calls.Add("prefetch");
            return _token;
        }

        public void PrefetchMore(long token)
        {
            // The token of the packet that arrived last, or another's.
            Calls.Add(token == _token ? "more" : "more(stale)");
            inner.PrefetchMore(token);
        }

        public int Connections => inner.Connections;

        public bool TryRoutedDestination4(Skb skb, out uint destination) => inner.TryRoutedDestination4(skb, out destination);

        public bool NeedsConfirm(Skb skb) => inner.NeedsConfirm(skb);

        public void PacketStarts() => inner.PacketStarts();

        public void PrefetchForward(Skb skb) => inner.PrefetchForward(skb);

        public bool TryConfirmQuick(Skb skb, double now) => inner.TryConfirmQuick(skb, now);
    }

    private static byte[] Client(TcpFlags flags, uint seq, uint ack = 0) =>
        PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Tcp(40000, 80, flags, seq: seq, ack: ack).Build();

    /// <summary>Which way the client's ACK goes: the one pass, the flow path off, or a raw rule (hook by hook either way).</summary>
    public static TheoryData<string, string> Ways => new()
    {
        { "one pass", "prefetch more track" },
        { "flow path off", "prefetch more track" },
        { "raw rule", "prefetch more track" },
    };

    [Theory]
    [MemberData(nameof(Ways))]
    public void The_slot_is_read_once_right_before_the_lookup(string way, string calls)
    {
        VirtualHost host = EngineHost.Create(way == "raw rule" ? RawRule + Rules : Rules, "", Chainwalk.Tests.Nat.NatRig.Gateway4);
        var nf = new Netfilter(host) { FlowPath = way != "flow path off" };
        ConntrackHooks ct = ConntrackLoader.Enable(nf) ?? throw new InvalidOperationException("conntrack not loaded");
        var rec = new Recording(ct);
        nf.Conntrack = rec;
        // The handshake, then two ACKs (the flow's memos and its one-pass plan are made by them).
        nf.Process(EngineHost.In("eth1", Client(TcpFlags.Syn, 1000))).Fate.ShouldBe(["forwarded:eth0"]);
        var entry = (ConnEntry)ct.Table.Entries.Single();
        ConnTuple r = entry.Reply;
        nf.Process(EngineHost.In("eth0", PacketBuilder.Ipv4((uint)r.Source, (uint)r.Destination)
            .Tcp(r.SourcePort, r.DestinationPort, TcpFlags.Syn | TcpFlags.Ack, seq: 5000, ack: 1001).Build())).Fate.ShouldBe(["forwarded:eth1"]);
        nf.Process(EngineHost.In("eth1", Client(TcpFlags.Ack, 1001, 5001))).Fate.ShouldBe(["forwarded:eth0"]);
        nf.Process(EngineHost.In("eth1", Client(TcpFlags.Ack, 1001, 5001))).Fate.ShouldBe(["forwarded:eth0"]);
        long passes = nf.OnePassPackets;
        var reused = new PacketResult();
        for (int i = 0; i < 3; i++)
        {
            rec.Calls.Clear();
            PacketResult res = nf.Process(EngineHost.In("eth1", Client(TcpFlags.Ack, 1001, 5001)), reused);
            res.Fate.ShouldBe(["forwarded:eth0"]);
            res.CtState.ShouldBe("ESTABLISHED");
            string.Join(" ", rec.Calls).ShouldBe(calls);
        }
        (nf.OnePassPackets - passes).ShouldBe(way == "one pass" ? 3 : 0);
    }

    /// <summary>Packets that never reach their lookup, then a packet this host sends: no slot is read for either.</summary>
    public static TheoryData<string> Drops => new()
    {
        "no such interface",
        "interface down",
        "bad header checksum",
    };

    [Theory]
    [MemberData(nameof(Drops))]
    public void A_packet_dropped_before_its_lookup_reads_no_slot_and_leaves_none_to_the_next(string why)
    {
        VirtualHost host = EngineHost.Create(Rules, "", Chainwalk.Tests.Nat.NatRig.Gateway4);
        var nf = new Netfilter(host);
        ConntrackHooks ct = ConntrackLoader.Enable(nf) ?? throw new InvalidOperationException("conntrack not loaded");
        var rec = new Recording(ct);
        nf.Conntrack = rec;
        nf.Process(EngineHost.In("eth1", Client(TcpFlags.Syn, 1000))).Fate.ShouldBe(["forwarded:eth0"]);
        // The same connection's packet (its slot is in use: a token to follow), kept from its lookup.
        string iface = why == "no such interface" ? "eth9" : "eth1";
        if (why == "interface down") host.FindLink("eth1")!.Up = false;
        byte[] bytes = Client(TcpFlags.Ack, 1001);
        if (why == "bad header checksum") bytes[10] ^= 0x5a; // ip_rcv_core drops it (InCsumErrors)
        rec.Calls.Clear();
        PacketResult dropped = nf.Process(EngineHost.In(iface, bytes));
        dropped.Fate.ShouldBe(["dropped"]);
        dropped.CtState.ShouldBeNull();
        string.Join(" ", rec.Calls).ShouldBe("prefetch");
        // A packet this host sends next: hashed as it arrives (Run) and tracked at OUTPUT; no slot read for it, nor the dropped packet's.
        rec.Calls.Clear();
        PacketResult sent = nf.Process(EngineHost.Local(PacketBuilder.Ipv4("198.51.100.2", "203.0.113.7").Tcp(33000, 443, TcpFlags.Syn, seq: 1).Build()));
        sent.Fate.ShouldBe(["sent:eth0"]);
        string.Join(" ", rec.Calls).ShouldBe("prefetch track");
    }
}
