using System.Runtime;
using System.Text;
using Chainwalk.Engine.Compiled;
using Chainwalk.Extensions;
using Chainwalk.Extensions.Matches;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// How large rule sets are held and stored: a rule keeps IPv4 addresses in 32-bit fields and what it rarely sets in a
/// side object (reading back exactly what was set); a restore shares config-only matches that save to the same text
/// and jump objects within a table (never across tables: the compiled form resolves each jump object to one chain);
/// the host store streams the save text (the same bytes as the save writer).
/// </summary>
public class RestoreMemoryTests
{
    /// <summary>Addresses a rule may be given: compact IPv4 ones and those kept aside (IPv6, unset, wider than 32 bits).</summary>
    public static TheoryData<string, IpNet> Nets() => new()
    {
        { "v4 host", IpNet.V4(0x0a000001, uint.MaxValue) },
        { "v4 any", IpNet.V4(0, 0) },
        { "v4 non-contiguous mask", IpNet.V4(0x01000300, 0xff00ff00) },
        { "unset", default },
        { "v6 prefix", new IpNet(UInt128.Parse("42540766411282592856903984951653826560"), IpNet.PrefixMask(IpFamily.V6, 32), IpFamily.V6) },
        { "v6 any", IpNet.Any(IpFamily.V6) },
        { "v4 family, bits above 32", new IpNet((UInt128)0x1_0000_0001, uint.MaxValue, IpFamily.V4) },
    };

    [Theory]
    [MemberData(nameof(Nets))]
    public void Rule_addresses_read_back_what_was_set(string name, IpNet net)
    {
        _ = name;
        var r = new Rule { Family = net.Family == IpFamily.V6 ? IpFamily.V6 : IpFamily.V4, Source = net, Destination = net };
        Assert.Equal(net, r.Source);
        Assert.Equal(net, r.Destination);
        Rule copy = r.Clone();
        Assert.Equal(net, copy.Source);
        Assert.Equal(net, copy.Destination);
        // Set over a value of the other kind (compact over aside and back).
        r.Source = IpNet.V4(0x0a000002, uint.MaxValue);
        r.Source = net;
        Assert.Equal(net, r.Source);
        Assert.Equal(net, copy.Source);
    }

    [Fact]
    public void Rarely_set_fields_read_back_and_return_to_their_defaults()
    {
        var r = new Rule { Family = IpFamily.V4 };
        Assert.Equal((false, false, "", "", false, false, false, false, false),
            (r.SourceInverted, r.DestinationInverted, r.InInterface, r.OutInterface, r.InInverted, r.OutInverted, r.ProtocolInverted, r.Fragment, r.FragmentInverted));
        r.SourceInverted = r.DestinationInverted = r.InInverted = r.OutInverted = r.ProtocolInverted = r.Fragment = r.FragmentInverted = true;
        r.InInterface = "eth0";
        r.OutInterface = "eth1+";
        Rule copy = r.Clone();
        r.SourceInverted = r.DestinationInverted = r.InInverted = r.OutInverted = r.ProtocolInverted = r.Fragment = r.FragmentInverted = false;
        r.InInterface = r.OutInterface = "";
        Assert.Equal((false, false, "", "", false, false, false, false, false),
            (r.SourceInverted, r.DestinationInverted, r.InInterface, r.OutInterface, r.InInverted, r.OutInverted, r.ProtocolInverted, r.Fragment, r.FragmentInverted));
        Assert.Equal((true, true, "eth0", "eth1+", true, true, true, true, true),
            (copy.SourceInverted, copy.DestinationInverted, copy.InInterface, copy.OutInterface, copy.InInverted, copy.OutInverted, copy.ProtocolInverted, copy.Fragment, copy.FragmentInverted));
    }

    [Theory]
    [InlineData(0u, 0)]
    [InlineData(0x80000000u, 1)]
    [InlineData(0xffffff00u, 24)]
    [InlineData(0xfffffffeu, 31)]
    [InlineData(0xffffffffu, 32)]
    [InlineData(0xff00ff00u, -1)]
    [InlineData(0x00000001u, -1)]
    [InlineData(0x7fffffffu, -1)]
    public void Ipv4_prefix_length_is_the_wide_one(uint mask, int expected)
    {
        Assert.Equal(expected, IpNet.MaskToCidrV4(mask));
        Assert.Equal(expected, IpNet.MaskToCidr(mask, IpFamily.V4));
        Assert.Equal(expected, IpNet.V4(0, mask).PrefixLength);
    }

    private const string Shared = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :X - [0:0]
        -A INPUT -m comment --comment "svc a" -j X
        -A INPUT -p tcp -m comment --comment "svc a" -m tcp --dport 80 -j X
        -A INPUT -m comment --comment "svc b" -j X
        -A INPUT -p tcp -m comment --comment "svc a" -m tcp --dport 80 -m limit --limit 5/sec -j ACCEPT
        -A FORWARD -p tcp -m comment --comment "svc a" -m tcp --dport 80 -m limit --limit 5/sec -j ACCEPT
        -A FORWARD -g X
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        :X - [0:0]
        -A PREROUTING -m comment --comment "svc a" -j X
        COMMIT

        """;

    [Fact]
    public void Restore_shares_config_only_matches_that_save_alike()
    {
        Ruleset rules = new RestoreReader(IpFamily.V4, "iptables-restore").Apply(new Ruleset(IpFamily.V4), Shared, new RestoreOptions());
        RuleList input = rules.Find("filter")!.Find("INPUT")!.Rules;
        RuleList forward = rules.Find("filter")!.Find("FORWARD")!.Rules;
        Rule natRule = rules.Find("nat")!.Find("PREROUTING")!.Rules[0];
        // The same comment (and tcp --dport 80) on several rules: one MatchUse; another comment: its own.
        Assert.Same(input[0].Matches[0], input[1].Matches[0]);
        Assert.Same(input[0].Matches[0], natRule.Matches[0]);
        Assert.NotSame(input[0].Matches[0], input[2].Matches[0]);
        Assert.Same(input[1].Matches[1], input[3].Matches[1]);
        // limit keeps per-rule state: never shared.
        Assert.NotSame(input[3].Matches[2], forward[0].Matches[2]);
        // The text is what it was.
        Assert.Equal(Shared, SaveWriter.Write(rules, counters: false));
    }

    [Fact]
    public void Jump_objects_are_shared_within_a_table_and_resolve_to_its_own_chain()
    {
        Ruleset rules = new RestoreReader(IpFamily.V4, "iptables-restore").Apply(new Ruleset(IpFamily.V4), Shared, new RestoreOptions());
        Table filter = rules.Find("filter")!, nat = rules.Find("nat")!;
        RuleList input = filter.Find("INPUT")!.Rules;
        Rule gotoRule = filter.Find("FORWARD")!.Rules[1];
        Rule natRule = nat.Find("PREROUTING")!.Rules[0];
        Assert.Same(input[0].Target, input[1].Target);
        Assert.Same(input[0].Target, input[2].Target);
        Assert.NotSame(input[0].Target, gotoRule.Target);
        Assert.True(gotoRule.Target!.Goto);
        Assert.NotSame(input[0].Target, natRule.Target);
        // The compiled form resolves each jump to its own table's chain (the entry's chain number).
        CompiledRules compiled = CompiledRules.Build(rules);
        FlatChain[] flat = compiled.FlatChains;
        Assert.Same(filter.Find("X"), flat[compiled.FlatFor(filter.Find("INPUT")!)!.Value.Entries[1].Jump].Chain);
        Assert.Same(nat.Find("X"), flat[compiled.FlatFor(nat.Find("PREROUTING")!)!.Value.Entries[0].Jump].Chain);
    }

    [Fact]
    public void Stored_save_text_is_the_save_writers_text_for_a_large_table()
    {
        var text = new StringBuilder("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [7:420]\n:OUTPUT ACCEPT [0:0]\n");
        for (int i = 0; i < 5000; i++)
        {
            text.Append('[').Append(i).Append(':').Append(i * 60).Append("] -A FORWARD -s 10.").Append(i >> 8).Append('.').Append(i & 255)
                .Append(".0/24 -p udp -m udp --dport ").Append(i + 1).Append(" -m comment --comment \"rule ").Append(i).Append(" \u00e9\" -j ACCEPT\n");
        }
        text.Append("COMMIT\n");
        Ruleset rules = new RestoreReader(IpFamily.V4, "iptables-restore").Apply(new Ruleset(IpFamily.V4), text.ToString(), new RestoreOptions { Counters = true });
        string dir = Directory.CreateTempSubdirectory("cw-save-").FullName;
        try
        {
            new HostStore(dir).SaveRules(rules);
            byte[] stored = File.ReadAllBytes(Path.Combine(dir, HostStore.RulesFile(IpFamily.V4)));
            Assert.True(stored.Length > 4 * HostStore.Utf8Sink.ChunkChars);
            Assert.Equal(Encoding.UTF8.GetBytes(SaveWriter.Write(rules, counters: true)), stored);
            Assert.Equal(text.ToString(), Encoding.UTF8.GetString(stored));
            Assert.Single(Directory.GetFiles(dir));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Single, non-inverted tcp/udp matches (the restore fast path keeps them) and ones the fold rewrites.</summary>
    public static TheoryData<string> TcpUdpMatches() => new()
    {
        "-p tcp --dport 80",
        "-p tcp --sport 1024:65535 --dport 0:1023",
        "-p tcp --sport 5:5 --dport 7:7",
        "-p tcp --dport 0",
        "-p tcp --dport 0:0",
        "-p tcp --sport 0:65534",
        "-p tcp --dport 65535:65535",
        "-p tcp --tcp-flags SYN,ACK SYN",
        "-p tcp --tcp-flags SYN,ACK SYN --dport 22",
        "-p tcp --syn",
        "-p udp --sport 53",
        "-p udp --dport 1:2",
        "-p tcp ! --dport 80",
        "-p tcp ! --dport 0:1023",
        "-p udp ! --sport 53 --dport 1",
        "-p tcp ! --tcp-flags SYN SYN",
    };

    /// <summary>
    /// iptables-nft's read-back of a tcp/udp match: a rule whose only native match is folded alone (as a rule with the
    /// same match twice is, compare by compare) ends with the same save text and data either way, and a match the fold
    /// leaves as it is keeps its object (nothing made twice per rule).
    /// </summary>
    [Theory]
    [MemberData(nameof(TcpUdpMatches))]
    public void Tcp_udp_read_back_is_the_fold_of_the_match(string options)
    {
        var parser = new CommandLineParser(IpFamily.V4, "iptables");
        Rule once = parser.Parse(["iptables", "-A", "INPUT", .. options.Split(' '), "-j", "ACCEPT"]).Rules[0];
        string proto = options.Split(' ')[1];
        string[] twice = ["iptables", "-A", "INPUT", "-p", proto, "-m", proto, .. options.Split(' ')[2..], "-m", proto, .. options.Split(' ')[2..], "-j", "ACCEPT"];
        Rule folded = new CommandLineParser(IpFamily.V4, "iptables").Parse(twice).Rules[0];
        Assert.Single(once.Matches);
        Assert.Single(folded.Matches);
        Assert.Equal(RuleWriter.SaveBody(folded), RuleWriter.SaveBody(once));
        Assert.Equal(Fields(folded.Matches[0].Data), Fields(once.Matches[0].Data));
        // Read back once, "! 0:1023" is "1024:65535": only a match still inverted is rewritten again.
        bool inverted = once.Matches[0].Data is TcpData { InvSport: true } or TcpData { InvDport: true } or TcpData { InvFlags: true }
            or UdpData { InvSport: true } or UdpData { InvDport: true };
        var fresh = new Rule { Family = IpFamily.V4, Protocol = once.Protocol };
        fresh.Matches.Add(once.Matches[0]);
        NftTcpUdpRoundTrip.Apply(fresh);
        Assert.Equal(!inverted, ReferenceEquals(once.Matches[0], fresh.Matches[0]));
    }

    private static string Fields(object o) =>
        string.Join(" ", o.GetType().GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance).OrderBy(f => f.Name, StringComparer.Ordinal).Select(f => f.Name + "=" + f.GetValue(o)))
        + " given=" + ((ExtensionData)o).Given + " rev=" + ((ExtensionData)o).Revision;

    [Fact]
    public void Bulk_load_leaves_the_collector_alone_unless_the_process_is_short_lived()
    {
        Assert.False(ShortLivedProcess.Enabled);
        GCLatencyMode before = GCSettings.LatencyMode;
        using (ShortLivedProcess.BulkLoad(1 << 24))
        {
            Assert.Equal(before, GCSettings.LatencyMode);
        }
        Assert.Equal(before, GCSettings.LatencyMode);
    }
}
