using System.Text;
using Chainwalk.Bench;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The compiled walk (<see cref="CompiledRules"/>) against the linear walk, the reference: the same rules are
/// loaded twice, every packet goes through both, and after every packet the verdicts and every rule and
/// policy counter of every chain must be equal. Rule sets: ClassBench filter sets of the corpus, kube-proxy
/// shapes (the corpus file and the generator), random rule sets mixing indexable and other rules.
/// </summary>
public class CompiledClassificationTests
{
    /// <summary>Two copies of the rules, one walked linearly and one compiled, packets fed to both.</summary>
    internal sealed class Pair
    {
        private readonly Netfilter _linear, _compiled;
        private readonly Ruleset _a, _b;

        public Pair(string rules)
        {
            VirtualHost ha = EngineHost.Create(rules), hb = EngineHost.Create(rules);
            _a = ha.V4;
            _b = hb.V4;
            _linear = new Netfilter(ha);
            Compiled = CompiledRules.Build(_b);
            _compiled = new Netfilter(hb) { Compiled = Compiled };
        }

        public CompiledRules Compiled { get; private set; }

        /// <summary>The compiled side's pipeline.</summary>
        public Netfilter CompiledSide => _compiled;

        /// <summary>The linear side's rules and the compiled side's.</summary>
        public Ruleset A => _a;

        public Ruleset B => _b;

        /// <summary>Walks the compiled side with <paramref name="form"/> from now on (null: linearly).</summary>
        public void Use(CompiledRules? form)
        {
            _compiled.Compiled = form;
            if (form is not null) Compiled = form;
        }

        public int Packets { get; private set; }

        /// <summary>Walks <paramref name="table"/> at <paramref name="hook"/> in both; checks verdict and counters.</summary>
        public void Walk(byte[] bytes, string table, Hook hook, string inDev = "eth0", string? outDev = "eth1", uint mark = 0)
        {
            Verdict va = Run(_linear, _a, bytes, table, hook, inDev, outDev, mark);
            Verdict vb = Run(_compiled, _b, bytes, table, hook, inDev, outDev, mark);
            vb.ShouldBe(va, $"packet {Packets}");
            SameCounters();
            Packets++;
        }

        /// <summary>The whole pipeline (nf.Process) in both; checks fates and counters.</summary>
        public void Process(PacketInput input)
        {
            PacketResult ra = _linear.Process(input), rb = _compiled.Process(input);
            string.Join(",", rb.Fate).ShouldBe(string.Join(",", ra.Fate), $"packet {Packets}");
            SameCounters();
            Packets++;
        }

        /// <summary>
        /// <see cref="Walk"/> of a packet with conntrack facts (its ctinfo and entry, as conntrack would have set them):
        /// checks the verdict, the mark after the walk and the counters; returns the verdict.
        /// </summary>
        public Verdict WalkTracked(byte[] bytes, string table, Hook hook, CtInfo info, ConnEntry? entry, uint mark = 0)
        {
            Skb sa = NewSkb(bytes, "eth0", "eth1", mark, info, entry), sb = NewSkb(bytes, "eth0", "eth1", mark, info, entry);
            Verdict va = RunSkb(_linear, _a, sa, table, hook);
            Verdict vb = RunSkb(_compiled, _b, sb, table, hook);
            vb.ShouldBe(va, $"packet {Packets}");
            sb.Mark.ShouldBe(sa.Mark, $"packet {Packets}: mark");
            SameCounters();
            Packets++;
            return va;
        }

        /// <summary>The compiled side's flat entry of rule <paramref name="rule"/> (from 0) of a chain.</summary>
        public FlatEntry Entry(string table, string chain, int rule) =>
            Compiled.FlatFor(ChainB(table, chain)).ShouldNotBeNull().Entries[rule];

        private static Verdict Run(Netfilter nf, Ruleset rules, byte[] bytes, string tableName, Hook hook, string inDev, string? outDev, uint mark) =>
            RunSkb(nf, rules, NewSkb(bytes, inDev, outDev, mark, CtInfo.None, null), tableName, hook);

        private static Skb NewSkb(byte[] bytes, string inDev, string? outDev, uint mark, CtInfo info, ConnEntry? entry) =>
            new(Packet.Parse(bytes)) { InDev = inDev, OutDev = outDev, Mark = mark, CtInfo = info, Conntrack = entry };

        private static Verdict RunSkb(Netfilter nf, Ruleset rules, Skb skb, string tableName, Hook hook)
        {
            var ctx = new PacketContext(nf, skb) { Hook = hook };
            return nf.RunTable(ctx, rules.Find(tableName)!, hook);
        }

        public void SameCounters()
        {
            foreach (Table ta in _a.Tables)
            {
                Table tb = _b.Find(ta.Name)!;
                foreach (Chain ca in ta.Chains)
                {
                    Chain cb = tb.Find(ca.Name)!;
                    if (cb.Counters.Packets != ca.Counters.Packets || cb.Counters.Bytes != ca.Counters.Bytes)
                        throw new ShouldAssertException($"packet {Packets}: policy counters of {ta.Name}/{ca.Name} differ");
                    for (int i = 0; i < ca.Rules.Count; i++)
                    {
                        Counters x = ca.Rules[i].Counters, y = cb.Rules[i].Counters;
                        if (x.Packets != y.Packets || x.Bytes != y.Bytes)
                            throw new ShouldAssertException($"packet {Packets}: counters of {ta.Name}/{ca.Name} rule {i + 1} differ: linear {x.Packets}, compiled {y.Packets}");
                    }
                }
            }
        }

        public ChainIndex? IndexOf(string table, string chain) => Compiled.For(_b.Find(table)!.Find(chain)!);

        /// <summary>The same edit to both rule sets (the compiled form hears of it when it listens to the chain: <see cref="Chain.EditListener"/>).</summary>
        public void Edit(Action<Ruleset> edit)
        {
            edit(_a);
            edit(_b);
        }

        public void Recompile(string table, string chain) => Compiled.Recompile(_b.Find(table)!.Find(chain)!);

        public Chain ChainB(string table, string chain) => _b.Find(table)!.Find(chain)!;

        public void Changed(Action<CompiledRules> update) => update(Compiled);

        public Counters Rule(string table, string chain, int number) => _b.Find(table)!.Find(chain)!.Rules[number - 1].Counters;

        public ulong MatchedPackets(string table, string chain) => _a.Find(table)!.Find(chain)!.Rules.Aggregate(0UL, (s, r) => s + r.Counters.Packets);
    }

    private static readonly Lazy<Dictionary<string, string>> Small = new(() =>
        ClassBench.ReadArchive(Path.Combine(TestPaths.Corpus, "classbench", "classbench-1k-10k.tgz")));

    [Theory]
    [InlineData("acl1_1k", 6000)]
    [InlineData("fw1_1k", 6000)]
    [InlineData("ipc1_1k", 6000)]
    [InlineData("acl1_10k", 1500)]
    [InlineData("fw1_10k", 1500)]
    [InlineData("ipc1_10k", 1500)]
    public void ClassBench_trace_gives_the_linear_verdict_and_counters(string set, int headers)
    {
        ClassBench.Converted conv = ClassBench.Convert(Small.Value[set]);
        var pair = new Pair(conv.Restore);
        // The index engages: the whole chain (all rules are -s -d -p --sport --dport) is one indexed run.
        pair.IndexOf("filter", "FORWARD").ShouldNotBeNull().Runs.Count.ShouldBe(1);
        foreach (TraceHeader h in ClassBench.ReadTrace(Small.Value[set + "_trace"], headers)) pair.Walk(ClassBench.Packet(h), "filter", Hook.Forward);
        // Most trace headers hit a rule (the trace is generated from the rules).
        pair.MatchedPackets("filter", "FORWARD").ShouldBeGreaterThan((ulong)(headers / 2));
    }

    [Fact]
    public void ClassBench_conversion_splits_portful_any_protocol_filters_into_tcp_and_udp()
    {
        ClassBench.Converted c = ClassBench.Convert("@1.2.3.0/24\t5.6.7.8/32\t0 : 65535\t80 : 80\t0x00/0x00\t0x0000/0x0000\n"
            + "@0.0.0.0/0\t0.0.0.0/0\t0 : 65535\t0 : 65535\t0x00/0x00\t0x0000/0x0000\n");
        c.Restore.ShouldContain("-A FORWARD -s 1.2.3.0/24 -d 5.6.7.8/32 -p tcp --dport 80:80 -j ACCEPT\n-A FORWARD -s 1.2.3.0/24 -d 5.6.7.8/32 -p udp --dport 80:80 -j ACCEPT\n");
        c.Restore.ShouldContain("-A FORWARD -s 0.0.0.0/0 -d 0.0.0.0/0 -j ACCEPT\n");
        (c.Filters, c.Rules, c.SplitIntoTcpUdp).ShouldBe((2, 3, 1));
    }

    [Fact]
    public void Kube_proxy_corpus_rules_agree_in_nat_and_filter()
    {
        string text = WithoutNat(File.ReadAllText(Path.Combine(TestPaths.Corpus, "k8s", "proxier-test-overall-rules.rules")));
        // nfacct objects do not exist on the test host: drop those matches.
        text = System.Text.RegularExpressions.Regex.Replace(text, " -m nfacct --nfacct-name [^ ]+", "");
        var pair = new Pair(text);
        var rnd = new Random(7);
        uint[] dsts = [0xAC1E0029, 0xAC1E002A, 0xAC1E002B, 0xAC1E002C, 0xAC1E002D, 0xAC1E002E, 0xC0A86316, 0x01020304, 0x05060708, 0x7F000001, 0x0AB40003];
        for (int n = 0; n < 400; n++)
        {
            uint src = rnd.Next(3) == 0 ? 0x0AB40003u : 0xCB007101u + (uint)rnd.Next(200);
            byte[] p = PacketBuilder.Ipv4(src, dsts[rnd.Next(dsts.Length)]).Tcp((ushort)rnd.Next(1024, 65535), (ushort)(rnd.Next(2) == 0 ? 80 : 3001 + rnd.Next(3))).Build();
            pair.Walk(p, "nat", Hook.Prerouting);
            pair.Walk(p, "filter", Hook.Forward, mark: rnd.Next(2) == 0 ? 0x4000u : 0);
            pair.Walk(p, "nat", Hook.Postrouting, mark: rnd.Next(2) == 0 ? 0x4000u : 0);
        }
    }

    [Theory]
    [InlineData(50)]
    [InlineData(600)]
    public void Generated_kube_proxy_rules_agree_and_KUBE_SERVICES_is_indexed(int services)
    {
        var (text, svcs, _) = KubeProxyRules.Generate(services, seed: services);
        var pair = new Pair(WithoutNat(text));
        // The cluster-IP rules are one indexed run; the nodeports rule (addrtype) after them is walked.
        TupleIndex run = pair.IndexOf("nat", "KUBE-SERVICES").ShouldNotBeNull().Runs.ShouldHaveSingleItem();
        (run.Start, run.End, run.GroupCount).ShouldBe((0, services, 1));
        var rnd = new Random(services);
        for (int n = 0; n < 1500; n++)
        {
            KubeProxyRules.Service s = svcs[rnd.Next(svcs.Length)];
            ushort port = rnd.Next(8) == 0 ? (ushort)rnd.Next(1, 65535) : s.Port;
            uint src = rnd.Next(4) == 0 ? 0x0AF40005u : 0x0AB40000u + (uint)rnd.Next(1 << 16);
            pair.Walk(PacketBuilder.Ipv4(src, s.ClusterIp).Tcp((ushort)rnd.Next(1024, 65535), port).Build(), "nat", Hook.Prerouting);
        }
        pair.MatchedPackets("nat", "KUBE-SERVICES").ShouldBeGreaterThan(1000UL);
    }

    internal const string Acl = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -s 10.1.2.0/24 -p tcp --dport 22 -j ACCEPT
        -A FORWARD -d 10.2.0.0/16 -p udp --dport 53 -j ACCEPT
        -A FORWARD -s 10.0.0.0/8 -d 192.168.1.7/32 -j DROP
        -A FORWARD -p tcp --sport 1024:65535 --dport 80 -j ACCEPT
        -A FORWARD -d 10.3.3.4/32 -j ACCEPT
        COMMIT

        """;

    /// <summary>
    /// Editing a chain after it was compiled, with the compiled form not listening (<see cref="Chain.EditListener"/>
    /// detached; CompiledEditTests has the listening path): a chain changed since is walked linearly until it is
    /// recompiled (a rule appended before the policy here is found either way), and the recompiled index
    /// covers the new rule.
    /// </summary>
    [Fact]
    public void An_edited_chain_is_walked_linearly_until_recompiled()
    {
        var pair = new Pair(Acl);
        pair.IndexOf("filter", "FORWARD").ShouldNotBeNull();
        pair.ChainB("filter", "FORWARD").EditListener = null;
        byte[] p = PacketBuilder.Ipv4("10.9.9.9", "172.16.0.1").Tcp(5000, 8080).Build();
        pair.Walk(p, "filter", Hook.Forward);
        pair.Edit(rules => new RulesetEditor(rules).Append("filter", "FORWARD", [EngineHost.Rules(IpFamily.V4, "*filter\n-A FORWARD -d 172.16.0.0/12 -p tcp --dport 8080 -j ACCEPT\nCOMMIT\n").Find("filter")!.Find("FORWARD")!.Rules[0]]));
        pair.IndexOf("filter", "FORWARD").ShouldBeNull();
        pair.Walk(p, "filter", Hook.Forward);
        pair.Recompile("filter", "FORWARD");
        pair.IndexOf("filter", "FORWARD").ShouldNotBeNull().Runs.ShouldHaveSingleItem().End.ShouldBe(6);
        pair.Walk(p, "filter", Hook.Forward);
        pair.Rule("filter", "FORWARD", 6).Packets.ShouldBe(2UL);
    }

    /// <summary>
    /// The incremental updates: an appended rule is walked linearly after the kept index; deleting a rule after
    /// the last indexed run or inside a run keeps the index (CompiledEditTests: inserts and replaces too). Verdicts
    /// and counters stay the linear walk's throughout.
    /// </summary>
    [Fact]
    public void Appends_and_deletes_update_the_compiled_form_incrementally()
    {
        var pair = new Pair(Acl);
        TupleIndex before = pair.IndexOf("filter", "FORWARD").ShouldNotBeNull().Runs.ShouldHaveSingleItem();
        byte[] p = PacketBuilder.Ipv4("10.9.9.9", "172.16.0.1").Tcp(5000, 8080).Build();
        byte[] q = PacketBuilder.Ipv4("10.1.2.3", "10.2.0.9").Udp(5000, 53).Build();
        Rule added = EngineHost.Rules(IpFamily.V4, "*filter\n-A FORWARD -d 172.16.0.0/12 -p tcp --dport 8080 -j ACCEPT\nCOMMIT\n").Find("filter")!.Find("FORWARD")!.Rules[0];
        pair.Edit(rules => new RulesetEditor(rules).Append("filter", "FORWARD", [added.Clone()]));
        pair.Changed(c => c.Appended(pair.ChainB("filter", "FORWARD")));
        pair.IndexOf("filter", "FORWARD").ShouldNotBeNull().Runs.ShouldHaveSingleItem().ShouldBeSameAs(before);
        pair.Walk(p, "filter", Hook.Forward);
        pair.Walk(q, "filter", Hook.Forward);
        pair.Rule("filter", "FORWARD", 6).Packets.ShouldBe(1UL);
        // Deleting the appended rule (after the run): the index stays.
        pair.Edit(rules => new RulesetEditor(rules).DeleteNumber("filter", "FORWARD", 6));
        pair.Changed(c => c.Deleted(pair.ChainB("filter", "FORWARD"), 5));
        pair.IndexOf("filter", "FORWARD").ShouldNotBeNull().Runs.ShouldHaveSingleItem().ShouldBeSameAs(before);
        pair.Walk(p, "filter", Hook.Forward);
        // Deleting rule 2 (inside the run): the index stays (the rule is skipped), and q now falls to the policy.
        pair.Edit(rules => new RulesetEditor(rules).DeleteNumber("filter", "FORWARD", 2));
        pair.Changed(c => c.Deleted(pair.ChainB("filter", "FORWARD"), 1));
        pair.IndexOf("filter", "FORWARD").ShouldNotBeNull().Runs.ShouldHaveSingleItem().ShouldBeSameAs(before);
        pair.Walk(q, "filter", Hook.Forward);
        pair.Walk(p, "filter", Hook.Forward);
    }

    /// <summary>With a trace recorded the compiled form is not used: the explanation is the linear walk's, rule by rule.</summary>
    [Fact]
    public void A_recorded_trace_is_the_linear_walks()
    {
        VirtualHost ha = EngineHost.Create(Acl), hb = EngineHost.Create(Acl);
        var linear = new Netfilter(ha) { RecordTrace = true };
        var compiled = new Netfilter(hb) { RecordTrace = true, Compiled = CompiledRules.Build(hb.V4) };
        byte[] p = PacketBuilder.Ipv4("192.168.1.50", "10.3.3.4").Tcp(5000, 81).Build();
        PacketResult a = linear.Process(EngineHost.In("eth1", p)), b = compiled.Process(EngineHost.In("eth1", p));
        b.Trace.ShouldNotBeNull().Count.ShouldBe(a.Trace!.Count);
        b.Trace.OfType<RuleEvent>().Select(e => (e.Number, e.Matched)).ShouldBe(a.Trace.OfType<RuleEvent>().Select(e => (e.Number, e.Matched)));
        b.Trace.OfType<RuleEvent>().Count().ShouldBe(5);
        b.Fate.ShouldBe(["forwarded:eth0"]);
    }

    /// <summary>DNAT is not evaluated on this branch (NAT comes with conntrack): its rules ACCEPT instead, which ends the walk as DNAT does.</summary>
    private static string WithoutNat(string text) =>
        System.Text.RegularExpressions.Regex.Replace(text, "-j DNAT --to-destination [^ \n]+", "-j ACCEPT");

    /// <summary>Random chains: indexable rules mixed with rules the index cannot use, jumps, RETURNs, marks, counting rules.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(8)]
    public void Random_rule_sets_agree_on_every_packet_and_counter(int seed)
    {
        var rnd = new Random(seed);
        string text = RandomRules(rnd);
        var pair = new Pair(text);
        for (int n = 0; n < 1200; n++)
        {
            byte[] p = RandomPacket(rnd);
            pair.Walk(p, "filter", Hook.Forward, inDev: rnd.Next(2) == 0 ? "eth0" : "eth1", mark: (uint)rnd.Next(3));
        }
        // And through the whole pipeline (routing, INPUT / FORWARD / OUTPUT).
        for (int n = 0; n < 300; n++)
        {
            pair.Process(EngineHost.In(rnd.Next(2) == 0 ? "eth0" : "eth1", RandomPacket(rnd)));
        }
    }

    private static readonly string[] Prefixes = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "10.1.2.128/25", "10.2.0.0/15", "192.168.1.0/24", "192.168.1.7/32", "0.0.0.0/0", "10.1.0.0/255.255.0.255", "172.16.0.0/12"];

    private static string Addr(Random rnd, string opt) => rnd.Next(3) == 0 ? "" : $" {opt} {Prefixes[rnd.Next(Prefixes.Length)]}";

    internal static string Condition(Random rnd)
    {
        var sb = new StringBuilder();
        int kind = rnd.Next(10);
        // Now and then something the index cannot use (kinds 0-3, 5); comments it can.
        string src = Addr(rnd, "-s");
        if (kind == 0) src = " ! -s 10.1.0.0/16";
        sb.Append(src).Append(Addr(rnd, "-d"));
        string proto = rnd.Next(4) switch { 0 => "tcp", 1 => "udp", 2 => "icmp", _ => "" };
        if (proto.Length > 0) sb.Append(" -p ").Append(proto);
        if (proto is "tcp" or "udp")
        {
            if (kind == 5) sb.Append(" ! --dport 80");
            else if (rnd.Next(2) == 0) sb.Append(" --dport ").Append(rnd.Next(3) == 0 ? "1000:2000" : new[] { "22", "53", "80", "443" }[rnd.Next(4)]);
            if (rnd.Next(4) == 0) sb.Append(" --sport ").Append(rnd.Next(2) == 0 ? "1024:65535" : "53");
            if (kind == 3 && proto == "tcp") sb.Append(" --syn");
        }
        switch (kind)
        {
            case 1: sb.Append(" -i eth0"); break;
            case 2: sb.Append(" -m mark --mark 1"); break;
            case 4: sb.Append(" -m comment --comment \"a comment\""); break;
        }
        return sb.ToString();
    }

    internal static string RandomRules(Random rnd)
    {
        var sb = new StringBuilder("*filter\n:INPUT ACCEPT [0:0]\n");
        sb.Append(":FORWARD ").Append(rnd.Next(2) == 0 ? "DROP" : "ACCEPT").Append(" [0:0]\n:OUTPUT ACCEPT [0:0]\n:U1 - [0:0]\n:U2 - [0:0]\n");
        void Rules(string chain, int count, string[] targets)
        {
            for (int i = 0; i < count; i++) sb.Append("-A ").Append(chain).Append(Condition(rnd)).Append(targets[rnd.Next(targets.Length)]).Append('\n');
        }
        Rules("INPUT", 30, [" -j ACCEPT", " -j DROP", " -j U2", ""]);
        Rules("FORWARD", 80, [" -j ACCEPT", " -j DROP", " -j U1", " -j U2", " -g U2", "", " -j MARK --set-mark 1", " -j ACCEPT", " -j DROP"]);
        Rules("U1", 30, [" -j ACCEPT", " -j DROP", " -j RETURN", " -j U2", "", " -j MARK --set-mark 2"]);
        Rules("U2", 30, [" -j ACCEPT", " -j DROP", " -j RETURN", ""]);
        sb.Append("COMMIT\n");
        return sb.ToString();
    }

    private static readonly uint[] Hosts = [0x0A010203, 0x0A010281, 0x0A0102FE, 0x0A010505, 0x0A020304, 0x0A030304, 0xC0A80107, 0xC0A80163, 0xAC100001, 0x08080808, 0x0A000001];

    internal static byte[] RandomPacket(Random rnd)
    {
        PacketBuilder b = PacketBuilder.Ipv4(Hosts[rnd.Next(Hosts.Length)], Hosts[rnd.Next(Hosts.Length)]);
        int k = rnd.Next(20);
        if (k == 0) b.Fragment(rnd.Next(2) * 8, rnd.Next(2) == 0);
        ushort sport = rnd.Next(2) == 0 ? (ushort)53 : (ushort)rnd.Next(1, 65535);
        ushort dport = new ushort[] { 22, 53, 80, 443, 1500, 2000, 2001, 9999 }[rnd.Next(8)];
        return rnd.Next(3) switch
        {
            0 => b.Tcp(sport, dport, rnd.Next(2) == 0 ? TcpFlags.Syn : TcpFlags.Ack).Build(),
            1 => b.Udp(sport, dport).Build(),
            _ => b.IcmpEcho(1, 1).Build(),
        };
    }
}
