using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Chainwalk.Compat;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Wire;

namespace Chainwalk.Tracing;

/// <summary>
/// <c>chainwalk replay FILE</c>: every packet of a pcap/pcapng capture through the host, in order, with the
/// capture's timestamps as the clock and state kept between packets; a summary (fates, rules hit, top dropped
/// flows, conntrack at the end), optionally the packets that left the host as a capture (<c>--out</c>), JSON Lines
/// (<c>--json</c>) and the explanation of one packet (<c>--explain N</c>).
/// </summary>
public static class ReplayCommand
{
    public const string Usage = """
Usage: chainwalk replay FILE [-i IFACE | --iface-map MAC=IFACE,…] [--local-from ADDR[,ADDR…]]
                        [--out OUT.pcap|OUT.pcapng] [--json] [--explain N] [--dry-run]
Reads pcap or pcapng (Ethernet, Linux cooked v1/v2, raw IP; VLAN tags; nanosecond timestamps). Each packet
arrives on -i IFACE, or on the interface --iface-map names for its Ethernet source or destination MAC, or on the
host interface named like the capture's (pcapng, cooked v2); packets from a --local-from address are sent by
the host itself (OUTPUT).

""";

    private sealed class Options
    {
        public string? File;
        public string? Iface;
        public Dictionary<ulong, string> MacMap { get; } = new();
        public HashSet<UInt128> LocalFrom { get; } = new();
        public string? Out;
        public bool Json;
        public int Explain;
        public bool DryRun;
    }

    public static int Run(string[] args, HostStore store, ToolIo io, bool progress = false)
    {
        Options o;
        try
        {
            o = Parse(args);
        }
        catch (PacketSpecException ex)
        {
            io.Err.WriteLine("chainwalk replay: " + ex.Message);
            io.Err.Write(Usage);
            return 2;
        }
        if (!System.IO.File.Exists(o.File))
        {
            io.Err.WriteLine($"chainwalk replay: {o.File}: No such file");
            return 2;
        }
        using HostLock hostLock = store.Lock(5);
        VirtualHost host = store.Load();
        foreach (string dev in o.MacMap.Values.Append(o.Iface).OfType<string>())
        {
            if (!host.Links.Exists(l => l.Name == dev))
            {
                io.Err.WriteLine($"chainwalk replay: no such interface on the host: {dev} (see `ip link`)");
                return 2;
            }
        }
        Netfilter nf = EngineStore.Open(store, host);
        nf.CacheRoutes = true;
        // The rules do not change during a replay: classify through the compiled form (identical to the walk; the
        // walk is used anyway for any packet whose trace is recorded).
        nf.Compiled = Chainwalk.Engine.Compiled.CompiledRules.Build(host.V4);
        // The conntrack events (conntrack -E, -S) and kernel log lines (dmesg) only go to the host state saved at the end:
        // a --dry-run saves nothing, so it does not record them.
        ConntrackEvents? events = o.DryRun ? null : ConntrackEvents.For(nf);
        var counters = SnapshotCounters(host);
        var fates = new FateCounts();
        UInt128[] localFrom = [.. o.LocalFrom];
        var dropped = new Dictionary<string, long>(StringComparer.Ordinal);
        // Counted by the flow's facts; their text is made once per flow, after the last packet.
        var droppedFlows = new Dictionary<FlowFacts, long>();
        var skipped = new SortedDictionary<string, long>(StringComparer.Ordinal);
        long n = 0, errors = 0;
        string? formatError = null;
        double offset = double.NaN;
        var clock = Stopwatch.StartNew();
        FileStream? outStream = null;
        CaptureWriter? writer = null;
        var outIfaces = new Dictionary<string, int>(StringComparer.Ordinal);
        var encoderOptions = new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        try
        {
            if (o.Out is not null)
            {
                outStream = new FileStream(o.Out, FileMode.Create, FileAccess.Write);
                bool ng = o.Out.EndsWith(".pcapng", StringComparison.OrdinalIgnoreCase);
                writer = new CaptureWriter(outStream, ng ? CaptureFileFormat.PcapNg : CaptureFileFormat.Pcap, LinkType.Raw);
            }
            // Unbuffered: the reader reads large blocks into its own buffer and hands out records as spans into it.
            using var file = new FileStream(o.File!, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
            long size = file.Length;
            using var reader = new CaptureReader(file);
            long lastProgress = 0;
            // One result, one input and a packet per IP length serve packet after packet (nothing keeps them past their packet).
            var reused = new PacketResult();
            var reusedInput = new PacketInput { Bytes = [] };
            var spares = new Packet?[2048];
            // A --dry-run without JSON goes a burst at a time (Netfilter.Process over a span: the coming packets' memory is
            // fetched while one is processed; the same results). Each slot of the burst decodes into its own packets, and
            // every result is counted in order after the burst. Conntrack events and kernel log lines (recorded after each
            // packet when the host is saved) keep the packet-by-packet loop.
            Burst? burst = o.DryRun && !o.Json ? new Burst() : null;
            void After(PacketResult r, in FlowFacts flow, CaptureTimestamp stamp)
            {
                if (r.Error is not null) errors++;
                bool droppedOrRejected = false;
                for (int i = 0; i < r.Fate.Count; i++)
                {
                    string f = r.Fate[i];
                    fates.Add(f);
                    droppedOrRejected |= f == "dropped" || f.StartsWith("rejected:", StringComparison.Ordinal);
                }
                if (droppedOrRejected) Count(droppedFlows, flow);
                if (writer is not null)
                {
                    foreach (OutputPacket p in r.Outputs)
                    {
                        if (!outIfaces.TryGetValue(p.Interface, out int idx))
                        {
                            idx = writer.Format == CaptureFileFormat.PcapNg ? (outIfaces.Count == 0 ? 0 : writer.AddInterface(LinkType.Raw, p.Interface)) : 0;
                            outIfaces[p.Interface] = idx;
                        }
                        writer.Write(stamp, p.Bytes, interfaceIndex: idx);
                    }
                }
            }
            void Flush()
            {
                if (burst is null || burst.Count == 0) return;
                nf.RecordTrace = false;
                nf.Process(burst.Inputs.AsSpan(0, burst.Count), burst.Results.AsSpan(0, burst.Count));
                for (int i = 0; i < burst.Count; i++) After(burst.Results[i], burst.Flows[i], burst.Stamps[i]);
                burst.Count = 0;
            }
            while (true)
            {
                CaptureRecord rec;
                try
                {
                    if (!reader.TryReadNext(out rec)) break;
                }
                catch (CaptureFormatException ex)
                {
                    formatError = ex.Message;
                    break;
                }
                n++;
                double t = rec.Timestamp.Seconds + rec.Timestamp.Nanoseconds / 1e9;
                if (double.IsNaN(offset)) offset = t < nf.State.Now ? nf.State.Now - t : 0;
                if (!LinkLayer.TryDecode(rec, burst?.SparesOfNext() ?? spares, out Packet? packet, out LinkLayerFacts facts, out string? why))
                {
                    Count(skipped, why ?? "not an IP packet");
                    continue;
                }
                ulong? dstMac = rec.LinkType == LinkType.Ethernet && rec.Data.Length >= 6 ? ReadMac(rec.Data) : null;
                string? iface = ChooseInterface(o, host, reader, rec.InterfaceIndex, facts, dstMac);
                bool local = localFrom.Length != 0 && IsLocalSource(localFrom, packet.Source);
                if (iface is null && !local)
                {
                    Count(skipped, "no interface for the packet (give -i or --iface-map)");
                    continue;
                }
                bool recorded = o.Json || n == o.Explain;
                // The packet is handed over as decoded (parsed once); the flow it is counted under is read before the
                // pipeline changes its bytes (NAT, TTL), as the capture has it.
                var flow = new FlowFacts(packet);
                if (burst is not null && !recorded)
                {
                    int k = burst.Count++;
                    burst.Inputs[k].Set(packet.Bytes, packet, local ? null : iface, local ? null : facts.SourceMac, local ? null : dstMac, t + offset);
                    burst.Flows[k] = flow;
                    burst.Stamps[k] = new CaptureTimestamp(rec.Timestamp.Seconds, rec.Timestamp.Nanoseconds);
                    if (burst.Count == Burst.Size) Flush();
                    continue;
                }
                // The packets before this one go first.
                Flush();
                PacketInput input = recorded ? new PacketInput { Bytes = packet.Bytes } : reusedInput;
                input.Set(packet.Bytes, recorded ? null : packet, local ? null : iface, local ? null : facts.SourceMac, local ? null : dstMac, t + offset);
                nf.RecordTrace = recorded;
                // Nothing keeps a result past its packet: one is reused (no per-packet result, skb or output objects).
                PacketResult r = recorded ? nf.Process(input) : nf.Process(input, reused);
                if (!o.DryRun)
                {
                    events?.After(r, nf.State.Now);
                    KernelLogCompat.Record(nf.State, r);
                }
                After(r, flow, new CaptureTimestamp(rec.Timestamp.Seconds, rec.Timestamp.Nanoseconds));
                if (o.Json) io.Out.WriteLine(TraceJson.Render(r, (int)Math.Min(n, int.MaxValue), nf.State.Now));
                else if (n == o.Explain) io.Out.Write(ExplainTree.Render(r, (int)n) + "\n");
                if (progress && n - lastProgress >= 20000)
                {
                    lastProgress = n;
                    int pct = size > 0 ? (int)(100 * reader.Position / size) : 0;
                    io.Err.Write($"\r[{new string('#', pct / 5).PadRight(20)}] {pct,3}%  {n.ToString(CultureInfo.InvariantCulture)} packets");
                }
            }
            Flush();
        }
        catch (IOException ex)
        {
            io.Err.WriteLine("chainwalk replay: " + ex.Message);
            return 1;
        }
        finally
        {
            writer?.Dispose();
            outStream?.Dispose();
        }
        if (progress) io.Err.Write("\r" + new string(' ', 60) + "\r");
        double seconds = clock.Elapsed.TotalSeconds;
        var hits = RuleHits(host, counters);
        foreach (var (flow, count) in droppedFlows)
        {
            string text = flow.Text();
            dropped[text] = dropped.TryGetValue(text, out long c) ? c + count : count;
        }
        SortedDictionary<string, long> fateTotals = fates.Sorted();
        if (o.Json) io.Out.WriteLine(SummaryJson(n, seconds, fateTotals, skipped, hits, dropped, nf, formatError, encoderOptions));
        else io.Out.Write(Summary(o.File!, n, seconds, fateTotals, skipped, hits, dropped, nf, formatError));
        if (errors > 0)
        {
            io.Err.WriteLine($"chainwalk replay: {errors.ToString(CultureInfo.InvariantCulture)} packet(s) could not be evaluated; the host is left unchanged");
            return 1;
        }
        if (!o.DryRun) EngineStore.Save(store, host, nf);
        if (formatError is not null)
        {
            io.Err.WriteLine($"chainwalk replay: {o.File}: {formatError} (the {(n).ToString(CultureInfo.InvariantCulture)} packets before it were replayed)");
            return 1;
        }
        return 0;
    }

    private static bool IsLocalSource(UInt128[] localFrom, UInt128 source)
    {
        foreach (UInt128 a in localFrom)
        {
            if (a == source) return true;
        }
        return false;
    }

    /// <summary>
    /// Packets per fate. The pipeline's fates are a handful of strings, each made once ("sent:eth0" once per device), so a
    /// short list compared by reference first counts them; the summary sorts them once at the end.
    /// </summary>
    private sealed class FateCounts
    {
        private string[] _names = new string[8];
        private long[] _counts = new long[8];
        private int _n;

        public void Add(string fate)
        {
            for (int i = 0; i < _n; i++)
            {
                if (string.Equals(_names[i], fate, StringComparison.Ordinal))
                {
                    _counts[i]++;
                    return;
                }
            }
            if (_n == _names.Length)
            {
                Array.Resize(ref _names, _n * 2);
                Array.Resize(ref _counts, _n * 2);
            }
            _names[_n] = fate;
            _counts[_n++] = 1;
        }

        public SortedDictionary<string, long> Sorted()
        {
            var d = new SortedDictionary<string, long>(StringComparer.Ordinal);
            for (int i = 0; i < _n; i++) d[_names[i]] = _counts[i];
            return d;
        }
    }

    private static ulong ReadMac(ReadOnlySpan<byte> b)
    {
        ulong v = 0;
        for (int i = 0; i < 6; i++) v = (v << 8) | b[i];
        return v;
    }

    private static string? ChooseInterface(Options o, VirtualHost host, CaptureReader reader, int interfaceIndex, LinkLayerFacts facts, ulong? dstMac)
    {
        if (o.Iface is not null) return o.Iface;
        if (facts.SourceMac is ulong s && o.MacMap.TryGetValue(s, out string? bySource)) return bySource;
        if (dstMac is ulong d && o.MacMap.TryGetValue(d, out string? byDest)) return byDest;
        if (interfaceIndex < reader.Interfaces.Count && reader.Interfaces[interfaceIndex].Name is { } name && host.FindLink(name) is not null) return name;
        var links = host.Links.Where(l => l.Name != "lo").ToList();
        return links.Count == 1 ? links[0].Name : null;
    }

    /// <summary>What a dropped packet's flow is reported by, read as the packet arrived; its text made only when needed.</summary>
    /// <summary>The packets of one burst of a replay: inputs, results, each slot's own decoded packets (by IP length), facts.</summary>
    private sealed class Burst
    {
        /// <summary>Packets per burst (a DPDK rx burst's usual size).</summary>
        public const int Size = 32;

        public readonly PacketInput[] Inputs = new PacketInput[Size];
        public readonly PacketResult[] Results = new PacketResult[Size];
        public readonly FlowFacts[] Flows = new FlowFacts[Size];
        public readonly CaptureTimestamp[] Stamps = new CaptureTimestamp[Size];
        private readonly Packet?[][] _spares = new Packet?[Size][];

        public int Count;

        public Burst()
        {
            for (int i = 0; i < Size; i++)
            {
                Inputs[i] = new PacketInput { Bytes = [] };
                Results[i] = new PacketResult();
            }
        }

        /// <summary>The packets the next slot decodes into (a packet of the burst is not overwritten before the burst is done).</summary>
        public Packet?[] SparesOfNext() => _spares[Count] ??= new Packet?[2048];
    }

    private readonly struct FlowFacts(Packet p) : IEquatable<FlowFacts>
    {
        private readonly IpFamily _family = p.Family;
        private readonly byte _protocol = p.Protocol;
        private readonly UInt128 _source = p.Source, _destination = p.Destination;
        private readonly bool _hasPorts = p.HasPorts;
        private readonly ushort _sourcePort = p.SourcePort, _destinationPort = p.DestinationPort;

        public bool Equals(FlowFacts other) =>
            _family == other._family && _protocol == other._protocol && _source == other._source && _destination == other._destination
            && _hasPorts == other._hasPorts && _sourcePort == other._sourcePort && _destinationPort == other._destinationPort;

        public override bool Equals(object? obj) => obj is FlowFacts f && Equals(f);

        public override int GetHashCode() => HashCode.Combine(_family, _protocol, _source, _destination, _hasPorts, _sourcePort, _destinationPort);

        public string Text()
        {
            string proto = _protocol switch { 6 => "tcp", 17 => "udp", 1 => "icmp", 58 => "icmpv6", 132 => "sctp", _ => _protocol.ToString(CultureInfo.InvariantCulture) };
            string src = IpNet.FormatAddress(_source, _family), dst = IpNet.FormatAddress(_destination, _family);
            return _hasPorts ? $"{proto} {src}:{_sourcePort} -> {dst}:{_destinationPort}" : $"{proto} {src} -> {dst}";
        }
    }

    private static void Count<TKey>(IDictionary<TKey, long> d, TKey key) => d[key] = d.TryGetValue(key, out long v) ? v + 1 : 1;

    private static Dictionary<Rule, ulong> SnapshotCounters(VirtualHost host)
    {
        var d = new Dictionary<Rule, ulong>(ReferenceEqualityComparer.Instance);
        foreach (Ruleset rs in new[] { host.V4, host.V6 })
        {
            foreach (Table t in rs.Tables)
            {
                foreach (Chain c in t.Chains)
                {
                    foreach (Rule r in c.Rules) d[r] = r.Counters.Packets;
                }
            }
        }
        return d;
    }

    /// <summary>A rule the replay's packets hit: where it is ("ip6 filter INPUT 3" in the text), its -S text, packets.</summary>
    private sealed record RuleHit(IpFamily Family, string Table, string Chain, int Position, string Rule, ulong Hits)
    {
        public string Where => $"{(Family == IpFamily.V6 ? "ip6 " : "")}{Table} {Chain} {Position.ToString(CultureInfo.InvariantCulture)}";
    }

    private static List<RuleHit> RuleHits(VirtualHost host, Dictionary<Rule, ulong> before)
    {
        var list = new List<RuleHit>();
        foreach (Ruleset rs in new[] { host.V4, host.V6 })
        {
            foreach (Table t in rs.Tables)
            {
                foreach (Chain c in t.Chains)
                {
                    for (int i = 0; i < c.Rules.Count; i++)
                    {
                        Rule r = c.Rules[i];
                        ulong hits = r.Counters.Packets - (before.TryGetValue(r, out ulong b) ? b : 0);
                        if (hits > 0) list.Add(new RuleHit(rs.Family, t.Name, c.Name, i + 1, ExplainTree.RuleText(r), hits));
                    }
                }
            }
        }
        return list.OrderByDescending(x => x.Hits).ToList();
    }

    private static string Summary(string file, long n, double seconds, IDictionary<string, long> fates, IDictionary<string, long> skipped,
        List<RuleHit> hits, Dictionary<string, long> dropped, Netfilter nf, string? formatError)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"replayed {n} packets from {file} in {seconds:0.00} s");
        if (seconds > 0 && n / seconds >= 100_000) sb.Append(CultureInfo.InvariantCulture, $" ({n / seconds / 1e6:0.00} Mpps)");
        else if (seconds > 0) sb.Append(CultureInfo.InvariantCulture, $" ({n / seconds:0} packets/s)");
        sb.Append('\n');
        if (formatError is not null) sb.Append("stopped: ").Append(formatError).Append('\n');
        sb.Append("fates:\n");
        foreach (var (k, v) in fates.OrderByDescending(x => x.Value)) sb.Append(CultureInfo.InvariantCulture, $"  {k,-24} {v,10}\n");
        foreach (var (k, v) in skipped) sb.Append(CultureInfo.InvariantCulture, $"  skipped ({k}): {v}\n");
        sb.Append("rules hit (packets):\n");
        foreach (RuleHit h in hits.Take(20)) sb.Append(CultureInfo.InvariantCulture, $"  {h.Hits,10}  {h.Where}: {h.Rule}\n");
        if (hits.Count > 20) sb.Append(CultureInfo.InvariantCulture, $"  … {hits.Count - 20} more rules\n");
        if (dropped.Count > 0)
        {
            sb.Append("top dropped or rejected flows:\n");
            foreach (var (flow, count) in dropped.OrderByDescending(x => x.Value).ThenBy(x => x.Key, StringComparer.Ordinal).Take(10))
                sb.Append(CultureInfo.InvariantCulture, $"  {count,10}  {flow}\n");
        }
        if (nf.Conntrack is ConntrackHooks ct)
        {
            // Only the ten shown are formatted (a replay can leave hundreds of thousands); listing expires the old ones first.
            var lines = ct.Table.List(nf.State.Now).Take(10).ToList();
            int count = ct.Table.Count;
            sb.Append(CultureInfo.InvariantCulture, $"conntrack at the end: {count} entries\n");
            foreach (string l in lines) sb.Append("  ").Append(l).Append('\n');
            if (count > 10) sb.Append(CultureInfo.InvariantCulture, $"  … {count - 10} more (chainwalk conntrack -L)\n");
        }
        return sb.ToString();
    }

    private static string SummaryJson(long n, double seconds, IDictionary<string, long> fates, IDictionary<string, long> skipped,
        List<RuleHit> hits, Dictionary<string, long> dropped, Netfilter nf, string? formatError, JsonWriterOptions options)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, options))
        {
            w.WriteStartObject();
            w.WriteStartObject("summary");
            w.WriteNumber("packets", n);
            w.WriteNumber("seconds", Math.Round(seconds, 6));
            if (formatError is not null) w.WriteString("stopped", formatError);
            else w.WriteNull("stopped");
            w.WriteStartObject("fates");
            foreach (var (k, v) in fates) w.WriteNumber(k, v);
            w.WriteEndObject();
            w.WriteStartObject("skipped");
            foreach (var (k, v) in skipped) w.WriteNumber(k, v);
            w.WriteEndObject();
            w.WriteStartArray("rules");
            foreach (RuleHit h in hits)
            {
                w.WriteStartObject();
                w.WriteString("rule", h.Where);
                w.WriteString("family", h.Family == IpFamily.V4 ? "ipv4" : "ipv6");
                w.WriteString("table", h.Table);
                w.WriteString("chain", h.Chain);
                w.WriteNumber("position", h.Position);
                w.WriteString("text", h.Rule);
                w.WriteNumber("packets", h.Hits);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("dropped_flows");
            foreach (var (flow, count) in dropped.OrderByDescending(x => x.Value).ThenBy(x => x.Key, StringComparer.Ordinal).Take(20))
            {
                w.WriteStartObject();
                w.WriteString("flow", flow);
                w.WriteNumber("packets", count);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("conntrack");
            if (nf.Conntrack is ConntrackHooks ct)
            {
                foreach (string l in ct.Table.List(nf.State.Now)) w.WriteStringValue(l);
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    private static Options Parse(string[] args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Value()
            {
                if (i + 1 >= args.Length) throw new PacketSpecException($"option {a} needs a value");
                return args[++i];
            }
            switch (a)
            {
                case "-i": o.Iface = Value(); break;
                case "--iface-map":
                    foreach (string pair in Value().Split(',', StringSplitOptions.RemoveEmptyEntries))
                    {
                        int eq = pair.IndexOf('=', StringComparison.Ordinal);
                        if (eq < 0) throw new PacketSpecException($"--iface-map {pair}: expected MAC=IFACE");
                        o.MacMap[PacketSpec.ParseMac(pair[..eq], "--iface-map")] = pair[(eq + 1)..];
                    }
                    break;
                case "--local-from":
                    foreach (string addr in Value().Split(',', StringSplitOptions.RemoveEmptyEntries))
                    {
                        if (IpNet.TryParseStrict(addr, IpFamily.V4, out UInt128 v4)) o.LocalFrom.Add(v4);
                        else if (IpNet.TryParseStrict(addr, IpFamily.V6, out UInt128 v6)) o.LocalFrom.Add(v6);
                        else throw new PacketSpecException($"--local-from {addr}: not an IP address");
                    }
                    break;
                case "--out": o.Out = Value(); break;
                case "--json": o.Json = true; break;
                case "--dry-run": o.DryRun = true; break;
                case "--explain":
                    if (!int.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out o.Explain) || o.Explain < 1)
                        throw new PacketSpecException("--explain N: N is a packet number from 1");
                    break;
                default:
                    if (a.StartsWith('-') || o.File is not null) throw new PacketSpecException($"unknown option \"{a}\"");
                    o.File = a;
                    break;
            }
        }
        if (o.File is null) throw new PacketSpecException("which capture? chainwalk replay FILE");
        return o;
    }
}
