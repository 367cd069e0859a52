using Chainwalk.Engine;
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
/// What the walker and the pipeline remember between packets for the established path (Netfilter: input routes per
/// host generation, base chains per table, the compiled form's two last chain indexes, jump memos) must give what a
/// fresh lookup gives, packet after packet, after edits of the rules and changes of the host.
/// </summary>
public class EstablishedPathTests
{
    /// <summary>FORWARD jumps to USER and back: both chains indexed (exact -d/-p/--dport rules), walked alternately.</summary>
    private const string Jumping = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :USER - [0:0]
        -A FORWARD -d 10.1.0.1/32 -p tcp -m tcp --dport 80 -j DROP
        -A FORWARD -d 10.1.0.2/32 -p tcp -m tcp --dport 80 -j USER
        -A FORWARD -d 10.1.0.3/32 -p tcp -m tcp --dport 80 -j USER
        -A FORWARD -d 10.1.0.4/32 -p tcp -m tcp --dport 443 -j ACCEPT
        -A USER -d 10.1.0.2/32 -p tcp -m tcp --dport 80 -j ACCEPT
        -A USER -d 10.1.0.9/32 -p tcp -m tcp --dport 80 -j DROP
        -A USER -d 10.1.0.3/32 -p tcp -m tcp --dport 8080 -j ACCEPT
        -A USER -d 10.1.0.3/32 -p tcp -m tcp --dport 80 -j ACCEPT
        COMMIT
        """;

    private static byte[] Tcp(string dst, ushort port) => PacketBuilder.Ipv4("192.168.1.50", dst).Tcp(40000, port, TcpFlags.Ack, seq: 1, ack: 1).Build();

    public static TheoryData<string> UserChainEdits => new() { "insert", "replace", "delete", "append", "recompile" };

    [Theory]
    [MemberData(nameof(UserChainEdits))]
    public void An_edit_of_the_chain_jumped_to_is_seen_by_the_next_walk_through_both_chains(string edit)
    {
        var pair = new Pair(Jumping);
        pair.IndexOf("filter", "FORWARD").ShouldNotBeNull();
        pair.IndexOf("filter", "USER").ShouldNotBeNull();
        byte[][] packets = [Tcp("10.1.0.2", 80), Tcp("10.1.0.3", 80), Tcp("10.1.0.4", 443), Tcp("10.1.0.1", 80)];
        foreach (byte[] p in packets) pair.Walk(p, "filter", Hook.Forward);
        Chain user = pair.ChainB("filter", "USER");
        Rule drop = EngineHost.Rules(IpFamily.V4, "*filter\n:USER - [0:0]\n-A USER -d 10.1.0.2/32 -p tcp -m tcp --dport 80 -j DROP\nCOMMIT\n").Find("filter")!.Find("USER")!.Rules[0];
        switch (edit)
        {
            case "insert":
                pair.Edit(r => new RulesetEditor(r).Insert("filter", "USER", 1, [drop.Clone()]));
                pair.Changed(c => c.Inserted(user, 0));
                break;
            case "replace":
                pair.Edit(r => new RulesetEditor(r).Replace("filter", "USER", 1, drop.Clone()));
                pair.Changed(c => c.Replaced(user, 0));
                break;
            case "delete":
                pair.Edit(r => new RulesetEditor(r).DeleteNumber("filter", "USER", 1));
                pair.Changed(c => c.Deleted(user, 0));
                break;
            case "append":
                pair.Edit(r => new RulesetEditor(r).Append("filter", "USER", [drop.Clone()]));
                pair.Changed(c => c.Appended(user));
                break;
            default:
                pair.Edit(r => new RulesetEditor(r).Insert("filter", "USER", 1, [drop.Clone()]));
                pair.Recompile("filter", "USER");
                break;
        }
        // Walks that leave FORWARD's index and USER's as the two remembered, in both orders, then the edited chain.
        for (int round = 0; round < 3; round++)
        {
            foreach (byte[] p in packets) pair.Walk(p, "filter", Hook.Forward);
        }
        // The first packet reaches USER's first rule: after insert/replace/recompile that is the DROP, met 3 times.
        if (edit is "insert" or "replace" or "recompile") pair.Rule("filter", "USER", 1).Packets.ShouldBe(3UL);
    }

    [Fact]
    public void A_renamed_chain_is_still_entered_by_its_jump_after_the_jump_was_remembered()
    {
        // The jump memo keeps the chain's name string: a rename gives the chain another, so the name is compared again.
        VirtualHost host = EngineHost.Create(Jumping);
        var nf = new Netfilter(host) { Compiled = Chainwalk.Engine.Compiled.CompiledRules.Build(host.V4) };
        var skb = new Skb(Packet.Parse(Tcp("10.1.0.2", 80))) { InDev = "eth1", OutDev = "eth0" };
        Table filter = host.V4.Find("filter")!;
        nf.RunTable(new PacketContext(nf, skb) { Hook = Hook.Forward }, filter, Hook.Forward).Kind.ShouldBe(VerdictKind.Accept);
        filter.Find("USER")!.Rules[0].Counters.Packets.ShouldBe(1UL);
        // The chain takes a new name string with the same text (as a rename back and forth leaves it).
        filter.RenameUserChain("USER", new string("USER".AsSpan()));
        skb = new Skb(Packet.Parse(Tcp("10.1.0.2", 80))) { InDev = "eth1", OutDev = "eth0" };
        nf.RunTable(new PacketContext(nf, skb) { Hook = Hook.Forward }, filter, Hook.Forward).Kind.ShouldBe(VerdictKind.Accept);
        filter.Find("USER")!.Rules[0].Counters.Packets.ShouldBe(2UL);
    }

    public static TheoryData<string, string, string> InputRoutes => new()
    {
        // rp_filter strict: the same source and destination in by two devices, then two sources by one device
        // source, in on, fate
        { "10.0.0.77", "eth0", "forwarded:eth1" },
        { "10.0.0.77", "eth1", "dropped" },
        { "192.168.1.77", "eth1", "forwarded:eth1" },
        { "192.168.1.77", "eth0", "dropped" },
    };

    [Fact]
    public void Input_routes_remembered_per_packet_key_give_each_source_and_device_its_own_decision()
    {
        // The remembered IPv4 input decisions are keyed by destination, source and device: packets alternating between
        // keys that decide differently (reverse path filter) each get their own decision, every time.
        VirtualHost host = EngineHost.Create("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
        host.Sysctls["net.ipv4.conf.all.rp_filter"] = "1";
        var nf = new Netfilter(host);
        var reused = new PacketResult();
        for (int round = 0; round < 3; round++)
        {
            foreach (var row in InputRoutes)
            {
                string src = (string)row[0], dev = (string)row[1], fate = (string)row[2];
                byte[] p = PacketBuilder.Ipv4(src, "192.168.1.9").Udp(1000, 53).Build();
                nf.Process(EngineHost.In(dev, p), reused).Fate.ShouldBe([fate], $"{src} in on {dev}, round {round}");
            }
        }
    }

    [Theory]
    [InlineData(1, 40)]
    [InlineData(2, 700)]
    [InlineData(3, 5000)]
    public void Input_routes_remembered_for_many_keys_give_what_a_fresh_lookup_gives(int seed, int keys)
    {
        // More (destination, source) keys than the memo's first size: keys meet in a set of two, the older gives way, the
        // memo grows. Each packet's fate is the one a netfilter with nothing remembered gives (reverse path filter on: a
        // source from the wrong side is dropped; destinations on either side, the default route, our own addresses).
        VirtualHost host = EngineHost.Create("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
        host.Sysctls["net.ipv4.conf.all.rp_filter"] = "1";
        var nf = new Netfilter(host);
        var reused = new PacketResult();
        var rnd = new Random(seed);
        var rows = new List<(string Src, string Dst, string Dev)>();
        for (int k = 0; k < keys; k++)
        {
            string src = rnd.Next(2) == 0 ? $"10.0.{rnd.Next(3)}.{rnd.Next(2, 250)}" : $"192.168.1.{rnd.Next(2, 250)}";
            string dst = rnd.Next(4) switch
            {
                0 => $"10.0.0.{rnd.Next(1, 250)}",
                1 => $"192.168.1.{rnd.Next(1, 250)}",
                2 => $"172.16.{rnd.Next(0, 250)}.{rnd.Next(1, 250)}",
                _ => $"10.{rnd.Next(1, 250)}.{rnd.Next(0, 250)}.{rnd.Next(1, 250)}",
            };
            rows.Add((src, dst, rnd.Next(2) == 0 ? "eth0" : "eth1"));
        }
        var expected = new string[keys];
        for (int k = 0; k < keys; k++)
        {
            byte[] p = PacketBuilder.Ipv4(rows[k].Src, rows[k].Dst).Udp(1000, 53).Build();
            expected[k] = string.Join(",", new Netfilter(host).Process(EngineHost.In(rows[k].Dev, p)).Fate);
        }
        expected.Distinct().Count().ShouldBeGreaterThan(1);
        for (int round = 0; round < 4; round++)
        {
            foreach (int k in Enumerable.Range(0, keys).OrderBy(_ => rnd.Next()))
            {
                byte[] p = PacketBuilder.Ipv4(rows[k].Src, rows[k].Dst).Udp(1000, 53).Build();
                string.Join(",", nf.Process(EngineHost.In(rows[k].Dev, p), reused).Fate).ShouldBe(expected[k], $"{rows[k]}, round {round}");
            }
        }
    }

    [Theory]
    [InlineData("ACCEPT", "forwarded:eth0")]
    [InlineData("DROP", "dropped")]
    public void A_built_in_chain_without_rules_decides_by_its_policy_and_counts_it_traced_or_not(string policy, string fate)
    {
        // Untraced, an empty built-in chain is not walked (its policy is applied directly); traced, it is walked.
        VirtualHost host = EngineHost.Create($"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD {policy} [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
        var nf = new Netfilter(host);
        nf.Process(EngineHost.In("eth1", EngineHost.Tcp("192.168.1.50", "8.8.8.8", 1000, 443))).Fate.ShouldBe([fate]);
        nf.RecordTrace = true;
        PacketResult traced = nf.Process(EngineHost.In("eth1", EngineHost.Tcp("192.168.1.50", "8.8.8.8", 1000, 443)));
        traced.Fate.ShouldBe([fate]);
        traced.Trace!.OfType<ChainEndEvent>().ShouldContain(e => e.Chain == "FORWARD" && e.Verdict == policy);
        Chain forward = host.V4.Find("filter")!.Find("FORWARD")!;
        forward.Counters.Packets.ShouldBe(2UL);
        forward.Counters.Bytes.ShouldBe(2UL * 40);
    }

    [Fact]
    public void Policy_counters_of_a_chain_without_rules_count_every_packet_through_the_remembered_base_chain()
    {
        // Base chains are remembered per table object: counts land on the table's own chain, and a replaced table's.
        VirtualHost host = EngineHost.Create("*mangle\n:PREROUTING ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n");
        var nf = new Netfilter(host);
        var reused = new PacketResult();
        for (int i = 0; i < 5; i++) nf.Process(EngineHost.In("eth1", EngineHost.Tcp("192.168.1.50", "8.8.8.8", 1000, 443)), reused).Fate.ShouldBe(["forwarded:eth0"]);
        host.V4.Find("mangle")!.Find("FORWARD")!.Counters.Packets.ShouldBe(5UL);
        host.V4.Find("filter")!.Find("FORWARD")!.Counters.Packets.ShouldBe(5UL);
        Ruleset fresh = EngineHost.Rules(IpFamily.V4, "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n");
        host.V4.Replace(fresh.Find("filter")!);
        for (int i = 0; i < 2; i++) nf.Process(EngineHost.In("eth1", EngineHost.Tcp("192.168.1.50", "8.8.8.8", 1000, 443)), reused);
        host.V4.Find("filter")!.Find("FORWARD")!.Counters.Packets.ShouldBe(2UL);
        host.V4.Find("mangle")!.Find("FORWARD")!.Counters.Packets.ShouldBe(7UL);
    }
}
