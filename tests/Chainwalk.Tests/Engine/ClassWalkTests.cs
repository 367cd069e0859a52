using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Host;
using Chainwalk.Rules;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The class walk (ClassWalk.cs, session 12): a base chain whose reachable rules test only the mark and the conntrack state
/// and whose targets are verdicts, jumps, gotos, RETURN and MARK from the entry has its flat walk's path remembered per
/// (mark, state) and replayed. Checked against the linear walk for every mark and state the rules tell apart, each walked
/// three times (the first walks and remembers, the next replay): verdict, the mark after the walk, every rule's and
/// policy's counters. Near misses (an address, a protocol, a port, an interface, a random draw, a match or target through
/// its extension, reached by a jump) are not replayed and are walked per packet; edits, a policy change and zeroed counters
/// between packets are seen, in the same form (walked: not trusted) and in a form built after them (replayed).
/// </summary>
public class ClassWalkTests
{
    private static readonly byte[] Syn = PacketBuilder.Ipv4("192.168.0.2", "10.0.0.1").Tcp(1234, 80, TcpFlags.Syn).Build();
    private static readonly byte[] Other = PacketBuilder.Ipv4("10.1.1.1", "10.0.0.9").Tcp(5000, 443, TcpFlags.Syn).Build();
    private static readonly byte[] Udp = PacketBuilder.Ipv4("10.1.1.1", "10.0.0.9").Udp(5353, 53).Build();

    private const string Head = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD {0} [0:0]\n:OUTPUT ACCEPT [0:0]\n:C - [0:0]\n:D - [0:0]\n:E - [0:0]\n";

    /// <summary>kube-proxy's filter table (bench's KubeProxyRules): FORWARD is a class chain, INPUT (KUBE-FIREWALL's addresses) is not.</summary>
    private const string Kube = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        + ":KUBE-EXTERNAL-SERVICES - [0:0]\n:KUBE-FIREWALL - [0:0]\n:KUBE-FORWARD - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-PROXY-FIREWALL - [0:0]\n:KUBE-SERVICES - [0:0]\n"
        + "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n"
        + "-A INPUT -j KUBE-FIREWALL\n"
        + "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n"
        + "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n"
        + "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        + "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n"
        + "-A KUBE-FIREWALL -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n"
        + "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
        + "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT\n"
        + "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
        + "COMMIT\n";

    /// <summary>Marks, jumps, a goto, RETURN, MARK from the entry in every chain, ctstate tests and a DROP policy.</summary>
    private const string Marks = "-A FORWARD -m conntrack --ctstate INVALID -j DROP\n"
        + "-A FORWARD -m mark --mark 0x1/0x1 -j C\n"
        + "-A FORWARD -j MARK --xor-mark 0x100\n"
        + "-A FORWARD -m mark ! --mark 0x100/0x100 -g D\n"
        + "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
        + "-A FORWARD -m comment --comment tail -j E\n"
        + "-A FORWARD -m mark --mark 0x10/0x10 -j ACCEPT\n"
        + "-A C -m state --state NEW -j RETURN\n"
        + "-A C -j MARK --or-mark 0x10\n"
        + "-A C -m mark --mark 0x2/0x2 -j RETURN\n"
        + "-A C -j MARK --and-mark 0xfffffffe\n"
        + "-A C -m state --state UNTRACKED -j DROP\n"
        + "-A D -m mark --mark 0x4/0x4 -j ACCEPT\n"
        + "-A D -m comment --comment x -j MARK --set-mark 0x10\n"
        + "-A D -m mark --mark 0x8/0x8 -j DROP\n"
        + "-A E -j MARK --or-mark 0x4000\n";

    private static readonly uint[] MarksSeen = [0, 0x1, 0x2, 0x3, 0x4, 0x8, 0x10, 0x11, 0x100, 0x101, 0x107, 0x4000, 0xffff_ffff];

    /// <summary>The ctinfo and entry pairs conntrack gives a packet (no entry: INVALID, or UNTRACKED).</summary>
    private static IEnumerable<(CtInfo Info, ConnEntry? Entry)> States()
    {
        foreach (CtInfo info in new[] { CtInfo.New, CtInfo.Established, CtInfo.Related, CtInfo.EstablishedReply, CtInfo.RelatedReply })
            yield return (info, new ConnEntry(default, default));
        yield return (CtInfo.None, null);
        yield return (CtInfo.New, null);
        yield return (CtInfo.Untracked, null);
    }

    /// <summary>Every mark and state, three times each (interleaved: the remembered paths are replaced as they come), both packets.</summary>
    private static void WalkAll(CompiledClassificationTests.Pair two)
    {
        for (int round = 0; round < 3; round++)
        {
            foreach ((CtInfo info, ConnEntry? entry) in States())
            {
                foreach (uint mark in MarksSeen)
                {
                    two.WalkTracked(Syn, "filter", Hook.Forward, info, entry, mark);
                    two.WalkTracked(round == 1 ? Udp : Other, "filter", Hook.Forward, info, entry, mark);
                }
            }
        }
    }

    public static TheoryData<string> ClassSets() => new()
    {
        Kube,
        string.Format(System.Globalization.CultureInfo.InvariantCulture, Head, "DROP") + Marks + "COMMIT\n",
        string.Format(System.Globalization.CultureInfo.InvariantCulture, Head, "ACCEPT") + Marks + "COMMIT\n",
    };

    [Theory]
    [MemberData(nameof(ClassSets))]
    public void A_class_chain_is_replayed_as_the_linear_walk(string rules)
    {
        var two = new CompiledClassificationTests.Pair(rules);
        WalkAll(two);
        // Most walks were replays (the first of each mark and state walked).
        two.CompiledSide.ClassReplays.ShouldBeGreaterThanOrEqualTo(two.Packets / 2);
    }

    public static TheoryData<string> NearMisses() => new()
    {
        "-A E -s 192.168.0.2/32 -j DROP",
        "-A E ! -s 192.168.0.2/32 -j DROP",
        "-A E -d 10.0.0.0/8 -j MARK --or-mark 0x8",
        "-A E -p udp -j DROP",
        "-A E ! -p tcp -j DROP",
        "-A E -p tcp -m tcp --dport 80 -j DROP",
        "-A E -i eth0 -j DROP",
        "-A E -o eth9 -j DROP",
        "-A E -m statistic --mode random --probability 0.5 -j DROP",
        "-A E -m conntrack --ctstatus ASSURED -j DROP",
        "-A E -m mark --mark 0x10/0x10 -j MARK --set-mark 0x8",
        "-A E -j CONNMARK --set-mark 0x8",
        "-A E -m comment --comment x -m mark --mark 0x0/0x4000 -m tcp -p tcp --sport 1234 -j DROP",
    };

    /// <summary>A rule the class walk cannot decide from the mark and state, reached through a jump: every packet is walked.</summary>
    [Theory]
    [MemberData(nameof(NearMisses))]
    public void A_chain_reaching_another_test_is_walked(string rule)
    {
        var two = new CompiledClassificationTests.Pair(string.Format(System.Globalization.CultureInfo.InvariantCulture, Head, "DROP") + Marks + rule + "\n-A E -j RETURN\nCOMMIT\n");
        WalkAll(two);
        two.CompiledSide.ClassReplays.ShouldBe(0);
    }

    /// <summary>
    /// A -P is no rule edit (the form stays trusted): a path that ends at the policy reads it at each replay, for a packet
    /// whose mark and state the walk remembered just before.
    /// </summary>
    [Fact]
    public void A_policy_changed_between_replays_is_read_again()
    {
        var two = new CompiledClassificationTests.Pair(string.Format(System.Globalization.CultureInfo.InvariantCulture, Head, "DROP") + Marks + "COMMIT\n");
        var entry = new ConnEntry(default, default);
        foreach (string policy in new[] { "DROP", "ACCEPT", "DROP", "ACCEPT" })
        {
            two.Edit(r => new RulesetEditor(r).SetPolicy("filter", "FORWARD", policy));
            for (int k = 0; k < 3; k++)
            {
                two.WalkTracked(Syn, "filter", Hook.Forward, CtInfo.New, entry, 0).Kind.ShouldBe(policy == "DROP" ? VerdictKind.Drop : VerdictKind.Accept);
            }
        }
        two.CompiledSide.ClassReplays.ShouldBe(11);
    }

    /// <summary>kube-proxy's nat POSTROUTING with the PREROUTING that marks (KUBE-MARK-MASQ for a source outside the pod range).</summary>
    private const string KubeNat = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
        + ":KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-SERVICES - [0:0]\n"
        + "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        + "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n"
        + "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n"
        + "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
        + "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n"
        + "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE\n"
        + "-A KUBE-SERVICES ! -s 192.168.1.0/25 -d 10.0.0.0/24 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ\n"
        + "COMMIT\n";

    /// <summary>
    /// The whole pipeline with conntrack and NAT, class walk on against off (the same compiled form otherwise): new
    /// connections from sources that are and are not marked, with arriving marks, through filter FORWARD (kube's, a class
    /// chain) and nat POSTROUTING (a class chain that ends in MASQUERADE, executed again at each replay: each connection
    /// its own source port binding), and their later packets. Fates, the packets sent (NATed bytes), every counter.
    /// </summary>
    [Fact]
    public void Kube_connections_through_the_pipeline_are_the_walks()
    {
        (VirtualHost Host, Netfilter Nf) Side(bool classWalk)
        {
            VirtualHost host = EngineHost.Create(Kube.Replace("*filter", "*filter", StringComparison.Ordinal) + KubeNat);
            var nf = new Netfilter(host) { ClassWalk = classWalk };
            _ = Chainwalk.Conntrack.ConntrackLoader.Enable(nf) ?? throw new InvalidOperationException("conntrack not loaded");
            nf.Compiled = CompiledRules.Build(host.V4);
            return (host, nf);
        }
        (VirtualHost hostOn, Netfilter on) = Side(true);
        (VirtualHost hostOff, Netfilter off) = Side(false);
        double now = 1000;
        string Describe(PacketResult r) =>
            string.Join(',', r.Fate) + " " + string.Join(' ', r.Outputs.Select(o => o.Interface + ":" + Convert.ToHexString(o.Bytes)));
        for (int n = 0; n < 48; n++)
        {
            // Sources in the unmarked half (.2-.126) and outside it (.130-.254); destinations 10.0.0.x port 80 and 81.
            byte source = (byte)(n % 3 == 0 ? 2 + n : 130 + n);
            ushort port = (ushort)(n % 4 == 3 ? 81 : 80);
            uint mark = n % 5 == 4 ? 0x4000u : n % 7 == 6 ? 0x1u : 0u;
            byte[] syn = PacketBuilder.Ipv4($"192.168.1.{source}", $"10.0.0.{20 + n % 5}").Tcp((ushort)(40000 + n), port, TcpFlags.Syn, seq: 100).Build();
            now += 0.5;
            foreach (byte[] bytes in new[] { syn, syn })
            {
                PacketInput Input() => new() { Bytes = (byte[])bytes.Clone(), InInterface = "eth1", SourceMac = 0x02_00_00_00_00_99, At = now, Mark = mark };
                string a = Describe(on.Process(Input())), b = Describe(off.Process(Input()));
                a.ShouldBe(b, $"connection {n}");
            }
            EngineHost.Counters(hostOn).ShouldBe(EngineHost.Counters(hostOff), $"connection {n}");
        }
        on.ClassReplays.ShouldBeGreaterThan(40);
        off.ClassReplays.ShouldBe(0);
    }

    /// <summary>Between packets: a rule replaced, one inserted that is not a class rule and deleted again, the policy flipped, counters zeroed.</summary>
    [Fact]
    public void Edits_and_policy_changes_between_replays_are_seen()
    {
        string text = string.Format(System.Globalization.CultureInfo.InvariantCulture, Head, "DROP") + Marks + "COMMIT\n";
        var two = new CompiledClassificationTests.Pair(text);
        Rule Parse(string line) =>
            EngineHost.Rules(Chainwalk.Net.IpFamily.V4, string.Format(System.Globalization.CultureInfo.InvariantCulture, Head, "DROP") + line + "\nCOMMIT\n").Find("filter")!
                .Chains.First(c => c.Rules.Count > 0).Rules[0];
        // Each edit, and whether FORWARD is a class chain after it.
        (Action<Ruleset> Edit, bool Class)[] edits =
        [
            (r => new RulesetEditor(r).Replace("filter", "D", 1, Parse("-A D -m mark --mark 0x4/0x4 -j DROP")), true),
            (r => new RulesetEditor(r).Insert("filter", "C", 1, [Parse("-A C -s 192.168.0.2/32 -j MARK --or-mark 0x4")]), false),
            (r => new RulesetEditor(r).DeleteNumber("filter", "C", 1), true),
            (r => new RulesetEditor(r).SetPolicy("filter", "FORWARD", "ACCEPT"), true),
            (r => new RulesetEditor(r).Insert("filter", "FORWARD", 2, [Parse("-A FORWARD -m mark --mark 0x3/0x3 -j ACCEPT")]), true),
            (r => new RulesetEditor(r).SetPolicy("filter", "FORWARD", "DROP"), true),
            (r => new RulesetEditor(r).Zero("filter", null, 0), true),
            (r => new RulesetEditor(r).Replace("filter", "E", 1, Parse("-A E -j MARK --or-mark 0x10")), true),
        ];
        WalkAll(two);
        long before = two.CompiledSide.ClassReplays;
        before.ShouldBeGreaterThan(0);
        foreach ((Action<Ruleset> edit, bool classAfter) in edits)
        {
            // Walked after the edit (the form does not trust the table then), and again with the form built anew.
            two.Edit(edit);
            WalkAll(two);
            two.Use(CompiledRules.Build(two.B));
            WalkAll(two);
            if (classAfter) two.CompiledSide.ClassReplays.ShouldBeGreaterThan(before);
            else two.CompiledSide.ClassReplays.ShouldBe(before);
            before = two.CompiledSide.ClassReplays;
        }
    }
}
