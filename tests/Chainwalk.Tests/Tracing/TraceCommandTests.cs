using System.Text.Json.Nodes;
using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Chainwalk.Tracing;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Tracing;

/// <summary>The trace, clock and demo verbs as a user runs them: arguments, batch lines, JSON, what is stored.</summary>
public sealed class TraceCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cw-trace-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly HostStore _store;

    public TraceCommandTests()
    {
        _store = new HostStore(_dir);
        var io = Quiet();
        foreach (string c in new[] { "ip link add eth0 type dummy", "ip link set eth0 up", "ip addr add 10.0.0.1/24 dev eth0" })
            IpCompat.Run(c.Split(' '), _store, io).ShouldBe(0);
        var rio = new ToolIo
        {
            In = new StringReader("""
                *filter
                :INPUT DROP [0:0]
                :FORWARD DROP [0:0]
                :OUTPUT ACCEPT [0:0]
                -A INPUT -s 10.0.0.0/24 -p udp -j ACCEPT
                COMMIT

                """),
            Out = TextWriter.Null,
            Err = new StringWriter(),
        };
        IptablesCompat.Restore(IpFamily.V4, ["iptables-restore"], _store, rio).ShouldBe(0);
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }

    private static ToolIo Quiet() => new() { In = TextReader.Null, Out = new StringWriter(), Err = new StringWriter() };

    private (int Rc, string Out, string Err) Trace(string stdin, params string[] args)
    {
        var io = new ToolIo { In = new StringReader(stdin), Out = new StringWriter(), Err = new StringWriter() };
        int rc = TraceCommand.Run(args, _store, io);
        return (rc, io.Out.ToString()!, io.Err.ToString()!);
    }

    private string Rules => File.ReadAllText(Path.Combine(_dir, "iptables.rules"));

    [Fact]
    public void A_packet_from_fields_is_explained_and_its_counters_are_stored()
    {
        var (rc, output, err) = Trace("", "-i", "eth0", "-p", "udp", "-s", "10.0.0.5", "-d", "10.0.0.1", "--dport", "53");
        (rc, err).ShouldBe((0, ""));
        output.ShouldContain("MATCH -s 10.0.0.0/24 -p udp -j ACCEPT  => ACCEPT");
        output.ShouldContain("fate: delivered-local");
        Rules.ShouldContain("[1:28] -A INPUT -s 10.0.0.0/24 -p udp -j ACCEPT");
    }

    [Fact]
    public void Dry_run_leaves_the_host_unchanged()
    {
        string before = Rules;
        Trace("", "-i", "eth0", "-p", "udp", "-s", "10.0.0.5", "-d", "10.0.0.1", "--dry-run").Rc.ShouldBe(0);
        Rules.ShouldBe(before);
    }

    [Fact]
    public void Json_has_the_documented_fields()
    {
        var (rc, output, _) = Trace("", "-i", "eth0", "-p", "udp", "-s", "192.0.2.1", "-d", "10.0.0.1", "--json");
        rc.ShouldBe(0);
        JsonObject o = JsonNode.Parse(output)!.AsObject();
        o["fate"]!.AsArray().Select(x => (string)x!).ShouldBe(["dropped"]);
        o["in"]!.GetValue<string>().ShouldBe("eth0");
        o["outputs"]!.AsArray().Count.ShouldBe(0);
        o["ctstate"].ShouldBeNull();
        JsonArray trace = o["trace"]!.AsArray();
        trace.Count.ShouldBe(2);
        trace[0]!["matched"]!.GetValue<bool>().ShouldBeFalse();
        trace[0]!["failed"]!.GetValue<string>().ShouldBe("-s 10.0.0.0/24");
        trace[1]!["rule"]!.GetValue<string>().ShouldBe("policy");
        trace[1]!["verdict"]!.GetValue<string>().ShouldBe("DROP");
    }

    [Fact]
    public void A_batch_runs_in_order_against_one_state()
    {
        string batch = """
            {"in":"eth0","proto":"udp","src":"10.0.0.5","dst":"10.0.0.1","dport":53}
            # comments and blank lines are skipped

            {"in":"eth0","hex":"4500001c000000004011aec6c000020a0a00000104d2003500082ecc"}
            {"local":true,"proto":"tcp","dst":"10.0.0.9","dport":443}
            """;
        var (rc, output, err) = Trace(batch, "--batch", "-", "--json");
        (rc, err).ShouldBe((0, ""));
        string[] lines = output.TrimEnd('\n').Split('\n');
        lines.Length.ShouldBe(3);
        JsonNode.Parse(lines[0])!["fate"]![0]!.GetValue<string>().ShouldBe("delivered-local");
        JsonNode.Parse(lines[1])!["fate"]![0]!.GetValue<string>().ShouldBe("dropped");
        JsonNode.Parse(lines[2])!["fate"]![0]!.GetValue<string>().ShouldBe("sent:eth0");
        Rules.ShouldContain(":INPUT DROP [1:");
    }

    public static TheoryData<string, string> BadBatches => new()
    {
        { "{\"in\":\"eth9\",\"proto\":\"udp\",\"src\":\"10.0.0.5\",\"dst\":\"10.0.0.1\"}", "stdin line 1: no such interface on the host: eth9" },
        { "{\"in\":\"eth0\",\"proto\":\"udp\",\"src\":\"10.0.0.5\",\"dst\":\"10.0.0.1\"}\n{\"in\":\"eth0\",\"hex\":\"zz\"}", "stdin line 2: field \"hex\" must be hexadecimal bytes" },
        { "{\"in\":\"eth0\",\"dport\":70000,\"src\":\"10.0.0.5\",\"dst\":\"10.0.0.1\"}", "stdin line 1: field \"dport\" must be a number between 0 and 65535" },
        { "not json", "stdin line 1: not JSON" },
        { "{\"in\":\"eth0\",\"hex\":\"6000\"}", "stdin line 1: the bytes are not an IP packet: truncated packet" },
        { "{\"in\":\"eth0\",\"src\":\"10.0.0.5\",\"dst\":\"::1\"}", "stdin line 1: -s 10.0.0.5: not an IPv6 address" },
        { "{\"in\":\"eth0\",\"src\":\"10.0.0.5\",\"dst\":\"10.0.0.1\",\"colour\":1}", "stdin line 1: unknown field \"colour\"" },
    };

    [Theory]
    [MemberData(nameof(BadBatches))]
    public void A_bad_batch_line_is_an_error_with_its_line_and_changes_nothing(string batch, string message)
    {
        string before = Rules;
        var (rc, output, err) = Trace(batch, "--batch", "-");
        rc.ShouldBe(2);
        output.ShouldBe("");
        err.ShouldStartWith("chainwalk trace: " + message);
        Rules.ShouldBe(before);
    }

    public static TheoryData<string[], string> BadArguments => new()
    {
        { ["-p", "udp", "-s", "10.0.0.5", "-d", "10.0.0.1"], "say where the packet comes from" },
        { ["-i", "eth0", "--local", "-d", "10.0.0.1"], "either arrives on an interface" },
        { ["-i", "eth0", "-d", "10.0.0.1"], "-s SRC is required" },
        { ["-i", "eth0", "-s", "1.2.3.4", "-d", "10.0.0.1", "--dport", "x"], "--dport x: not a number" },
        { ["-i", "eth0", "-s", "1.2.3.4", "-d", "10.0.0.1", "--tcp-flags", "SYN,FOO"], "unknown flag \"FOO\"" },
        { ["-i", "eth0", "-s", "1.2.3.4", "-d", "10.0.0.1", "--frobnicate"], "unknown option \"--frobnicate\"" },
        { ["-i", "eth0", "-s", "1.2.3.4", "-d", "10.0.0.1", "-p", "icmp", "--icmp-type", "bogus"], "unknown ICMP type" },
    };

    [Theory]
    [MemberData(nameof(BadArguments))]
    public void Bad_arguments_are_refused_clearly(string[] args, string message)
    {
        var (rc, _, err) = Trace("", args);
        rc.ShouldBe(2);
        err.ShouldContain(message);
    }

    [Fact]
    public void The_kernel_trace_format_prints_TRACE_lines()
    {
        var (rc, output, _) = Trace("", "-i", "eth0", "-p", "udp", "-s", "10.0.0.5", "-d", "10.0.0.1", "--sport", "1000", "--dport", "53", "--trace-format", "kernel");
        rc.ShouldBe(0);
        output.ShouldBe("TRACE: filter:INPUT:rule:1 IN=eth0 OUT= MAC=02:00:00:00:00:00:02:00:00:00:00:01:08:00 SRC=10.0.0.5 DST=10.0.0.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=UDP SPT=1000 DPT=53 LEN=8 \nfate: delivered-local\n"
            .Replace("02:00:00:00:00:00", Mac()));
    }

    private string Mac() => _store.LoadNetwork().Links.Find(l => l.Name == "eth0")!.Mac;

    [Fact]
    public void The_clock_moves_forward_only()
    {
        var io = Quiet();
        ClockCommand.Run(["advance", "90s"], _store, io).ShouldBe(0);
        ClockCommand.Run(["advance", "1m"], _store, io).ShouldBe(0);
        io.Out.ToString().ShouldBe("90\n150\n");
        ClockCommand.Run(["set", "10"], _store, io).ShouldBe(1);
        ClockCommand.Run(["advance", "soon"], _store, io).ShouldBe(2);
        _store.LoadNetwork().Clock.ShouldBe(150);
    }

    [Fact]
    public void Every_demo_runs_on_a_fresh_machine()
    {
        foreach (string name in DemoCommand.Names)
        {
            var io = Quiet();
            DemoCommand.Run([name], io).ShouldBe(0, io.Err.ToString());
            io.Out.ToString()!.ShouldContain("fate: ");
        }
    }
}
