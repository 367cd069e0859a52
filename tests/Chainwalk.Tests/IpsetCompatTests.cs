using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Chainwalk.Compat;
using Chainwalk.Extensions;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// <c>chainwalk ipset</c> (and iptables rules that use sets) against the real ipset 7.17 and iptables 1.8.9
/// on Linux 6.18: each golden/ipset/NAME.cmds is a sequence of commands, NAME.out what the real tools
/// printed in a fresh network namespace (tests/tools/record-ipset.sh). The kernel picks a random initval
/// and lists members in the order of its hash table, so initvals are compared as a placeholder and each
/// run of members (list) or add lines (save) of a hash set is compared as a sorted block.
/// </summary>
public partial class IpsetCompatTests
{
    public static TheoryData<string> Scenarios()
    {
        var data = new TheoryData<string>();
        foreach (string f in Directory.EnumerateFiles(Path.Combine(TestPaths.Golden, "ipset"), "*.cmds").Order(StringComparer.Ordinal))
            data.Add(Path.GetFileNameWithoutExtension(f));
        return data;
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Scenario_prints_what_the_real_tools_printed(string name)
    {
        string dir = Path.Combine(TestPaths.Golden, "ipset");
        string expected = File.ReadAllText(Path.Combine(dir, name + ".out"));
        string actual = RunScenario(File.ReadAllLines(Path.Combine(dir, name + ".cmds")));
        Normalize(actual).ShouldBe(Normalize(expected));
    }

    [Fact]
    public void Sets_survive_a_reload_and_a_freed_slot_is_reused()
    {
        string hostDir = Directory.CreateTempSubdirectory("cw-ipset-").FullName;
        try
        {
            var store = new HostStore(hostDir);
            foreach (string n in new[] { "a", "b", "c" }) Run(store, "ipset", "create", n, "hash:ip").Rc.ShouldBe(0);
            Run(store, "ipset", "add", "b", "10.0.0.1", "timeout", "5").Out.ShouldContain("Timeout cannot be used: set was created without timeout support");
            Run(store, "ipset", "destroy", "a").Rc.ShouldBe(0);
            Run(store, "ipset", "list", "-n").Out.ShouldBe("b\nc\n");
            Run(store, "ipset", "create", "d", "hash:net").Rc.ShouldBe(0);
            Run(store, "ipset", "list", "-n").Out.ShouldBe("d\nb\nc\n");
            Run(store, "ipset", "create", "t", "hash:ip", "timeout", "60").Rc.ShouldBe(0);
            Run(store, "ipset", "add", "t", "10.0.0.1").Rc.ShouldBe(0);
            Run(store, "ipset", "add", "t", "10.0.0.2", "timeout", "0").Rc.ShouldBe(0);
            Run(store, "ipset", "save", "t").Out.ShouldBe(
                $"create t hash:ip family inet hashsize 1024 maxelem 65536 timeout 60 bucketsize 12 initval {InitVal(store, "t")}\n"
                + "add t 10.0.0.1 timeout 60\nadd t 10.0.0.2 timeout 0\n");
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }

    [Fact]
    public void A_rule_loaded_from_the_host_finds_its_set()
    {
        string hostDir = Directory.CreateTempSubdirectory("cw-ipset-").FullName;
        try
        {
            var store = new HostStore(hostDir);
            Run(store, "ipset", "create", "foo", "hash:ip").Rc.ShouldBe(0);
            Run(store, "iptables", "-A", "INPUT", "-m", "set", "--match-set", "foo", "src", "-j", "DROP").Rc.ShouldBe(0);
            // A later command in a fresh process context loads the saved rule, which needs the set again.
            KernelObjects.Current = new KernelObjects();
            Run(store, "iptables", "-A", "INPUT", "-j", "ACCEPT").Rc.ShouldBe(0);
            Run(store, "iptables", "-S", "INPUT").Out.ShouldBe("-P INPUT ACCEPT\n-A INPUT -m set --match-set foo src -j DROP\n-A INPUT -j ACCEPT\n");
            Run(store, "ipset", "list", "-t", "foo").Out.ShouldContain("References: 1\n");
            string restore = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m set --match-set foo dst -j ACCEPT\nCOMMIT\n";
            KernelObjects.Current = new KernelObjects();
            var io = new ToolIo { In = new StringReader(restore), Out = TextWriter.Null, Err = TextWriter.Null };
            IptablesCompat.Restore(IpFamily.V4, ["iptables-restore"], store, io).ShouldBe(0);
            Run(store, "iptables", "-S", "INPUT").Out.ShouldBe("-P INPUT ACCEPT\n-A INPUT -m set --match-set foo dst -j ACCEPT\n");
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }

    private static string InitVal(HostStore store, string set) =>
        IpsetStore.Load(store).Get(set)!.InitVal.ToString("x8", CultureInfo.InvariantCulture).Insert(0, "0x");

    private static (int Rc, string Out) Run(HostStore store, params string[] argv)
    {
        var both = new StringWriter { NewLine = "\n" };
        int rc = Dispatch(store, argv, both, TextReader.Null);
        return (rc, both.ToString());
    }

    private static int Dispatch(HostStore store, string[] argv, TextWriter both, TextReader input)
    {
        var io = new ToolIo { In = input, Out = both, Err = both };
        return argv[0] switch
        {
            "ipset" => IpsetCompat.Run(argv, store, io),
            "iptables" => IptablesCompat.Run(IpFamily.V4, argv, store, io),
            "ip6tables" => IptablesCompat.Run(IpFamily.V6, argv, store, io),
            _ => throw new ArgumentException("no such tool in these scenarios: " + argv[0]),
        };
    }

    /// <summary>Runs the lines on a fresh host; <c>printf "TEXT" | ipset restore …</c> feeds TEXT (with \n escapes) to restore.</summary>
    public static string RunScenario(IEnumerable<string> lines)
    {
        string hostDir = Directory.CreateTempSubdirectory("cw-ipset-").FullName;
        KernelObjects.Current = new KernelObjects();
        try
        {
            var store = new HostStore(hostDir);
            var transcript = new StringWriter { NewLine = "\n" };
            foreach (string line in lines)
            {
                if (line.Length == 0 || line[0] == '#') continue;
                transcript.Write("$ " + line + "\n");
                TextReader input = TextReader.Null;
                string command = line;
                Match pipe = PrintfPipe().Match(line);
                if (pipe.Success)
                {
                    input = new StringReader(pipe.Groups[1].Value.Replace("\\n", "\n", StringComparison.Ordinal).Replace("\\\"", "\"", StringComparison.Ordinal));
                    command = pipe.Groups[2].Value;
                }
                string[] argv = command.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                int rc = Dispatch(store, argv, transcript, input);
                transcript.Write("[rc=" + rc.ToString(CultureInfo.InvariantCulture) + "]\n");
            }
            return transcript.ToString();
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }

    /// <summary>Initvals become a placeholder; member lines after "Members:" and runs of "add" lines are sorted.</summary>
    public static string Normalize(string text)
    {
        text = InitValPattern().Replace(text, "initval 0xINITVAL");
        var output = new StringBuilder();
        var block = new List<string>();
        bool inMembers = false, ordered = false;
        void Flush()
        {
            // A list:set keeps its members in order (matching follows it): only hash types' blocks are sorted.
            if (!ordered) block.Sort(StringComparer.Ordinal);
            foreach (string b in block) output.Append(b).Append('\n');
            block.Clear();
        }
        foreach (string line in text.Split('\n'))
        {
            bool member = (inMembers && line.Length > 0 && !line.StartsWith("[rc=", StringComparison.Ordinal) && !line.StartsWith("$ ", StringComparison.Ordinal))
                || line.StartsWith("add ", StringComparison.Ordinal);
            if (member)
            {
                block.Add(line);
                continue;
            }
            Flush();
            inMembers = line == "Members:";
            if (line.StartsWith("Type: ", StringComparison.Ordinal) || line.StartsWith("create ", StringComparison.Ordinal))
                ordered = line.EndsWith(" list:set", StringComparison.Ordinal) || line.Contains(" list:set ", StringComparison.Ordinal);
            output.Append(line).Append('\n');
        }
        Flush();
        return output.ToString();
    }

    [GeneratedRegex(@"initval 0x[0-9a-f]{8}")]
    private static partial Regex InitValPattern();

    [GeneratedRegex("^printf \"(.*)\" \\| (ipset .*)$")]
    private static partial Regex PrintfPipe();
}
