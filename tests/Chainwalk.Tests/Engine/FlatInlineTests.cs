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
/// What the flat walk does from the entry since session 9 (synwalk2), against the linear walk (the reference):
/// <c>-m conntrack --ctstate</c> / <c>-m state --state</c> testing the state alone (<see cref="FlatOp.CtState"/>: the
/// answer by the packet's ctinfo, xt_conntrack.c's conntrack_mt), and a MARK target applied from the entry
/// (<see cref="FlatFlags.InlineMark"/>, xt_mark.c's mark_tg) after which the walk keeps its flow key; the walk's prefetches
/// on or off (<see cref="Netfilter.PrefetchFromEntries"/>, <see cref="Netfilter.NeighbourEntries"/>) give the same walk.
/// </summary>
public class FlatInlineTests
{
    private static readonly byte[] Syn = PacketBuilder.Ipv4("192.168.0.2", "10.0.0.1").Tcp(1234, 80, TcpFlags.Syn).Build();

    /// <summary>
    /// A state-only conntrack or state match is lowered to <see cref="FlatOp.CtState"/> (else, with SNAT/DNAT among the
    /// states or another option, it stays its extension's) and decides as the match does for every ctinfo, with and
    /// without an entry, with the entry's SNAT/DNAT status bits: the verdict and counters of the linear walk.
    /// </summary>
    [Theory]
    [InlineData("-m conntrack --ctstate NEW", true)]
    [InlineData("-m conntrack --ctstate INVALID", true)]
    [InlineData("-m conntrack --ctstate RELATED,ESTABLISHED", true)]
    [InlineData("-m conntrack ! --ctstate RELATED,ESTABLISHED", true)]
    [InlineData("-m conntrack --ctstate UNTRACKED", true)]
    [InlineData("-m conntrack ! --ctstate NEW,UNTRACKED", true)]
    [InlineData("-m state --state NEW,ESTABLISHED", true)]
    [InlineData("-m state ! --state INVALID", true)]
    [InlineData("-m comment --comment x -m conntrack --ctstate NEW -m comment --comment y", true)]
    [InlineData("-m conntrack --ctstate DNAT", false)]
    [InlineData("-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT", false)]
    [InlineData("-m conntrack --ctstate NEW --ctdir ORIGINAL", false)]
    [InlineData("-m conntrack --ctstate NEW --ctstatus ASSURED", false)]
    public void A_state_only_conntrack_match_decides_from_the_ctinfo_as_the_match_does(string match, bool inline)
    {
        var two = new CompiledClassificationTests.Pair($"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:U - [0:0]\n-A FORWARD -j U\n-A U {match} -j ACCEPT\nCOMMIT\n");
        FlatEntry e = two.Entry("filter", "U", 0);
        (e.Flags & (FlatFlags.Generic | FlatFlags.GenericOps)).ShouldBe(inline ? FlatFlags.None : FlatFlags.GenericOps);
        bool sawAccept = false, sawDrop = false;
        foreach (CtInfo info in Enum.GetValues<CtInfo>())
        {
            foreach (ConnStatus status in new[] { ConnStatus.None, ConnStatus.SrcNat, ConnStatus.DstNat, ConnStatus.Assured })
            {
                var entry = new ConnEntry(default, default) { Status = status };
                foreach (ConnEntry? ct in new[] { entry, null })
                {
                    Verdict v = two.WalkTracked(Syn, "filter", Hook.Forward, info, ct);
                    sawAccept |= v.Kind == VerdictKind.Accept;
                    sawDrop |= v.Kind == VerdictKind.Drop;
                }
            }
        }
        sawAccept.ShouldBeTrue();
        sawDrop.ShouldBeTrue();
    }

    /// <summary>The answers by ctinfo of a few states (bit n: ctinfo n), read from conntrack_mt: an untracked packet is UNTRACKED, no entry INVALID.</summary>
    [Theory]
    [InlineData("NEW", false, 0b0001000u)]
    [InlineData("RELATED,ESTABLISHED", false, 0b0110110u)]
    [InlineData("INVALID", false, 0b0000001u)]
    [InlineData("UNTRACKED", false, 0b1000000u)]
    [InlineData("NEW", true, 0b1110111u)]
    public void State_answers_by_ctinfo(string states, bool invert, uint answers)
    {
        Rule r = EngineHost.Rules(IpFamily.V4, $"*filter\n-A FORWARD -m conntrack {(invert ? "! " : "")}--ctstate {states} -j ACCEPT\nCOMMIT\n").Find("filter")!.Find("FORWARD")!.Rules[0];
        FlatEntry e = FlatEntry.Of(r, _ => -1);
        ((FlatOp)(e.Ops & 0xF)).ShouldBe(FlatOp.CtState);
        e.A.ShouldBe(answers);
    }

    /// <summary>
    /// MARK targets of every form (set, set-xmark with a mask, and, or, xor) applied from the entry when the rule has no
    /// match operands (a rule testing the mark or ports keeps the extension call), followed by rules that test the mark
    /// and the ports (the flow key kept after the MARK): the same verdicts, marks and counters as the linear walk.
    /// </summary>
    [Theory]
    [InlineData("-j MARK --set-mark 0x4000", true)]
    [InlineData("-j MARK --set-xmark 0x5/0xf", true)]
    [InlineData("-j MARK --or-mark 0x4000", true)]
    [InlineData("-j MARK --and-mark 0x4001", true)]
    [InlineData("-j MARK --xor-mark 0x4000", true)]
    [InlineData("-m comment --comment x -j MARK --xor-mark 0x4001", true)]
    [InlineData("-s 192.168.0.0/16 -j MARK --set-mark 0x4000", true)]
    [InlineData("-m mark --mark 0x1/0x1 -j MARK --or-mark 0x4000", false)]
    [InlineData("-p tcp -m tcp --dport 80 -j MARK --xor-mark 0x4000", false)]
    public void Mark_targets_from_the_entry_set_the_marks_the_extension_sets(string rule, bool inline)
    {
        var two = new CompiledClassificationTests.Pair("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:U - [0:0]\n"
            + "-A FORWARD -j U\n-A FORWARD -m mark --mark 0x4000/0x4000 -p tcp -m tcp --dport 80 -j DROP\n-A FORWARD -m mark --mark 0x5/0xf -j DROP\n"
            + $"-A U {rule}\n-A U -p tcp -m tcp --dport 81 -j RETURN\n-A U -m mark --mark 0x1/0x1 -j MARK --or-mark 0x2\nCOMMIT\n");
        ((two.Entry("filter", "U", 0).Flags & FlatFlags.InlineMark) != 0).ShouldBe(inline);
        ((two.Entry("filter", "U", 2).Flags & FlatFlags.InlineMark) != 0).ShouldBeFalse();
        var marks = new uint[] { 0, 1, 0x4000, 0x4001, 0xffffffff, 0x5, 0xa };
        foreach (ushort port in new ushort[] { 80, 81, 443 })
        {
            byte[] p = PacketBuilder.Ipv4("192.168.0.2", "10.0.0.1").Tcp(1234, port, TcpFlags.Syn).Build();
            byte[] q = PacketBuilder.Ipv4("172.16.0.2", "10.0.0.1").Tcp(1234, port, TcpFlags.Syn).Build();
            foreach (uint mark in marks)
            {
                two.WalkTracked(p, "filter", Hook.Forward, CtInfo.New, null, mark);
                two.WalkTracked(q, "filter", Hook.Forward, CtInfo.New, null, mark);
            }
        }
    }

    /// <summary>
    /// kube-proxy's shapes (nat PREROUTING with KUBE-MARK-MASQ's MARK and the statistic draws, filter FORWARD's --ctstate
    /// rules, nat POSTROUTING's MARK --xor-mark) with the walk's prefetches forced on and off: the same verdicts, marks,
    /// counters (and so the same random draws) as the linear walk either way.
    /// </summary>
    [Theory]
    [InlineData(0, 16)]
    [InlineData(0, 0)]
    [InlineData(int.MaxValue, 16)]
    public void Kube_walks_agree_with_the_prefetches_on_or_off(int prefetchFrom, int neighbours)
    {
        var (text, svcs, _) = Chainwalk.Bench.KubeProxyRules.Generate(120, seed: 11);
        var two = new CompiledClassificationTests.Pair(System.Text.RegularExpressions.Regex.Replace(text, "-j DNAT --to-destination [^ \n]+", "-j ACCEPT"));
        int was = Netfilter.PrefetchFromEntries, wasNeighbours = Netfilter.NeighbourEntries;
        Netfilter.PrefetchFromEntries = prefetchFrom;
        Netfilter.NeighbourEntries = neighbours;
        try
        {
            var rnd = new Random(4);
            for (int n = 0; n < 300; n++)
            {
                var s = svcs[rnd.Next(svcs.Length)];
                uint from = rnd.Next(3) == 0 ? 0x0AF40107u : 0xC0A80002u + (uint)rnd.Next(50); // a pod (10.244.1.7) or a client outside
                byte[] p = PacketBuilder.Ipv4(from, s.ClusterIp).Tcp((ushort)(1024 + n), s.Port, TcpFlags.Syn).Build();
                CtInfo info = rnd.Next(4) switch { 0 => CtInfo.Established, 1 => CtInfo.None, _ => CtInfo.New };
                ConnEntry? ct = info == CtInfo.None ? null : new ConnEntry(default, default);
                two.WalkTracked(p, "nat", Hook.Prerouting, info, ct, mark: (uint)rnd.Next(2) * 0x4000);
                two.WalkTracked(p, "filter", Hook.Forward, info, ct, mark: (uint)rnd.Next(2) * 0x4000);
                two.WalkTracked(p, "nat", Hook.Postrouting, info, ct, mark: (uint)rnd.Next(2) * 0x4000);
            }
        }
        finally
        {
            Netfilter.PrefetchFromEntries = was;
            Netfilter.NeighbourEntries = wasNeighbours;
        }
    }
}
