using Chainwalk.Extensions;
using Chainwalk.Extensions.Matches;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// The small layouts of session 6 read back exactly what was set: a chain's policy counters live aside until they are
/// not zero, an IPv4 -s/-d with a prefix mask is held as an address and a
/// prefix length, a target extension's use is named by its extension, a comment of ASCII text is held as bytes, and a
/// table's chains are found through an open-addressing map that agrees with a dictionary under any edits. Data shared
/// among rules by a restore stays shared only while no rule is edited: an edit of one rule never shows in another.
/// </summary>
public class RuleLayoutTests
{
    public static TheoryData<int> Prefixes()
    {
        var d = new TheoryData<int>();
        for (int p = 0; p <= 32; p++) d.Add(p);
        return d;
    }

    [Theory]
    [MemberData(nameof(Prefixes))]
    public void Every_ipv4_prefix_reads_back_as_set(int prefix)
    {
        uint mask = prefix == 0 ? 0 : uint.MaxValue << (32 - prefix);
        var net = IpNet.V4(0xc0a80101 & mask, mask);
        var r = new Rule { Family = IpFamily.V4, Source = net, Destination = IpNet.V4(0x0a000001, uint.MaxValue) };
        Assert.Equal(net, r.Source);
        Assert.Equal(IpNet.V4(0x0a000001, uint.MaxValue), r.Destination);
        r.Destination = net;
        Assert.Equal(net, r.Destination);
        Assert.Equal(net, r.Clone().Source);
    }

    [Fact]
    public void A_clone_has_its_own_counters()
    {
        var r = new Rule { Family = IpFamily.V4, InInterface = "eth0" };
        r.CountersCell.Packets = 3;
        Rule copy = r.Clone();
        r.CountersCell.Packets++;
        copy.CountersCell.Bytes++;
        r.InInterface = "";
        Assert.Equal((4ul, 0ul, 3ul, 1ul, "eth0"), (r.Counters.Packets, r.Counters.Bytes, copy.Counters.Packets, copy.Counters.Bytes, copy.InInterface));
    }

    [Fact]
    public void A_chains_policy_counters_read_back_and_count_in_place()
    {
        var c = new Chain("INPUT", builtin: true);
        Assert.Equal(default, c.Counters);
        c.CountersCell.Packets++;
        c.CountersCell.Bytes += 40;
        Assert.Equal((1ul, 40ul), (c.Counters.Packets, c.Counters.Bytes));
        c.Policy = "DROP";
        Chain copy = c.Clone();
        c.Counters = default;
        Assert.Equal((0ul, 1ul, 40ul, "DROP"), (c.Counters.Packets, copy.Counters.Packets, copy.Counters.Bytes, copy.Policy));
    }

    [Theory]
    [InlineData("DNAT", "DNAT")]
    [InlineData("NOTRACK", "CT")]
    [InlineData("MARK", "MARK")]
    public void A_target_extensions_use_is_named_by_its_extension_in_either_order(string target, string realName)
    {
        XtExtension ext = ExtensionRegistry.FindTarget(target, IpFamily.V4)!;
        var a = new TargetUse { Name = realName, Extension = ext };
        var b = new TargetUse { Extension = ext, Name = realName };
        Assert.Equal((realName, ext, realName, ext), (a.Name, a.Extension, b.Name, b.Extension));
        Assert.False(a.IsChainJump || a.IsStandardVerdict);
        Assert.Throws<ArgumentException>(() => new TargetUse { Name = "OTHER", Extension = ext });
        Assert.Throws<ArgumentException>(() => new TargetUse { Extension = ext, Name = "OTHER" });
        var jump = new TargetUse { Name = "KUBE-SVC-X" };
        Assert.Equal(("KUBE-SVC-X", (XtExtension?)null, true), (jump.Name, jump.Extension, jump.IsChainJump));
    }

    public static TheoryData<string, string, string> Comments() => new()
    {
        { "ascii", "ns0/svc0:p80 -> 10.180.60.103:80", " --comment \"ns0/svc0:p80 -> 10.180.60.103:80\"" },
        { "plain word", "kube-proxy_1", " --comment kube-proxy_1" },
        { "quotes and backslash", "a \"b\" \\c 'd'", " --comment \"a \\\"b\\\" \\\\c \\'d\\'\"" },
        { "not ascii", "café ☕", " --comment \"café ☕\"" },
        { "lone surrogate kept", "x\ud800y", " --comment \"x\ud800y\"" },
        { "empty", "", " --comment \"\"" },
    };

    [Theory]
    [MemberData(nameof(Comments))]
    public void A_comment_reads_back_saves_and_lists_as_its_text(string name, string text, string save)
    {
        _ = name;
        var d = new CommentData { Comment = text };
        Assert.Equal(text, d.Comment);
        XtExtension ext = ExtensionRegistry.FindMatch("comment", IpFamily.V4)!;
        var sb = new System.Text.StringBuilder();
        ext.Save(sb, d, IpFamily.V4);
        Assert.Equal(save, sb.ToString());
        sb.Clear();
        ext.Print(sb, d, IpFamily.V4, numeric: true);
        Assert.Equal(" /* " + text + " */", sb.ToString());
        var copy = (CommentData)d.Clone();
        d.Comment = "changed";
        Assert.Equal((text, "changed"), (copy.Comment, d.Comment));
    }

    private const string Shared =
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:KUBE-SEP-A - [0:0]\n:KUBE-SEP-B - [0:0]\n" +
        "-A KUBE-SEP-A -s 10.1.0.1/32 -m comment --comment \"ns0/svc0:p80\" -j MARK --set-xmark 0x4000/0x4000\n" +
        "-A KUBE-SEP-A -p tcp -m comment --comment \"ns0/svc0:p80\" -m tcp -j DNAT --to-destination 10.1.0.1:80\n" +
        "-A KUBE-SEP-B -s 10.1.0.2/32 -m comment --comment \"ns0/svc0:p80\" -j MARK --set-xmark 0x4000/0x4000\n" +
        "-A KUBE-SEP-B -p tcp -m comment --comment \"ns0/svc0:p80\" -m tcp -j DNAT --to-destination 10.1.0.2:80\n" +
        "COMMIT\n";

    /// <summary>Edits of one rule of a restored set whose comment (and match array) another rule shares.</summary>
    public static TheoryData<string, string[], string> SharedEdits() => new()
    {
        { "replace with another comment", ["iptables", "-t", "nat", "-R", "KUBE-SEP-A", "1", "-s", "10.1.0.1/32", "-m", "comment", "--comment", "other", "-j", "ACCEPT"], "-A KUBE-SEP-A -s 10.1.0.1/32 -m comment --comment other -j ACCEPT" },
        { "insert before with another comment", ["iptables", "-t", "nat", "-I", "KUBE-SEP-A", "1", "-m", "comment", "--comment", "x y", "-j", "RETURN"], "-A KUBE-SEP-A -m comment --comment \"x y\" -j RETURN" },
        { "delete by rule", ["iptables", "-t", "nat", "-D", "KUBE-SEP-A", "-s", "10.1.0.1/32", "-m", "comment", "--comment", "ns0/svc0:p80", "-j", "MARK", "--set-xmark", "0x4000/0x4000"], "" },
    };

    [Theory]
    [MemberData(nameof(SharedEdits))]
    public void Editing_one_rule_never_changes_another_sharing_its_data(string name, string[] argv, string newLine)
    {
        _ = name;
        Ruleset rs = new RestoreReader(IpFamily.V4, "iptables-restore").Apply(new Ruleset(IpFamily.V4), Shared, new RestoreOptions());
        Table nat = rs.Find("nat")!;
        Rule a1 = nat.Find("KUBE-SEP-A")!.Rules[0], b1 = nat.Find("KUBE-SEP-B")!.Rules[0];
        // The restore shared the comment's match (and the array of it) between the endpoints' rules.
        Assert.Same(a1.Matches[0], b1.Matches[0]);
        new CommandExecutor(rs).Execute(new CommandLineParser(IpFamily.V4, "iptables").Parse(argv));
        string saved = SaveWriter.Write(rs, counters: false, onlyTable: "nat");
        string expected = Shared;
        string oldA1 = "-A KUBE-SEP-A -s 10.1.0.1/32 -m comment --comment \"ns0/svc0:p80\" -j MARK --set-xmark 0x4000/0x4000\n";
        expected = argv[3] switch
        {
            "-R" => expected.Replace(oldA1, newLine + "\n", StringComparison.Ordinal),
            "-I" => expected.Replace(oldA1, newLine + "\n" + oldA1, StringComparison.Ordinal),
            _ => expected.Replace(oldA1, "", StringComparison.Ordinal),
        };
        Assert.Equal(expected, string.Join('\n', saved.Split('\n').Where(l => !l.StartsWith('#'))));
        Assert.Equal("ns0/svc0:p80", ((CommentData)b1.Matches[0].Data).Comment);
    }

    /// <summary>Random adds, removes and renames of user chains: the table finds and lists what a dictionary would.</summary>
    [Theory]
    [InlineData(1, 50)]
    [InlineData(2, 400)]
    [InlineData(3, 3000)]
    public void The_chain_map_agrees_with_a_dictionary_under_random_edits(int seed, int names)
    {
        var random = new Random(seed);
        var table = new Table(TableInfo.Filter, IpFamily.V4);
        var reference = new Dictionary<string, Chain>(StringComparer.Ordinal);
        string Name() => "KUBE-SEP-" + random.Next(names).ToString(System.Globalization.CultureInfo.InvariantCulture);
        for (int step = 0; step < names * 6; step++)
        {
            string n = Name();
            switch (random.Next(4))
            {
                case 0 or 1:
                    if (reference.ContainsKey(n)) Assert.Throws<ArgumentException>(() => table.AddUserChain(n));
                    else reference.Add(n, table.AddUserChain(n));
                    break;
                case 2:
                    Assert.Equal(reference.Remove(n), table.RemoveUserChain(n));
                    break;
                default:
                    string to = Name();
                    if (reference.TryGetValue(n, out Chain? c) && !reference.ContainsKey(to))
                    {
                        table.RenameUserChain(n, to);
                        reference.Remove(n);
                        reference.Add(to, c);
                    }
                    break;
            }
            if (step % 97 == 0) table.TrimExcess();
            Assert.Same(reference.GetValueOrDefault(n), table.Find(n));
        }
        Assert.Equal(reference.Count, table.UserChainCount);
        foreach (var (n, c) in reference) Assert.Same(c, table.Find(n));
        for (int i = 0; i < names; i++)
        {
            string n = "KUBE-SEP-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Assert.Same(reference.GetValueOrDefault(n), table.Find(n));
        }
        Assert.Equal(reference.Keys.Order(StringComparer.Ordinal), table.UserChains.Select(c => c.Name));
    }
}
