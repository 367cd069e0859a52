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
/// What a new connection's rule walk reaches without the rule objects (session 8): a target extension's data from the form's
/// slot array (<see cref="CompiledRules.Targets"/>: a chain's first at the chain's number, later ones after every chain's)
/// and its extension by number (<see cref="CompiledRules.TargetExtensions"/>), a proven ACCEPT/DROP of an indexed chain from its entry, and the arrival hint (the index a SYN meets
/// first in PREROUTING, fetched before conntrack). Verdicts and counters against the linear walk.
/// </summary>
public class SynWalkTests
{
    /// <summary>
    /// Every entry with a target extension names a slot holding that rule's data (the chain's first at the chain's number,
    /// the others past all chains' numbers) and its extension's number; jumps keep the entered chain's number.
    /// </summary>
    [Theory]
    [InlineData("-A U -j MARK --set-mark 1", 1)]
    [InlineData("-A U -p tcp -j MARK --set-mark 1\n-A U -j ACCEPT\n-A U -j MARK --or-mark 0x4000", 2)]
    [InlineData("-A U -j V\n-A U -j MARK --set-mark 1\n-A U -m mark --mark 1 -j MARK --set-mark 2\n-A U -j MARK --xor-mark 3", 3)]
    [InlineData("-A U -j ACCEPT\n-A U -j V", 0)]
    public void Target_extensions_have_slots_the_first_at_the_chain_s_number(string rules, int extensions)
    {
        var pair = new Pair("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:U - [0:0]\n:V - [0:0]\n" + rules + "\nCOMMIT\n");
        CompiledRules form = pair.Compiled;
        FlatChain u = form.FlatFor(pair.ChainB("filter", "U")).ShouldNotBeNull();
        Chain chain = pair.ChainB("filter", "U");
        int seen = 0;
        for (int i = 0; i < u.Entries.Length; i++)
        {
            FlatEntry e = u.Entries[i];
            TargetUse t = chain.Rules[i].Target!;
            if (e.Target == FlatTarget.Jump)
            {
                form.FlatChains[e.Jump].Chain.ShouldBeSameAs(pair.ChainB("filter", "V"));
                continue;
            }
            if (e.Target != FlatTarget.Extension) continue;
            if (seen == 0) e.Jump.ShouldBe(u.Number);
            else e.Jump.ShouldBeGreaterThanOrEqualTo(form.FlatChains.Length);
            form.TargetExtensions[e.JumpStart].ShouldBeSameAs(t.Extension);
            form.Targets[e.Jump].ShouldBeSameAs(t.Data);
            seen++;
        }
        seen.ShouldBe(extensions);
    }

    /// <summary>
    /// A target rule replaced (-R) or inserted before (-I) between packets: the chain's entries are built again and so are
    /// its slots, so the walk runs the new data (a later rule tests the mark the target set; a stale slot would set the old
    /// mark and give another verdict than the linear walk's).
    /// </summary>
    [Theory]
    [InlineData("replace")]
    [InlineData("insert")]
    [InlineData("delete")]
    public void Edited_target_rules_are_walked_with_their_new_data(string edit)
    {
        const string rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:U - [0:0]\n"
            + "-A FORWARD -p tcp -j U\n-A FORWARD -m mark --mark 2 -j DROP\n"
            + "-A U -j MARK --set-mark 1\n-A U -m mark --mark 1 -j MARK --set-mark 3\n-A U -m mark --mark 3 -j RETURN\nCOMMIT\n";
        var pair = new Pair(rules);
        byte[] syn = PacketBuilder.Ipv4("192.168.0.2", "10.0.0.1").Tcp(1234, 80, TcpFlags.Syn).Build();
        pair.Walk(syn, "filter", Hook.Forward);
        Rule Parsed(string text) => EngineHost.Rules(IpFamily.V4, "*filter\n:U - [0:0]\n-A U " + text + "\nCOMMIT\n").Find("filter")!.Find("U")!.Rules[0];
        switch (edit)
        {
            case "replace":
                // --set-mark 2: the second rule no longer matches, FORWARD's DROP does.
                pair.Edit(r => new RulesetEditor(r).Replace("filter", "U", 1, Parsed("-j MARK --set-mark 2")));
                break;
            case "insert":
                pair.Edit(r => new RulesetEditor(r).Insert("filter", "U", 1, [Parsed("-j MARK --set-mark 2"), Parsed("-j MARK --or-mark 0")]));
                break;
            default:
                pair.Edit(r => new RulesetEditor(r).DeleteNumber("filter", "U", 1));
                pair.Edit(r => new RulesetEditor(r).Insert("filter", "U", 1, [Parsed("-m mark --mark 0 -j MARK --set-mark 2")]));
                break;
        }
        for (int n = 0; n < 3; n++) pair.Walk(syn, "filter", Hook.Forward);
        pair.MatchedPackets("filter", "FORWARD").ShouldBeGreaterThan(0UL);
    }

    /// <summary>
    /// A user chain with an index whose proven rules end the walk (ACCEPT, DROP) or jump: the walk returns a proven plain
    /// verdict from the entry; verdicts and every counter as the linear walk's, also after an edit of the indexed chain.
    /// </summary>
    [Theory]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(9)]
    public void Proven_plain_verdicts_from_the_entries_agree_with_the_linear_walk(int seed)
    {
        var rnd = new Random(seed);
        var sb = new StringBuilder("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:SVC - [0:0]\n:J - [0:0]\n");
        sb.Append("-A FORWARD -m comment --comment in -j SVC\n-A FORWARD -p udp -j ACCEPT\n");
        for (int i = 0; i < 40; i++)
        {
            string target = (i % 3) switch { 0 => "ACCEPT", 1 => "DROP", _ => "J" };
            sb.Append($"-A SVC -d 10.0.{i % 4}.{i}/32 -p tcp -m tcp --dport {80 + i % 5} -j {target}\n");
        }
        sb.Append("-A J -p tcp -m tcp --dport 81 -j DROP\nCOMMIT\n");
        var pair = new Pair(sb.ToString());
        pair.Compiled.FlatFor(pair.ChainB("filter", "SVC")).ShouldNotBeNull().Index.ShouldNotBeNull();
        for (int n = 0; n < 600; n++)
        {
            if (n == 300)
            {
                Rule r = EngineHost.Rules(IpFamily.V4, "*filter\n:SVC - [0:0]\n-A SVC -d 10.0.1.1/32 -p tcp -j ACCEPT\nCOMMIT\n").Find("filter")!.Find("SVC")!.Rules[0];
                pair.Edit(rs => new RulesetEditor(rs).Insert("filter", "SVC", 5, [r]));
            }
            int i = rnd.Next(44);
            byte[] p = PacketBuilder.Ipv4("192.168.0.2", $"10.0.{i % 4}.{i}").Tcp(1000, (ushort)(80 + rnd.Next(6)), TcpFlags.Syn).Build();
            pair.Walk(p, "filter", Hook.Forward);
        }
        pair.MatchedPackets("filter", "SVC").ShouldBeGreaterThan(50UL);
    }

    private const string KubeNat = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n";

    private static string Services(string head) =>
        head + "-A KUBE-SERVICES -d 172.30.0.1/32 -p tcp -m comment --comment a -m tcp --dport 80 -j ACCEPT\n"
        + "-A KUBE-SERVICES -d 172.30.0.2/32 -p tcp -m tcp --dport 80 -j ACCEPT\n-A KUBE-SERVICES -d 172.30.0.3/32 -p tcp -m tcp --dport 443 -j ACCEPT\n"
        + "-A KUBE-SERVICES -d 172.30.0.4/32 -p tcp -m tcp --dport 8080 -j ACCEPT\nCOMMIT\n";

    /// <summary>
    /// The arrival hint's index: the one PREROUTING's base chain starts with, or enters by unconditional jumps at its head
    /// (kube-proxy's comment-only jump to KUBE-SERVICES); none when the head jump has a condition or nothing is indexed.
    /// </summary>
    [Theory]
    [InlineData("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n", true)]
    [InlineData("-A PREROUTING -j KUBE-SERVICES\n", true)]
    [InlineData("-A PREROUTING -i eth0 -j KUBE-SERVICES\n", false)]
    [InlineData("-A PREROUTING -p tcp -j KUBE-SERVICES\n", false)]
    [InlineData("-A PREROUTING -m mark --mark 1 -j KUBE-SERVICES\n", false)]
    [InlineData("-A PREROUTING -j ACCEPT\n-A PREROUTING -j KUBE-SERVICES\n", false)]
    [InlineData("", false)]
    public void The_arrival_index_is_the_one_prerouting_enters_first(string head, bool found)
    {
        CompiledRules form = CompiledRules.Build(EngineHost.Rules(IpFamily.V4, Services(KubeNat + head)));
        byte[] syn = PacketBuilder.Ipv4("192.168.0.2", "172.30.0.2").Tcp(1234, 80, TcpFlags.Syn).Build();
        (form.PrefetchArrival(syn) >= 0).ShouldBe(found);
    }

    /// <summary>Only a new connection's first packet is hinted: an IPv4 TCP SYN without ACK, options-free header, not a fragment.</summary>
    [Theory]
    [InlineData("syn", true)]
    [InlineData("syn-ack", false)]
    [InlineData("ack", false)]
    [InlineData("udp", false)]
    [InlineData("fragment", false)]
    [InlineData("options", false)]
    [InlineData("short", false)]
    public void Only_a_plain_syn_is_hinted(string kind, bool hinted)
    {
        CompiledRules form = CompiledRules.Build(EngineHost.Rules(IpFamily.V4, Services(KubeNat + "-A PREROUTING -j KUBE-SERVICES\n")));
        byte[] p = kind switch
        {
            "syn-ack" => PacketBuilder.Ipv4("192.168.0.2", "172.30.0.2").Tcp(1234, 80, TcpFlags.Syn | TcpFlags.Ack).Build(),
            "ack" => PacketBuilder.Ipv4("192.168.0.2", "172.30.0.2").Tcp(1234, 80, TcpFlags.Ack).Build(),
            "udp" => PacketBuilder.Ipv4("192.168.0.2", "172.30.0.2").Udp(1234, 80).Build(),
            _ => PacketBuilder.Ipv4("192.168.0.2", "172.30.0.2").Tcp(1234, 80, TcpFlags.Syn).Build(),
        };
        if (kind == "fragment")
        {
            p[6] |= 0x20; // more fragments
        }
        if (kind == "options")
        {
            p[0] = 0x46; // a header of 24 bytes: the TCP flags are not where a plain header has them
        }
        if (kind == "short") p = p[..39];
        (form.PrefetchArrival(p) >= 0).ShouldBe(hinted);
        // The second step never fails, whatever the token.
        form.PrefetchArrivalMore(form.PrefetchArrival(p));
        form.PrefetchArrivalMore(int.MaxValue);
    }
}
