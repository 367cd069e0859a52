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
/// The flat walk's one-op entries (session 12, svcrecord): an entry whose only test is one port range or one random draw
/// after at most one comment (kube's KUBE-SVC-… endpoint rules, its masquerade rule's --dport, KUBE-SEP-…'s -m tcp) is
/// tested without the match list's loop. Against the linear walk: the same verdicts and counters, and so the same draws in
/// the same order; near misses (an inverted draw, nth, two comments first, a draw after a port range, a draw after a mark)
/// take the general list and agree too.
/// </summary>
public class OneOpTests
{
    private const string Header = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n";

    /// <summary>The entries' op lists are the shapes the one-op test takes (so the agreement below runs through it).</summary>
    [Fact]
    public void The_shapes_are_one_op_lists()
    {
        var two = new CompiledClassificationTests.Pair(Header + ":S - [0:0]\n-A FORWARD -j S\n"
            + "-A S -m comment --comment a -m statistic --mode random --probability 0.5 -j ACCEPT\n"
            + "-A S -m statistic --mode random --probability 0.5 -m comment --comment b -j ACCEPT\n"
            + "-A S -p tcp -m comment --comment c -m tcp --dport 80 -j ACCEPT\n"
            + "-A S -p udp -m udp --sport 1:2 -j ACCEPT\nCOMMIT\n");
        two.Entry("filter", "S", 0).Ops.ShouldBe(0x51u);
        two.Entry("filter", "S", 1).Ops.ShouldBe(0x5u);
        two.Entry("filter", "S", 2).Ops.ShouldBe(0x21u);
        two.Entry("filter", "S", 3).Ops.ShouldBe(0x2u);
    }

    /// <summary>
    /// Random service chains (kube's KUBE-SVC-… shape and near misses of it) with endpoint chains that mark and accept,
    /// port-range rules with edges hit: every packet's verdict and every rule's and policy's counters as the linear walk's.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Service_chains_agree_with_the_linear_walk(int seed)
    {
        var rnd = new Random(seed);
        var sb = new System.Text.StringBuilder(Header);
        int services = 12;
        var ports = new List<(int Lo, int Hi)>();
        var protos = new List<string>();
        for (int s = 0; s < services; s++)
        {
            int k = 1 + rnd.Next(6);
            sb.Append($":S{s} - [0:0]\n");
            for (int e = 0; e < k; e++) sb.Append($":E{s}x{e} - [0:0]\n");
        }
        for (int s = 0; s < services; s++)
        {
            int lo = rnd.Next(1, 3000), hi = lo + rnd.Next(0, 40);
            ports.Add((lo, hi));
            string proto = rnd.Next(3) == 0 ? "udp" : "tcp";
            protos.Add(proto);
            // The service's entry: a one-op port test (comment first or not), sometimes the source port too.
            string sport = rnd.Next(3) == 0 ? $" --sport {lo}:{hi}" : "";
            sb.Append($"-A FORWARD -p {proto}{(rnd.Next(2) == 0 ? " -m comment --comment svc" : "")} -m {proto}{sport} --dport {lo}:{hi} -j S{s}\n");
        }
        for (int s = 0; s < services; s++)
        {
            int k = 0;
            while (sb.ToString().Contains($":E{s}x{k} ")) k++;
            // The service chain's first rule (kube's masquerade rule: a one-op port test in a chain without an index, so the
            // walk tests it itself), its range at most two ports inside the one that led here, its edges hit.
            var (plo, phi) = ports[s];
            int ilo = Math.Min(plo + rnd.Next(3), phi), ihi = Math.Max(phi - rnd.Next(3), ilo);
            string isport = rnd.Next(3) == 0 ? $" --sport {ilo}:{ihi}" : "";
            sb.Append($"-A S{s} ! -s 10.9.0.0/16 -p {protos[s]}{(rnd.Next(2) == 0 ? " -m comment --comment m" : "")} -m {protos[s]}{isport} --dport {ilo}:{ihi} -j MARK --set-xmark 0x100/0x100\n");
            for (int e = 0; e < k; e++)
            {
                string comment = rnd.Next(4) switch { 0 => "", 1 => " -m comment --comment x", 2 => "", _ => " -m comment --comment y" };
                string draw = (e == k - 1 ? rnd.Next(6) : rnd.Next(12)) switch
                {
                    0 => "",
                    1 => " -m statistic --mode random ! --probability 0.3",
                    2 => " -m statistic --mode nth --every 3 --packet 1",
                    3 => " -m comment --comment a -m comment --comment b -m statistic --mode random --probability 0.4",
                    4 => rnd.Next(2) == 0 ? " -p tcp -m tcp --dport 1:1500 -m statistic --mode random --probability 0.5"
                        : " -m statistic --mode random --probability 0.5 -p tcp -m tcp --dport 1:1500",
                    5 => " -m mark --mark 0x1 -m statistic --mode random --probability 0.6",
                    6 => " -m statistic --mode random --probability 0",
                    7 => " -m statistic --mode random --probability 1",
                    _ => $" -m statistic --mode random --probability {rnd.NextDouble():F10}",
                };
                bool after = rnd.Next(3) == 0;
                sb.Append($"-A S{s}{(after ? "" : comment)}{draw}{(after ? comment : "")} -j E{s}x{e}\n");
                sb.Append($"-A E{s}x{e} -s 10.9.{s}.{e}/32 -j MARK --set-xmark 0x4000/0x4000\n");
                sb.Append($"-A E{s}x{e} -j MARK --set-xmark {s * 16 + e + 1}/0xff\n-A E{s}x{e} -p tcp -m tcp --dport 1:65535 -j ACCEPT\n");
            }
        }
        sb.Append("COMMIT\n");
        var two = new CompiledClassificationTests.Pair(sb.ToString());
        for (int n = 0; n < 1500; n++)
        {
            var (lo, hi) = ports[rnd.Next(services)];
            // Inside, at both edges and just outside the range.
            int dport = rnd.Next(5) switch { 0 => lo, 1 => hi, 2 => lo - 1, 3 => hi + 1, _ => rnd.Next(lo, hi + 1) };
            int sport = rnd.Next(3) switch { 0 => lo, 1 => hi, _ => rnd.Next(1, 3100) };
            uint from = rnd.Next(4) == 0 ? 0x0A090000u + (uint)(rnd.Next(services) << 8) + (uint)rnd.Next(6) : 0xC0A80002u;
            PacketBuilder pb = PacketBuilder.Ipv4(from, 0x0A000001u);
            byte[] p = rnd.Next(3) == 0 ? pb.Udp((ushort)sport, (ushort)dport).Build() : pb.Tcp((ushort)sport, (ushort)dport, TcpFlags.Syn).Build();
            two.Walk(p, "filter", Hook.Forward, mark: (uint)rnd.Next(2));
        }
    }

    /// <summary>
    /// kube-proxy's generated nat table (KUBE-SERVICES → KUBE-SVC-… draws → KUBE-SEP-…, DNAT as ACCEPT) with the one-op
    /// test switched off and on between packets: each side agrees with the linear walk, so both paths draw alike.
    /// </summary>
    [Fact]
    public void Kube_nat_walk_agrees_with_the_one_op_test_on_and_off()
    {
        var (text, svcs, _) = Chainwalk.Bench.KubeProxyRules.Generate(80, seed: 5);
        var two = new CompiledClassificationTests.Pair(System.Text.RegularExpressions.Regex.Replace(text, "-j DNAT --to-destination [^ \n]+", "-j ACCEPT"));
        var rnd = new Random(9);
        try
        {
            for (int n = 0; n < 600; n++)
            {
                Netfilter.OneOpOff = n % 7 == 3;
                var s = svcs[rnd.Next(svcs.Length)];
                uint from = rnd.Next(3) == 0 ? 0x0AF40107u : 0xC0A80002u + (uint)rnd.Next(50);
                byte[] p = PacketBuilder.Ipv4(from, s.ClusterIp).Tcp((ushort)(1024 + n), s.Port, TcpFlags.Syn).Build();
                two.WalkTracked(p, "nat", Hook.Prerouting, CtInfo.New, new Chainwalk.Conntrack.ConnEntry(default, default), mark: (uint)rnd.Next(2) * 0x4000);
            }
        }
        finally
        {
            Netfilter.OneOpOff = false;
        }
    }
}
