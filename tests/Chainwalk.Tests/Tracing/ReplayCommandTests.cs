using System.Diagnostics;
using System.Text.Json.Nodes;
using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Chainwalk.Tracing;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Tracing;

/// <summary>
/// replay: a capture of real traffic to a Lab 1 server (golden/replay, tests/tools/record-replay-capture.sh: tcpdump on
/// the server's interface in a namespace, Linux 6.18) replays with the same counters the kernel had.
/// </summary>
public sealed class ReplayCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cw-replay-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly HostStore _store;
    private static readonly string Golden = Path.Combine(TestPaths.Golden, "replay");

    public ReplayCommandTests()
    {
        _store = new HostStore(_dir);
        var quiet = new ToolIo { In = TextReader.Null, Out = TextWriter.Null, Err = new StringWriter() };
        string mac = File.ReadAllText(Path.Combine(Golden, "lab1.mac")).Trim();
        foreach (string c in new[] { "ip link add eth0 type dummy", $"ip link set eth0 address {mac}", "ip link set eth0 up", "ip addr add 10.9.0.1/24 dev eth0" })
            IpCompat.Run(c.Split(' '), _store, quiet).ShouldBe(0);
        var rio = new ToolIo { In = new StringReader(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "examples", "lab1-server.rules"))), Out = TextWriter.Null, Err = new StringWriter() };
        IptablesCompat.Restore(IpFamily.V4, ["iptables-restore"], _store, rio).ShouldBe(0);
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }

    private (int Rc, string Out, string Err) Replay(params string[] args)
    {
        var io = new ToolIo { In = TextReader.Null, Out = new StringWriter(), Err = new StringWriter() };
        int rc = ReplayCommand.Run(args, _store, io);
        return (rc, io.Out.ToString()!, io.Err.ToString()!);
    }

    private string Counters()
    {
        var io = new ToolIo { In = TextReader.Null, Out = new StringWriter(), Err = new StringWriter() };
        IptablesCompat.Save(IpFamily.V4, ["iptables-save", "-c"], _store, io).ShouldBe(0);
        return string.Join('\n', io.Out.ToString()!.Split('\n').Where(l => !l.StartsWith('#')));
    }

    [Fact]
    public void A_real_capture_replays_with_the_kernels_counters()
    {
        var (rc, output, err) = Replay(Path.Combine(Golden, "lab1.pcap"), "--local-from", "10.9.0.1");
        (rc, err).ShouldBe((0, ""));
        output.ShouldContain("replayed 47 packets");
        Counters().ShouldBe(File.ReadAllText(Path.Combine(Golden, "lab1.counters")));
    }

    /// <summary>The summary without its timing line ("replayed N packets … in S s (R Mpps)").</summary>
    private static string Untimed(string summary) => string.Join('\n', summary.Split('\n').Where(l => !l.StartsWith("replayed ", StringComparison.Ordinal)));

    [Fact]
    public void A_dry_run_replays_a_burst_at_a_time_with_the_summary_and_output_of_packet_by_packet()
    {
        // --dry-run goes 32 packets at a time (Netfilter.Process over a span); --explain flushes the burst before its
        // packet; a saving run goes packet by packet. 47 packets: a whole burst and a part.
        string burstOut = Path.Combine(_dir, "burst.pcap"), explainOut = Path.Combine(_dir, "explain.pcap"), singleOut = Path.Combine(_dir, "single.pcap");
        var (rc1, burst, _) = Replay(Path.Combine(Golden, "lab1.pcap"), "--local-from", "10.9.0.1", "--out", burstOut, "--dry-run");
        var (rc2, explain, _) = Replay(Path.Combine(Golden, "lab1.pcap"), "--local-from", "10.9.0.1", "--out", explainOut, "--explain", "40", "--dry-run");
        var (rc3, single, _) = Replay(Path.Combine(Golden, "lab1.pcap"), "--local-from", "10.9.0.1", "--out", singleOut);
        (rc1, rc2, rc3).ShouldBe((0, 0, 0));
        Untimed(burst).ShouldBe(Untimed(single));
        Untimed(explain).ShouldEndWith(Untimed(single));
        File.ReadAllBytes(burstOut).ShouldBe(File.ReadAllBytes(singleOut));
        File.ReadAllBytes(explainOut).ShouldBe(File.ReadAllBytes(singleOut));
        single.ShouldContain("replayed 47 packets");
    }

    [Fact]
    public void What_left_the_host_is_written_as_a_capture_that_tshark_reads()
    {
        string outFile = Path.Combine(_dir, "out.pcap");
        Replay(Path.Combine(Golden, "lab1.pcap"), "--local-from", "10.9.0.1", "--out", outFile, "--dry-run").Rc.ShouldBe(0);
        using (var reader = new CaptureReader(File.OpenRead(outFile)))
        {
            int n = 0;
            while (reader.TryReadNext(out CaptureRecord r))
            {
                LinkLayer.TryDecode(r, out Packet? p, out _, out _).ShouldBeTrue();
                IpNet.FormatAddress(p!.Source, IpFamily.V4).ShouldBe("10.9.0.1");
                n++;
            }
            n.ShouldBe(13);
        }
        if (File.Exists("/usr/bin/tshark"))
        {
            var psi = new ProcessStartInfo("/usr/bin/tshark", ["-r", outFile]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using Process t = Process.Start(psi)!;
            string text = t.StandardOutput.ReadToEnd();
            t.WaitForExit();
            t.ExitCode.ShouldBe(0);
            text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length.ShouldBe(13);
        }
    }

    [Fact]
    public void Json_has_one_object_per_packet_then_a_summary()
    {
        var (rc, output, _) = Replay(Path.Combine(Golden, "lab1.pcap"), "--local-from", "10.9.0.1", "--json", "--dry-run");
        rc.ShouldBe(0);
        string[] lines = output.TrimEnd().Split('\n');
        lines.Length.ShouldBe(45 + 1);
        JsonNode.Parse(lines[0])!["fate"].ShouldNotBeNull();
        JsonObject summary = JsonNode.Parse(lines[^1])!["summary"]!.AsObject();
        summary["packets"]!.GetValue<long>().ShouldBe(47);
        summary["fates"]!["sent:eth0"]!.GetValue<long>().ShouldBe(13);
    }

    [Fact]
    public void Json_summary_has_fixed_fields_and_the_texts_rule_hits()
    {
        var (rc, output, _) = Replay(Path.Combine(Golden, "lab1.pcap"), "--local-from", "10.9.0.1", "--json", "--dry-run");
        rc.ShouldBe(0);
        JsonObject summary = JsonNode.Parse(output.TrimEnd().Split('\n')[^1])!["summary"]!.AsObject();
        string.Join(',', summary.Select(p => p.Key)).ShouldBe("packets,seconds,stopped,fates,skipped,rules,dropped_flows,conntrack");
        summary["stopped"].ShouldBeNull();
        JsonArray rules = summary["rules"]!.AsArray();
        rules.ShouldNotBeEmpty();
        foreach (JsonNode? r in rules)
        {
            string.Join(',', r!.AsObject().Select(p => p.Key)).ShouldBe("rule,family,table,chain,position,text,packets");
            r["rule"]!.GetValue<string>().ShouldBe($"{r["table"]} {r["chain"]} {r["position"]}");
        }
        // The text summary's "rules hit" lines say the same.
        var (_, text, _) = Replay(Path.Combine(Golden, "lab1.pcap"), "--local-from", "10.9.0.1", "--dry-run");
        var hitLines = text.Split('\n').SkipWhile(l => l != "rules hit (packets):").Skip(1).TakeWhile(l => l.StartsWith("  ", StringComparison.Ordinal) && !l.StartsWith("  …", StringComparison.Ordinal)).ToList();
        hitLines.ShouldBe(rules.Take(20).Select(r => $"  {r!["packets"]!.GetValue<ulong>(),10}  {r["rule"]}: {r["text"]}"));
    }

    [Fact]
    public void A_truncated_capture_reports_where_and_keeps_what_came_before()
    {
        byte[] all = File.ReadAllBytes(Path.Combine(Golden, "lab1.pcap"));
        string cut = Path.Combine(_dir, "cut.pcap");
        Directory.CreateDirectory(_dir);
        File.WriteAllBytes(cut, all[..(all.Length - 30)]);
        var (rc, output, err) = Replay(cut, "--local-from", "10.9.0.1");
        rc.ShouldBe(1);
        err.ShouldContain("byte offset");
        output.ShouldContain("replayed 46 packets");
    }

    [Fact]
    public void Explain_shows_one_packets_tree()
    {
        var (rc, output, _) = Replay(Path.Combine(Golden, "lab1.pcap"), "--local-from", "10.9.0.1", "--explain", "9", "--dry-run");
        rc.ShouldBe(0);
        output.ShouldContain("packet 9: IP 10.9.0.2.39230 > 10.9.0.1.22: Flags [S]");
        output.ShouldContain("MATCH -p tcp -m tcp --dport 22 -j ACCEPT");
    }

    private string Tool(Func<ToolIo, int> run)
    {
        var io = new ToolIo { In = TextReader.Null, Out = new StringWriter(), Err = new StringWriter() };
        run(io).ShouldBe(0);
        return io.Out.ToString()!;
    }

    private Dictionary<string, string> HostFiles() =>
        Directory.GetFiles(_dir).Where(f => Path.GetFileName(f) != "lock").ToDictionary(f => Path.GetFileName(f), File.ReadAllText);

    [Fact]
    public void A_dry_run_leaves_the_saved_host_as_it_was_and_a_replay_keeps_its_conntrack_events()
    {
        Dictionary<string, string> before = HostFiles();
        Replay(Path.Combine(Golden, "lab1.pcap"), "--local-from", "10.9.0.1", "--dry-run").Rc.ShouldBe(0);
        HostFiles().ShouldBe(before);
        // Without --dry-run the connections, their events (conntrack -E) and the counters are saved.
        Replay(Path.Combine(Golden, "lab1.pcap"), "--local-from", "10.9.0.1").Rc.ShouldBe(0);
        string events = Tool(io => ConntrackCompat.Run(["conntrack", "-E"], _store, io));
        events.ShouldContain("[NEW] tcp      6 ");
        events.ShouldContain("[UPDATE] tcp      6 ");
        Counters().ShouldBe(File.ReadAllText(Path.Combine(Golden, "lab1.counters")));
    }

    /// <summary>SYNs to the Lab 1 server from <paramref name="clients"/> sources (ports 22, 80 and a closed 443 in turn), as a raw-IP capture.</summary>
    private string Syns(int clients)
    {
        Directory.CreateDirectory(_dir);
        string file = Path.Combine(_dir, "syns.pcap");
        using var stream = File.Create(file);
        using var w = new CaptureWriter(stream, CaptureFileFormat.Pcap, LinkType.Raw);
        ushort[] ports = [22, 80, 443];
        for (int i = 0; i < clients; i++)
        {
            byte[] syn = PacketBuilder.Ipv4($"10.9.0.{100 + i}", "10.9.0.1").Tcp((ushort)(40000 + i), ports[i % 3], TcpFlags.Syn, seq: 1000).Build();
            w.Write(new CaptureTimestamp(1_700_000_000 + i, 0), syn);
        }
        return file;
    }

    [Fact]
    public void The_summary_counts_every_connection_and_lists_ten()
    {
        var (rc, output, _) = Replay(Syns(15), "-i", "eth0");
        rc.ShouldBe(0);
        // Ten SYNs to 22 and 80 accepted (tracked), five to 443 dropped by the policy before confirmation.
        output.ShouldContain("conntrack at the end: 10 entries\n");
        output.Split('\n').SkipWhile(l => !l.StartsWith("conntrack at the end", StringComparison.Ordinal)).Skip(1)
            .Count(l => l.StartsWith("  tcp ", StringComparison.Ordinal)).ShouldBe(10);
        output.ShouldNotContain("more (chainwalk conntrack -L)");
        var (_, more, _) = Replay(Syns(30), "-i", "eth0", "--dry-run");
        more.ShouldContain("conntrack at the end: 20 entries\n");
        more.ShouldContain("  … 10 more (chainwalk conntrack -L)\n");
        Tool(io => ConntrackCompat.Run(["conntrack", "-L"], _store, io)).Split('\n').Count(l => l.StartsWith("tcp ", StringComparison.Ordinal)).ShouldBe(10);
    }

    [Fact]
    public void The_summary_fates_are_the_tally_of_the_packets_fates()
    {
        var (rc, output, _) = Replay(Path.Combine(Golden, "lab1.pcap"), "--local-from", "10.9.0.1", "--json", "--dry-run");
        rc.ShouldBe(0);
        string[] lines = output.TrimEnd().Split('\n');
        var tally = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (string line in lines[..^1])
        {
            JsonNode fate = JsonNode.Parse(line)!["fate"]!;
            foreach (string f in fate is JsonArray a ? a.Select(x => x!.GetValue<string>()) : [fate.GetValue<string>()])
                tally[f] = tally.GetValueOrDefault(f) + 1;
        }
        JsonObject fates = JsonNode.Parse(lines[^1])!["summary"]!["fates"]!.AsObject();
        fates.ToDictionary(p => p.Key, p => p.Value!.GetValue<long>()).ShouldBe(tally);
        tally.Keys.Count.ShouldBeGreaterThan(1);
        // The text summary orders them by count.
        var (_, text, _) = Replay(Path.Combine(Golden, "lab1.pcap"), "--local-from", "10.9.0.1", "--dry-run");
        text.Split('\n').SkipWhile(l => l != "fates:").Skip(1).TakeWhile(l => l.StartsWith("  ", StringComparison.Ordinal) && !l.StartsWith("  skipped", StringComparison.Ordinal))
            .Select(l => l.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)[0])
            .ShouldBe(tally.OrderByDescending(x => x.Value).Select(x => x.Key));
    }

    [Fact]
    public void What_left_the_host_is_byte_for_byte_what_one_packet_at_a_time_gives()
    {
        // The replay hands over packets of many lengths and reuses one result: its --out capture must hold exactly the
        // bytes that processing each packet on its own (a new result each time) sends.
        string outFile = Path.Combine(_dir, "out.pcap");
        Replay(Path.Combine(Golden, "lab1.pcap"), "--local-from", "10.9.0.1", "--out", outFile, "--dry-run").Rc.ShouldBe(0);
        var replayed = new List<string>();
        using (var reader = new CaptureReader(File.OpenRead(outFile)))
        {
            while (reader.TryReadNext(out CaptureRecord r)) replayed.Add(Convert.ToHexString(r.Data));
        }
        var expected = new List<string>();
        var nf = Chainwalk.Tracing.EngineStore.Open(_store, _store.Load());
        using (var reader = new CaptureReader(File.OpenRead(Path.Combine(Golden, "lab1.pcap"))))
        {
            double offset = double.NaN;
            while (reader.TryReadNext(out CaptureRecord r))
            {
                if (!LinkLayer.TryDecode(r, out Packet? p, out LinkLayerFacts facts, out _)) continue; // ARP: skipped by the replay too
                double t = r.Timestamp.Seconds + r.Timestamp.Nanoseconds / 1e9;
                if (double.IsNaN(offset)) offset = t < nf.State.Now ? nf.State.Now - t : 0;
                bool local = IpNet.FormatAddress(p!.Source, IpFamily.V4) == "10.9.0.1";
                var input = new Chainwalk.Engine.PacketInput { Bytes = p.Bytes };
                input.Set(p.Bytes, null, local ? null : "eth0", local ? null : facts.SourceMac, local ? null : ReadMac(r.Data), t + offset);
                foreach (var o in nf.Process(input).Outputs) expected.Add(Convert.ToHexString(o.Bytes));
            }
        }
        expected.Count.ShouldBe(13);
        replayed.ShouldBe(expected);
    }

    private static ulong ReadMac(ReadOnlySpan<byte> b)
    {
        ulong v = 0;
        for (int i = 0; i < 6; i++) v = (v << 8) | b[i];
        return v;
    }
}
