using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The generations the flow path's memos and the one pass's plans check are per rule set (<see cref="Ruleset.Generation"/>)
/// and per host (<see cref="VirtualHost.Generation"/>): every edit that can change a walk or a routing decision drops the
/// plans made for its own rule set or host (the next established packet goes hook by hook, the one after takes the one
/// pass again), and none made for another host or for the other family's rule set. Counted with
/// <see cref="Netfilter.OnePassPackets"/>, as the flow path's tests count; every edit here leaves the verdicts as they
/// were, so a missed generation move would show only as a packet taking the one pass.
/// </summary>
public class GenerationScopeTests
{
    private const string Rules = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        :EMPTY - [0:0]
        :OTHER - [0:0]
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -i eth1 -j ACCEPT
        -A OTHER -p tcp -m tcp --dport 81 -j ACCEPT
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A POSTROUTING -o eth0 -j MASQUERADE
        COMMIT
        *security
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        COMMIT
        """;

    private const string Rules6 = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        :OTHER6 - [0:0]
        COMMIT
        """;

    /// <summary>A NAT gateway (LAN eth1 masqueraded out of eth0) with one established connection through it.</summary>
    private sealed class Gateway
    {
        /// <param name="copy">"shallow" or "deep": the host's IPv4 rule set is that copy of the one restored.</param>
        public Gateway(string? copy = null)
        {
            Host = EngineHost.Create(Rules, Rules6, Chainwalk.Tests.Nat.NatRig.Gateway4);
            if (copy == "shallow") Host.SetRules(Host.V4.ShallowCopy());
            if (copy == "deep") Host.SetRules(Host.V4.Clone());
            Nf = new Netfilter(Host);
            ConntrackHooks ct = ConntrackLoader.Enable(Nf) ?? throw new InvalidOperationException("conntrack not loaded");
            // The handshake, then two ACKs: the direction's memos and its one-pass plan are made by them.
            Send(Client(TcpFlags.Syn, 1000));
            ConnTuple r = ((ConnEntry)ct.Table.Entries.Single()).Reply;
            Nf.Process(EngineHost.In("eth0", PacketBuilder.Ipv4((uint)r.Source, (uint)r.Destination)
                .Tcp(r.SourcePort, r.DestinationPort, TcpFlags.Syn | TcpFlags.Ack, seq: 5000, ack: 1001).Build())).Fate.ShouldBe(["forwarded:eth1"]);
            Send(Client(TcpFlags.Ack, 1001, 5001));
            Send(Client(TcpFlags.Ack, 1001, 5001));
            OnePass().ShouldBeTrue("warmed up");
        }

        public VirtualHost Host { get; }

        public Netfilter Nf { get; }

        private static byte[] Client(TcpFlags flags, uint seq, uint ack = 0) =>
            PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Tcp(40000, 80, flags, seq: seq, ack: ack).Build();

        private void Send(byte[] bytes) => Nf.Process(EngineHost.In("eth1", bytes)).Fate.ShouldBe(["forwarded:eth0"]);

        /// <summary>One more ACK from the client (forwarded, ESTABLISHED): whether it took the one pass.</summary>
        public bool OnePass()
        {
            long before = Nf.OnePassPackets;
            PacketResult r = Nf.Process(EngineHost.In("eth1", Client(TcpFlags.Ack, 1001, 5001)));
            r.Fate.ShouldBe(["forwarded:eth0"]);
            r.CtState.ShouldBe("ESTABLISHED");
            return Nf.OnePassPackets - before == 1;
        }
    }

    private static Rule ParseRule(string table, string chain, string text) =>
        EngineHost.Rules(IpFamily.V4, "*" + table + "\n:" + chain + " - [0:0]\n-A " + chain + " " + text + "\nCOMMIT\n").Find(table)!.Find(chain)!.Rules[0];

    private static Chain Chain(VirtualHost h, string name) => h.V4.Find("filter")!.Find(name)!;

    /// <summary>Edits that change no verdict of the connection's packets, each through one way a rule set or host changes.</summary>
    private static readonly Dictionary<string, Action<VirtualHost>> Edits = new()
    {
        // iptables' commands (RulesetEditor).
        ["-A OTHER"] = h => new RulesetEditor(h.V4).Append("filter", "OTHER", [ParseRule("filter", "OTHER", "-p udp -j ACCEPT")]),
        ["-I FORWARD 1 (matches nothing)"] = h => new RulesetEditor(h.V4).Insert("filter", "FORWARD", 1, [ParseRule("filter", "FORWARD", "-s 192.0.2.1/32 -j DROP")]),
        ["-R OTHER 1"] = h => new RulesetEditor(h.V4).Replace("filter", "OTHER", 1, ParseRule("filter", "OTHER", "-p udp -j ACCEPT")),
        ["-D OTHER 1"] = h => new RulesetEditor(h.V4).DeleteNumber("filter", "OTHER", 1),
        ["-F OTHER"] = h => new RulesetEditor(h.V4).Flush("filter", "OTHER"),
        ["-P OUTPUT ACCEPT"] = h => new RulesetEditor(h.V4).SetPolicy("filter", "OUTPUT", "ACCEPT"),
        ["-N NEW"] = h => new RulesetEditor(h.V4).NewChain("filter", "NEW"),
        ["-X EMPTY"] = h => new RulesetEditor(h.V4).DeleteChain("filter", "EMPTY"),
        ["-E OTHER RENAMED"] = h => new RulesetEditor(h.V4).RenameChain("filter", "OTHER", "RENAMED"),
        // The rule set's own calls: a table made, removed, replaced.
        ["mangle table made"] = h => h.V4.GetOrCreate(TableInfo.Find("mangle")!),
        ["security table removed"] = h => h.V4.Remove("security"),
        ["filter table replaced by its copy"] = h => h.V4.Replace(h.V4.Find("filter")!.Clone()),
        // Whole rule sets swapped (iptables-restore, with and without --noflush).
        ["restore"] = h => h.SetRules(EngineHost.Rules(IpFamily.V4, Rules)),
        ["restore --noflush"] = h => h.SetRules(new RestoreReader(IpFamily.V4, "iptables-restore")
            .Apply(h.V4, "*filter\n-A OTHER -p udp -j ACCEPT\nCOMMIT\n", new RestoreOptions { NoFlush = true })),
        // A library's direct calls on a table or chain of the host's rule set.
        ["chain.Rules.Add"] = h => Chain(h, "OTHER").Rules.Add(ParseRule("filter", "OTHER", "-p udp -j ACCEPT")),
        ["chain.Rules[0] ="] = h =>
        {
            RuleList rules = Chain(h, "OTHER").Rules;
            rules[0] = ParseRule("filter", "OTHER", "-p udp -j ACCEPT");
        },
        ["chain.Rules.RemoveAt"] = h => Chain(h, "OTHER").Rules.RemoveAt(0),
        ["chain.Rules.Clear"] = h => Chain(h, "OTHER").Rules.Clear(),
        ["chain.Policy ="] = h => Chain(h, "FORWARD").Policy = Verdicts.Drop,
        ["chain.Name ="] = h => h.V4.Find("filter")!.RenameUserChain("EMPTY", "EMPTIED"),
        ["table.AddUserChain"] = h => h.V4.Find("filter")!.AddUserChain(new Chain("LIB", builtin: false)),
        ["table.RemoveUserChain"] = h => h.V4.Find("filter")!.RemoveUserChain("EMPTY"),
        // The host: links, addresses, routes, sysctls, hidden routes, route tables.
        ["ip link add x0"] = h => h.Links.Add(new Link { Name = "x0", Kind = "dummy", Index = 9 }),
        ["ip link set eth0 mtu 1400"] = h => h.FindLink("eth0")!.Mtu = 1400,
        ["ip link set eth1 up (again)"] = h => h.FindLink("eth1")!.Up = true,
        ["ip addr add 198.51.100.3/24 dev eth0"] = h => h.Addresses.Add(new InterfaceAddress("eth0", IpFamily.V4, 0xC6336403, 24)),
        ["ip route add 192.0.2.0/24 dev eth0"] = h => h.Routes.Add(new Route(IpFamily.V4, 0xC0000200, 24, "eth0", null, null)),
        ["sysctl nf_conntrack_tcp_be_liberal=0"] = h => h.Sysctls["net.netfilter.nf_conntrack_tcp_be_liberal"] = "0",
        ["hidden route"] = h => h.HiddenRoutes.Add("inet local local 192.0.2.9/32 eth0"),
        ["route table 100"] = h => h.RouteTables.Add("100"),
    };

    public static TheoryData<string> EditNames => [.. Edits.Keys];

    [Theory]
    [MemberData(nameof(EditNames))]
    public void An_edit_drops_the_plans_of_its_own_rule_set_or_host_and_not_another_hosts(string edit)
    {
        var other = new Gateway();
        var own = new Gateway();
        Edits[edit](own.Host);
        // Another host's plan holds: its next packet takes the one pass.
        other.OnePass().ShouldBeTrue("another host");
        // This host's next packet goes hook by hook (the memos are made again); the one after takes the one pass.
        own.OnePass().ShouldBeFalse("the edited host's next packet");
        own.OnePass().ShouldBeTrue("the packet after");
        other.OnePass().ShouldBeTrue("another host, again");
    }

    /// <summary>
    /// A rule set's shallow copy (a restore's snapshot at COMMIT) shares its tables, which know the generation of the rule
    /// set that took them in: the copy shares that generation, so an edit of a shared table drops the copy's plans. A deep
    /// copy's tables and chains (a restore's working copy) know the copy's own.
    /// </summary>
    [Theory]
    [InlineData("shallow")]
    [InlineData("deep")]
    public void An_edit_of_a_copied_rule_sets_chain_drops_the_copys_plans(string copy)
    {
        var gw = new Gateway(copy);
        Chain(gw.Host, "OTHER").Rules.RemoveAt(0);
        gw.OnePass().ShouldBeFalse();
        gw.OnePass().ShouldBeTrue();
    }

    /// <summary>The two families' rule sets of one host have their own generations: an ip6tables edit drops no IPv4 plan.</summary>
    [Theory]
    [InlineData("-A OTHER6")]
    [InlineData("-P FORWARD DROP")]
    [InlineData("restore")]
    public void An_ipv6_rule_set_edit_leaves_the_ipv4_plans(string edit)
    {
        var gw = new Gateway();
        long v4 = gw.Host.V4.Generation, host = gw.Host.Generation;
        switch (edit)
        {
            case "-A OTHER6":
                gw.Host.V6.Find("filter")!.Find("OTHER6")!.Rules.Add(EngineHost.Rules(IpFamily.V6, "*filter\n:OTHER6 - [0:0]\n-A OTHER6 -p udp -j ACCEPT\nCOMMIT\n").Find("filter")!.Find("OTHER6")!.Rules[0]);
                break;
            case "-P FORWARD DROP":
                new RulesetEditor(gw.Host.V6).SetPolicy("filter", "FORWARD", "DROP");
                break;
            default:
                gw.Host.SetRules(EngineHost.Rules(IpFamily.V6, Rules6));
                break;
        }
        gw.Host.V4.Generation.ShouldBe(v4);
        gw.Host.Generation.ShouldBe(host);
        gw.OnePass().ShouldBeTrue();
    }

    /// <summary>No two rule sets or hosts have the same generation, whatever their edits: a memo never holds for another.</summary>
    [Fact]
    public void Generations_are_unique_to_their_rule_set_or_host()
    {
        var a = new Ruleset(IpFamily.V4);
        var b = new Ruleset(IpFamily.V4);
        a.Generation.ShouldNotBe(b.Generation);
        a.GetOrCreate(TableInfo.Find("filter")!);
        b.GetOrCreate(TableInfo.Find("filter")!);
        a.Generation.ShouldNotBe(b.Generation);
        a.Clone().Generation.ShouldNotBe(a.Generation);
        a.ShallowCopy().Generation.ShouldBe(a.Generation);
        VirtualHost h1 = VirtualHost.CreateFresh(), h2 = VirtualHost.CreateFresh();
        h1.Generation.ShouldNotBe(h2.Generation);
        h1.Generation.ShouldNotBe(a.Generation);
    }

    /// <summary>A chain or table taken by another table or rule set moves that one's generation from then on.</summary>
    [Fact]
    public void A_moved_table_or_link_moves_its_new_holders_generation()
    {
        Ruleset first = EngineHost.Rules(IpFamily.V4, Rules), second = new(IpFamily.V4);
        Table filter = first.Find("filter")!;
        second.Replace(filter);
        long g = second.Generation;
        filter.Find("OTHER")!.Rules.RemoveAt(0);
        second.Generation.ShouldNotBe(g);
        VirtualHost h1 = VirtualHost.CreateFresh(), h2 = VirtualHost.CreateFresh();
        Link lo = h1.FindLink("lo")!;
        h2.Links.Add(lo);
        long g2 = h2.Generation;
        lo.Mtu = 1500;
        h2.Generation.ShouldNotBe(g2);
    }
}
