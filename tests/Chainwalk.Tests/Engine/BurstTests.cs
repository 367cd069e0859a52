using System.Text;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Host;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// <see cref="Netfilter.Process(ReadOnlySpan{PacketInput}, ReadOnlySpan{PacketResult})"/> (a burst at a time, the coming
/// packets' memory fetched ahead) against <see cref="Netfilter.Process(PacketInput, PacketResult)"/> packet after packet,
/// on two hosts with the same rules: one mixed stream (NEW, ESTABLISHED, INVALID, dropped, NAT both ways, UDP, a flow's
/// packets inside one burst, a connection reopened from TIME_WAIT and one expired between two packets of a burst, new
/// connections right after both) must give every packet the same result — the burst's results read after the burst —
/// and leave the same counters and conntrack table.
/// </summary>
public class BurstTests
{
    /// <summary>A NAT gateway: LAN eth1 10.0.1.0/24 masqueraded out of eth0, a port forward to 10.0.1.20:80, INVALID logged and dropped.</summary>
    private const string Rules = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j LOG --log-prefix "invalid "
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -i eth1 -j ACCEPT
        -A FORWARD -i eth0 -d 10.0.1.20/32 -p tcp -m tcp --dport 80 -j ACCEPT
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -d 198.51.100.2/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.1.20:80
        -A POSTROUTING -o eth0 -j MASQUERADE
        COMMIT
        *mangle
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A POSTROUTING -o eth0 -m conntrack --ctstate ESTABLISHED
        COMMIT
        """;

    private sealed record Pkt(string Iface, byte[] Bytes, double At);

    /// <summary>
    /// The stream: a TCP connection's packets (handshake, data both ways, FIN both ways) of outbound (masqueraded) and
    /// inbound (port-forwarded) connections interleaved at random, each connection's packets in order.
    /// </summary>
    private static List<Pkt> Stream(int seed)
    {
        var rnd = new Random(seed);
        var flows = new List<Queue<(string, byte[])>>();
        for (int n = 0; n < 12; n++) flows.Add(new Queue<(string, byte[])>(Connection(n, inbound: n % 3 == 2, data: 1 + n % 4, close: n % 4 == 0, rnd)));
        var list = new List<Pkt>();
        double at = 1000;
        void Add(string iface, byte[] b) => list.Add(new Pkt(iface, b, at += 0.01));
        while (flows.Exists(q => q.Count > 0))
        {
            var q = flows[rnd.Next(flows.Count)];
            if (q.Count == 0) continue;
            var (iface, b) = q.Dequeue();
            Add(iface, b);
            switch (rnd.Next(12))
            {
                // INVALID: far outside the window of connection 1 (after its handshake, else it is a loose pick-up).
                case 0 when list.Count > 30:
                    Add("eth1", Out(1, TcpFlags.Ack, 10, 1000 + 0x4000_0000, 5001));
                    break;
                // INVALID: SYN and FIN together (tcp_error's flag check), a new tuple.
                case 1:
                    Add("eth1", Out(40 + rnd.Next(3), TcpFlags.Syn | TcpFlags.Fin, 0, 1, 0));
                    break;
                // INVALID: a bad TCP checksum (nf_conntrack_checksum).
                case 2:
                    byte[] bad = Out(2, TcpFlags.Ack | TcpFlags.Psh, 20, 1001, 5001);
                    bad[^1] ^= 0x5a;
                    Add("eth1", bad);
                    break;
                // Dropped by the rules: inbound to a port nothing forwards.
                case 3:
                    Add("eth0", PacketBuilder.Ipv4("203.0.113.9", "10.0.1.30").Tcp(5555, 22, TcpFlags.Syn, seq: 1).Build());
                    break;
                // UDP out and its answer.
                case 4:
                    Add("eth1", PacketBuilder.Ipv4("10.0.1.30", "8.8.8.8").Udp(5353, 53).PayloadLength(30).Build());
                    Add("eth0", PacketBuilder.Ipv4("8.8.8.8", "198.51.100.2").Udp(53, 5353).PayloadLength(60).Build());
                    break;
            }
        }
        // Connection 0 closed (TIME_WAIT): a SYN on its tuple reopens it (the old entry is killed, a new one made), and
        // new connections follow at once (entries removed in a burst are not handed out again inside it).
        Add("eth1", Out(0, TcpFlags.Syn, 0, 900_000, 0));
        for (int n = 60; n < 64; n++) Add("eth1", Out(n, TcpFlags.Syn, 0, 1000, 0));
        // A connection left in SYN_SENT (120 s), then a packet on its tuple after 200 s: the entry has expired and is
        // removed by the lookup; more new connections follow in the same burst.
        Add("eth1", Out(70, TcpFlags.Syn, 0, 1000, 0));
        Add("eth1", Out(71, TcpFlags.Syn, 0, 1000, 0));
        at += 200;
        Add("eth1", Out(70, TcpFlags.Syn, 0, 7000, 0));
        for (int n = 72; n < 76; n++) Add("eth1", Out(n, TcpFlags.Syn, 0, 1000, 0));
        Add("eth1", Out(71, TcpFlags.Ack, 0, 1001, 1));
        return list;
    }

    private static byte[] Out(int n, TcpFlags flags, int payload, uint seq, uint ack) =>
        PacketBuilder.Ipv4("10.0.1." + (10 + n), "93.184.216.34").Tcp((ushort)(40000 + n), 80, flags, seq: seq, ack: ack).PayloadLength(payload).Build();

    private static IEnumerable<(string, byte[])> Connection(int n, bool inbound, int data, bool close, Random rnd)
    {
        uint cseq = 1000, sseq = 5000;
        // Outbound: masqueraded to 198.51.100.2 with its port kept; inbound: to 198.51.100.2:8080, DNAT to 10.0.1.20:80.
        string clientIf = inbound ? "eth0" : "eth1", serverIf = inbound ? "eth1" : "eth0";
        byte[] C(TcpFlags f, int len) => (inbound
            ? PacketBuilder.Ipv4("203.0.113." + (10 + n), "198.51.100.2").Tcp((ushort)(41000 + n), 8080, f, seq: cseq, ack: f.HasFlag(TcpFlags.Ack) ? sseq : 0)
            : PacketBuilder.Ipv4("10.0.1." + (10 + n), "93.184.216.34").Tcp((ushort)(40000 + n), 80, f, seq: cseq, ack: f.HasFlag(TcpFlags.Ack) ? sseq : 0))
            .PayloadLength(len).Build();
        byte[] S(TcpFlags f, int len) => (inbound
            ? PacketBuilder.Ipv4("10.0.1.20", "203.0.113." + (10 + n)).Tcp(80, (ushort)(41000 + n), f, seq: sseq, ack: cseq)
            : PacketBuilder.Ipv4("93.184.216.34", "198.51.100.2").Tcp(80, (ushort)(40000 + n), f, seq: sseq, ack: cseq))
            .PayloadLength(len).Build();
        yield return (clientIf, C(TcpFlags.Syn, 0));
        cseq++;
        yield return (serverIf, S(TcpFlags.Syn | TcpFlags.Ack, 0));
        sseq++;
        yield return (clientIf, C(TcpFlags.Ack, 0));
        for (int i = 0; i < data; i++)
        {
            int len = rnd.Next(0, 300);
            yield return (clientIf, C(TcpFlags.Ack | TcpFlags.Psh, len));
            cseq += (uint)len;
            len = rnd.Next(0, 300);
            yield return (serverIf, S(TcpFlags.Ack | TcpFlags.Psh, len));
            sseq += (uint)len;
        }
        if (!close) yield break;
        yield return (clientIf, C(TcpFlags.Fin | TcpFlags.Ack, 0));
        cseq++;
        yield return (serverIf, S(TcpFlags.Fin | TcpFlags.Ack, 0));
        sseq++;
        yield return (clientIf, C(TcpFlags.Ack, 0));
    }

    private sealed class Side
    {
        public Side(bool compiled, string rules = Rules)
        {
            Host = EngineHost.Create(rules, "", Chainwalk.Tests.Nat.NatRig.Gateway4);
            Nf = new Netfilter(Host);
            Ct = ConntrackLoader.Enable(Nf) ?? throw new InvalidOperationException("conntrack not loaded");
            if (compiled) Nf.Compiled = CompiledRules.Build(Host.V4);
        }

        public VirtualHost Host { get; }

        public Netfilter Nf { get; }

        public ConntrackHooks Ct { get; }
    }

    /// <summary>Everything a result tells, the connection by its tuples (an entry handed out again would show another's).</summary>
    private static string Describe(PacketResult r) => Describe(r, outputBytes: true);

    private static string Describe(PacketResult r, bool outputBytes)
    {
        var sb = new StringBuilder();
        sb.Append(string.Join(',', r.Fate)).Append(" ct=").Append(r.CtState).Append(" drop=").Append(r.DropReason).Append(" err=").Append(r.Error);
        if (r.Connection is ConnEntry c) sb.Append(" conn=").Append(c.Original).Append('/').Append(c.Reply);
        foreach (OutputPacket o in r.Outputs) sb.Append(" out ").Append(o.Interface).Append(' ').Append(o.Kind).Append(' ').Append(outputBytes ? Convert.ToHexString(o.Bytes) : "");
        foreach (string l in r.Logs) sb.Append(" log ").Append(l);
        return sb.ToString();
    }

    /// <summary>Burst sizes, compiled or not, and whether the burst fetches ahead whatever the number of connections (else only from 2048 on or for a SYN).</summary>
    public static TheoryData<int, bool, bool> Bursts => new()
    {
        { 1, true, true }, { 2, true, true }, { 3, false, true }, { 5, true, true }, { 8, true, true }, { 13, false, true }, { 32, true, true },
        { 1000, true, true }, { 3, true, false }, { 32, true, false }, { 32, false, false },
    };

    [Theory]
    [MemberData(nameof(Bursts))]
    public void A_burst_gives_every_packet_the_result_counters_and_conntrack_of_packet_by_packet_processing(int burst, bool compiled, bool fetchAlways)
    {
        List<Pkt> stream = Stream(seed: 7 + burst);
        var single = new Side(compiled);
        var bursty = new Side(compiled);
        if (fetchAlways) bursty.Nf.BurstPlainBelow = 0;
        var expected = new List<string>();
        var reused = new PacketResult();
        foreach (Pkt p in stream) expected.Add(Describe(single.Nf.Process(EngineHost.In(p.Iface, (byte[])p.Bytes.Clone(), p.At), reused)));

        var results = new PacketResult[Math.Min(burst, stream.Count)];
        for (int i = 0; i < results.Length; i++) results[i] = new PacketResult();
        var got = new List<string>();
        for (int at = 0; at < stream.Count; at += burst)
        {
            int n = Math.Min(burst, stream.Count - at);
            PacketInput[] inputs = stream.Skip(at).Take(n).Select(p => EngineHost.In(p.Iface, (byte[])p.Bytes.Clone(), p.At)).ToArray();
            bursty.Nf.Process(inputs, results.AsSpan(0, n));
            for (int i = 0; i < n; i++) got.Add(Describe(results[i]));
        }

        for (int i = 0; i < stream.Count; i++) got[i].ShouldBe(expected[i], $"packet {i} (burst {burst})");
        EngineHost.Counters(bursty.Host).ShouldBe(EngineHost.Counters(single.Host));
        double now = stream[^1].At;
        ConntrackStore.Format(bursty.Ct.Table, now).ShouldBe(ConntrackStore.Format(single.Ct.Table, now));
        // The stream holds what it is meant to: established packets, INVALID ones, drops, a reopened and an expired connection.
        expected.Count(e => e.Contains("ct=ESTABLISHED", StringComparison.Ordinal)).ShouldBeGreaterThan(20);
        expected.Count(e => e.Contains("ct=INVALID", StringComparison.Ordinal)).ShouldBeGreaterThan(0);
        expected.Count(e => e.StartsWith("dropped", StringComparison.Ordinal)).ShouldBeGreaterThan(0);
        expected[^6].ShouldContain("ct=NEW");
    }

    [Fact]
    public void Bytes_given_twice_in_a_burst_are_looked_up_as_the_first_packet_left_them()
    {
        // One array sent again and again: each packet's processing rewrites it (MASQUERADE's source, the TTL), so the next
        // packet on it is another tuple; what the burst fetched ahead from the bytes as they were must not stand for it.
        byte[] syn = Out(5, TcpFlags.Syn, 0, 1000, 0);
        byte[] synAck = PacketBuilder.Ipv4("93.184.216.34", "198.51.100.2").Tcp(80, 40005, TcpFlags.Syn | TcpFlags.Ack, seq: 5000, ack: 1001).Build();
        byte[] ack = Out(5, TcpFlags.Ack, 0, 1001, 5001);
        byte[] data = Out(5, TcpFlags.Ack | TcpFlags.Psh, 40, 1001, 5001);
        (string, byte[])[] stream = [("eth1", syn), ("eth0", synAck), ("eth1", ack), ("eth1", data), ("eth1", ack), ("eth0", synAck), ("eth1", ack), ("eth1", ack)];
        var single = new Side(compiled: true);
        var bursty = new Side(compiled: true);
        bursty.Nf.BurstPlainBelow = 0;
        // The same packets on each side (copied once per side, then shared within it as the stream shares them), handed
        // over parsed (as a replay does): processing rewrites them in place.
        var copiesA = new Dictionary<byte[], Packet>(ReferenceEqualityComparer.Instance);
        var copiesB = new Dictionary<byte[], Packet>(ReferenceEqualityComparer.Instance);
        Packet Copy(Dictionary<byte[], Packet> d, byte[] b) => d.TryGetValue(b, out Packet? c) ? c : d[b] = Packet.Parse((byte[])b.Clone());
        PacketInput In(Dictionary<byte[], Packet> d, string iface, byte[] b, double at)
        {
            Packet p = Copy(d, b);
            return new PacketInput { Bytes = p.Bytes, Parsed = p, InInterface = iface, At = at };
        }
        double at = 1000;
        var expected = new List<string>();
        var reused = new PacketResult();
        // (An output's bytes are the packet's: a later packet on the same array rewrites them, in a burst as across calls.)
        foreach (var (iface, b) in stream) expected.Add(Describe(single.Nf.Process(In(copiesA, iface, b, at += 0.01), reused), outputBytes: false));
        at = 1000;
        PacketInput[] inputs = stream.Select(x => In(copiesB, x.Item1, x.Item2, at += 0.01)).ToArray();
        PacketResult[] results = inputs.Select(_ => new PacketResult()).ToArray();
        bursty.Nf.Process(inputs, results);
        results.Select(r => Describe(r, outputBytes: false)).ShouldBe(expected);
        EngineHost.Counters(bursty.Host).ShouldBe(EngineHost.Counters(single.Host));
        ConntrackStore.Format(bursty.Ct.Table, at).ShouldBe(ConntrackStore.Format(single.Ct.Table, at));
        expected[2].ShouldContain("ct=ESTABLISHED");
        expected[4].ShouldNotContain("ct=ESTABLISHED");
    }

    /// <summary>
    /// kube-proxy's nat shape (iptables mode): PREROUTING's comment-only jump to KUBE-SERVICES (the arrival index), a rule per
    /// service jumping to its KUBE-SVC-… chain, whose endpoints are chosen by <c>-m statistic --mode random</c>, each
    /// KUBE-SEP-… marking hairpin traffic for masquerade and DNATing to its pod; KUBE-POSTROUTING masquerades what is marked.
    /// </summary>
    internal static string KubeRules(int services)
    {
        var sb = new StringBuilder("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
        sb.Append("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n");
        sb.Append(":KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n");
        for (int s = 0; s < services; s++)
        {
            sb.Append($":KUBE-SVC-{s} - [0:0]\n");
            for (int e = 0; e < 1 + s % 3; e++) sb.Append($":KUBE-SEP-{s}-{e} - [0:0]\n");
        }
        sb.Append("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n");
        sb.Append("-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n");
        sb.Append("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n");
        sb.Append("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n");
        sb.Append("-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n");
        sb.Append("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n");
        for (int s = 0; s < services; s++)
        {
            sb.Append($"-A KUBE-SERVICES -d 172.30.{s / 200}.{s % 200 + 1}/32 -p tcp -m comment --comment \"ns/svc{s}:http cluster IP\" -m tcp --dport {80 + s % 3} -j KUBE-SVC-{s}\n");
            int eps = 1 + s % 3;
            // kube-proxy with a cluster CIDR: traffic to the service from outside the pods' network is masqueraded.
            sb.Append($"-A KUBE-SVC-{s} ! -s 10.0.1.0/24 -d 172.30.{s / 200}.{s % 200 + 1}/32 -p tcp -m comment --comment \"ns/svc{s}:http cluster IP\" -m tcp --dport {80 + s % 3} -j KUBE-MARK-MASQ\n");
            for (int e = 0; e < eps; e++)
            {
                string stat = e == eps - 1 ? "" : $"-m statistic --mode random --probability {1.0 / (eps - e):0.00000000000} ";
                sb.Append($"-A KUBE-SVC-{s} -m comment --comment \"ns/svc{s}:http -> ep{e}\" {stat}-j KUBE-SEP-{s}-{e}\n");
                string pod = $"10.0.1.{10 + (s * 3 + e) % 200}";
                sb.Append($"-A KUBE-SEP-{s}-{e} -s {pod}/32 -m comment --comment \"ns/svc{s}:http\" -j KUBE-MARK-MASQ\n");
                sb.Append($"-A KUBE-SEP-{s}-{e} -p tcp -m comment --comment \"ns/svc{s}:http\" -m tcp -j DNAT --to-destination {pod}:8080\n");
            }
        }
        sb.Append("COMMIT\n");
        return sb.ToString();
    }

    public static TheoryData<int, bool, bool> SynBursts => new()
    {
        { 1, true, false }, { 4, true, false }, { 7, false, false }, { 32, true, false }, { 32, false, false }, { 1000, true, false },
        { 5, true, true }, { 32, true, true },
    };

    /// <summary>
    /// New connections (SYNs from outside and from the pods, a few retransmitted, a few to no service, interleaved with
    /// the servers' SYN-ACKs) through a kube-shaped nat table: the burst fetches their rule walk's first lookup ahead and
    /// hands its conntrack hash over; every packet's result (the endpoint chosen by the same random draws, DNAT and
    /// MASQUERADE's tuples), the counters and the conntrack table are packet by packet's. <paramref name="fetchAll"/>: the
    /// walk's chain hints on for this small form too (<see cref="Netfilter.PrefetchFromEntries"/> 0), so that the burst's
    /// steps from the arrival records (service chain 2 ahead, its endpoints 1 ahead) run as they do at kube's sizes.
    /// </summary>
    [Theory]
    [MemberData(nameof(SynBursts))]
    public void A_burst_of_new_connections_to_kube_services_is_processed_as_packet_by_packet(int burst, bool compiled, bool fetchAll)
    {
        int was = Netfilter.PrefetchFromEntries;
        if (fetchAll) Netfilter.PrefetchFromEntries = 0;
        try
        {
            SynBurstAsPacketByPacket(burst, compiled);
        }
        finally
        {
            if (fetchAll) Netfilter.PrefetchFromEntries = was;
        }
    }

    private static void SynBurstAsPacketByPacket(int burst, bool compiled)
    {
        string rules = KubeRules(60);
        var rnd = new Random(burst * 31 + (compiled ? 1 : 0));
        var stream = new List<(string Iface, byte[] Bytes)>();
        for (int k = 0; k < 400; k++)
        {
            int s = rnd.Next(64);
            string dst = $"172.30.{s / 200}.{s % 200 + 1}";
            ushort dport = (ushort)(80 + s % 3);
            bool inside = rnd.Next(5) == 0;
            string src = inside ? $"10.0.1.{10 + rnd.Next(200)}" : $"203.0.113.{1 + rnd.Next(250)}";
            byte[] syn = PacketBuilder.Ipv4(src, dst).Tcp((ushort)(10000 + k), dport, TcpFlags.Syn, seq: 1000).Build();
            stream.Add((inside ? "eth1" : "eth0", syn));
            if (rnd.Next(10) == 0) stream.Add((inside ? "eth1" : "eth0", syn));
        }
        var single = new Side(compiled, rules);
        var bursty = new Side(compiled, rules);
        var expected = new List<string>();
        var reused = new PacketResult();
        double at = 1000;
        foreach (var (iface, b) in stream) expected.Add(Describe(single.Nf.Process(EngineHost.In(iface, (byte[])b.Clone(), at += 0.001), reused)));

        var results = new PacketResult[Math.Min(burst, stream.Count)];
        for (int i = 0; i < results.Length; i++) results[i] = new PacketResult();
        var got = new List<string>();
        at = 1000;
        for (int from = 0; from < stream.Count; from += burst)
        {
            int n = Math.Min(burst, stream.Count - from);
            PacketInput[] inputs = stream.Skip(from).Take(n).Select(p => EngineHost.In(p.Iface, (byte[])p.Bytes.Clone(), at += 0.001)).ToArray();
            bursty.Nf.Process(inputs, results.AsSpan(0, n));
            for (int i = 0; i < n; i++) got.Add(Describe(results[i]));
        }

        for (int i = 0; i < stream.Count; i++) got[i].ShouldBe(expected[i], $"packet {i} (burst {burst})");
        EngineHost.Counters(bursty.Host).ShouldBe(EngineHost.Counters(single.Host));
        ConntrackStore.Format(bursty.Ct.Table, at).ShouldBe(ConntrackStore.Format(single.Ct.Table, at));
        // The stream holds what it is meant to: DNAT to many endpoints (the random draws), SYNs from outside masqueraded
        // and from the pods not, SYNs to no service.
        var c = single.Ct.Table.Entries.ToList();
        c.Select(e => e.Reply.Source).Distinct().Count().ShouldBeGreaterThan(50);
        c.Count(e => e.Reply.Destination != e.Original.Source).ShouldBeGreaterThan(200);
        c.Count(e => e.Reply.Destination == e.Original.Source).ShouldBeGreaterThan(40);
        c.Count(e => e.Reply.Source == e.Original.Destination).ShouldBeGreaterThan(0);
        expected.Count(e => e.Contains("forwarded", StringComparison.Ordinal)).ShouldBeGreaterThan(300);
    }

    [Fact]
    public void A_burst_needs_a_result_per_input()
    {
        var side = new Side(compiled: false);
        PacketInput[] inputs = [EngineHost.In("eth1", Out(1, TcpFlags.Syn, 0, 1, 0)), EngineHost.In("eth1", Out(2, TcpFlags.Syn, 0, 1, 0))];
        Should.Throw<ArgumentException>(() => side.Nf.Process(inputs, new[] { new PacketResult() }));
    }
}
