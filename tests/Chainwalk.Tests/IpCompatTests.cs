using System.Text.RegularExpressions;
using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Tests.Support;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// <c>chainwalk ip</c> and <c>sysctl</c> against the real iproute2 6.1 and procps on Linux 6.18: each
/// golden/{ip,sysctl}/NAME.cmds is a sequence of commands, and NAME.out what the real tools printed for
/// it in a fresh network namespace with lo up (recorded by tests/tools/record-transcripts.sh). Kernel
/// MACs are random, so MACs and the link-local addresses made from them are compared as placeholders.
/// </summary>
public partial class IpCompatTests
{
    public static TheoryData<string> Scenarios()
    {
        var data = new TheoryData<string>();
        foreach (string tool in new[] { "ip", "sysctl" })
        {
            foreach (string f in Directory.EnumerateFiles(Path.Combine(TestPaths.Golden, tool), "*.cmds").Order(StringComparer.Ordinal))
            {
                data.Add(tool + "/" + Path.GetFileNameWithoutExtension(f));
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Scenario_prints_what_the_real_tools_printed(string name)
    {
        string dir = TestPaths.Golden;
        string expected = File.ReadAllText(Path.Combine(dir, name + ".out"));
        string actual = RunScenario(File.ReadAllLines(Path.Combine(dir, name + ".cmds")));
        Normalize(actual).ShouldBe(Normalize(expected));
    }

    /// <summary>Runs "ip …" and "sysctl …" lines on a fresh host and returns the transcript in record-transcripts.sh's format.</summary>
    public static string RunScenario(IEnumerable<string> lines)
    {
        string hostDir = Directory.CreateTempSubdirectory("cw-ip-").FullName;
        try
        {
            var store = new HostStore(hostDir);
            var transcript = new StringWriter { NewLine = "\n" };
            foreach (string line in lines)
            {
                if (line.Length == 0 || line[0] == '#') continue;
                transcript.Write("$ " + line + "\n");
                string[] argv = SplitWords(line);
                var io = new ToolIo { In = TextReader.Null, Out = transcript, Err = transcript };
                int rc = argv[0] == "sysctl" ? SysctlCompat.Run(argv, store, io) : IpCompat.Run(argv, store, io);
                transcript.Write("[rc=" + rc.ToString(System.Globalization.CultureInfo.InvariantCulture) + "]\n");
            }
            return transcript.ToString();
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }

    public static int Ip(HostStore store, TextWriter both, string[] argv)
    {
        var io = new ToolIo { In = TextReader.Null, Out = both, Err = both };
        return IpCompat.Run(argv, store, io);
    }

    /// <summary>Splits a command line at blanks; "double quotes" group words, as the shell does here.</summary>
    private static string[] SplitWords(string line)
    {
        var words = new List<string>();
        var cur = new System.Text.StringBuilder();
        bool quoted = false, any = false;
        foreach (char c in line)
        {
            if (c == '"') { quoted = !quoted; any = true; continue; }
            if (c == ' ' && !quoted)
            {
                if (any) words.Add(cur.ToString());
                cur.Clear();
                any = false;
                continue;
            }
            cur.Append(c);
            any = true;
        }
        if (any) words.Add(cur.ToString());
        return words.ToArray();
    }

    public static string Normalize(string text) =>
        LinkLocal().Replace(Mac().Replace(text, m => m.Value is "00:00:00:00:00:00" or "ff:ff:ff:ff:ff:ff" ? m.Value : "MAC"), "LL");

    [GeneratedRegex(@"\b([0-9a-f]{2}:){5}[0-9a-f]{2}\b")]
    private static partial Regex Mac();

    [GeneratedRegex(@"fe80::[0-9a-f]+(:[0-9a-f]+)*")]
    private static partial Regex LinkLocal();

    /// <summary>
    /// This kernel has no dummy driver, so these lines come from drivers/net/dummy.c's flags
    /// (IFF_NOARP, IFF_NO_QUEUE, no carrier handling: state UNKNOWN when up) and not from a recording.
    /// </summary>
    [Fact]
    public void Dummy_link_is_noarp_and_unknown_when_up()
    {
        string t = RunScenario(["ip link add eth0 type dummy", "ip link show eth0", "ip link set eth0 up", "ip link show eth0", "ip -br link show eth0"]);
        Normalize(t).ShouldBe("""
$ ip link add eth0 type dummy
[rc=0]
$ ip link show eth0
2: eth0: <BROADCAST,NOARP> mtu 1500 qdisc noop state DOWN mode DEFAULT group default qlen 1000
    link/ether MAC brd ff:ff:ff:ff:ff:ff
[rc=0]
$ ip link set eth0 up
[rc=0]
$ ip link show eth0
2: eth0: <BROADCAST,NOARP,UP,LOWER_UP> mtu 1500 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000
    link/ether MAC brd ff:ff:ff:ff:ff:ff
[rc=0]
$ ip -br link show eth0
eth0             UNKNOWN        MAC <BROADCAST,NOARP,UP,LOWER_UP> 
[rc=0]

""");
    }

    [Fact]
    public void New_links_get_per_interface_sysctls_and_lose_them_when_deleted()
    {
        string hostDir = Directory.CreateTempSubdirectory("cw-ip-").FullName;
        try
        {
            var store = new HostStore(hostDir);
            var sink = new StringWriter();
            Ip(store, sink, ["ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1"]).ShouldBe(0);
            VirtualHost host = store.Load();
            host.GetSysctl("net.ipv4.conf.veth0.forwarding").ShouldBe("0");
            host.GetSysctl("net.ipv4.conf.veth1.rp_filter").ShouldBe("0");
            host.GetSysctl("net.ipv6.conf.veth1.disable_ipv6").ShouldBe("0");
            Ip(store, sink, ["ip", "link", "del", "veth1"]).ShouldBe(0);
            host = store.Load();
            host.Sysctls.Keys.ShouldNotContain(k => k.Contains(".veth0.", StringComparison.Ordinal) || k.Contains(".veth1.", StringComparison.Ordinal));
            host.FindLink("veth0").ShouldBeNull();
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }

    [Fact]
    public void Failed_command_leaves_network_conf_untouched()
    {
        string hostDir = Directory.CreateTempSubdirectory("cw-ip-").FullName;
        try
        {
            var store = new HostStore(hostDir);
            var sink = new StringWriter();
            Ip(store, sink, ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"]).ShouldBe(0);
            string before = File.ReadAllText(Path.Combine(hostDir, HostStore.NetworkFile));
            // "up" applies before "mtu" fails: nothing may be saved.
            Ip(store, sink, ["ip", "link", "set", "v0", "up", "mtu", "70000"]).ShouldBe(2);
            Ip(store, sink, ["ip", "route", "add", "default", "via", "192.0.2.1"]).ShouldBe(2);
            File.ReadAllText(Path.Combine(hostDir, HostStore.NetworkFile)).ShouldBe(before);
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }

    [Fact]
    public void Parallel_commands_are_serialised_by_the_host_lock()
    {
        string hostDir = Directory.CreateTempSubdirectory("cw-ip-").FullName;
        try
        {
            Parallel.For(0, 8, i =>
            {
                var store = new HostStore(hostDir);
                var sink = new StringWriter();
                string n = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
                Ip(store, sink, ["ip", "link", "add", "a" + n, "type", "veth", "peer", "name", "b" + n]).ShouldBe(0, sink.ToString());
                Ip(store, sink, ["ip", "link", "set", "a" + n, "up"]).ShouldBe(0, sink.ToString());
            });
            VirtualHost host = new HostStore(hostDir).Load();
            host.Links.Count.ShouldBe(17);
            host.Links.Select(l => l.Index).Distinct().Count().ShouldBe(17);
            host.Links.Count(l => l.Up).ShouldBe(9);
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }

    [Fact]
    public void Network_conf_round_trips()
    {
        string t = RunScenario([]);
        t.ShouldBeEmpty();
        string hostDir = Directory.CreateTempSubdirectory("cw-ip-").FullName;
        try
        {
            var store = new HostStore(hostDir);
            var sink = new StringWriter();
            foreach (string cmd in new[]
            {
                "ip link add v0 type veth peer name v1", "ip link set v0 up", "ip addr add 10.0.0.1/24 brd + dev v0",
                "ip addr add 2001:db8::1/64 dev v0", "ip route add 10.9.0.0/16 via 10.0.0.2 metric 7 proto static",
            })
            {
                Ip(store, sink, SplitWords(cmd)).ShouldBe(0, sink.ToString());
            }
            string text = File.ReadAllText(Path.Combine(hostDir, HostStore.NetworkFile));
            HostStore.FormatNetwork(HostStore.ParseNetwork(text)).ShouldBe(text);
            text.ShouldContain("addr v0 inet6 2001:db8::1/64 tentative\n");
            text.ShouldContain("route inet 10.9.0.0/16 via 10.0.0.2 dev v0 metric 7 proto static\n");
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }
}
