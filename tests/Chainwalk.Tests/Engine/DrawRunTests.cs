using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The flat walk's draw runs (session 13, drawrun): a run of draw-only entries (kube's KUBE-SVC-… endpoint rules) has its
/// draws computed together from the generator's next steps and the first success picked by its bit; the generator then
/// takes exactly the draws the linear walk makes. Against the linear walk, packet by packet: the verdict, the mark, every
/// rule's and policy's counters and the generator's position (the steps taken).
/// </summary>
public class DrawRunTests
{
    private const string Header = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n";

    private static long Steps(Netfilter nf) => ((SeededRandom)nf.State.Random).Steps;

    /// <summary>The walk of one packet on both sides, then the generators' positions compared.</summary>
    private static void Walk(CompiledClassificationTests.Pair two, byte[] p, uint mark)
    {
        two.WalkTracked(p, "filter", Hook.Forward, CtInfo.New, new Chainwalk.Conntrack.ConnEntry(default, default), mark);
        Steps(two.CompiledSide).ShouldBe(Steps(two.LinearSide), $"packet {two.Packets}: generator steps");
    }

    /// <summary>The generator's look-ahead gives the steps <see cref="SeededRandom.NextU32"/> takes, across refills.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(-77)]
    public void Ahead_and_advance_read_the_same_draws_as_NextU32(int seed)
    {
        var ours = new SeededRandom(seed);
        var reference = new Random(seed);
        var rnd = new Random(seed + 1);
        for (int k = 0; k < 4000; k++)
        {
            int draws = 1 + rnd.Next(SeededRandom.MostAhead / 3);
            ref int x = ref ours.Ahead(3 * draws);
            int take = rnd.Next(draws + 1);
            for (int d = 0; d < take; d++)
            {
                uint want = (uint)reference.NextInt64(0, 1L << 32) & 0x7FFFFFFF;
                SeededRandom.Draw31(System.Runtime.CompilerServices.Unsafe.Add(ref x, 3 * d + 1), System.Runtime.CompilerServices.Unsafe.Add(ref x, 3 * d + 2)).ShouldBe(want);
            }
            ours.Advance(3 * take);
            if (rnd.Next(3) == 0) ours.Next().ShouldBe(reference.Next());
        }
    }

    /// <summary>kube's KUBE-SVC-… chains are marked: each endpoint rule with a draw holds the draws left in its run, and the catch (the last, unconditional endpoint rule).</summary>
    [Fact]
    public void Kube_service_chains_are_marked_as_draw_runs()
    {
        var two = new CompiledClassificationTests.Pair(Header + ":S - [0:0]\n:E - [0:0]\n-A FORWARD -j S\n"
            + "-A S ! -s 10.244.0.0/16 -d 10.96.0.1/32 -p tcp -m comment --comment x -m tcp --dport 443 -j MARK --set-xmark 0x4000/0x4000\n"
            + "-A S -m comment --comment a -m statistic --mode random --probability 0.3333333333 -j E\n"
            + "-A S -m comment --comment b -m statistic --mode random --probability 0.5000000000 -j E\n"
            + "-A S -m comment --comment c -j E\nCOMMIT\n");
        two.Entry("filter", "S", 1).B.ShouldBe(2u | FlatEntry.RunCatch);
        two.Entry("filter", "S", 2).B.ShouldBe(1u | FlatEntry.RunCatch);
        two.Entry("filter", "S", 0).B.ShouldBe((443u << 16) | 443u);
    }

    /// <summary>
    /// Random service chains: runs of draws of 1–20 entries (longer than one go), with or without a catch after them,
    /// and near misses inside a run (a draw with an address or a port, an inverted draw, nth, a mark test, probabilities 0
    /// and 1, a draw rule with ACCEPT, MARK or no target, so that the walk goes on inside the run), packets marked or not.
    /// Edited between packets (a rule replaced, inserted or deleted; a policy changed), as kube-proxy's restores do.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void Service_chains_agree_with_the_linear_walk_draw_by_draw(int seed)
    {
        var rnd = new Random(seed);
        var sb = new System.Text.StringBuilder(Header);
        int services = 10;
        for (int s = 0; s < services; s++) sb.Append($":S{s} - [0:0]\n:E{s} - [0:0]\n");
        for (int s = 0; s < services; s++) sb.Append($"-A FORWARD -p tcp -m tcp --dport {1000 + s} -j S{s}\n");
        for (int s = 0; s < services; s++)
        {
            if (rnd.Next(2) == 0) sb.Append($"-A S{s} ! -s 10.244.0.0/16 -p tcp -m tcp --dport {1000 + s} -j MARK --set-xmark 0x4000/0x4000\n");
            int k = 1 + rnd.Next(20);
            for (int e = 0; e < k; e++)
            {
                string draw = rnd.Next(14) switch
                {
                    0 => " -s 192.168.0.0/24 -m statistic --mode random --probability 0.5",
                    1 => " -m statistic --mode random ! --probability 0.3",
                    2 => " -m statistic --mode nth --every 3 --packet 1",
                    3 => " -m mark --mark 0x1 -m statistic --mode random --probability 0.6",
                    4 => " -p tcp -m tcp --dport 1000:1004 -m statistic --mode random --probability 0.5",
                    5 => " -m statistic --mode random --probability 0",
                    6 => " -m statistic --mode random --probability 1",
                    _ => $" -m comment --comment e{e} -m statistic --mode random --probability {1.0 / (k - e + rnd.Next(3)):F10}",
                };
                string target = rnd.Next(8) switch { 0 => " -j ACCEPT", 1 => " -j MARK --set-xmark 0x10/0x10", 2 => "", _ => $" -j E{s}" };
                sb.Append($"-A S{s}{draw}{target}\n");
            }
            // The catch: kube's last endpoint rule, or a near miss of it, or nothing.
            sb.Append(rnd.Next(4) switch
            {
                0 => $"-A S{s} -m comment --comment last -j E{s}\n",
                1 => $"-A S{s} -s 10.0.0.0/8 -j E{s}\n",
                2 => $"-A S{s} -j MARK --set-xmark 0x20/0x20\n",
                _ => "",
            });
            sb.Append($"-A E{s} -j MARK --set-xmark {s + 1}/0xf00\n-A E{s} -m mark --mark 0x10/0x10 -j RETURN\n-A E{s} -j ACCEPT\n");
        }
        sb.Append("COMMIT\n");
        var two = new CompiledClassificationTests.Pair(sb.ToString());
        string[] edits =
        [
            " -m statistic --mode random --probability 0.5 -j ACCEPT",
            " -m comment --comment n -m statistic --mode random --probability 0.25",
            " -j ACCEPT",
            " -m statistic --mode random --probability 0.7 -j MARK --set-xmark 0x10/0x10",
            " -p tcp -m statistic --mode random --probability 0.5 -j ACCEPT",
        ];
        for (int n = 0; n < 3000; n++)
        {
            if (n % 150 == 149)
            {
                string chainName = $"S{rnd.Next(services)}";
                Chain chain = two.ChainB("filter", chainName);
                int count = chain.Rules.Count;
                Rule rule = EngineHost.Rules(IpFamily.V4, "*filter\n-A FORWARD" + edits[rnd.Next(edits.Length)] + "\nCOMMIT\n").Find("filter")!.Find("FORWARD")!.Rules[0];
                switch (rnd.Next(4))
                {
                    case 0:
                        int r = rnd.Next(count);
                        two.Edit(rules => new RulesetEditor(rules).Replace("filter", chainName, r + 1, rule.Clone()));
                        two.Changed(c => c.Replaced(chain, r));
                        break;
                    case 1:
                        int at = rnd.Next(count + 1);
                        two.Edit(rules => new RulesetEditor(rules).Insert("filter", chainName, at + 1, [rule.Clone()]));
                        two.Changed(c => c.Inserted(chain, at));
                        break;
                    case 2:
                        int d = rnd.Next(count);
                        two.Edit(rules => new RulesetEditor(rules).DeleteNumber("filter", chainName, d + 1));
                        two.Changed(c => c.Deleted(chain, d));
                        break;
                    default:
                        string policy = rnd.Next(2) == 0 ? "ACCEPT" : "DROP";
                        two.Edit(rules => new RulesetEditor(rules).SetPolicy("filter", "FORWARD", policy));
                        break;
                }
            }
            uint from = rnd.Next(4) == 0 ? 0x0AF40107u : 0xC0A80002u + (uint)rnd.Next(300);
            byte[] p = PacketBuilder.Ipv4(from, 0x0A600001u).Tcp((ushort)(2000 + n), (ushort)(1000 + rnd.Next(services)), TcpFlags.Syn).Build();
            Walk(two, p, (uint)rnd.Next(2));
        }
    }

    /// <summary>
    /// kube-proxy's generated nat table (DNAT as ACCEPT), the draw runs switched off and on between packets: both ways
    /// agree with the linear walk, draw by draw.
    /// </summary>
    [Fact]
    public void Kube_nat_walk_agrees_with_draw_runs_on_and_off()
    {
        var (text, svcs, _) = Chainwalk.Bench.KubeProxyRules.Generate(120, seed: 7);
        var two = new CompiledClassificationTests.Pair(System.Text.RegularExpressions.Regex.Replace(text, "-j DNAT --to-destination [^ \n]+", "-j ACCEPT"));
        var rnd = new Random(11);
        try
        {
            for (int n = 0; n < 1500; n++)
            {
                Netfilter.DrawRunOff = n % 5 == 2;
                var s = svcs[rnd.Next(svcs.Length)];
                uint from = rnd.Next(3) == 0 ? 0x0AF40107u : 0xC0A80002u + (uint)rnd.Next(50);
                byte[] p = PacketBuilder.Ipv4(from, s.ClusterIp).Tcp((ushort)(1024 + n), s.Port, TcpFlags.Syn).Build();
                two.WalkTracked(p, "nat", Hook.Prerouting, CtInfo.New, new Chainwalk.Conntrack.ConnEntry(default, default), mark: (uint)rnd.Next(2) * 0x4000);
                Steps(two.CompiledSide).ShouldBe(Steps(two.LinearSide), $"packet {n}: generator steps");
            }
        }
        finally
        {
            Netfilter.DrawRunOff = false;
        }
    }
}
