using System.Text;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The burst's in-place guard (Burst.cs, <c>SharesBytes</c>): the conntrack token of a packet is hashed from its bytes a
/// few packets before its turn; a packet handed over parsed is rewritten in place (DNAT, the TTL), so an input that shares
/// its byte array with one of the packets run in between is another tuple by its turn and must hash again. Here the
/// rewritten tuple is another tracked connection's (a stale token would look in the old tuple's bucket and miss it), or a
/// tuple a new connection is then made and confirmed for (a stale token would file it under the old tuple's hash, where
/// its later packets do not find it). Compared with the same packets one by one, at every burst size, fetching ahead or not.
/// </summary>
public class BurstGuardTests
{
    /// <summary>
    /// A port forward 198.51.100.2:8080 → 10.0.1.20:80 (connection Y), and 10.0.1.20:80 reached directly from outside
    /// forwarded on to 10.0.1.21:80 (connection Z), 10.0.1.21:80 on to 10.0.1.22:80 (connection W). Y's packet after its
    /// DNAT is Z's original tuple; Z's packet after its DNAT is W's.
    /// </summary>
    private const string Rules = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.1.20:80
        -A PREROUTING -i eth0 -d 10.0.1.20/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.1.21:80
        -A PREROUTING -i eth0 -d 10.0.1.21/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.1.22:80
        COMMIT
        """;

    private const string Client = "203.0.113.11";

    private const ushort ClientPort = 41000;

    /// <summary>A packet of the client (eth0) to <paramref name="dst"/>:<paramref name="dport"/>, every connection's sequence space the same.</summary>
    private static byte[] C(string dst, ushort dport, TcpFlags flags, uint seq, uint ack) =>
        PacketBuilder.Ipv4(Client, dst).Tcp(ClientPort, dport, flags, seq: seq, ack: ack).Build();

    /// <summary>A packet of the server <paramref name="server"/>:80 (eth1) to the client.</summary>
    private static byte[] S(string server, TcpFlags flags, uint seq, uint ack) =>
        PacketBuilder.Ipv4(server, Client).Tcp(80, ClientPort, flags, seq: seq, ack: ack).Build();

    /// <summary>One input of the stream: its interface and its array (the same array object where the stream sends it again).</summary>
    private sealed record Step(string Iface, byte[] Bytes);

    /// <summary>
    /// Y's, then Z's handshake; then arrays of Y's data sent twice at distances 1 to 5 (the second time the array is Z's
    /// packet: ESTABLISHED in Z), with other packets between (at 1 to 4 = BurstSlotAhead the second one's token is taken
    /// before the first has run; at 5 after: the guard is not needed there); one sent three times in a row (the third time it is a new
    /// connection W, confirmed); then W's, Z's and Y's next packets on their own arrays.
    /// </summary>
    private static List<Step> Stream(out List<int> asZ, out int wMade, out int wNext)
    {
        var s = new List<Step>();
        void Add(string iface, byte[] b) => s.Add(new Step(iface, b));
        byte[] YData() => C("198.51.100.2", 8080, TcpFlags.Ack, 1001, 5001);
        byte[] Filler() => S("10.0.1.20", TcpFlags.Ack, 5001, 1001);
        Add("eth0", C("198.51.100.2", 8080, TcpFlags.Syn, 1000, 0));
        Add("eth1", S("10.0.1.20", TcpFlags.Syn | TcpFlags.Ack, 5000, 1001));
        Add("eth0", C("198.51.100.2", 8080, TcpFlags.Ack, 1001, 5001));
        Add("eth0", C("10.0.1.20", 80, TcpFlags.Syn, 1000, 0));
        Add("eth1", S("10.0.1.21", TcpFlags.Syn | TcpFlags.Ack, 5000, 1001));
        Add("eth0", C("10.0.1.20", 80, TcpFlags.Ack, 1001, 5001));
        asZ = [];
        for (int distance = 1; distance <= 5; distance++)
        {
            byte[] shared = YData();
            Add("eth0", shared);
            for (int k = 1; k < distance; k++) Add("eth1", Filler());
            asZ.Add(s.Count);
            Add("eth0", shared);
            Add("eth1", Filler());
        }
        byte[] thrice = YData();
        Add("eth0", thrice);
        asZ.Add(s.Count);
        Add("eth0", thrice);
        wMade = s.Count;
        Add("eth0", thrice);
        Add("eth1", Filler());
        wNext = s.Count;
        Add("eth0", C("10.0.1.21", 80, TcpFlags.Ack, 1001, 5001));
        Add("eth1", S("10.0.1.22", TcpFlags.Ack, 5001, 1001));
        Add("eth1", S("10.0.1.21", TcpFlags.Ack, 5001, 1001));
        Add("eth0", C("10.0.1.20", 80, TcpFlags.Ack, 1001, 5001));
        Add("eth0", C("198.51.100.2", 8080, TcpFlags.Ack, 1001, 5001));
        Add("eth1", Filler());
        return s;
    }

    private sealed class Side
    {
        private readonly Dictionary<byte[], Packet> _copies = new(ReferenceEqualityComparer.Instance);

        public Side(bool compiled = false)
        {
            Host = EngineHost.Create(Rules, "", Chainwalk.Tests.Nat.NatRig.Gateway4);
            Nf = new Netfilter(Host);
            Ct = ConntrackLoader.Enable(Nf) ?? throw new InvalidOperationException("conntrack not loaded");
            if (compiled) Nf.Compiled = CompiledRules.Build(Host.V4);
        }

        public VirtualHost Host { get; }

        public Netfilter Nf { get; }

        public ConntrackHooks Ct { get; }

        /// <summary>
        /// The step's packet handed over parsed (as a replay does, rewritten in place by its processing): this side's own
        /// copy of the stream's array, the same copy wherever the stream sends that array again.
        /// </summary>
        public PacketInput In(Step step, double at)
        {
            if (!_copies.TryGetValue(step.Bytes, out Packet? p)) _copies[step.Bytes] = p = Packet.Parse((byte[])step.Bytes.Clone());
            return new PacketInput { Bytes = p.Bytes, Parsed = p, InInterface = step.Iface, At = at };
        }
    }

    /// <summary>A result without its outputs' bytes (an output of a packet handed over parsed is its array: rewritten again later).</summary>
    private static string Describe(PacketResult r)
    {
        var sb = new StringBuilder();
        sb.Append(string.Join(',', r.Fate)).Append(" ct=").Append(r.CtState).Append(" drop=").Append(r.DropReason).Append(" err=").Append(r.Error);
        if (r.Connection is ConnEntry c) sb.Append(" conn=").Append(Tuple(c.Original)).Append(" / ").Append(Tuple(c.Reply));
        foreach (OutputPacket o in r.Outputs) sb.Append(" out ").Append(o.Interface).Append(' ').Append(o.Kind);
        foreach (string l in r.Logs) sb.Append(" log ").Append(l);
        return sb.ToString();
    }

    private static string Tuple(ConnTuple t) =>
        $"{t.Protocol} {IpNet.FormatAddress(t.Source, t.Family)}:{t.SourcePort} -> {IpNet.FormatAddress(t.Destination, t.Family)}:{t.DestinationPort}";

    /// <summary>Every entry is found by a lookup of each of its tuples (an entry filed under another tuple's hash is not).</summary>
    internal static void EveryEntryIsFoundByItsTuples(ConntrackTable table, double now)
    {
        foreach (ConnEntry e in table.Entries.ToList())
        {
            foreach (ConnDirection d in (ConnDirection[])[ConnDirection.Original, ConnDirection.Reply])
            {
                ConnTuple t = d == ConnDirection.Original ? e.Original : e.Reply;
                table.TryFind(t, e.ZoneFor(d), now, out ConnEntry found, out ConnDirection dir).ShouldBeTrue($"{t} ({e.Original}/{e.Reply})");
                found.ShouldBeSameAs(e);
                dir.ShouldBe(d);
            }
        }
    }

    /// <summary>
    /// Burst sizes (1 to all, 28 steps); whether the burst fetches ahead whatever the number of connections (else it does
    /// only for a SYN among its first packets, which the arrival test sees only with compiled rules: not compiled, a
    /// burst here runs as the plain loop); compiled rules or not.
    /// </summary>
    public static TheoryData<int, bool, bool> Bursts()
    {
        var data = new TheoryData<int, bool, bool>();
        foreach (int b in (int[])[1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 16, 28, 100]) data.Add(b, true, false);
        foreach (int b in (int[])[3, 8, 28]) data.Add(b, true, true);
        foreach (int b in (int[])[2, 8, 28]) data.Add(b, false, false);
        foreach (int b in (int[])[8, 28]) data.Add(b, false, true);
        return data;
    }

    [Theory]
    [MemberData(nameof(Bursts))]
    public void A_packet_rewritten_in_place_into_another_connections_tuple_is_looked_up_as_that_connection(int burst, bool fetchAlways, bool compiled)
    {
        List<Step> stream = Stream(out List<int> asZ, out int wMade, out int wNext);
        var single = new Side(compiled);
        var bursty = new Side(compiled);
        if (fetchAlways) bursty.Nf.BurstPlainBelow = 0;
        double at = 1000;
        var expected = new List<string>();
        var reused = new PacketResult();
        foreach (Step step in stream) expected.Add(Describe(single.Nf.Process(single.In(step, at += 0.01), reused)));

        at = 1000;
        var results = new PacketResult[Math.Min(burst, stream.Count)];
        for (int i = 0; i < results.Length; i++) results[i] = new PacketResult();
        var got = new List<string>();
        for (int from = 0; from < stream.Count; from += burst)
        {
            int n = Math.Min(burst, stream.Count - from);
            PacketInput[] inputs = new PacketInput[n];
            for (int i = 0; i < n; i++) inputs[i] = bursty.In(stream[from + i], at += 0.01);
            bursty.Nf.Process(inputs, results.AsSpan(0, n));
            for (int i = 0; i < n; i++) got.Add(Describe(results[i]));
        }

        for (int i = 0; i < stream.Count; i++) got[i].ShouldBe(expected[i], $"packet {i} (burst {burst})");
        EngineHost.Counters(bursty.Host).ShouldBe(EngineHost.Counters(single.Host));
        ConntrackStore.Format(bursty.Ct.Table, at).ShouldBe(ConntrackStore.Format(single.Ct.Table, at));
        EveryEntryIsFoundByItsTuples(single.Ct.Table, at);
        EveryEntryIsFoundByItsTuples(bursty.Ct.Table, at);
        // The stream holds what it is meant to: Y's array sent again is Z's established packet (DNAT on to 10.0.1.21),
        // sent a third time a new connection W (on to 10.0.1.22), whose next packet finds it.
        string z = $"conn=6 {Client}:{ClientPort} -> 10.0.1.20:80";
        foreach (int i in asZ)
        {
            expected[i].ShouldContain("ct=ESTABLISHED");
            expected[i].ShouldContain(z);
            expected[i].ShouldContain("forwarded");
        }
        expected[wMade].ShouldContain("ct=NEW");
        expected[wMade].ShouldContain("forwarded");
        // (W was picked up from an ACK: its original direction stays NEW until the server answers.)
        string w = $"conn=6 {Client}:{ClientPort} -> 10.0.1.21:80 / 6 10.0.1.22:80 -> {Client}:{ClientPort}";
        expected[wMade].ShouldContain(w);
        expected[wNext].ShouldContain(w);
        expected[wNext].ShouldContain("forwarded");
        expected[wNext + 1].ShouldContain("ct=ESTABLISHED");
        expected[wNext + 1].ShouldContain(w);
        single.Ct.Table.Count.ShouldBe(3);
    }

    /// <summary>
    /// The conntrack token (hash and slot) of any IPv4 TCP or UDP tuple is a usable one: every reader (the entry's
    /// prefetch, the lookup's hash, the burst's hand-over) takes a negative token for "none", so a hash with its sign bit
    /// set was never fetched ahead nor handed over (half of all tuples).
    /// </summary>
    [Theory]
    [InlineData(IpProtocol.Tcp)]
    [InlineData(IpProtocol.Udp)]
    public void Every_tuple_gets_a_usable_conntrack_token(byte protocol)
    {
        var side = new Side();
        // Tokens are given once the table holds a connection.
        side.Nf.Process(side.In(new Step("eth0", C("198.51.100.2", 8080, TcpFlags.Syn, 1000, 0)), 1000), new PacketResult());
        var rnd = new Random(protocol);
        for (int k = 0; k < 512; k++)
        {
            string src = $"203.0.{rnd.Next(256)}.{rnd.Next(1, 255)}";
            string dst = $"10.0.{rnd.Next(256)}.{rnd.Next(1, 255)}";
            var b = PacketBuilder.Ipv4(src, dst);
            byte[] bytes = protocol == IpProtocol.Tcp ? b.Tcp((ushort)rnd.Next(1, 65536), (ushort)rnd.Next(1, 65536), TcpFlags.Ack).Build()
                : b.Udp((ushort)rnd.Next(1, 65536), (ushort)rnd.Next(1, 65536)).Build();
            long token = side.Ct.Prefetch(bytes);
            token.ShouldBeGreaterThanOrEqualTo(0, $"{src} -> {dst}");
        }
    }
}
