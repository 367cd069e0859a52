using Chainwalk.Bench;
using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;
using Pair = Chainwalk.Tests.Engine.CompiledClassificationTests.Pair;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// One-rule edits anywhere in a compiled chain (<c>-I</c>, <c>-R</c>, <c>-D</c>, <c>-A</c>) update the compiled form
/// without a rebuild (<see cref="CompiledRules.Inserted"/>, <see cref="CompiledRules.Replaced"/>,
/// <see cref="CompiledRules.Deleted"/>, <see cref="CompiledRules.Appended"/>): after every edit the compiled walk
/// must give the linear walk's verdict and every counter on every packet.
/// </summary>
public class CompiledEditTests
{
    private static readonly string[] EditTargets = [" -j ACCEPT", " -j DROP", "", " -j MARK --set-mark 1", " -j ACCEPT"];

    private static Rule ParseRule(string condition) =>
        EngineHost.Rules(IpFamily.V4, "*filter\n-A FORWARD" + condition + "\nCOMMIT\n").Find("filter")!.Find("FORWARD")!.Rules[0];

    private enum Op { Insert, Replace, Delete, Append }

    /// <summary>
    /// One random edit to both rule sets through <see cref="RulesetEditor"/>, and (when <paramref name="tell"/>) the same
    /// edit reported to the compiled form by hand; returns the operation done. When the compiled form listens to the chain
    /// (<see cref="Chain.EditListener"/>) the editor has told it already, and the report by hand changes nothing.
    /// </summary>
    private static Op RandomEdit(Random rnd, Pair pair, Func<Random, string> condition, bool tell = true)
    {
        Action<Action<CompiledRules>> changed = tell ? pair.Changed : _ => { };
        Chain chain = pair.ChainB("filter", "FORWARD");
        int count = chain.Rules.Count;
        Op op = count == 0 ? Op.Append : (Op)rnd.Next(4);
        Rule rule = ParseRule(condition(rnd) + EditTargets[rnd.Next(EditTargets.Length)]);
        switch (op)
        {
            case Op.Insert:
                int at = rnd.Next(count + 1);
                pair.Edit(rules => new RulesetEditor(rules).Insert("filter", "FORWARD", at + 1, [rule.Clone()]));
                changed(c => c.Inserted(chain, at));
                break;
            case Op.Replace:
                int r = rnd.Next(count);
                pair.Edit(rules => new RulesetEditor(rules).Replace("filter", "FORWARD", r + 1, rule.Clone()));
                changed(c => c.Replaced(chain, r));
                break;
            case Op.Delete:
                int d = rnd.Next(count);
                pair.Edit(rules => new RulesetEditor(rules).DeleteNumber("filter", "FORWARD", d + 1));
                changed(c => c.Deleted(chain, d));
                break;
            default:
                pair.Edit(rules => new RulesetEditor(rules).Append("filter", "FORWARD", [rule.Clone()]));
                changed(c => c.Appended(chain));
                break;
        }
        return op;
    }

    /// <summary>
    /// Random mixed chains (indexable runs, other matches, jumps, MARK): random edit sequences, the compiled form told by
    /// the editor itself (listening: the library user's path, nothing called by hand) or, detached, by hand after each edit.
    /// </summary>
    [Theory]
    [InlineData(11, true)]
    [InlineData(12, true)]
    [InlineData(13, true)]
    [InlineData(14, false)]
    [InlineData(15, false)]
    [InlineData(16, false)]
    public void Random_edit_sequences_agree_with_the_linear_walk(int seed, bool listening)
    {
        var rnd = new Random(seed);
        var pair = new Pair(CompiledClassificationTests.RandomRules(rnd));
        ChainIndex? first = pair.IndexOf("filter", "FORWARD");
        first.ShouldNotBeNull();
        Chain chain = pair.ChainB("filter", "FORWARD");
        chain.EditListener.ShouldBeSameAs(pair.Compiled);
        if (!listening) chain.EditListener = null;
        int overlaid = 0;
        for (int edit = 0; edit < 60; edit++)
        {
            RandomEdit(rnd, pair, CompiledClassificationTests.Condition, tell: !listening);
            // The chain is still compiled and agrees on every packet and counter.
            ChainIndex ci = pair.IndexOf("filter", "FORWARD").ShouldNotBeNull();
            if (ReferenceEquals(ci, first)) overlaid++;
            for (int n = 0; n < 40; n++)
            {
                pair.Walk(CompiledClassificationTests.RandomPacket(rnd), "filter", Hook.Forward, inDev: rnd.Next(2) == 0 ? "eth0" : "eth1", mark: (uint)rnd.Next(3));
            }
        }
        // The edits were overlays on the index built first (no rebuild in 60 edits).
        overlaid.ShouldBe(60);
    }

    /// <summary>
    /// A ClassBench chain (one indexed run over all rules): edits in the middle of the run, the trace after each, and
    /// the ClassBench rules moved, removed and replaced by rules of the same shapes.
    /// </summary>
    [Theory]
    [InlineData("acl1_1k", 21)]
    [InlineData("fw1_1k", 22)]
    [InlineData("ipc1_1k", 23)]
    public void Edits_inside_a_ClassBench_run_agree_with_the_linear_walk(string set, int seed)
    {
        var files = ClassBench.ReadArchive(Path.Combine(TestPaths.Corpus, "classbench", "classbench-1k-10k.tgz"));
        ClassBench.Converted conv = ClassBench.Convert(files[set]);
        var pair = new Pair(conv.Restore);
        TraceHeader[] trace = ClassBench.ReadTrace(files[set + "_trace"], 3000).ToArray();
        string[] lines = conv.Restore.Split('\n').Where(l => l.StartsWith("-A FORWARD", StringComparison.Ordinal)).Select(l => l["-A FORWARD".Length..^" -j ACCEPT".Length]).ToArray();
        var rnd = new Random(seed);
        ChainIndex first = pair.IndexOf("filter", "FORWARD").ShouldNotBeNull();
        var ops = new HashSet<Op>();
        for (int edit = 0; edit < 40; edit++)
        {
            ops.Add(RandomEdit(rnd, pair, r => lines[r.Next(lines.Length)]));
            pair.IndexOf("filter", "FORWARD").ShouldBeSameAs(first);
            for (int n = 0; n < 60; n++) pair.Walk(ClassBench.Packet(trace[rnd.Next(trace.Length)]), "filter", Hook.Forward);
        }
        ops.Count.ShouldBe(4);
        first.PendingNew.ShouldBeGreaterThan(0);
        first.PendingDead.ShouldBeGreaterThan(0);
    }

    /// <summary>
    /// Hand-made: rule 2 of five replaced, a rule inserted before it, rule 4 deleted; each step's packets hit what the
    /// chain now says (and the replaced rule's old condition no longer matches).
    /// </summary>
    [Fact]
    public void Insert_replace_delete_in_the_middle_of_an_indexed_run()
    {
        // The ACL of the classification tests: five indexable rules, FORWARD policy DROP.
        const string rules = CompiledClassificationTests.Acl;
        var pair = new Pair(rules);
        Chain chain = pair.ChainB("filter", "FORWARD");
        ChainIndex first = pair.IndexOf("filter", "FORWARD").ShouldNotBeNull();
        byte[] dns = PacketBuilder.Ipv4("10.1.2.3", "10.2.0.9").Udp(5000, 53).Build();
        byte[] web = PacketBuilder.Ipv4("10.1.2.3", "192.168.1.7").Tcp(5000, 80).Build();
        byte[] ssh = PacketBuilder.Ipv4("10.1.2.3", "10.2.0.9").Tcp(5000, 22).Build();
        // -R 2: DNS to 10.2/16 no longer accepted by rule 2; now rule 2 drops ssh to 10.2/16 (rule 1 still accepts it first).
        pair.Edit(r => new RulesetEditor(r).Replace("filter", "FORWARD", 2, ParseRule(" -d 10.2.0.0/16 -p tcp --dport 22 -j DROP")));
        pair.Changed(c => c.Replaced(chain, 1));
        foreach (byte[] p in new[] { dns, web, ssh }) pair.Walk(p, "filter", Hook.Forward);
        pair.Rule("filter", "FORWARD", 2).Packets.ShouldBe(0UL);
        // -I 1: a rule before everything that drops ssh: now rule 1.
        pair.Edit(r => new RulesetEditor(r).Insert("filter", "FORWARD", 1, [ParseRule(" -p tcp --dport 22 -j DROP")]));
        pair.Changed(c => c.Inserted(chain, 0));
        pair.Walk(ssh, "filter", Hook.Forward);
        pair.Rule("filter", "FORWARD", 1).Packets.ShouldBe(1UL);
        // -D 4 (the old rule 3, DROP to 192.168.1.7): web then reaches the port-80 ACCEPT, now rule 4.
        pair.Edit(r => new RulesetEditor(r).DeleteNumber("filter", "FORWARD", 4));
        pair.Changed(c => c.Deleted(chain, 3));
        pair.Walk(web, "filter", Hook.Forward);
        pair.Rule("filter", "FORWARD", 4).Packets.ShouldBe(1UL);
        pair.IndexOf("filter", "FORWARD").ShouldBeSameAs(first);
        (first.PendingNew, first.PendingDead).ShouldBe((2, 2));
    }

    /// <summary>
    /// The library user's path with nothing called by hand: a <see cref="Netfilter"/> with its compiled form, rules changed
    /// by iptables commands (<see cref="Chainwalk.Syntax.CommandExecutor"/> → <see cref="RulesetEditor"/>) between packets;
    /// the compiled form stays the index built first (an overlay, no rebuild) and agrees with the linear walk throughout;
    /// <c>-F</c> drops the chain's index (walked linearly, nothing left to index).
    /// </summary>
    [Fact]
    public void Commands_between_packets_keep_the_netfilter_compiled_form_in_step()
    {
        const string rules = CompiledClassificationTests.Acl;
        var pair = new Pair(rules);
        ChainIndex first = pair.IndexOf("filter", "FORWARD").ShouldNotBeNull();
        var parser = new Chainwalk.Syntax.CommandLineParser(IpFamily.V4, "iptables");
        void Command(string line) => pair.Edit(r => new Chainwalk.Syntax.CommandExecutor(r).Execute(parser.Parse(["iptables", .. line.Split(' ')])));
        byte[][] packets =
        [
            PacketBuilder.Ipv4("10.1.2.3", "10.2.0.9").Udp(5000, 53).Build(),
            PacketBuilder.Ipv4("10.1.2.3", "192.168.1.7").Tcp(5000, 80).Build(),
            PacketBuilder.Ipv4("10.1.2.3", "10.2.0.9").Tcp(5000, 22).Build(),
            PacketBuilder.Ipv4("172.16.0.5", "10.2.0.9").Tcp(5000, 443).Build(),
        ];
        string[] commands =
        [
            "-R FORWARD 2 -d 10.2.0.0/16 -p tcp --dport 22 -j DROP",
            "-I FORWARD 1 -p tcp --dport 22 -j DROP",
            "-A FORWARD -s 172.16.0.0/12 -j ACCEPT",
            "-D FORWARD 4",
            "-I FORWARD 3 -s 10.1.2.3/32 -p udp --dport 53 -j DROP",
            "-R FORWARD 1 -p tcp --dport 443 -j DROP",
            "-D FORWARD -s 172.16.0.0/12 -j ACCEPT",
        ];
        foreach (string c in commands)
        {
            Command(c);
            pair.IndexOf("filter", "FORWARD").ShouldBeSameAs(first, c);
            foreach (byte[] p in packets) pair.Process(new PacketInput { Bytes = p, InInterface = "eth0" });
            foreach (byte[] p in packets) pair.Walk(p, "filter", Hook.Forward);
        }
        first.PendingNew.ShouldBeGreaterThan(0);
        Command("-F FORWARD");
        pair.IndexOf("filter", "FORWARD").ShouldBeNull();
        foreach (byte[] p in packets) pair.Walk(p, "filter", Hook.Forward);
    }

    /// <summary>
    /// A compiled form that is not told of an edit never uses the stale index: after <c>-R</c> (same length) the chain's
    /// <see cref="Chain.Edits"/> moved past it, so it walks the chain linearly, with the replaced rule's verdict and counters
    /// (before, a same-length change went unnoticed and the old rule's index answered).
    /// </summary>
    [Fact]
    public void A_compiled_form_not_told_of_an_edit_walks_the_chain_linearly()
    {
        const string rules = CompiledClassificationTests.Acl;
        VirtualHost host = EngineHost.Create(rules);
        CompiledRules stale = CompiledRules.Build(host.V4);
        CompiledRules current = CompiledRules.Build(host.V4);
        Chain forward = host.V4.Find("filter")!.Find("FORWARD")!;
        forward.EditListener.ShouldBeSameAs(current);
        new RulesetEditor(host.V4).Replace("filter", "FORWARD", 2, ParseRule(" -d 10.2.0.0/16 -p udp --dport 53 -j DROP"));
        stale.For(forward).ShouldBeNull();
        current.For(forward).ShouldNotBeNull();
        byte[] dns = PacketBuilder.Ipv4("10.1.2.3", "10.2.0.9").Udp(5000, 53).Build();
        foreach (CompiledRules c in new[] { stale, current })
        {
            var nf = new Netfilter(host) { Compiled = c };
            var ctx = new PacketContext(nf, new Skb(Packet.Parse(dns)) { InDev = "eth0", OutDev = "eth1" }) { Hook = Hook.Forward };
            nf.RunTable(ctx, host.V4.Find("filter")!, Hook.Forward).Kind.ShouldBe(VerdictKind.Drop);
        }
        forward.Rules[1].Counters.Packets.ShouldBe(2UL);
        // Told by hand afterwards it catches up (one edit behind: kept as an overlay).
        stale.Replaced(forward, 1);
        stale.For(forward).ShouldNotBeNull();
    }
}

/// <summary>
/// The key path (<see cref="CompiledRules.ClassifyKeys(Chain, ReadOnlySpan{FlowKey}, ReadOnlySpan{ushort}, Span{VerdictKind}, int)"/>):
/// compact header tuples through a ClassBench chain give the linear walk's verdict for every key and the same rule
/// and policy counters afterwards, one key at a time (batch 0: chosen by the index's size, one at a time for these small
/// sets; and 1) and in batches, over two calls.
/// </summary>
public class CompiledKeyPathTests
{
    [Theory]
    [InlineData("acl1_1k", 0)]
    [InlineData("acl1_1k", 1)]
    [InlineData("acl1_1k", 16)]
    [InlineData("fw1_1k", 0)]
    [InlineData("fw1_1k", 5)]
    [InlineData("fw1_1k", 16)]
    [InlineData("ipc1_1k", 1)]
    [InlineData("ipc1_1k", 64)]
    public void Keys_get_the_linear_verdicts_and_counters(string set, int batch)
    {
        var files = ClassBench.ReadArchive(Path.Combine(TestPaths.Corpus, "classbench", "classbench-1k-10k.tgz"));
        string restore = ClassBench.Convert(files[set]).Restore.Replace(":FORWARD ACCEPT", ":FORWARD DROP", StringComparison.Ordinal);
        var host = EngineHost.Create(restore);
        var linear = new Netfilter(EngineHost.Create(restore));
        Table lt = linear.Host.V4.Find("filter")!;
        Chain forward = host.V4.Find("filter")!.Find("FORWARD")!;
        CompiledRules compiled = CompiledRules.Build(host.V4);
        TraceHeader[] trace = ClassBench.ReadTrace(files[set + "_trace"], 2000);
        var rnd = new Random(batch);
        var keys = new List<FlowKey>();
        var lengths = new List<ushort>();
        var expected = new List<VerdictKind>();
        foreach (TraceHeader h in trace)
        {
            // Now and then a key no rule was made for (random addresses): the policy.
            byte[] bytes = rnd.Next(8) == 0
                ? PacketBuilder.Ipv4((uint)rnd.Next(), (uint)rnd.Next()).Udp((ushort)rnd.Next(1, 65535), (ushort)rnd.Next(1, 65535)).Build()
                : ClassBench.Packet(h);
            var skb = new Skb(Packet.Parse(bytes)) { InDev = "eth0", OutDev = "eth1" };
            FlowKey.TryRead(skb.Packet, out FlowKey k).ShouldBeTrue();
            keys.Add(k);
            lengths.Add((ushort)skb.Length);
            expected.Add(linear.RunTable(new PacketContext(linear, skb) { Hook = Hook.Forward }, lt, Hook.Forward).Kind);
        }
        var verdicts = new VerdictKind[keys.Count];
        // In two calls: a call's counts are kept aside per rule and added to the rules when it ends (and the scratch
        // emptied for the next call).
        int split = keys.Count / 3;
        FlowKey[] keyArray = keys.ToArray();
        ushort[] lengthArray = lengths.ToArray();
        compiled.ClassifyKeys(forward, keyArray.AsSpan(0, split), lengthArray.AsSpan(0, split), verdicts.AsSpan(0, split), batch).ShouldBeTrue();
        compiled.ClassifyKeys(forward, keyArray.AsSpan(split), lengthArray.AsSpan(split), verdicts.AsSpan(split), batch).ShouldBeTrue();
        verdicts.ShouldBe(expected.ToArray());
        Chain lf = lt.Find("FORWARD")!;
        (forward.Counters.Packets, forward.Counters.Bytes).ShouldBe((lf.Counters.Packets, lf.Counters.Bytes));
        // acl1 has no catch-all rule: its random keys reach the policy (fw1 and ipc1 end with 0.0.0.0/0 rules).
        if (set.StartsWith("acl1", StringComparison.Ordinal)) forward.Counters.Packets.ShouldBeGreaterThan(0UL);
        for (int i = 0; i < lf.Rules.Count; i++)
        {
            (forward.Rules[i].Counters.Packets, forward.Rules[i].Counters.Bytes).ShouldBe((lf.Rules[i].Counters.Packets, lf.Rules[i].Counters.Bytes), $"rule {i + 1}");
        }
    }

    /// <summary>A chain the index does not decide alone (a rule with another target) is refused, nothing counted.</summary>
    [Fact]
    public void A_chain_not_decided_by_the_index_alone_is_refused()
    {
        var host = EngineHost.Create("*filter\n:FORWARD ACCEPT [0:0]\n" + string.Concat(Enumerable.Range(0, 8).Select(i => $"-A FORWARD -s 10.0.{i}.0/24 -j ACCEPT\n")) + "-A FORWARD -d 10.9.0.0/16 -j MARK --set-mark 1\n" + string.Concat(Enumerable.Range(0, 8).Select(i => $"-A FORWARD -s 10.1.{i}.0/24 -j DROP\n")) + "COMMIT\n");
        Chain forward = host.V4.Find("filter")!.Find("FORWARD")!;
        CompiledRules compiled = CompiledRules.Build(host.V4);
        compiled.For(forward).ShouldNotBeNull();
        FlowKey[] keys = [new FlowKey(0x0A000001, 0x0A090001, 6, 1, 2)];
        compiled.ClassifyKeys(forward, keys, [40], new VerdictKind[1]).ShouldBeFalse();
        forward.Rules.Sum(r => (long)r.Counters.Packets).ShouldBe(0);
        forward.Counters.Packets.ShouldBe(0UL);
    }
}
