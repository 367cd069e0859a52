using System.Text;
using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;
using Pair = Chainwalk.Tests.Engine.CompiledClassificationTests.Pair;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The flat walk (<see cref="FlatEntry"/> per rule, Netfilter's WalkFlat) against the linear walk, the reference: rule
/// sets made of what the flat form holds inline (IPv4 header part with inversions, comment, tcp/udp ports, mark,
/// statistic random, in any order and mixed with matches it leaves to their extension), jumps, gotos, RETURN and targets
/// that change the mark mid-walk; verdicts and every counter after every packet, edits between packets, renames.
/// </summary>
public class FlatWalkTests
{
    private static readonly string[] Nets = ["10.0.0.0/8", "10.1.2.0/24", "10.1.2.3/32", "192.168.1.0/24", "10.1.0.0/255.255.0.255", "0.0.0.0/0"];

    /// <summary>A condition of up to four parts, each one the flat form holds inline or one it leaves to its extension.</summary>
    private static string Condition(Random rnd)
    {
        var sb = new StringBuilder();
        // "! -s 0.0.0.0/0" is refused (EINVAL): an inverted address is never the last one, 0.0.0.0/0.
        if (rnd.Next(3) == 0) sb.Append(rnd.Next(3) == 0 ? " ! -s " + Nets[rnd.Next(Nets.Length - 1)] : " -s " + Nets[rnd.Next(Nets.Length)]);
        if (rnd.Next(3) == 0) sb.Append(rnd.Next(3) == 0 ? " ! -d " + Nets[rnd.Next(Nets.Length - 1)] : " -d " + Nets[rnd.Next(Nets.Length)]);
        string proto = rnd.Next(5) switch { 0 or 1 => "tcp", 2 => "udp", 3 => "icmp", _ => "" };
        bool inverted = proto.Length > 0 && rnd.Next(6) == 0;
        if (proto.Length > 0) sb.Append(inverted ? " ! -p " : " -p ").Append(proto);
        int parts = rnd.Next(5);
        bool ports = false, iface = false;
        for (int k = 0; k < parts; k++)
        {
            switch (rnd.Next(9))
            {
                case 0:
                    sb.Append(" -m comment --comment \"c").Append(k).Append('"');
                    break;
                case 1 when proto is "tcp" or "udp" && !inverted && !ports:
                    ports = true;
                    bool dport = rnd.Next(2) == 0;
                    sb.Append(" -m ").Append(proto).Append(dport ? " --dport " : " --sport ").Append(rnd.Next(3) switch { 0 => "53", 1 => "1000:2000", _ => "80" });
                    if (dport && rnd.Next(4) == 0) sb.Append(" --sport 1024:65535");
                    break;
                case 2 when proto is "tcp" && !inverted && !ports:
                    ports = true;
                    sb.Append(" -m tcp ! --dport 80");
                    break;
                case 3:
                    sb.Append(" -m mark ").Append(rnd.Next(3) == 0 ? "! " : "").Append("--mark ").Append(rnd.Next(2) == 0 ? "0x1" : "0x4000/0x4000");
                    break;
                case 4:
                    sb.Append(" -m statistic --mode random ").Append(rnd.Next(4) == 0 ? "! " : "").Append("--probability 0.").Append(rnd.Next(1, 10));
                    break;
                case 5:
                    sb.Append(" -m statistic --mode nth --every 3 --packet 0");
                    break;
                case 6:
                    sb.Append(" -m conntrack --ctstate ").Append(rnd.Next(2) == 0 ? "INVALID" : "NEW,ESTABLISHED");
                    break;
                case 7:
                    sb.Append(" -m length --length 0:60");
                    break;
                default:
                    if (!iface && rnd.Next(4) == 0) sb.Append(" -i eth0");
                    iface = true;
                    break;
            }
        }
        return sb.ToString();
    }

    private static string RuleSet(Random rnd)
    {
        var sb = new StringBuilder("*filter\n:INPUT ACCEPT [0:0]\n");
        sb.Append(":FORWARD ").Append(rnd.Next(2) == 0 ? "DROP" : "ACCEPT").Append(" [0:0]\n:OUTPUT ACCEPT [0:0]\n:U1 - [0:0]\n:U2 - [0:0]\n:U3 - [0:0]\n");
        void Rules(string chain, int count, string[] targets)
        {
            for (int i = 0; i < count; i++) sb.Append("-A ").Append(chain).Append(Condition(rnd)).Append(targets[rnd.Next(targets.Length)]).Append('\n');
        }
        Rules("INPUT", 20, [" -j ACCEPT", " -j DROP", " -j U2", ""]);
        Rules("FORWARD", 60, [" -j ACCEPT", " -j DROP", " -j U1", " -j U2", " -g U3", "", " -j MARK --set-mark 1", " -j MARK --or-mark 0x4000", " -j RETURN"]);
        Rules("U1", 20, [" -j ACCEPT", " -j DROP", " -j RETURN", " -j U2", "", " -j MARK --xor-mark 0x4000", " -j U3"]);
        Rules("U2", 20, [" -j ACCEPT", " -j DROP", " -j RETURN", "", " -j MARK --set-mark 0x1"]);
        Rules("U3", 10, [" -j ACCEPT", " -j RETURN", ""]);
        sb.Append("COMMIT\n");
        return sb.ToString();
    }

    [Theory]
    [InlineData(31)]
    [InlineData(32)]
    [InlineData(33)]
    [InlineData(34)]
    [InlineData(35)]
    [InlineData(36)]
    public void Random_rule_sets_of_inline_and_other_matches_agree_with_the_linear_walk(int seed)
    {
        var rnd = new Random(seed);
        var pair = new Pair(RuleSet(rnd));
        // The flat form is there and holds most rules inline.
        FlatChain flat = pair.Compiled.FlatFor(pair.ChainB("filter", "FORWARD")).ShouldNotBeNull();
        for (int n = 0; n < 1500; n++)
        {
            pair.Walk(CompiledClassificationTests.RandomPacket(rnd), "filter", Hook.Forward, inDev: rnd.Next(2) == 0 ? "eth0" : "eth1", mark: (uint)rnd.Next(3) * 0x2001);
        }
        for (int n = 0; n < 300; n++)
        {
            pair.Process(EngineHost.In(rnd.Next(2) == 0 ? "eth0" : "eth1", CompiledClassificationTests.RandomPacket(rnd)));
        }
        pair.MatchedPackets("filter", "FORWARD").ShouldBeGreaterThan(300UL);
        flat.Chain.Rules.Count.ShouldBe(60);
    }

    [Theory]
    [InlineData(" -s 10.1.2.0/24 -p tcp -m comment --comment x -m tcp --dport 80 -j ACCEPT", FlatFlags.Protocol, 0x21)]
    [InlineData(" ! -s 10.244.0.0/16 -d 172.30.0.1/32 -p tcp -m comment --comment x -m tcp --dport 80 -j ACCEPT", FlatFlags.SourceInverted | FlatFlags.Protocol, 0x21)]
    [InlineData(" -m comment --comment x -m statistic --mode random --probability 0.5 -j ACCEPT", FlatFlags.None, 0x51)]
    [InlineData(" -m mark ! --mark 0x4000/0x4000 -j RETURN", FlatFlags.None, 0x4)]
    // The state-only conntrack match is inline (session 9): the mark after it is the second with operands, generic.
    [InlineData(" -m conntrack --ctstate NEW -m comment --comment x -m mark --mark 1 -j ACCEPT", FlatFlags.GenericOps, 0x718)]
    [InlineData(" -m conntrack --ctstate NEW -m comment --comment x -j ACCEPT", FlatFlags.None, 0x8)]
    [InlineData(" -m conntrack --ctstate NEW,DNAT -j ACCEPT", FlatFlags.GenericOps, 0x7)]
    [InlineData(" ! -p udp -m comment --comment x", FlatFlags.Protocol | FlatFlags.ProtocolInverted, 0x0)]
    [InlineData(" -p tcp -m tcp ! --dport 80 -j ACCEPT", FlatFlags.Protocol | FlatFlags.GenericOps, 0x7)]
    [InlineData(" -p tcp -m tcp --syn -j ACCEPT", FlatFlags.Protocol | FlatFlags.GenericOps, 0x7)]
    [InlineData(" -i eth0 -p tcp -j ACCEPT", FlatFlags.Generic, 0x0)]
    // One inline test with operands per entry: the second (mark after ports, ports after statistic) is generic.
    [InlineData(" -p tcp -m tcp --dport 80 -m mark --mark 1 -j ACCEPT", FlatFlags.Protocol | FlatFlags.GenericOps, 0x72)]
    [InlineData(" -p udp -m statistic --mode random --probability 0.5 -m udp --sport 53 -j ACCEPT", FlatFlags.Protocol | FlatFlags.GenericOps, 0x75)]
    public void A_rule_is_lowered_to_its_inline_parts_in_order(string rule, FlatFlags flags, uint ops)
    {
        Rule r = EngineHost.Rules(IpFamily.V4, "*filter\n-A FORWARD" + rule + "\nCOMMIT\n").Find("filter")!.Find("FORWARD")!.Rules[0];
        FlatEntry e = FlatEntry.Of(r, _ => -1);
        e.Flags.ShouldBe(flags);
        e.Ops.ShouldBe(ops);
        ReferenceEquals(e.Rule, r).ShouldBeTrue();
    }

    [Theory]
    [InlineData(" -p tcp -m tcp --sport 1000:2000 --dport 80 -j ACCEPT", 1000u, 2000u, 80u, 80u)]
    [InlineData(" -p udp -m udp --dport 5000: -j ACCEPT", 0u, 65535u, 5000u, 65535u)]
    [InlineData(" -m mark --mark 0x4000/0xc000 -j ACCEPT", 0x4000u, 0u, 0xc000u, 0u)]
    [InlineData(" -m statistic --mode random --probability 0.25 -j ACCEPT", 0x20000000u, 0u, 0u, 0u)]
    public void An_entry_keeps_its_one_inline_test_s_operands(string rule, uint a, uint aHigh, uint b, uint bHigh)
    {
        Rule r = EngineHost.Rules(IpFamily.V4, "*filter\n-A FORWARD" + rule + "\nCOMMIT\n").Find("filter")!.Find("FORWARD")!.Rules[0];
        FlatEntry e = FlatEntry.Of(r, _ => -1);
        bool ports = (FlatOp)(e.Ops & 0xF) == FlatOp.Ports;
        if (ports)
        {
            (e.SportLow, e.SportHigh, e.DportLow, e.DportHigh).ShouldBe(((ushort)a, (ushort)aHigh, (ushort)b, (ushort)bHigh));
        }
        else
        {
            (e.A, e.B).ShouldBe((a, b));
        }
    }

    /// <summary>The entry's size (the compiled form's bytes per rule, the rule's counters inside): a rule the walk passes reads 56 bytes.</summary>
    [Fact]
    public void An_entry_is_56_bytes() => System.Runtime.CompilerServices.Unsafe.SizeOf<FlatEntry>().ShouldBe(56);

    /// <summary>
    /// -s/-d inline as a prefix (shift) only: a prefix mask and an address without bits outside it; a non-contiguous mask
    /// is tested whole (generic). The walk agrees with the linear walk either way (the random sets, below).
    /// </summary>
    [Theory]
    [InlineData(" -s 10.1.2.0/24 -j ACCEPT", false, 8, 32)]
    [InlineData(" -d 172.30.0.1/32 -j ACCEPT", false, 32, 0)]
    [InlineData(" ! -s 10.0.0.0/8 -j ACCEPT", false, 24, 32)]
    [InlineData(" -s 10.0.0.0/1 -d 0.0.0.0/0 -j ACCEPT", false, 31, 32)]
    [InlineData(" -s 10.0.3.0/255.0.255.0 -j ACCEPT", true, 0, 0)]
    public void Addresses_are_inline_as_prefixes(string rule, bool generic, int sourceShift, int destinationShift)
    {
        Rule r = EngineHost.Rules(IpFamily.V4, "*filter\n-A FORWARD" + rule + "\nCOMMIT\n").Find("filter")!.Find("FORWARD")!.Rules[0];
        FlatEntry e = FlatEntry.Of(r, _ => -1);
        ((e.Flags & FlatFlags.Generic) != 0).ShouldBe(generic);
        if (!generic) (e.SourceShift, e.DestinationShift).ShouldBe(((byte)sourceShift, (byte)destinationShift));
    }

    /// <summary>
    /// A built-in chain its index decides alone (one run of plain ACCEPT/DROP rules: ClassBench's shape) gets no flat
    /// entries (never walked the flat way, nothing jumps to a built-in chain); a user chain of the same rules does. Both
    /// still agree with the linear walk, also after an edit that makes the built-in chain no longer index-decided.
    /// </summary>
    [Fact]
    public void Index_decided_built_in_chain_has_no_entries_and_agrees()
    {
        var sb = new StringBuilder("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:USER - [0:0]\n");
        for (int i = 0; i < 64; i++)
        {
            string rule = $"-s 10.{i}.0.0/16 -d 192.168.{i}.0/24 -p tcp -m tcp --dport {1000 + i} -j {(i % 3 == 0 ? "DROP" : "ACCEPT")}";
            sb.Append("-A FORWARD ").Append(rule).Append('\n').Append("-A USER ").Append(rule).Append('\n');
        }
        sb.Append("-A INPUT -j USER\nCOMMIT\n");
        var pair = new Pair(sb.ToString());
        FlatChain forward = pair.Compiled.FlatChains.Single(f => f.Chain.Name == "FORWARD");
        FlatChain user = pair.Compiled.FlatChains.Single(f => f.Chain.Name == "USER");
        forward.Index.ShouldNotBeNull().FullyPlain.ShouldBeTrue();
        forward.Entries.Length.ShouldBe(0);
        forward.Worth.ShouldBeFalse();
        user.Entries.Length.ShouldBe(64);
        var rnd = new Random(5);
        for (int n = 0; n < 300; n++)
        {
            int i = rnd.Next(70);
            byte[] p = PacketBuilder.Ipv4($"10.{i % 64}.1.2", $"192.168.{i % 64}.9").Tcp(4000, (ushort)(1000 + i), TcpFlags.Syn).Build();
            pair.Walk(p, "filter", Hook.Forward);
            pair.Walk(p, "filter", Hook.Input, outDev: null);
        }
        pair.MatchedPackets("filter", "FORWARD").ShouldBeGreaterThan(0UL);
    }

    /// <summary>The kube-proxy shapes through the whole pipeline (nat and filter): the flat walk's fates and counters.</summary>
    [Fact]
    public void Kube_proxy_rules_through_the_pipeline_agree()
    {
        var (text, svcs, _) = Chainwalk.Bench.KubeProxyRules.Generate(200, seed: 7);
        // DNAT needs a connection (the pipeline's): here the walk alone, DNAT as ACCEPT (as the bench's walk figure).
        var pair = new Pair(System.Text.RegularExpressions.Regex.Replace(text, "-j DNAT --to-destination [^ \n]+", "-j ACCEPT"));
        var rnd = new Random(3);
        for (int n = 0; n < 400; n++)
        {
            var s = svcs[rnd.Next(svcs.Length)];
            byte[] p = PacketBuilder.Ipv4(0xC0A80002u + (uint)rnd.Next(4), s.ClusterIp).Tcp((ushort)(1024 + n), s.Port, TcpFlags.Syn).Build();
            pair.Walk(p, "nat", Hook.Prerouting, mark: (uint)rnd.Next(2) * 0x4000);
            pair.Walk(p, "filter", Hook.Forward, mark: (uint)rnd.Next(2) * 0x4000);
            pair.Walk(p, "nat", Hook.Postrouting, mark: (uint)rnd.Next(2) * 0x4000);
        }
        pair.MatchedPackets("nat", "PREROUTING").ShouldBe(400UL);
    }

    /// <summary>
    /// Edits between packets through <see cref="RulesetEditor"/>: a short chain's entries are built again on the next walk,
    /// a chain longer than <see cref="FlatChain.RebuildLimit"/> is walked through its rule objects until recompiled; a
    /// renamed chain's jumps go by name as the linear walk's do; zeroed counters count again from zero on the rules.
    /// </summary>
    [Theory]
    [InlineData(41)]
    [InlineData(42)]
    [InlineData(43)]
    public void Edits_renames_and_zeroing_between_packets_keep_the_flat_walk_equal_to_the_linear(int seed)
    {
        var rnd = new Random(seed);
        var pair = new Pair(RuleSet(rnd));
        void Packets(int n)
        {
            for (int k = 0; k < n; k++)
                pair.Walk(CompiledClassificationTests.RandomPacket(rnd), "filter", Hook.Forward, inDev: rnd.Next(2) == 0 ? "eth0" : "eth1", mark: (uint)rnd.Next(3));
        }
        Packets(200);
        for (int round = 0; round < 30; round++)
        {
            string chain = new[] { "FORWARD", "U1", "U2" }[rnd.Next(3)];
            Rule rule = EngineHost.Rules(IpFamily.V4, "*filter\n:U1 - [0:0]\n:U2 - [0:0]\n:U3 - [0:0]\n-A " + chain + Condition(rnd) + new[] { " -j ACCEPT", " -j U3", " -j DROP", "" }[rnd.Next(4)] + "\nCOMMIT\n")
                .Find("filter")!.Find(chain)!.Rules[0];
            int count = pair.ChainB("filter", chain).Rules.Count;
            switch (rnd.Next(5))
            {
                case 0:
                    int at = rnd.Next(count + 1) + 1;
                    pair.Edit(r => new RulesetEditor(r).Insert("filter", chain, at, [rule.Clone()]));
                    break;
                case 1 when count > 0:
                    int rep = rnd.Next(count) + 1;
                    pair.Edit(r => new RulesetEditor(r).Replace("filter", chain, rep, rule.Clone()));
                    break;
                case 2 when count > 0:
                    int del = rnd.Next(count) + 1;
                    pair.Edit(r => new RulesetEditor(r).DeleteNumber("filter", chain, del));
                    break;
                case 3:
                    // Counters zeroed on the rules (what -Z does) are what both walks count on from then on.
                    pair.Edit(r =>
                    {
                        foreach (Chain c in r.Find("filter")!.Chains)
                        {
                            foreach (Rule x in c.Rules) x.Counters = default;
                        }
                    });
                    break;
                default:
                    pair.Edit(r => new RulesetEditor(r).Append("filter", chain, [rule.Clone()]));
                    break;
            }
            Packets(40);
        }
        // A rename: jumps to U1 by name now find nothing (as in the linear walk), then a new U1 is found by name.
        pair.Edit(r => new RulesetEditor(r).RenameChain("filter", "U1", "U9"));
        Packets(100);
        pair.Edit(r => new RulesetEditor(r).NewChain("filter", "U1"));
        pair.Edit(r => new RulesetEditor(r).Append("filter", "U1", [EngineHost.Rules(IpFamily.V4, "*filter\n:U1 - [0:0]\n-A U1 -p udp -j DROP\nCOMMIT\n").Find("filter")!.Find("U1")!.Rules[0]]));
        Packets(100);
    }

    /// <summary>A long chain edited is walked through its rule objects (entries behind) and flat again once recompiled.</summary>
    [Fact]
    public void A_long_edited_chain_is_walked_through_its_rules_until_recompiled()
    {
        var rnd = new Random(5);
        var sb = new StringBuilder("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        for (int i = 0; i < FlatChain.RebuildLimit + 10; i++)
            sb.Append("-A FORWARD -s 10.").Append(i >> 8 & 255).Append('.').Append(i & 255).Append(".0/24 -p tcp -m tcp --dport ").Append(1 + (i % 1000)).Append(" -j ACCEPT\n");
        sb.Append("-A FORWARD -m mark --mark 1 -j ACCEPT\nCOMMIT\n");
        var pair = new Pair(sb.ToString());
        Chain fwd = pair.ChainB("filter", "FORWARD");
        FlatChain flat = pair.Compiled.FlatFor(fwd).ShouldNotBeNull();
        void Packets()
        {
            for (int k = 0; k < 300; k++)
            {
                uint src = 0x0A000000u | (uint)rnd.Next(FlatChain.RebuildLimit + 20) << 8 | 5;
                pair.Walk(PacketBuilder.Ipv4(src, 0x0A090909).Tcp(1234, (ushort)(1 + rnd.Next(1000))).Build(), "filter", Hook.Forward, mark: (uint)rnd.Next(2));
            }
        }
        Packets();
        Rule extra = EngineHost.Rules(IpFamily.V4, "*filter\n-A FORWARD -p tcp -m tcp --dport 7 -j DROP\nCOMMIT\n").Find("filter")!.Find("FORWARD")!.Rules[0];
        pair.Edit(r => new RulesetEditor(r).Insert("filter", "FORWARD", 3, [extra.Clone()]));
        Packets();
        flat.Edits.ShouldNotBe(fwd.Edits);
        pair.Recompile("filter", "FORWARD");
        flat.Edits.ShouldBe(fwd.Edits);
        Packets();
    }
}
