using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Chainwalk.Compat;
using Chainwalk.Engine;
using Chainwalk.Host;

namespace Chainwalk.Tracing;

/// <summary>
/// <c>chainwalk trace</c>: one packet described on the command line, or a batch of packets (JSON Lines),
/// through the host's netfilter; prints the explanation tree, the kernel's TRACE lines, or JSON. The host
/// changes as the packets would change it (counters, clock, extension state) unless --dry-run.
/// </summary>
public static class TraceCommand
{
    public const string Usage = """
Usage: chainwalk trace [-i IFACE | --local [-o IFACE] [--mark N] [--uid N] [--gid N]]
                       -p PROTO -s SRC -d DST [--sport N] [--dport N] [--tcp-flags SYN,ACK | --syn] [--seq N] [--ack N]
                       [--icmp-type T[/C]] [--len N] [--ttl N] [--tos N] [--mac-source M] [--at SECONDS]
                       [--json | --trace-format tree|kernel] [--svg OUT.svg] [--html OUT.html] [--dry-run] [--seed N]
       chainwalk trace --batch FILE.jsonl|- [--json] [--dry-run]
A packet with -i arrives on that interface (PREROUTING); --local is sent by a local process (OUTPUT).
Batch lines: {"in":"eth0","hex":"4500…"} or {"local":true,"out":"eth1","mark":5,"hex":"…"} or fields
{"in":"eth0","proto":"tcp","src":"…","dst":"…","sport":1,"dport":22,"flags":"SYN"}; optional "at" and
"eth":{"src":"…","dst":"…"}.

""";

    private sealed class Options
    {
        public PacketSpec Spec { get; } = new();
        public string? Batch;
        public bool Json;
        public bool DryRun;
        public bool KernelFormat;
        public int? Seed;
        public string? Svg;
        public string? Html;
    }

    public static int Run(string[] args, HostStore store, ToolIo io)
    {
        Options o;
        try
        {
            o = ParseArgs(args);
        }
        catch (PacketSpecException ex)
        {
            io.Err.WriteLine("chainwalk trace: " + ex.Message);
            io.Err.Write(Usage);
            return 2;
        }
        if (o.Batch is null && args.Length == 0)
        {
            io.Err.Write(Usage);
            return 2;
        }
        using HostLock hostLock = store.Lock(5);
        VirtualHost host = store.Load();
        EngineStore.UseHostObjects(store);
        List<PacketInput> inputs;
        try
        {
            inputs = o.Batch is null ? [o.Spec.Build(host)] : ReadBatch(o.Batch, host, io, o.KernelFormat);
            if (o.Batch is null && o.KernelFormat) inputs = [WithTrace(inputs[0])];
        }
        catch (PacketSpecException ex)
        {
            io.Err.WriteLine("chainwalk trace: " + ex.Message);
            return 2;
        }
        catch (IOException ex)
        {
            io.Err.WriteLine("chainwalk trace: " + ex.Message);
            return 2;
        }
        Netfilter nf = EngineStore.Open(store, host);
        nf.CacheRoutes = true;
        if (o.Seed is int seed) nf.State.Random = new SeededRandom(seed);
        nf.RecordTrace = !o.KernelFormat || o.Json || o.Svg is not null || o.Html is not null;
        ConntrackEvents? events = ConntrackEvents.For(nf);
        int n = 0, failed = 0;
        foreach (PacketInput input in inputs)
        {
            n++;
            PacketResult r = nf.Process(input);
            events?.After(r, nf.State.Now);
            KernelLogCompat.Record(nf.State, r);
            if (r.Error is not null) failed++;
            if (o.Svg is not null) File.WriteAllText(PictureName(o.Svg, n, inputs.Count), Chainwalk.Pictures.FlowDiagram.Render(r));
            if (o.Html is not null) File.WriteAllText(PictureName(o.Html, n, inputs.Count), Chainwalk.Pictures.FlowDiagram.Html(r));
            if (o.Json) io.Out.WriteLine(TraceJson.Render(r, n, nf.State.Now));
            else if (o.KernelFormat) WriteKernel(io, r, n, inputs.Count);
            else
            {
                if (n > 1) io.Out.WriteLine();
                io.Out.Write(ExplainTree.Render(r, inputs.Count > 1 ? n : 0));
            }
        }
        if (failed > 0)
        {
            io.Err.WriteLine($"chainwalk trace: {failed} packet(s) could not be evaluated; the host is left unchanged");
            return 1;
        }
        if (!o.DryRun) EngineStore.Save(store, host, nf);
        return 0;
    }

    /// <summary>FILE for one packet; FILE-N.ext for packet N of a batch.</summary>
    private static string PictureName(string path, int n, int count) =>
        count == 1 ? path : Path.Combine(Path.GetDirectoryName(path) ?? "", Path.GetFileNameWithoutExtension(path) + "-" + n.ToString(CultureInfo.InvariantCulture) + Path.GetExtension(path));

    private static PacketInput WithTrace(PacketInput i) => new()
    {
        Bytes = i.Bytes,
        InInterface = i.InInterface,
        OutInterface = i.OutInterface,
        Mark = i.Mark,
        Owner = i.Owner,
        SourceMac = i.SourceMac,
        DestinationMac = i.DestinationMac,
        At = i.At,
        Trace = true,
    };

    private static void WriteKernel(ToolIo io, PacketResult r, int n, int count)
    {
        foreach (string line in r.Logs) io.Out.WriteLine(line);
        io.Out.WriteLine((count > 1 ? $"packet {n.ToString(CultureInfo.InvariantCulture)}: " : "") + "fate: " + string.Join(", ", r.Fate)
            + (r.Error is not null ? " (" + r.Error + ")" : ""));
    }

    private static Options ParseArgs(string[] args)
    {
        var o = new Options();
        PacketSpec s = o.Spec;
        bool protocolGiven = false;
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
                case "-i": case "--in-interface": s.In = Value(); break;
                case "--local": s.Local = true; break;
                case "-o": case "--out-interface": s.Out = Value(); break;
                case "--mark": s.Mark = (uint)ParseNumber(Value(), a, uint.MaxValue); break;
                case "--uid": s.Uid = (uint)ParseNumber(Value(), a, uint.MaxValue); break;
                case "--gid": s.Gid = (uint)ParseNumber(Value(), a, uint.MaxValue); break;
                case "-p": case "--protocol": s.Protocol = Value(); protocolGiven = true; break;
                case "-s": case "--source": s.Source = Value(); break;
                case "-d": case "--destination": s.Destination = Value(); break;
                case "--sport": case "--source-port": s.SourcePort = (ushort)ParseNumber(Value(), a, 65535); break;
                case "--dport": case "--destination-port": s.DestinationPort = (ushort)ParseNumber(Value(), a, 65535); break;
                case "--tcp-flags": s.TcpFlags = Value(); break;
                case "--syn": s.TcpFlags = "SYN"; break;
                case "--seq": s.Sequence = (uint)ParseNumber(Value(), a, uint.MaxValue); break;
                case "--ack": s.Acknowledgment = (uint)ParseNumber(Value(), a, uint.MaxValue); break;
                case "--icmp-type": case "--icmpv6-type": s.IcmpType = Value(); break;
                case "--len": case "--length": s.Length = (int)ParseNumber(Value(), a, 65535); break;
                case "--ttl": case "--hl": s.Ttl = (byte)ParseNumber(Value(), a, 255); break;
                case "--tos": s.Tos = (byte)ParseNumber(Value(), a, 255); break;
                case "--mac-source": s.SourceMac = Value(); break;
                case "--at": s.At = ParseSeconds(Value()); break;
                case "--json": o.Json = true; break;
                case "--dry-run": o.DryRun = true; break;
                case "--seed": o.Seed = (int)ParseNumber(Value(), a, int.MaxValue); break;
                case "--batch": o.Batch = Value(); break;
                case "--svg": o.Svg = Value(); break;
                case "--html": o.Html = Value(); break;
                case "--trace-format":
                    {
                        string f = Value();
                        if (f is not ("kernel" or "tree")) throw new PacketSpecException("--trace-format is tree or kernel");
                        o.KernelFormat = f == "kernel";
                        break;
                    }
                default:
                    throw new PacketSpecException($"unknown option \"{a}\"");
            }
        }
        if (!protocolGiven && s.IcmpType is not null) s.Protocol = s.Destination?.Contains(':') == true ? "icmpv6" : "icmp";
        return o;
    }

    private static ulong ParseNumber(string text, string option, ulong max)
    {
        bool ok = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong v)
            : ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out v);
        if (!ok || v > max) throw new PacketSpecException($"{option} {text}: not a number between 0 and {max.ToString(CultureInfo.InvariantCulture)}");
        return v;
    }

    private static double ParseSeconds(string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v >= 0 && double.IsFinite(v)
            ? v : throw new PacketSpecException($"--at {text}: not a number of seconds");

    /// <summary>Reads every line first, so a bad line stops the batch before any packet changes the host.</summary>
    public static List<PacketInput> ReadBatch(string path, VirtualHost host, ToolIo io, bool trace)
    {
        TextReader reader = path == "-" ? io.In : new StreamReader(path);
        var inputs = new List<PacketInput>();
        try
        {
            int lineNo = 0;
            string? line;
            while ((line = reader.ReadLine()) is not null)
            {
                lineNo++;
                if (line.Trim().Length == 0 || line.TrimStart().StartsWith('#')) continue;
                try
                {
                    PacketSpec spec = BatchLine(line);
                    PacketInput input = spec.Build(host);
                    inputs.Add(trace ? WithTrace(input) : input);
                }
                catch (PacketSpecException ex)
                {
                    throw new PacketSpecException($"{(path == "-" ? "stdin" : path)} line {lineNo.ToString(CultureInfo.InvariantCulture)}: {ex.Message}");
                }
            }
        }
        finally
        {
            if (path != "-") reader.Dispose();
        }
        return inputs;
    }

    /// <summary>One batch line: raw bytes ("hex") or fields, with where it comes from.</summary>
    public static PacketSpec BatchLine(string line)
    {
        JsonObject o;
        try
        {
            o = JsonNode.Parse(line) as JsonObject ?? throw new PacketSpecException("not a JSON object");
        }
        catch (JsonException ex)
        {
            throw new PacketSpecException("not JSON: " + ex.Message);
        }
        var s = new PacketSpec();
        foreach (var (key, value) in o)
        {
            switch (key)
            {
                case "in": s.In = Str(key, value); break;
                case "comment": s.Comment = Str(key, value); break;
                case "local": s.Local = value is JsonValue v && v.TryGetValue(out bool b) ? b : throw Bad(key, "true or false"); break;
                case "out": s.Out = Str(key, value); break;
                case "mark": s.Mark = (uint)Num(key, value, uint.MaxValue); break;
                case "uid": s.Uid = (uint)Num(key, value, uint.MaxValue); break;
                case "gid": s.Gid = (uint)Num(key, value, uint.MaxValue); break;
                case "hex":
                    try
                    {
                        s.Bytes = Convert.FromHexString(Str(key, value).Replace(" ", "", StringComparison.Ordinal));
                    }
                    catch (FormatException)
                    {
                        throw Bad(key, "hexadecimal bytes");
                    }
                    break;
                case "at": s.At = value is JsonValue av && av.TryGetValue(out double d) && d >= 0 && double.IsFinite(d) ? d : throw Bad(key, "seconds (a number)"); break;
                case "eth":
                    if (value is not JsonObject eth) throw Bad(key, "{\"src\":MAC,\"dst\":MAC}");
                    if (eth["src"] is { } es) s.SourceMac = Str("eth.src", es);
                    if (eth["dst"] is { } ed) s.DestinationMac = Str("eth.dst", ed);
                    break;
                case "proto": case "p": s.Protocol = value is JsonValue pv && pv.TryGetValue(out int pn) ? pn.ToString(CultureInfo.InvariantCulture) : Str(key, value); break;
                case "src": s.Source = Str(key, value); break;
                case "dst": s.Destination = Str(key, value); break;
                case "sport": s.SourcePort = (ushort)Num(key, value, 65535); break;
                case "dport": s.DestinationPort = (ushort)Num(key, value, 65535); break;
                case "flags": s.TcpFlags = Str(key, value); break;
                case "seq": s.Sequence = (uint)Num(key, value, uint.MaxValue); break;
                case "ack": s.Acknowledgment = (uint)Num(key, value, uint.MaxValue); break;
                case "icmp_type": s.IcmpType = value is JsonValue iv && iv.TryGetValue(out int it) ? it.ToString(CultureInfo.InvariantCulture) : Str(key, value); break;
                case "len": s.Length = (int)Num(key, value, 65535); break;
                case "ttl": s.Ttl = (byte)Num(key, value, 255); break;
                case "tos": s.Tos = (byte)Num(key, value, 255); break;
                default: throw new PacketSpecException($"unknown field \"{key}\"");
            }
        }
        return s;
    }

    private static PacketSpecException Bad(string key, string what) => new($"field \"{key}\" must be {what}");

    private static string Str(string key, JsonNode? value) =>
        value is JsonValue v && v.TryGetValue(out string? s) ? s : throw Bad(key, "a string");

    private static ulong Num(string key, JsonNode? value, ulong max)
    {
        if (value is JsonValue v)
        {
            if (v.TryGetValue(out long l) && l >= 0 && (ulong)l <= max) return (ulong)l;
            if (v.TryGetValue(out string? s) && ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out ulong u) && u <= max) return u;
        }
        throw Bad(key, $"a number between 0 and {max.ToString(CultureInfo.InvariantCulture)}");
    }
}
