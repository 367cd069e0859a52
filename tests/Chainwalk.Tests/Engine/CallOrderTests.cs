using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Host;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The compiled form numbers and lays out a table's chains in the order a walk reaches them (<see cref="CompiledRules.CallOrder"/>,
/// session 11 svclayout): depth first from the built-in chains, each user chain right after the chain that first jumps to
/// it, then the chains nothing reaches. kube-proxy's KUBE-SVC-… chain is then followed by its KUBE-SEP-… chains (spans,
/// entries and DNAT data slots), not scattered by the hashed names' order. Internal only: the walk agrees with the linear
/// walk across edits that move a chain.
/// </summary>
public class CallOrderTests
{
    /// <summary>
    /// For every service: its KUBE-SVC-… chain's number and entries, then (KUBE-MARK-MASQ, for the first service reached)
    /// its endpoints' KUBE-SEP-… chains in the order the service's rules name them, each numbered one after the last and
    /// its entries starting where the last one's end; a KUBE-SEP-… chain's DNAT data slot is its own number (so in the same
    /// order).
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(40)]
    [InlineData(300)]
    public void A_service_chain_is_followed_by_its_endpoint_chains(int services)
    {
        var (text, _, _) = Chainwalk.Bench.KubeProxyRules.Generate(services, seed: 7);
        VirtualHost host = EngineHost.Create(text);
        CompiledRules compiled = CompiledRules.Build(host.V4);
        Table nat = host.V4.Find("nat")!;
        int Number(Chain c) => compiled.NumberOf(c);
        int markMasq = Number(nat.Find("KUBE-MARK-MASQ")!);
        int checkedServices = 0;
        foreach (Chain svc in nat.UserChains)
        {
            if (!svc.Name.StartsWith("KUBE-SVC-", StringComparison.Ordinal)) continue;
            var run = new List<int> { Number(svc) };
            if (markMasq == Number(svc) + 1) run.Add(markMasq);
            foreach (Rule r in svc.Rules)
            {
                if (r.Target is { IsChainJump: true } t && t.Name.StartsWith("KUBE-SEP-", StringComparison.Ordinal)) run.Add(Number(nat.Find(t.Name)!));
            }
            run.Count.ShouldBeGreaterThan(1);
            for (int k = 1; k < run.Count; k++)
            {
                FlatSpan a = compiled.Spans[run[k - 1]], b = compiled.Spans[run[k]];
                run[k].ShouldBe(run[k - 1] + 1, $"{b.Chain.Name} after {a.Chain.Name}");
                b.Start.ShouldBe(a.Start + a.Count, $"{b.Chain.Name}'s entries after {a.Chain.Name}'s");
                if (b.Chain.Name.StartsWith("KUBE-SEP-", StringComparison.Ordinal))
                {
                    FlatEntry dnat = compiled.Entries[b.Start + b.Count - 1];
                    dnat.Target.ShouldBe(FlatTarget.Dnat, $"{b.Chain.Name}'s DNAT range in its entry");
                }
            }
            checkedServices++;
        }
        checkedServices.ShouldBe(services);
    }

    private const string Shapes = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :A1 - [0:0]
        :B - [0:0]
        :M - [0:0]
        :Q - [0:0]
        :Z2 - [0:0]
        :ZZ - [0:0]
        -A FORWARD -p tcp -j Q
        -A FORWARD -p udp -g B
        -A FORWARD -j M
        -A Q -s 10.0.0.0/8 -j M
        -A Q -p tcp -m tcp --dport 22 -j ACCEPT
        -A M -d 10.9.0.0/16 -j DROP
        -A B -j M
        -A B -j RETURN
        -A A1 -j Z2
        -A Z2 -j ACCEPT
        -A OUTPUT -j Z2
        COMMIT

        """;

    /// <summary>
    /// A chain reached from several callers is placed once, after the first (M: from Q before FORWARD's own jump and B's);
    /// a goto is followed as a jump (B); a chain reached from a later built-in chain follows it (Z2 after OUTPUT, although
    /// the unreached A1 jumps to it too); the chains no built-in chain reaches come last, by name (A1, ZZ); every chain
    /// once, and the entries in the numbers' order, each chain's after the last one's.
    /// </summary>
    [Fact]
    public void A_chain_is_placed_once_after_its_first_caller_and_unreached_chains_last()
    {
        VirtualHost host = EngineHost.Create(Shapes);
        Table filter = host.V4.Find("filter")!;
        CompiledRules.CallOrder(filter).Select(c => c.Name).ShouldBe(["INPUT", "FORWARD", "Q", "M", "B", "OUTPUT", "Z2", "A1", "ZZ"]);
        CompiledRules compiled = CompiledRules.Build(host.V4);
        var names = new List<string>();
        int next = 0;
        foreach (FlatSpan s in compiled.Spans)
        {
            if (s.Chain is null || !ReferenceEquals(filter.Find(s.Chain.Name), s.Chain)) continue;
            names.Add(s.Chain.Name);
            s.Start.ShouldBe(next, s.Chain.Name);
            next = s.Start + s.Count;
        }
        names.ShouldBe(["INPUT", "FORWARD", "Q", "M", "B", "OUTPUT", "Z2", "A1", "ZZ"]);
    }

    /// <summary>
    /// The kube-shaped set (DNAT as ACCEPT: the walk alone) against the linear walk, with edits between packets that move
    /// chains laid out in call order: a KUBE-SVC-… chain outgrowing its room (moved to the array's end), a rule inserted into
    /// and deleted from KUBE-SEP-… chains, a new chain jumped to from KUBE-SERVICES, a chain flushed. Verdicts and every
    /// counter after every packet, and the save with counters at the end.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Kube_walks_agree_with_the_linear_walk_across_edits(int seed)
    {
        var (text, svcs, _) = Chainwalk.Bench.KubeProxyRules.Generate(50, seed: seed);
        text = System.Text.RegularExpressions.Regex.Replace(text, "-j DNAT --to-destination [^ \n]+", "-j ACCEPT");
        var pair = new CompiledClassificationTests.Pair(text);
        var parser = new CommandLineParser(Chainwalk.Net.IpFamily.V4, "iptables");
        void Command(string line) => pair.Edit(r => new CommandExecutor(r).Execute(parser.Parse(["iptables", "-t", "nat", .. line.Split(' ')])));
        var rnd = new Random(seed);
        Table nat = pair.B.Find("nat")!;
        string[] svcChains = nat.UserChains.Where(c => c.Name.StartsWith("KUBE-SVC-", StringComparison.Ordinal)).Select(c => c.Name).ToArray();
        string[] sepChains = nat.UserChains.Where(c => c.Name.StartsWith("KUBE-SEP-", StringComparison.Ordinal)).Select(c => c.Name).ToArray();
        for (int round = 0; round < 8; round++)
        {
            for (int n = 0; n < 60; n++)
            {
                var svc = svcs[rnd.Next(svcs.Length)];
                uint from = rnd.Next(3) == 0 ? 0x0AF40107u : 0xC0A80002u + (uint)rnd.Next(50);
                byte[] p = PacketBuilder.Ipv4(from, rnd.Next(8) == 0 ? 0x0A090001u : svc.ClusterIp).Tcp((ushort)(1024 + n), svc.Port, TcpFlags.Syn).Build();
                uint mark = (uint)rnd.Next(2) * 0x4000;
                pair.Walk(p, "nat", Hook.Prerouting, mark: mark);
                pair.Walk(p, "filter", Hook.Forward, mark: mark);
                pair.Walk(p, "nat", Hook.Postrouting, mark: mark);
            }
            string svcChain = svcChains[rnd.Next(svcChains.Length)], sep = sepChains[rnd.Next(sepChains.Length)];
            switch (round % 4)
            {
                case 0:
                    for (int k = 0; k < 6; k++) Command($"-A {svcChain} -s 10.{k}.0.0/16 -j {sep}");
                    break;
                case 1:
                    Command($"-I {sep} 1 -s 192.168.0.{rnd.Next(2, 52)}/32 -j RETURN");
                    string nonEmpty = sepChains.Where(c => nat.Find(c)!.Rules.Count > 0).ElementAt(rnd.Next(10));
                    Command($"-D {nonEmpty} 1");
                    break;
                case 2:
                    Command($"-N NEW{round}");
                    Command($"-A NEW{round} -p tcp -j {svcChain}");
                    Command($"-I KUBE-SERVICES 1 -d 10.9.0.1/32 -j NEW{round}");
                    break;
                default:
                    Command($"-F {sep}");
                    break;
            }
        }
        SaveWriter.Write(pair.B, counters: true, stamp: "x").ShouldBe(SaveWriter.Write(pair.A, counters: true, stamp: "x"));
    }
}
