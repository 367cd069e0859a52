using System.Reflection;
using System.Text;
using Chainwalk.Bench;
using Chainwalk.Extensions;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Tests.Support;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// iptables-restore reads plain rule lines (<c>-A C -s -d -i -o -p -m tcp|udp --sport --dport -j</c>) without getopt
/// (CommandLineParser.TryParsePlainRule). Every line, plain or not, must give the same rules, save text, listing,
/// error and exit code as the getopt parser, which is the reference here.
/// </summary>
public class RestorePlainPathTests
{
    private const string Head = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:X - [0:0]\n";

    /// <summary>Lines the plain path takes.</summary>
    public static TheoryData<string> PlainLines() => new()
    {
        "-A FORWARD -s 58.8.99.134/32 -d 159.254.121.38/32 -p tcp --dport 31000:31000 -j ACCEPT",
        "-A FORWARD -s 10.0.0.0/8 -p udp --sport 53 -j DROP",
        "-A FORWARD -d 0.0.0.0/0 -j ACCEPT",
        "-A INPUT -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT",
        "-A OUTPUT -o lo -j ACCEPT",
        "-A FORWARD -p icmp -j X",
        "-A FORWARD -p tcp --dport 0:65535 -j ACCEPT",
        "-A FORWARD -p tcp --sport 1024:65535 --dport 80 -j RETURN",
        "-A FORWARD -s 1.2.3.4/0 -j ACCEPT",
        "-A FORWARD -s 1.2.3.4/24 -j ACCEPT",
        "-A FORWARD -p tcp -j ACCEPT",
        "-A FORWARD -p udp -m udp -j ACCEPT",
        "-A FORWARD -i eth0+ -o eth1 -j DROP",
        "-A X -j RETURN",
        "[5:300] -A FORWARD -s 1.1.1.1 -j ACCEPT",
        "-A FORWARD -s 58.118.131.87/32 -d 110.184.105.206/32 -p 1 -j ACCEPT",
        "-A FORWARD -p 47 -j DROP",
        "-A FORWARD -p 6 -j ACCEPT",
        "-A FORWARD -p 17 -m udp --dport 53 -j ACCEPT",
        "-A FORWARD -p 255 -j ACCEPT",
    };

    /// <summary>Lines it leaves to getopt (something not plain, a warning or an error).</summary>
    public static TheoryData<string> OtherLines() => new()
    {
        "-A FORWARD -p tcp --sport 5:3 -j ACCEPT",
        "-A FORWARD -p udp -m tcp --dport 1 -j ACCEPT",
        "-A FORWARD -m tcp --dport 1 -j ACCEPT",
        "-A FORWARD --dport 1 -p tcp -j ACCEPT",
        "-A FORWARD -s 1.2.3.4/33 -j ACCEPT",
        "-A FORWARD -s 010.1.2.3 -j ACCEPT",
        "-A FORWARD -s 1.2.3 -j ACCEPT",
        "-A FORWARD -s 1.2.3.4,5.6.7.8 -j ACCEPT",
        "-A INPUT -o eth0 -j ACCEPT",
        "-A OUTPUT -i eth0 -j ACCEPT",
        "-A FORWARD -j NOSUCHCHAIN",
        "-A FORWARD -s 1.2.3.4 -s 5.6.7.8 -j ACCEPT",
        "-A FORWARD -p tcp --dport 22 --dport 23 -j ACCEPT",
        "-A FORWARD -j LOG",
        "-A FORWARD -p tcp --dport ssh -j ACCEPT",
        "-A FORWARD -i verylonginterfacename0 -j ACCEPT",
        "-A FORWARD -i eth/0 -j ACCEPT",
        "-A FORWARD ! -s 1.2.3.4 -j ACCEPT",
        "-A FORWARD -j QUEUE",
        "-A FORWARD -p tcp --dport 22 -j ACCEPT -j DROP",
        "-A FORWARD -s 1.2.3.4 -j ACCEPT extra",
        "-A X -p tcp --dport 99999 -j ACCEPT",
        "-A FORWARD -p TCP --dport 1 -j ACCEPT",
        "-A FORWARD -p 6 --dport 1 -j ACCEPT",
        "-A FORWARD -p 0 -j ACCEPT",
        "-A FORWARD -p 01 -j ACCEPT",
        "-A FORWARD -p 256 -j ACCEPT",
        "-A FORWARD -p 0x6 -j ACCEPT",
        "-A FORWARD -p tcp --dport=1 -j ACCEPT",
        "-A FORWARD -p tcp --dp 1 -j ACCEPT",
        "-A FORWARD -p tcp -m tcp -m tcp --dport 1 -j ACCEPT",
        "-A FORWARD -t nat -j ACCEPT",
        "-A FORWARD -s 1.2.3.4",
        "-A FORWARD -m comment --comment \"x y\" -j ACCEPT",
        "-A averyveryverylongchainname12345 -j ACCEPT",
        "[x:1] -A FORWARD -j ACCEPT",
        "-I FORWARD -j ACCEPT",
        "-D FORWARD -j ACCEPT",
    };

    [Theory]
    [MemberData(nameof(PlainLines))]
    public void Plain_line_is_read_without_getopt_to_the_same_rule(string line)
    {
        var parser = new CommandLineParser(IpFamily.V4, "iptables-restore", restore: true);
        string rest = line.StartsWith('[') ? line[(line.IndexOf(']', StringComparison.Ordinal) + 1)..] : line;
        (ulong, ulong)? counters = line.StartsWith('[') ? (5UL, 300UL) : null;
        ParsedCommand? plain = parser.TryParsePlainRule("filter", rest, counters, s => s.ToString());
        Assert.NotNull(plain);
        var argv = new List<string> { "iptables-restore", "-t", "filter" };
        if (counters is not null) argv.AddRange(["--set-counters", "5", "300"]);
        argv.AddRange(new RestoreReader(IpFamily.V4, "iptables-restore").Tokenize(rest, 1));
        ParsedCommand full = new CommandLineParser(IpFamily.V4, "iptables-restore", restore: true).Parse([.. argv]);
        Assert.Equal(Describe(full), Describe(plain));
        Assert.Equal(full.Options, plain.Options);
        Assert.Equal(full.Chain, plain.Chain);
        Assert.Equal(full.JumpTo, plain.JumpTo);
    }

    [Theory]
    [MemberData(nameof(PlainLines))]
    [MemberData(nameof(OtherLines))]
    public void Restore_gives_what_getopt_gives(string line)
    {
        foreach (bool counters in new[] { false, true })
        {
            string text = Head + line + "\nCOMMIT\n";
            Assert.Equal(Outcome(text, plain: false, counters), Outcome(text, plain: true, counters));
        }
    }

    /// <summary>
    /// Blocks whose plain lines meet what the lines before did (a chain missing, emptied and deleted, renamed, made by
    /// -N; a jump to a built-in chain) and a second table: a plain line is appended to the block's table as
    /// <see cref="CommandExecutor.Execute"/> appends it, with the same errors.
    /// </summary>
    public static TheoryData<string> Blocks() => new()
    {
        Head + "-A NOSUCH -s 1.2.3.4 -j ACCEPT\nCOMMIT\n",
        Head + "-A X -s 1.2.3.4 -j ACCEPT\n-F X\n-X X\n-A X -s 1.2.3.5 -j ACCEPT\nCOMMIT\n",
        Head + "-A X -s 1.2.3.4 -j ACCEPT\n-E X Y\n-A Y -s 1.2.3.5 -j ACCEPT\n-A X -j DROP\nCOMMIT\n",
        Head + "-N Z\n-A Z -p tcp --dport 1 -j ACCEPT\n-A FORWARD -j Z\n-A Z -s 1.2.3.4 -j RETURN\nCOMMIT\n",
        Head + "-A FORWARD -s 1.2.3.4 -j ACCEPT\n-A FORWARD -j INPUT\nCOMMIT\n",
        Head + "-A FORWARD -s 1.2.3.4 -j ACCEPT\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:Q - [0:0]\n"
            + "-A Q -d 10.0.0.1 -j RETURN\n-A PREROUTING -j Q\n-A FORWARD -j ACCEPT\nCOMMIT\n",
        Head + "-A FORWARD -s 1.2.3.4 -j ACCEPT\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:Q - [0:0]\n-A Q -d 10.0.0.1 -j RETURN\n-A PREROUTING -j Q\nCOMMIT\n"
            + "*filter\n-A FORWARD -s 1.2.3.5 -j DROP\n-A X -j Y\nCOMMIT\n",
    };

    [Theory]
    [MemberData(nameof(Blocks))]
    public void Restore_of_a_block_gives_what_getopt_gives(string text)
    {
        foreach (bool counters in new[] { false, true })
        {
            Assert.Equal(Outcome(text, plain: false, counters), Outcome(text, plain: true, counters));
        }
    }

    [Fact]
    public void Classbench_acl1_10k_restores_the_same_either_way()
    {
        Dictionary<string, string> files = ClassBench.ReadArchive(Path.Combine(TestPaths.Corpus, "classbench", "classbench-1k-10k.tgz"));
        string name = files.Keys.First(k => k.StartsWith("acl1_", StringComparison.Ordinal) && k.EndsWith("_10k", StringComparison.Ordinal));
        string text = ClassBench.Convert(files[name]).Restore;
        Assert.True(text.Length > 100_000);
        Assert.Equal(Outcome(text, plain: false, counters: false), Outcome(text, plain: true, counters: false));
    }

    [Fact]
    public void Random_lines_restore_the_same_either_way()
    {
        var rnd = new Random(6);
        string[] options =
        [
            "-s 10.1.2.3", "-s 10.0.0.0/8", "-s 1.2.3.4/0", "-s 300.1.1.1", "-d 192.168.1.0/24", "-d 0.0.0.0/0", "-d 1.2.3.4/255.255.0.0",
            "-i eth0", "-i eth+", "-o eth1", "-o lo", "-p tcp", "-p udp", "-p icmp", "-p all", "-m tcp", "-m udp",
            "--sport 53", "--dport 80", "--dport 1000:2000", "--sport 0:65535", "--dport 65536", "--dport 7:5", "! --dport 22",
            "-j ACCEPT", "-j DROP", "-j RETURN", "-j X", "-j Y", "-g X",
        ];
        string[] chains = ["INPUT", "FORWARD", "OUTPUT", "X"];
        for (int n = 0; n < 1500; n++)
        {
            var words = new List<string> { "-A", chains[rnd.Next(chains.Length)] };
            int count = rnd.Next(0, 6);
            for (int i = 0; i < count; i++) words.Add(options[rnd.Next(options.Length)]);
            string line = string.Join(' ', words);
            string text = Head + line + "\nCOMMIT\n";
            Assert.Equal(Outcome(text, plain: false, counters: false), Outcome(text, plain: true, counters: false));
        }
    }

    /// <summary>The saved text, the verbose listing and the rules in full, or the error with its line and exit code.</summary>
    private static string Outcome(string text, bool plain, bool counters)
    {
        try
        {
            var reader = new RestoreReader(IpFamily.V4, "iptables-restore") { PlainRulePath = plain };
            Ruleset rs = reader.Apply(new Ruleset(IpFamily.V4), text, new RestoreOptions { Counters = counters });
            var exec = new CommandExecutor(rs);
            exec.Execute(new CommandLineParser(IpFamily.V4, "iptables").Parse(["iptables", "-L", "-v", "-n", "-x"]));
            var sb = new StringBuilder(SaveWriter.Write(rs, counters: true)).Append(exec.Output).Append(string.Join('\n', reader.Warnings));
            foreach (Table t in rs.Tables)
            {
                foreach (Chain c in t.Chains)
                {
                    foreach (Rule r in c.Rules) sb.Append(Describe(r)).Append('\n');
                }
            }
            return sb.ToString();
        }
        catch (XtablesException ex)
        {
            return $"error {ex.Exit} line {ex.Line}: {ex.Message} {string.Join('|', ex.Preceding ?? [])}";
        }
    }

    private static string Describe(ParsedCommand cmd) => string.Join("\n", cmd.Rules.Select(Describe)) + "|" + string.Join("|", cmd.Warnings);

    /// <summary>Every public field and property of the rule, its matches' data and its target.</summary>
    private static string Describe(Rule r)
    {
        var sb = new StringBuilder();
        AppendMembers(sb, r, [nameof(Rule.Matches), nameof(Rule.Target)]);
        foreach (MatchUse m in r.Matches)
        {
            sb.Append(" | -m ").Append(m.Extension.Name).Append(' ').Append(m.Data.GetType().Name);
            AppendMembers(sb, m.Data, []);
        }
        if (r.Target is { } t)
        {
            sb.Append(" | -j ").Append(t.Name).Append(" goto=").Append(t.Goto).Append(" ext=").Append(t.Extension?.Name);
            if (t.Data is not null) AppendMembers(sb, t.Data, []);
        }
        return sb.ToString();
    }

    private static void AppendMembers(StringBuilder sb, object o, string[] skip)
    {
        foreach (FieldInfo f in o.GetType().GetFields(BindingFlags.Public | BindingFlags.Instance).OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            sb.Append(' ').Append(f.Name).Append('=').Append(f.GetValue(o));
        }
        foreach (PropertyInfo p in o.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance).OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            if (skip.Contains(p.Name) || p.GetIndexParameters().Length > 0) continue;
            sb.Append(' ').Append(p.Name).Append('=').Append(p.GetValue(o));
        }
    }
}
