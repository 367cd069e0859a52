using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// One-rule edits check only what they touch (RulesetEditor with Table.Checked) and -D/-C find a rule through a
/// per-chain index (RuleFinder). The reference is the same edit with nothing remembered: the whole table checked
/// and the chain searched linearly, as before. Both must end in the same rules and the same errors after every step.
/// </summary>
public class IncrementalEditTests
{
    private const string Base =
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n:C - [0:0]\n" +
        "-A INPUT -j A\n-A A -p tcp --dport 22 -j ACCEPT\n-A B -j RETURN\nCOMMIT\n";

    /// <summary>Edits that cross the interesting cases: hooks reaching a chain, loops, depth, shared objects, duplicates.</summary>
    private static readonly string[] Commands =
    [
        "-A A -m owner --uid-owner 0 -j ACCEPT",       // owner: OUTPUT/POSTROUTING only; A is reached from INPUT
        "-A B -m owner --uid-owner 0 -j ACCEPT",
        "-A C -m owner --uid-owner 0 -j ACCEPT",
        "-A OUTPUT -j B", "-A OUTPUT -j C", "-A INPUT -j B", "-D INPUT -j B", "-D OUTPUT -j C", "-D OUTPUT -j B",
        "-A A -j B", "-A B -j A", "-A C -j A", "-D A -j B", "-D B -j A",          // loops come and go
        "-I B 1 -p tcp --dport 1 -j ACCEPT", "-I A 2 -s 10.0.0.1 -j DROP", "-R A 1 -j RETURN", "-R B 1 -j C",
        "-D A 1", "-D B 1", "-D C 1", "-F C", "-F A",
        "-A FORWARD -s 10.0.0.1 -j ACCEPT", "-A FORWARD -s 10.0.0.2 -j ACCEPT", "-I FORWARD 3 -s 10.0.0.1 -j ACCEPT",
        "-D FORWARD -s 10.0.0.1 -j ACCEPT", "-D FORWARD -s 10.0.0.2 -j ACCEPT", "-C FORWARD -s 10.0.0.2 -j ACCEPT",
        "-R FORWARD 5 -s 10.0.0.2 -j ACCEPT", "-D FORWARD 7",
        "-A B -m hashlimit --hashlimit-above 5/sec --hashlimit-name h -j DROP",
        "-A C -m hashlimit --hashlimit-upto 5/sec --hashlimit-name h -j DROP",   // same name, other mode: refused when both counted
        "-A A -j REJECT", "-A OUTPUT -p udp -j REJECT --reject-with tcp-reset",
        "-N D", "-A D -j ACCEPT", "-A C -j D", "-X D", "-E D E", "-A E -m owner --uid-owner 1 -j ACCEPT", "-A OUTPUT -j E",
    ];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void Random_edits_end_as_with_whole_checks(int seed)
    {
        // FORWARD is long enough (and full of duplicates) for -D to use the index.
        var text = new StringBuilder(Base.Replace("COMMIT\n", string.Empty, StringComparison.Ordinal));
        var rnd = new Random(seed);
        for (int i = 0; i < 150; i++) text.Append("-A FORWARD -s 10.0.0.").Append(rnd.Next(1, 4)).Append(" -j ").Append(rnd.Next(2) == 0 ? "ACCEPT" : "DROP").Append('\n');
        text.Append("COMMIT\n");
        Ruleset fast = Load(text.ToString());
        Ruleset reference = Load(text.ToString());
        var parser = new CommandLineParser(IpFamily.V4, "iptables");
        for (int step = 0; step < 300; step++)
        {
            string command = Commands[rnd.Next(Commands.Length)];
            string[] argv = ["iptables", .. command.Split(' ')];
            Forget(reference);
            string a = Run(fast, parser.Parse(argv));
            string b = Run(reference, parser.Parse(argv));
            Assert.True(a == b, $"step {step}: {command}\nincremental: {a}\nwhole: {b}");
            Assert.Equal(SaveWriter.Write(reference, counters: true), SaveWriter.Write(fast, counters: true));
            // The index answers as the linear search does (the first rule with the same save form).
            Chain forward = fast.Find("filter")!.Find("FORWARD")!;
            Rule wanted = parser.Parse(["iptables", "-A", "FORWARD", "-s", "10.0.0." + rnd.Next(1, 4), "-j", rnd.Next(2) == 0 ? "ACCEPT" : "DROP"]).Rules[0];
            Assert.Equal(LinearFind(forward, wanted), RulesetEditor.Find(forward, wanted));
        }
    }

    private static int LinearFind(Chain chain, Rule rule)
    {
        string wanted = RuleWriter.SaveBody(rule);
        return chain.Rules.FindIndex(r => RuleWriter.SaveBody(r) == wanted);
    }

    [Fact]
    public void A_rule_refused_for_its_hooks_is_refused_after_remembered_checks_too()
    {
        Ruleset rs = Load(Base);
        Assert.NotNull(rs.Find("filter")!.Checked); // COMMIT remembered the whole check
        var parser = new CommandLineParser(IpFamily.V4, "iptables");
        string r = Run(rs, parser.Parse(["iptables", "-A", "A", "-m", "owner", "--uid-owner", "0", "-j", "ACCEPT"]));
        Assert.Equal("4:  RULE_APPEND failed (Invalid argument): rule in chain A", r);
    }

    [Fact]
    public void Delete_by_rule_on_a_long_chain_removes_the_first_equal_rule()
    {
        var text = new StringBuilder("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        for (int i = 0; i < 100; i++) text.Append("[").Append(i).Append(":0] -A FORWARD -s 10.0.0.").Append(i % 3).Append(" -j ACCEPT\n");
        text.Append("COMMIT\n");
        Ruleset rs = new RestoreReader(IpFamily.V4, "iptables-restore").Apply(new Ruleset(IpFamily.V4), text.ToString(), new RestoreOptions { Counters = true });
        var parser = new CommandLineParser(IpFamily.V4, "iptables");
        Chain forward = rs.Find("filter")!.Find("FORWARD")!;
        new CommandExecutor(rs).Execute(parser.Parse(["iptables", "-D", "FORWARD", "-s", "10.0.0.2", "-j", "ACCEPT"]));
        Assert.Null(forward.Finder); // the first search is linear (a CLI command searches once)
        Assert.Equal(99, forward.Rules.Count);
        // The first 10.0.0.2 rule (counters 2) went; the next one (5) is still there.
        Assert.DoesNotContain(forward.Rules, r => r.Counters.Packets == 2);
        new CommandExecutor(rs).Execute(parser.Parse(["iptables", "-I", "FORWARD", "1", "-s", "10.0.0.2", "-j", "ACCEPT"]));
        new CommandExecutor(rs).Execute(parser.Parse(["iptables", "-D", "FORWARD", "-s", "10.0.0.2", "-j", "ACCEPT"]));
        Assert.NotNull(forward.Finder); // the second builds the index, kept in step from then on
        Assert.Equal(99, forward.Rules.Count);
        Assert.Equal(0UL, forward.Rules[0].Counters.Packets);
        Assert.Contains(forward.Rules, r => r.Counters.Packets == 5);
    }

    private static Ruleset Load(string text) =>
        new RestoreReader(IpFamily.V4, "iptables-restore").Apply(new Ruleset(IpFamily.V4), text, new RestoreOptions { Counters = true });

    /// <summary>Nothing remembered: the next edit checks the whole table and searches chains linearly.</summary>
    private static void Forget(Ruleset rs)
    {
        foreach (Table t in rs.Tables)
        {
            t.Checked = null;
            foreach (Chain c in t.Chains) c.Finder = null;
        }
    }

    private static string Run(Ruleset rs, ParsedCommand cmd)
    {
        try
        {
            var exec = new CommandExecutor(rs);
            exec.Execute(cmd);
            return "ok " + exec.Output;
        }
        catch (XtablesException ex)
        {
            return $"{(int)ex.Exit}: {ex.Message}";
        }
    }
}
