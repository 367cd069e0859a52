using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Chainwalk.Compat;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Bench;

/// <summary>
/// The figures of bench/run.sh (issue 6), measured in one process on one core (thread CPU time, wall time beside):
/// ClassBench classification (compiled and linear walk), restore, one-rule updates, kube-proxy shapes,
/// conntrack memory. Writes a JSON fragment; bench/run.sh adds the real iptables and DPDK figures.
/// Usage: Chainwalk.Bench --speed [--quick] --cache DIR --out FILE
/// </summary>
public static class SpeedHarness
{
    private static bool _quick;

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out Timespec ts);

    /// <summary>
    /// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID): throughput figures are packets per CPU-second
    /// of the benchmark thread, so other work on this shared machine does not count (wall figures are kept beside).
    /// </summary>
    private static double Cpu()
    {
        ClockGetTime(3, out Timespec ts);
        return ts.Seconds + ts.Nanoseconds * 1e-9;
    }

    /// <summary>Wall and thread-CPU seconds of one timed section.</summary>
    private sealed class Clock
    {
        private readonly Stopwatch _wall = Stopwatch.StartNew();
        private double _cpu = Cpu();

        public void Restart()
        {
            _wall.Restart();
            _cpu = Cpu();
        }

        public double Wall => _wall.Elapsed.TotalSeconds;

        public double CpuSeconds => Cpu() - _cpu;
    }

    /// <summary>
    /// Flow <paramref name="f"/>'s client packet to service <paramref name="s"/>, as it arrives on eth1: client
    /// 192.168.0.(2 + f / 60000), source port 1024 + f % 60000 (so flows never share a tuple).
    /// </summary>
    private static PacketInput ClientPacket(KubeProxyRules.Service s, int f, TcpFlags flags, uint seq, uint ack = 0) => new()
    {
        Bytes = PacketBuilder.Ipv4(0xC0A80000u + (uint)(2 + f / 60000), s.ClusterIp).Tcp((ushort)(1024 + f % 60000), s.Port, flags, seq: seq, ack: ack).Build(),
        InInterface = "eth1",
    };

    public static int Run(string[] args)
    {
        _quick = args.Contains("--quick");
        string cache = Arg(args, "--cache") ?? Path.Combine(Path.GetTempPath(), "chainwalk-bench");
        string output = Arg(args, "--out") ?? "speed.json";
        Directory.CreateDirectory(cache);
        string only = Arg(args, "--only") ?? "";
        _burstMode = Arg(args, "--burst") ?? "";
        // The ClassBench files are needed by the classification figures only.
        string corpus = only is "" or "classbench" or "probe" or "indexloop" or "keyloop" ? CorpusLocator.Corpus : "";
        // Tuning knobs of the tuple index, for experiments (the defaults are what the engine uses).
        if (Environment.GetEnvironmentVariable("CW_CLASSES") is { Length: > 0 } cl) TupleIndex.Classes = cl.Split(',').Select(int.Parse).ToArray();
        if (Environment.GetEnvironmentVariable("CW_PORT_TUPLES") == "0") TupleIndex.PortTuples = false;
        if (Environment.GetEnvironmentVariable("CW_COST") is { Length: > 0 } cw)
        {
            string[] w = cw.Split(',');
            TupleIndex.SlotWeight = double.Parse(w[0], CultureInfo.InvariantCulture);
            TupleIndex.EntryWeight = double.Parse(w[1], CultureInfo.InvariantCulture);
        }
        if (Environment.GetEnvironmentVariable("CW_SLOT_LOAD") is { Length: > 0 } sload) TupleIndex.SlotLoad = double.Parse(sload, CultureInfo.InvariantCulture);
        if (Environment.GetEnvironmentVariable("CW_FILTER_BITS") is { Length: > 0 } fbits) TupleIndex.FilterBitsPerKey = int.Parse(fbits, CultureInfo.InvariantCulture);
        if (Environment.GetEnvironmentVariable("CW_KEY_BATCH") is { Length: > 0 } kb) CompiledRules.KeyBatch = int.Parse(kb, CultureInfo.InvariantCulture);
        if (Environment.GetEnvironmentVariable("CW_BATCH_FROM") is { Length: > 0 } bf) CompiledRules.BatchFromBytes = long.Parse(bf, CultureInfo.InvariantCulture);
        if (Environment.GetEnvironmentVariable("CW_MERGE_LIMIT") is { Length: > 0 } ml) TupleIndex.MergeLimit = int.Parse(ml, CultureInfo.InvariantCulture);
        var root = new JsonObject
        {
            ["quick"] = _quick,
            ["dotnet"] = Environment.Version.ToString(),
            ["tuple_classes"] = TupleIndex.Classes is { } fixedClasses ? string.Join(",", fixedClasses) : "chosen per run among " + string.Join(" | ", TupleIndex.Layouts.Select(l => string.Join(",", l.Classes) + "/" + l.MergeLimit)),
            ["port_tuples"] = TupleIndex.PortTuples,
            ["merge_limit"] = TupleIndex.MergeLimit,
            ["key_batch"] = CompiledRules.KeyBatch,
            ["key_batch_from_bytes"] = CompiledRules.BatchFromBytes,
        };
        var cb = new JsonObject();
        root["classbench"] = cb;
        if (only == "probe") return Probe(corpus);
        if (only == "replay-profile")
        {
            // Diagnostics: the replay verb in process on a host directory, with the types it allocates.
            using var prof = new AllocationProfile();
            var store = new HostStore(Arg(args, "--host")!);
            var io = new ToolIo { In = TextReader.Null, Out = TextWriter.Null, Err = Console.Error };
            prof.Start();
            var c = new Clock();
            long a0 = GC.GetAllocatedBytesForCurrentThread();
            Chainwalk.Tracing.ReplayCommand.Run([Arg(args, "--capture")!, "-i", "eth0", "--local-from", "10.9.0.1", "--dry-run"], store, io);
            Log($"replay in process: {c.CpuSeconds:F2} s CPU, {(GC.GetAllocatedBytesForCurrentThread() - a0) / 1e6:F0} MB allocated");
            prof.Stop();
            foreach (var (type, bytes) in prof.Top(30)) Log($"{bytes / 1e6,10:F1} MB  {type}");
            return 0;
        }
        if (only == "restore-profile")
        {
            // Diagnostics: the iptables-restore verb in process (twice: cold, then warm) on the acl1_100k file, with the
            // types it allocates; then the managed bytes per rule of the loaded rule objects (acl1_100k and kube-proxy sets).
            string file = Arg(args, "--rules") ?? Path.Combine(cache, "acl1_100k.rules");
            string text = File.ReadAllText(file);
            for (int rep = 0; rep < 2; rep++)
            {
                string dir = Path.Combine(Path.GetTempPath(), "cw-restore-profile-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
                if (Directory.Exists(dir)) Directory.Delete(dir, true);
                using var prof = new AllocationProfile();
                var io = new ToolIo { In = new StringReader(text), Out = TextWriter.Null, Err = Console.Error };
                prof.Start();
                var c = new Clock();
                long a0 = GC.GetAllocatedBytesForCurrentThread();
                int gc0 = GC.CollectionCount(0);
                int rc = IptablesCompat.Restore(IpFamily.V4, ["iptables-restore"], new HostStore(dir), io);
                Log($"restore verb in process ({(rep == 0 ? "cold" : "warm")}): exit {rc}, {c.CpuSeconds:F3} s CPU, {(GC.GetAllocatedBytesForCurrentThread() - a0) / 1e6:F0} MB allocated, {GC.CollectionCount(0) - gc0} GCs");
                prof.Stop();
                if (rep == 1) foreach (var (type, bytes) in prof.Top(25)) Log($"{bytes / 1e6,10:F1} MB  {type}");
                Directory.Delete(dir, true);
            }
            var (acl, aclBytes) = Measure(() => Restore(text));
            Log($"ruleset bytes per rule: {Path.GetFileName(file)} {(double)aclBytes / acl.RuleCount:F1}");
            GC.KeepAlive(text);
            foreach (int services in new[] { 1000, 10000 })
            {
                var (kubeText, _, kubeRules) = KubeProxyRules.Generate(services, seed: services);
                File.WriteAllText(Path.Combine(cache, $"kube_{services}.rules"), kubeText);
                using var prof = new AllocationProfile();
                prof.Start();
                var sw = new Clock();
                var (_, kubeBytes) = Measure(() => Restore(kubeText));
                Log($"ruleset bytes per rule: kube {services} {(double)kubeBytes / kubeRules:F1} (load {sw.CpuSeconds:F3} s CPU)");
                prof.Stop();
                if (services == 10000) foreach (var (type, bytes) in prof.Top(25)) Log($"{bytes / 1e6,10:F1} MB  {type}");
                GC.KeepAlive(kubeText);
            }
            return 0;
        }
        if (only == "kube-bytes")
        {
            // Diagnostics: ruleset_bytes_per_rule of the kube-proxy set (--services N, 1,000 by default) and the objects
            // reachable from the restored ruleset by type (extension objects and other shared singletons not entered).
            int services = Arg(args, "--services") is { } ks ? int.Parse(ks, CultureInfo.InvariantCulture) : 1000;
            var (kubeText, _, kubeRules) = KubeProxyRules.Generate(services, seed: services);
            // --walkable: the rules of the kube runs' figure (kube.N.ruleset_bytes_per_rule), DNAT replaced by ACCEPT as in Kube().
            if (args.Contains("--walkable")) kubeText = System.Text.RegularExpressions.Regex.Replace(kubeText, "-j DNAT --to-destination [^ \\n]+", "-j ACCEPT");
            var (set, kubeBytes) = Measure(() => Restore(kubeText));
            // The heap difference is read with full collections around the restore; with --walkable the replaced text and
            // the regex's garbage make it unreliable (seen far too low), so the heap walk's figure is the one to read there.
            if (!args.Contains("--walkable")) Log($"ruleset bytes per rule: kube {services} {(double)kubeBytes / kubeRules:F1} ({kubeRules} rules)");
            HeapWalk.Strings = new(StringComparer.Ordinal);
            HeapWalk.StringContents = new(StringComparer.Ordinal);
            // --compiled: the compiled form's own objects instead (walked from CompiledRules, not entering the rule
            // objects, chains, tables, rule lists and extensions it points at): what compiled_heap_bytes_per_rule holds.
            bool compiledOnly = args.Contains("--compiled");
            var byType = compiledOnly
                ? HeapWalk.ByType(CompiledRules.Build(set), t => typeof(Chainwalk.Extensions.XtExtension).IsAssignableFrom(t)
                    || t == typeof(Rule) || t == typeof(Chain) || t == typeof(Table) || t == typeof(Ruleset) || t == typeof(RuleList)
                    || t == typeof(TargetUse) || t == typeof(MatchUse))
                : HeapWalk.ByType(set, t => typeof(Chainwalk.Extensions.XtExtension).IsAssignableFrom(t));
            long total = byType.Values.Sum(v => v.Bytes);
            Log($"heap walk from the {(compiledOnly ? "compiled form" : "ruleset")}: {total} bytes, {(double)total / kubeRules:F1} per rule ({kubeRules} rules)");
            foreach (var (type, (count, bytes)) in byType.OrderByDescending(kv => kv.Value.Bytes).Take(30))
                Log($"{bytes,12} {(double)bytes / kubeRules,8:F1}/rule {count,9}  {type}");
            foreach (var (prefix, (count, bytes)) in HeapWalk.Strings.OrderByDescending(kv => kv.Value.Item2).Take(8))
                Log($"{bytes,12} {(double)bytes / kubeRules,8:F1}/rule {count,9}  string {prefix}…");
            var dups = HeapWalk.StringContents!.Where(kv => kv.Value > 1).ToList();
            Log($"strings held more than once: {dups.Count} texts, {dups.Sum(kv => kv.Value - 1)} extra objects, {dups.Sum(kv => (kv.Value - 1) * ((22L + 2 * kv.Key.Length + 7) & ~7L))} bytes; e.g. {string.Join(" | ", dups.Take(3).Select(kv => kv.Key + " ×" + kv.Value))}");
            GC.KeepAlive(set);
            return 0;
        }
        if (only == "kube-memory")
        {
            // The kube sets' memory figures alone (kube.N.ruleset_bytes_per_rule and bytes_per_rule, and the walkable
            // set's beside), without the pipelines: restore and compile only. --services N for one size.
            int[] sizes = Arg(args, "--services") is { } ms ? [int.Parse(ms, CultureInfo.InvariantCulture)] : [1000, 10000, 30000];
            WarmKubeRestore();
            foreach (int services in sizes)
            {
                var (kubeText, _, kubeRules) = KubeProxyRules.Generate(services, seed: services);
                string walkable = System.Text.RegularExpressions.Regex.Replace(kubeText, "-j DNAT --to-destination [^ \\n]+", "-j ACCEPT");
                var (real, realBytes) = Measure(() => Restore(kubeText));
                var (realForm, realCompiledHeap) = Measure(() => CompiledRules.Build(real));
                long realCompiled = realForm.Bytes;
                GC.KeepAlive(realForm);
                GC.KeepAlive(real);
                real = null!;
                var (walk, walkBytes) = Measure(() => Restore(walkable));
                long walkCompiled = CompiledRules.Build(walk).Bytes;
                GC.KeepAlive(walk);
                // Both texts live through both measurements (a text collected inside one would be counted against it).
                GC.KeepAlive(kubeText);
                GC.KeepAlive(walkable);
                Log($"kube {services} " + new JsonObject
                {
                    ["rules"] = kubeRules,
                    ["bytes_per_rule"] = R((double)realCompiled / kubeRules, 1),
                    ["compiled_heap_bytes_per_rule"] = R((double)realCompiledHeap / kubeRules, 1),
                    ["ruleset_bytes_per_rule"] = R((double)realBytes / kubeRules, 1),
                    ["bytes_per_rule_walkable"] = R((double)walkCompiled / kubeRules, 1),
                    ["ruleset_bytes_per_rule_walkable"] = R((double)walkBytes / kubeRules, 1),
                }.ToJsonString());
            }
            return 0;
        }
        if (only == "replay-capture")
        {
            long n = ReplayCapture.Write(Arg(args, "--capture") ?? Path.Combine(cache, "replay.pcap"), int.Parse(Arg(args, "--packets") ?? "1000000", CultureInfo.InvariantCulture));
            Log($"replay capture: {n} packets");
            return 0;
        }
        if (only == "established-parts") return EstablishedParts(Arg(args, "--services") is { } es ? int.Parse(es, CultureInfo.InvariantCulture) : 1000, args);
        if (only == "profile") return ProfilePipeline(Arg(args, "--services") is { } sv ? int.Parse(sv, CultureInfo.InvariantCulture) : 1000);
        if (only == "newloop") return NewLoop(Arg(args, "--services") is { } nsv ? int.Parse(nsv, CultureInfo.InvariantCulture) : 1000, int.Parse(Arg(args, "--rounds") ?? "10", CultureInfo.InvariantCulture), Flag(args, "--nonat"), Flag(args, "--fresh"), Flag(args, "--reply"));
        if (only == "keyloop") return KeyLoop(corpus, Arg(args, "--set") ?? "acl1_10k", int.Parse(Arg(args, "--rounds") ?? "8", CultureInfo.InvariantCulture), int.Parse(Arg(args, "--batch-ab") ?? "0", CultureInfo.InvariantCulture));
        if (only == "indexloop") return IndexLoop(corpus, Arg(args, "--set") ?? "fw1_10k", Flag(args, "--old"), args);
        var archives = only is "" or "classbench" ? new[] { "classbench-1k-10k.tgz", "classbench-100k.tgz" } : [];
        foreach (string archive in archives)
        {
            Dictionary<string, string> files = ClassBench.ReadArchive(Path.Combine(corpus, "classbench", archive));
            foreach (string fam in new[] { "acl1", "fw1", "ipc1" })
            {
                string name = archive.Contains("100k") ? fam + "_100k" : fam + "_10k";
                string file = files.Keys.First(k => k.StartsWith(fam + "_", StringComparison.Ordinal) && !k.EndsWith("_trace", StringComparison.Ordinal)
                    && (archive.Contains("100k") || k.EndsWith("_10k", StringComparison.Ordinal)));
                cb[name] = ClassBenchSet(name, files[file], files[file + "_trace"], cache, root);
                Log($"{name,-10} {cb[name]!.ToJsonString()}");
            }
        }
        if (only == "restore")
        {
            // The restore figures alone (bench/restore_bench.py beside): acl1_100k written by an earlier full run.
            string text = File.ReadAllText(Path.Combine(cache, "acl1_100k.rules"));
            var (loaded, bytes, times) = RestoreTimed(text);
            root["restore_100k_inproc"] = RestoreFigures(times, bytes, loaded.RuleCount);
            Log("restore_100k_inproc " + root["restore_100k_inproc"]!.ToJsonString());
        }
        if (only is "" or "update")
        {
            root["update_us"] = Updates(Path.Combine(cache, "acl1_100k.rules"));
            Log("update_us " + root["update_us"]!.ToJsonString());
        }
        var kube = new JsonObject();
        root["kube"] = kube;
        foreach (int services in only is "" or "kube" or "pipeline" ? new[] { 1000, 10000, 30000 } : only == "kube1k" ? [1000] : only == "kube10k" ? [10000] : only == "kube30k" ? [30000] : [])
        {
            kube[services.ToString(CultureInfo.InvariantCulture)] = Kube(services);
            Log($"kube {services} {kube[services.ToString(CultureInfo.InvariantCulture)]!.ToJsonString()}");
        }
        if (only is "" or "conntrack" or "pipeline")
        {
            root["conntrack"] = ConntrackMemory();
            Log("conntrack " + root["conntrack"]!.ToJsonString());
        }
        File.WriteAllText(output, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    /// <summary>
    /// A restore of a small kube-proxy set (with and without DNAT) before the memory of a large one is measured: what a
    /// first restore initialises once (extension tables, name caches: ≈ 0.1 MB) is then not counted as the rules'.
    /// </summary>
    private static void WarmKubeRestore()
    {
        string small = KubeProxyRules.Generate(20, seed: 20).Restore;
        GC.KeepAlive(Restore(small));
        GC.KeepAlive(Restore(System.Text.RegularExpressions.Regex.Replace(small, "-j DNAT --to-destination [^ \\n]+", "-j ACCEPT")));
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    /// <summary>
    /// A switch with no value (<c>--nonat</c>): present anywhere in the arguments. A value after it (<c>--reply 1</c>, the
    /// old spelling) is ignored. Until session 13 switches were read with <see cref="Arg"/>, which wants a value after the
    /// name: a switch given last was read as absent and one given before another switch was read as present.
    /// </summary>
    private static bool Flag(string[] args, string name) => Array.IndexOf(args, name) >= 0;

    private static void Log(string line) => Console.Error.WriteLine(line);

    private static double Median(List<double> xs)
    {
        xs.Sort();
        return xs[xs.Count / 2];
    }

    private static double R(double x, int digits = 3) => Math.Round(x, digits);

    /// <summary>Managed bytes held after building <paramref name="make"/> (full collections around it).</summary>
    private static (T Value, long Bytes) Measure<T>(Func<T> make)
    {
        long before = GC.GetTotalMemory(true);
        T v = make();
        long after = GC.GetTotalMemory(true);
        GC.KeepAlive(v);
        return (v, after - before);
    }

    private static Ruleset Restore(string text) =>
        new RestoreReader(IpFamily.V4, "iptables-restore").Apply(new Ruleset(IpFamily.V4), text, new RestoreOptions());

    // ------------------------------------------------------------------ restore

    /// <summary>
    /// Restores <paramref name="text"/> in process: the first time untimed (code compiled, managed bytes of the rule
    /// objects measured with full collections around it), then timed (thread CPU) repetitions.
    /// </summary>
    private static (Ruleset Rules, long Bytes, List<double> Times) RestoreTimed(string text)
    {
        var (rules, bytes) = Measure(() => Restore(text));
        var times = new List<double>();
        for (int rep = 0; rep < (_quick ? 1 : 3); rep++)
        {
            rules = null!;
            GC.Collect();
            var sw = new Clock();
            rules = Restore(text);
            times.Add(sw.CpuSeconds);
        }
        return (rules, bytes, times);
    }

    private static JsonObject RestoreFigures(List<double> times, long rulesetBytes, int rules) => new()
    {
        ["chainwalk_inproc_s"] = R(Median(times)),
        ["rules"] = rules,
        ["ruleset_bytes_per_rule"] = R((double)rulesetBytes / rules, 1),
    };

    // ------------------------------------------------------------------ ClassBench

    private static JsonObject ClassBenchSet(string name, string filters, string traceText, string cache, JsonObject root)
    {
        ClassBench.Converted conv = ClassBench.Convert(filters);
        File.WriteAllText(Path.Combine(cache, name + ".rules"), conv.Restore);
        int maxHeaders = _quick ? 200_000 : int.MaxValue;
        TraceHeader[] trace = ClassBench.ReadTrace(traceText, maxHeaders);

        // Restore (parse + build the rule objects), in process; the 100k acl1 figure is restore_100k.chainwalk_inproc_s.
        var (rules, rulesetBytes, restoreTimes) = RestoreTimed(conv.Restore);
        if (name == "acl1_100k") root["restore_100k_inproc"] = RestoreFigures(restoreTimes, rulesetBytes, conv.Rules);
        var buildTimes = new List<double>();
        CompiledRules compiled = null!;
        for (int rep = 0; rep < (_quick ? 2 : 5); rep++)
        {
            var sw = new Clock();
            compiled = CompiledRules.Build(rules);
            buildTimes.Add(sw.CpuSeconds);
        }
        // The compiled form's heap (bytes_per_rule is its own count of its arrays): one more build, measured whole.
        var (measuredForm, compiledHeap) = Measure(() => CompiledRules.Build(rules));
        GC.KeepAlive(measuredForm);
        measuredForm = null!;
        Table filter = rules.Find("filter")!;
        Chain forward = filter.Find("FORWARD")!;
        ChainIndex index = compiled.For(forward)!;

        var host = VirtualHost.CreateFresh();
        host.V4 = rules;
        var fast = new Netfilter(host) { Compiled = compiled };
        var slow = new Netfilter(host);
        var skbs = new Skb[trace.Length];
        for (int i = 0; i < trace.Length; i++) skbs[i] = new Skb(Packet.Parse(ClassBench.Packet(trace[i]))) { InDev = "eth0", OutDev = "eth1" };
        var fctx = new PacketContext(fast, skbs[0]) { Hook = Hook.Forward };
        var sctx = new PacketContext(slow, skbs[0]) { Hook = Hook.Forward };

        // Agreement on a sample (the tests check every counter; here the verdicts).
        int sample = Math.Min(trace.Length, name.EndsWith("100k", StringComparison.Ordinal) ? (_quick ? 1000 : 3000) : (_quick ? 5000 : 20000));
        int disagree = 0;
        var linear = new Clock();
        for (int i = 0; i < sample; i++)
        {
            sctx.Skb = skbs[i];
            slow.RunTable(sctx, filter, Hook.Forward);
        }
        double linearS = linear.CpuSeconds, linearWall = linear.Wall;
        for (int i = 0; i < sample; i++)
        {
            fctx.Skb = skbs[i];
            Verdict a = fast.RunTable(fctx, filter, Hook.Forward);
            sctx.Skb = skbs[i];
            Verdict b = slow.RunTable(sctx, filter, Hook.Forward);
            if (a != b) disagree++;
        }

        // Compiled: whole trace, warm-up pass then timed passes.
        var times = new List<double>();
        var walls = new List<double>();
        long alloc = 0;
        for (int rep = 0; rep < (_quick ? 2 : 4); rep++)
        {
            long a0 = GC.GetAllocatedBytesForCurrentThread();
            var sw = new Clock();
            for (int i = 0; i < skbs.Length; i++)
            {
                fctx.Skb = skbs[i];
                fast.RunTable(fctx, filter, Hook.Forward);
            }
            double s = sw.CpuSeconds;
            double w = sw.Wall;
            alloc = GC.GetAllocatedBytesForCurrentThread() - a0;
            if (rep > 0)
            {
                times.Add(s);
                walls.Add(w);
            }
        }
        JsonObject keyFigures = KeyPath(compiled, forward, filter, slow, sctx, skbs, sample);
        int matched = 0;
        // The compiled walk again after 16 -I and 16 -D at random places of the chain (copies of its own rules
        // inserted, loaded rules deleted), kept as an overlay (CompiledRules.Inserted / Deleted): what pending edits
        // cost per packet. The verdicts are checked against the linear walk on the sample first.
        var editRnd = new Random(5);
        var editor = new RulesetEditor(rules);
        for (int e = 0; e < 16; e++)
        {
            int at = editRnd.Next(forward.Rules.Count + 1);
            editor.Insert("filter", "FORWARD", at + 1, [forward.Rules[editRnd.Next(forward.Rules.Count)].Clone()]);
            compiled.Inserted(forward, at);
            int del = editRnd.Next(forward.Rules.Count);
            editor.DeleteNumber("filter", "FORWARD", del + 1);
            compiled.Deleted(forward, del);
        }
        int overlayDisagree = 0;
        for (int i = 0; i < sample; i++)
        {
            fctx.Skb = skbs[i];
            Verdict a = fast.RunTable(fctx, filter, Hook.Forward);
            sctx.Skb = skbs[i];
            Verdict b = slow.RunTable(sctx, filter, Hook.Forward);
            if (a != b) overlayDisagree++;
        }
        var overlayTimes = new List<double>();
        for (int rep = 0; rep < (_quick ? 2 : 3); rep++)
        {
            var sw = new Clock();
            for (int i = 0; i < skbs.Length; i++)
            {
                fctx.Skb = skbs[i];
                fast.RunTable(fctx, filter, Hook.Forward);
            }
            if (rep > 0) overlayTimes.Add(sw.CpuSeconds);
        }
        if (compiled.For(forward) is not { PendingNew: > 0 }) throw new InvalidOperationException("the edits were not kept as an overlay");
        foreach (Rule r in forward.Rules)
        {
            if (r.Counters.Packets > 0) matched++;
        }
        int groups = index.Runs.Sum(r => r.GroupCount);
        return new JsonObject
        {
            ["filters"] = conv.Filters,
            ["rules"] = conv.Rules,
            ["filters_split_tcp_udp"] = conv.SplitIntoTcpUdp,
            ["filters_ports_dropped"] = conv.PortsDropped,
            ["trace_headers"] = trace.Length,
            ["mpps"] = R(trace.Length / Median(times) / 1e6),
            ["mpps_wall"] = R(trace.Length / Median(walls) / 1e6),
            ["mpps_with_overlay"] = R(trace.Length / Median(overlayTimes) / 1e6),
            ["overlay_verdict_disagreements_in_sample"] = overlayDisagree,
            ["linear_mpps"] = R(sample / linearS / 1e6, 4),
            ["linear_mpps_wall"] = R(sample / linearWall / 1e6, 4),
            ["linear_sample_headers"] = sample,
            ["speedup"] = R(sample / linearS > 0 ? (trace.Length / Median(times)) / (sample / linearS) : 0, 1),
            ["verdict_disagreements_in_sample"] = disagree,
            ["alloc_bytes_per_packet"] = R((double)alloc / skbs.Length, 2),
            ["build_s"] = R(Median(buildTimes), 4),
            ["bytes_per_rule"] = R((double)compiled.Bytes / conv.Rules, 1),
            ["compiled_heap_bytes_per_rule"] = R((double)compiledHeap / conv.Rules, 1),
            ["ruleset_bytes_per_rule"] = R((double)rulesetBytes / conv.Rules, 1),
            ["restore_s"] = R(Median(restoreTimes)),
            ["tuple_groups"] = groups,
            ["tuple_layout"] = string.Join(" ", index.Runs.Select(r => r.Layout)),
            ["key_mpps"] = keyFigures["key_mpps"]!.DeepClone(),
            ["key_scalar_mpps"] = keyFigures["key_scalar_mpps"]!.DeepClone(),
            ["key_index_only_mpps"] = keyFigures["key_index_only_mpps"]!.DeepClone(),
            ["key_disagreements_in_sample"] = keyFigures["key_disagreements_in_sample"]!.DeepClone(),
            ["key_counter_disagreements_in_sample"] = keyFigures["key_counter_disagreements_in_sample"]!.DeepClone(),
            ["key_alloc_bytes_per_packet"] = keyFigures["key_alloc_bytes_per_packet"]!.DeepClone(),
            ["rte_acl_mpps"] = null,
            ["rte_acl_scalar_mpps"] = null,
        };
    }

    /// <summary>
    /// The figure comparable to rte_acl's: the trace's header tuples held compactly (one <see cref="FlowKey"/> array and
    /// the packet lengths for the byte counters) through the compiled first match of filter/FORWARD with the rule
    /// counters and the verdict (<see cref="CompiledRules.ClassifyKeys"/>, 16 keys at a time), and the same one key at a
    /// time (<c>key_scalar_mpps</c>: FirstMatch per key, round one's lookup). Checked first on the sample against the
    /// linear walk: every verdict, and every rule and policy counter after the sample.
    /// </summary>
    private static JsonObject KeyPath(CompiledRules compiled, Chain forward, Table filter, Netfilter slow, PacketContext sctx, Skb[] skbs, int sample)
    {
        var keys = new FlowKey[skbs.Length];
        var lengths = new ushort[skbs.Length];
        for (int i = 0; i < skbs.Length; i++)
        {
            if (!FlowKey.TryRead(skbs[i].Packet, out keys[i])) throw new InvalidOperationException("a trace packet without a flow key");
            lengths[i] = (ushort)skbs[i].Length;
        }
        var verdicts = new VerdictKind[skbs.Length];
        void Reset()
        {
            forward.Counters = default;
            foreach (Rule r in forward.Rules) r.Counters = default;
        }
        // The reference: the linear walk of the sample, its verdicts and counters.
        Reset();
        var linearVerdicts = new VerdictKind[sample];
        for (int i = 0; i < sample; i++)
        {
            sctx.Skb = skbs[i];
            linearVerdicts[i] = slow.RunTable(sctx, filter, Hook.Forward).Kind;
        }
        Counters[] linearCounters = forward.Rules.Select(r => r.Counters).Append(forward.Counters).ToArray();
        Reset();
        if (!compiled.ClassifyKeys(forward, keys.AsSpan(0, sample), lengths.AsSpan(0, sample), verdicts)) throw new InvalidOperationException("FORWARD is not decided by the index alone");
        int disagree = 0, counterDisagree = 0;
        for (int i = 0; i < sample; i++)
        {
            if (verdicts[i] != linearVerdicts[i]) disagree++;
        }
        Counters[] keyCounters = forward.Rules.Select(r => r.Counters).Append(forward.Counters).ToArray();
        for (int i = 0; i < keyCounters.Length; i++)
        {
            if (keyCounters[i].Packets != linearCounters[i].Packets || keyCounters[i].Bytes != linearCounters[i].Bytes) counterDisagree++;
        }
        ChainIndex index = compiled.For(forward)!;
        var batch = new List<double>();
        var scalar = new List<double>();
        var bare = new List<double>();
        long alloc = 0;
        // The three loops in turn, each rep starting with another one (the first loop of a rep finds the caches as the
        // previous one left them); the first rep is not timed.
        for (int rep = 0; rep < (_quick ? 4 : 7); rep++)
        {
            for (int m = 0; m < 3; m++)
            {
                int which = (m + rep) % 3;
                long a0 = GC.GetAllocatedBytesForCurrentThread();
                var sw = new Clock();
                if (which == 0)
                {
                    compiled.ClassifyKeys(forward, keys, lengths, verdicts);
                    double s = sw.CpuSeconds;
                    alloc = GC.GetAllocatedBytesForCurrentThread() - a0;
                    if (rep > 0) batch.Add(s);
                }
                else if (which == 1)
                {
                    ScalarKeys(index, forward, keys, lengths, verdicts);
                    if (rep > 0) scalar.Add(sw.CpuSeconds);
                }
                else
                {
                    int sum = 0;
                    TupleIndex run = index.Runs[0];
                    foreach (FlowKey k in keys) sum += run.FirstMatch(k, 0);
                    double u = sw.CpuSeconds;
                    if (sum == 42) Log("");
                    if (rep > 0) bare.Add(u);
                }
            }
        }
        Reset();
        return new JsonObject
        {
            ["key_mpps"] = R(keys.Length / Median(batch) / 1e6),
            ["key_scalar_mpps"] = R(keys.Length / Median(scalar) / 1e6),
            ["key_index_only_mpps"] = R(keys.Length / Median(bare) / 1e6),
            ["key_disagreements_in_sample"] = disagree,
            ["key_counter_disagreements_in_sample"] = counterDisagree,
            ["key_alloc_bytes_per_packet"] = R((double)alloc / keys.Length, 2),
        };
    }

    /// <summary>One key at a time: the index's Next from the chain's start, the plain verdict, the counters.</summary>
    private static void ScalarKeys(ChainIndex index, Chain chain, FlowKey[] keys, ushort[] lengths, VerdictKind[] verdicts)
    {
        VerdictKind policy = chain.Policy == "DROP" ? VerdictKind.Drop : VerdictKind.Accept;
        for (int i = 0; i < keys.Length; i++)
        {
            int j = index.Next(0, keys[i], out bool proven);
            if (proven && index.PlainVerdict(j) is { Rule: { } hit } h)
            {
                // Read, add, write back: the same code whether Counters is a field (older trees, see pipeline_compare.sh) or a property.
                Counters hitCounts = hit.Counters;
                hitCounts.Packets++;
                hitCounts.Bytes += lengths[i];
                hit.Counters = hitCounts;
                verdicts[i] = h.Kind;
            }
            else
            {
                Counters chainCounts = chain.Counters;
                chainCounts.Packets++;
                chainCounts.Bytes += lengths[i];
                chain.Counters = chainCounts;
                verdicts[i] = policy;
            }
        }
    }

    /// <summary>Diagnostics: the index alone (FirstMatch over flow keys) against the whole RunTable, acl1_10k and ipc1_100k.</summary>
    private static int Probe(string corpus)
    {
        foreach (var (archive, set) in new[] { ("classbench-1k-10k.tgz", "acl1_10k"), ("classbench-1k-10k.tgz", "fw1_10k"), ("classbench-100k.tgz", "ipc1_100k") })
        {
            Dictionary<string, string> files = ClassBench.ReadArchive(Path.Combine(corpus, "classbench", archive));
            ClassBench.Converted conv = ClassBench.Convert(files[set]);
            Ruleset rules = Restore(conv.Restore);
            CompiledRules compiled = CompiledRules.Build(rules);
            Table filter = rules.Find("filter")!;
            ChainIndex index = compiled.For(filter.Find("FORWARD")!)!;
            TraceHeader[] trace = ClassBench.ReadTrace(files[set + "_trace"], 200_000);
            var keys = trace.Select(h => new FlowKey(h.Source, h.Destination, h.Protocol, h.Protocol is 6 or 17 ? h.SourcePort : (ushort)0, h.Protocol is 6 or 17 ? h.DestinationPort : (ushort)0)).ToArray();
            long sum = 0;
            var c = new Clock();
            // The index alone, old layout (Baseline.TupleIndexV1) and the engine's, interleaved in one run.
            var flats = new List<FlatRule>();
            foreach (Rule r in filter.Find("FORWARD")!.Rules)
            {
                if (!ChainIndex.TryFlatten(r, out FlatRule f)) break;
                flats.Add(f);
            }
            var v1 = Baseline.TupleIndexV1.Build(0, flats);
            var v2 = TupleIndex.Build(0, flats);
            var oldT = new List<double>();
            var newT = new List<double>();
            long s1 = 0, s2 = 0;
            for (int rep = 0; rep < 5; rep++)
            {
                c.Restart();
                for (int i = 0; i < keys.Length; i++) s1 += v1.FirstMatch(keys[i], 0);
                oldT.Add(keys.Length / c.CpuSeconds / 1e6);
                c.Restart();
                for (int i = 0; i < keys.Length; i++) s2 += v2.FirstMatch(keys[i], 0);
                newT.Add(keys.Length / c.CpuSeconds / 1e6);
            }
            {
                var hot = new List<double>();
                for (int rep = 0; rep < 5; rep++)
                {
                    c.Restart();
                    for (int r2 = 0; r2 < 100; r2++)
                        for (int i = 0; i < 1000; i++) sum += v2.FirstMatch(keys[i], 0);
                    hot.Add(100_000 / c.CpuSeconds / 1e6);
                }
                Log($"{set}: new index, 1000 keys repeated (hot caches) {Median(hot):F2} Mpps");
            }
            Log($"{set}: index alone, old layout {Median(oldT):F2} Mpps, new {Median(newT):F2} Mpps (same answers: {s1 == s2})");
            c.Restart();
            for (int rep = 0; rep < 3; rep++)
            {
                for (int i = 0; i < keys.Length; i++) sum += index.Next(0, keys[i], out _);
            }
            double idx = 3 * keys.Length / c.CpuSeconds / 1e6;
            var host = VirtualHost.CreateFresh();
            host.V4 = rules;
            var fast = new Netfilter(host) { Compiled = compiled };
            var skbs = trace.Select(h => new Skb(Packet.Parse(ClassBench.Packet(h))) { InDev = "eth0", OutDev = "eth1" }).ToArray();
            var ctx = new PacketContext(fast, skbs[0]) { Hook = Hook.Forward };
            c.Restart();
            for (int rep = 0; rep < 3; rep++)
            {
                for (int i = 0; i < skbs.Length; i++)
                {
                    if (FlowKey.TryRead(skbs[i].Packet, out FlowKey k)) sum += k.SourcePort;
                }
            }
            double keyMpps = 3 * skbs.Length / c.CpuSeconds / 1e6;
            c.Restart();
            for (int rep = 0; rep < 3; rep++)
            {
                for (int i = 0; i < skbs.Length; i++)
                {
                    if (FlowKey.TryRead(skbs[i].Packet, out FlowKey k)) sum += index.Next(0, k, out _);
                }
            }
            double keyIdxMpps = 3 * skbs.Length / c.CpuSeconds / 1e6;
            Log($"{set}: key read from the packets {keyMpps:F2} Mpps, key read + index {keyIdxMpps:F2} Mpps");
            if (Environment.GetEnvironmentVariable("CW_SLOT_AB") is { Length: > 0 } ab)
            {
                double[] loads = ab.Split(',').Select(x => double.Parse(x, CultureInfo.InvariantCulture)).ToArray();
                double keep = TupleIndex.SlotLoad;
                var idxs = loads.Select(l => { TupleIndex.SlotLoad = l; return TupleIndex.Build(0, flats); }).ToArray();
                TupleIndex.SlotLoad = keep;
                var res = loads.Select(_ => new List<double>()).ToArray();
                for (int rep = 0; rep < 5; rep++)
                {
                    for (int v = 0; v < idxs.Length; v++)
                    {
                        c.Restart();
                        for (int i = 0; i < skbs.Length; i++)
                        {
                            if (FlowKey.TryRead(skbs[i].Packet, out FlowKey k)) sum += idxs[v].FirstMatch(k, 0);
                        }
                        res[v].Add(skbs.Length / c.CpuSeconds / 1e6);
                    }
                }
                Log($"{set}: key read + index by slot load: " + string.Join(", ", loads.Select((l, v) => $"{l}: {Median(res[v]):F2} Mpps ({idxs[v].Bytes / 1024} KiB, {idxs[v].Layout})")));
            }
            var empty = Restore("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n").Find("filter")!;
            // RunTable of FORWARD over the first `count` packets, `reps` times: Mpps per CPU-second.
            double RunMpps(Table table, int reps, int count)
            {
                c.Restart();
                for (int rep = 0; rep < reps; rep++)
                {
                    for (int i = 0; i < count; i++)
                    {
                        ctx.Skb = skbs[i];
                        fast.RunTable(ctx, table, Hook.Forward);
                    }
                }
                return (double)reps * count / c.CpuSeconds / 1e6;
            }
            double emptyMpps = RunMpps(empty, 3, skbs.Length);
            double full = RunMpps(filter, 3, skbs.Length);
            double hotFull = RunMpps(filter, 300, 1000);
            double hotEmpty = RunMpps(empty, 300, 1000);
            Log($"{set}: 1000 packets repeated: RunTable compiled {hotFull:F2} Mpps, empty chain {hotEmpty:F2} Mpps");
            Log($"{set}: groups {index.Runs.Sum(r => r.GroupCount)}, build {CompiledBuild(rules):F3} s, index only {idx:F2} Mpps, RunTable of an empty chain {emptyMpps:F2} Mpps, RunTable compiled {full:F2} Mpps ({sum})");
        }
        return 0;
    }

    /// <summary>Diagnostics: one set's index alone over its trace keys, 20 times (the engine's or, with --old, the old layout).</summary>
    /// <summary>
    /// <c>--only keyloop --set S [--rounds N]</c>: the key path (<see cref="CompiledRules.ClassifyKeys"/>, counters and
    /// verdicts) of one ClassBench set over its trace's keys (the first 200k), one pass per round, printed as
    /// "round N: X Mpps" (thread CPU) for bench/inproc_ab.sh. Lengths are the headers' IP lengths without payload.
    /// </summary>
    private static int KeyLoop(string corpus, string set, int rounds, int batchAb)
    {
        string archive = set.EndsWith("100k", StringComparison.Ordinal) ? "classbench-100k.tgz" : "classbench-1k-10k.tgz";
        Dictionary<string, string> files = ClassBench.ReadArchive(Path.Combine(corpus, "classbench", archive));
        string file = set.EndsWith("100k", StringComparison.Ordinal) ? set.Replace("_100k", "", StringComparison.Ordinal) : set;
        file = files.Keys.First(k => k.StartsWith(file.Split('_')[0] + "_", StringComparison.Ordinal) && !k.EndsWith("_trace", StringComparison.Ordinal) && (set.EndsWith("100k", StringComparison.Ordinal) || k.EndsWith("_10k", StringComparison.Ordinal)));
        Ruleset rules = Restore(ClassBench.Convert(files[file]).Restore);
        CompiledRules compiled = CompiledRules.Build(rules);
        Chain forward = rules.Find("filter")!.Find("FORWARD")!;
        TraceHeader[] trace = ClassBench.ReadTrace(files[file + "_trace"], 200_000);
        var keys = trace.Select(h => new FlowKey(h.Source, h.Destination, h.Protocol, h.Protocol is 6 or 17 ? h.SourcePort : (ushort)0, h.Protocol is 6 or 17 ? h.DestinationPort : (ushort)0)).ToArray();
        var lengths = trace.Select(h => (ushort)(h.Protocol == 6 ? 40 : 28)).ToArray();
        var verdicts = new VerdictKind[keys.Length];
        // --batch-ab N: the default choice and batches of N in turn, each round (diagnostics; the ratio per round pair).
        if (batchAb > 0)
        {
            var ratios = new List<double>();
            for (int round = 0; round < rounds; round++)
            {
                double[] t = new double[2];
                for (int m = 0; m < 2; m++)
                {
                    int side = (m + round) % 2;
                    var c = new Clock();
                    compiled.ClassifyKeys(forward, keys, lengths, verdicts, side == 0 ? 0 : batchAb);
                    t[side] = c.CpuSeconds;
                }
                if (round > 0) ratios.Add(t[0] / t[1]);
                Log($"round {round}: default {keys.Length / t[0] / 1e6:F3} Mpps, batch {batchAb} {keys.Length / t[1] / 1e6:F3} Mpps");
            }
            ratios.Sort();
            Log($"batch {batchAb} / default per round: median {Median(ratios):F3}, quartiles {ratios[ratios.Count / 4]:F3} {ratios[3 * ratios.Count / 4]:F3}");
            return 0;
        }
        for (int round = 0; round < rounds; round++)
        {
            var c = new Clock();
            if (!compiled.ClassifyKeys(forward, keys, lengths, verdicts)) throw new InvalidOperationException("FORWARD is not decided by the index alone");
            Log($"round {round}: {keys.Length / c.CpuSeconds / 1e6:F3} Mpps");
        }
        return 0;
    }

    private static int IndexLoop(string corpus, string set, bool old, string[] args)
    {
        string archive = set.EndsWith("100k", StringComparison.Ordinal) ? "classbench-100k.tgz" : "classbench-1k-10k.tgz";
        Dictionary<string, string> files = ClassBench.ReadArchive(Path.Combine(corpus, "classbench", archive));
        string file = set.EndsWith("100k", StringComparison.Ordinal) ? set.Replace("_100k", "", StringComparison.Ordinal) : set;
        file = files.Keys.First(k => k.StartsWith(file.Split('_')[0] + "_", StringComparison.Ordinal) && !k.EndsWith("_trace", StringComparison.Ordinal) && (set.EndsWith("100k", StringComparison.Ordinal) || k.EndsWith("_10k", StringComparison.Ordinal)));
        Ruleset rules = Restore(ClassBench.Convert(files[file]).Restore);
        var flats = new List<FlatRule>();
        foreach (Rule r in rules.Find("filter")!.Find("FORWARD")!.Rules)
        {
            if (!ChainIndex.TryFlatten(r, out FlatRule f)) break;
            flats.Add(f);
        }
        TraceHeader[] trace = ClassBench.ReadTrace(files[file + "_trace"], 200_000);
        var keys = trace.Select(h => new FlowKey(h.Source, h.Destination, h.Protocol, h.Protocol is 6 or 17 ? h.SourcePort : (ushort)0, h.Protocol is 6 or 17 ? h.DestinationPort : (ushort)0)).ToArray();
        // --hot N: the first N keys repeated to the trace's length (the index's lines hot in the cache).
        if (Arg(args, "--hot") is { } hot)
        {
            int h = int.Parse(hot, CultureInfo.InvariantCulture);
            keys = Enumerable.Range(0, keys.Length).Select(i => keys[i % h]).ToArray();
        }
        // --sort: the keys in address order (diagnostics: the index's lines reused by neighbouring keys).
        if (Flag(args, "--sort")) keys = keys.OrderBy(k => k.Destination).ThenBy(k => k.Source).ToArray();
        // --old x: session 3's first layout (TupleIndexV1); --old v2: the index at the start of session 4 (filter bit,
        // linear probing), timed in turn with the engine's in the same process.
        string? which = Arg(args, "--old");
        var buildClock = new Clock();
        var v2 = TupleIndex.Build(0, flats);
        double buildCpu = buildClock.CpuSeconds;
        if (Flag(args, "--stats"))
        {
            Log($"build {buildCpu:F3} s (thread CPU), layout {v2.Layout}");
            foreach (var (classes, limit) in TupleIndex.Layouts)
            {
                buildClock.Restart();
                TupleIndex.BuildWith(0, flats, classes, limit);
                Log($"  BuildWith {string.Join(",", classes)}/{limit}: {buildClock.CpuSeconds:F3} s");
            }
            Log(v2.Describe(keys));
        }
        if (which == "v2")
        {
            var prev = Baseline.TupleIndexV2.Build(0, flats);
            var oldTimes = new List<double>();
            var newTimes = new List<double>();
            long s1 = 0, s2 = 0;
            for (int rep = 0; rep < 11; rep++)
            {
                for (int m = 0; m < 2; m++)
                {
                    var cl = new Clock();
                    if ((m + rep) % 2 == 0)
                    {
                        for (int i = 0; i < keys.Length; i++) s1 += prev.FirstMatch(keys[i], 0);
                        if (rep > 0) oldTimes.Add(cl.CpuSeconds);
                    }
                    else
                    {
                        for (int i = 0; i < keys.Length; i++) s2 += v2.FirstMatch(keys[i], 0);
                        if (rep > 0) newTimes.Add(cl.CpuSeconds);
                    }
                }
            }
            Log($"{set}: old (session 4 start, {prev.Layout}) {keys.Length / Median(oldTimes) / 1e6:F2} Mpps, new ({v2.Layout}) {keys.Length / Median(newTimes) / 1e6:F2} Mpps, same answers: {s1 == s2}");
            return 0;
        }
        var v1 = Baseline.TupleIndexV1.Build(0, flats);
        long sum = 0;
        var c = new Clock();
        for (int rep = 0; rep < 20; rep++)
        {
            if (old)
            {
                for (int i = 0; i < keys.Length; i++) sum += v1.FirstMatch(keys[i], 0);
            }
            else
            {
                for (int i = 0; i < keys.Length; i++) sum += v2.FirstMatch(keys[i], 0);
            }
        }
        Log($"{set} {(old ? "old" : "new " + v2.Layout)}: {20.0 * keys.Length / c.CpuSeconds / 1e6:F2} Mpps ({sum})");
        return 0;
    }

    private static double CompiledBuild(Ruleset rules)
    {
        var c = new Clock();
        CompiledRules.Build(rules);
        return c.CpuSeconds;
    }

    // ------------------------------------------------------------------ one-rule updates

    /// <summary>
    /// Rounds of each one-rule edit timed (one edit each, its median reported). An edit is a few µs, so rounds cost
    /// nothing next to the 100k-rule load; with 5 in --quick the median of single µs-long timings moved by 2× between
    /// runs (an -I at the end 4–11 µs on the same commit), so quick takes enough to be steady too.
    /// </summary>
    private const int UpdateRoundsQuick = 31, UpdateRounds = 61;

    private static JsonObject Updates(string rulesFile)
    {
        Ruleset rules = Restore(File.ReadAllText(rulesFile));
        CompiledRules compiled = CompiledRules.Build(rules);
        Chain forward = rules.Find("filter")!.Find("FORWARD")!;
        // The compiled form is told of each edit by the editor (Chain.EditListener); detached here, so that the edit
        // and the compiled update are timed apart (each edit below is followed by the update the listener would make).
        forward.EditListener = null;
        int n = forward.Rules.Count;
        var parser = new CommandLineParser(IpFamily.V4, "iptables");
        string[] spec = ["-s", "198.51.100.7/32", "-d", "203.0.113.9/32", "-p", "tcp", "--dport", "443", "-j", "DROP"];
        string[] other = ["-s", "198.51.100.8/32", "-d", "203.0.113.9/32", "-p", "tcp", "--dport", "443", "-j", "DROP"];
        // Compile the code of every command below first (the harness runs without tiering: a method's first call
        // compiles it), on a small rule set of its own, so that delete_first_us is the search and not the compiler.
        {
            var warm = Restore("*filter\n:FORWARD ACCEPT [0:0]\n" + string.Concat(Enumerable.Range(0, 100).Select(i => $"-A FORWARD -s 10.0.{i}.1/32 -j ACCEPT\n")) + "COMMIT\n");
            for (int i = 0; i < 3; i++)
            {
                new CommandExecutor(warm).Execute(parser.Parse(["iptables", "-A", "FORWARD", .. spec]));
                new CommandExecutor(warm).Execute(parser.Parse(["iptables", "-R", "FORWARD", "101", .. other]));
                new CommandExecutor(warm).Execute(parser.Parse(["iptables", "-R", "FORWARD", "101", .. spec]));
                new CommandExecutor(warm).Execute(parser.Parse(["iptables", "-D", "FORWARD", .. spec]));
                new CommandExecutor(warm).Execute(parser.Parse(["iptables", "-I", "FORWARD", "101", .. spec]));
                new CommandExecutor(warm).Execute(parser.Parse(["iptables", "-D", "FORWARD", "101"]));
            }
        }
        var appendEdit = new List<double>();
        var deleteEdit = new List<double>();
        var appendAll = new List<double>();
        var deleteAll = new List<double>();
        var insertEdit = new List<double>();
        var insertAll = new List<double>();
        var replaceEdit = new List<double>();
        double firstDelete = 0;
        for (int rep = 0; rep < (_quick ? UpdateRoundsQuick : UpdateRounds); rep++)
        {
            var sw = new Clock();
            new CommandExecutor(rules).Execute(parser.Parse(["iptables", "-A", "FORWARD", .. spec]));
            double edit = sw.CpuSeconds;
            compiled.Appended(forward);
            double all = sw.CpuSeconds;
            appendEdit.Add(edit);
            appendAll.Add(all);
            // -R of that last rule by number (the compiled form has no in-place replace: edit only), then back.
            string last = forward.Rules.Count.ToString(CultureInfo.InvariantCulture);
            sw.Restart();
            new CommandExecutor(rules).Execute(parser.Parse(["iptables", "-R", "FORWARD", last, .. other]));
            replaceEdit.Add(sw.CpuSeconds);
            compiled.Replaced(forward, forward.Rules.Count - 1);
            new CommandExecutor(rules).Execute(parser.Parse(["iptables", "-R", "FORWARD", last, .. spec]));
            compiled.Replaced(forward, forward.Rules.Count - 1);
            // Where the rule -D will remove is (the one just appended); the command finds it the same way.
            int position = forward.Rules.Count - 1;
            sw.Restart();
            new CommandExecutor(rules).Execute(parser.Parse(["iptables", "-D", "FORWARD", .. spec]));
            edit = sw.CpuSeconds;
            compiled.Deleted(forward, position);
            all = sw.CpuSeconds;
            // The first -D by rule builds the chain's index (RuleFinder) once; the others use it.
            if (rep == 0) firstDelete = all;
            else
            {
                deleteEdit.Add(edit);
                deleteAll.Add(all);
            }
            // -I at the end position (an insert the compiled form takes as an append).
            string end = (forward.Rules.Count + 1).ToString(CultureInfo.InvariantCulture);
            sw.Restart();
            new CommandExecutor(rules).Execute(parser.Parse(["iptables", "-I", "FORWARD", end, .. spec]));
            edit = sw.CpuSeconds;
            compiled.Appended(forward);
            all = sw.CpuSeconds;
            insertEdit.Add(edit);
            insertAll.Add(all);
            new CommandExecutor(rules).Execute(parser.Parse(["iptables", "-D", "FORWARD", end]));
            compiled.Deleted(forward, forward.Rules.Count);
        }
        if (forward.Rules.Count != n) throw new InvalidOperationException("-A/-D did not restore the rule count");
        // -I, -R, -D in the middle of the chain (inside its one indexed run): the compiled form is updated as an
        // overlay (CompiledRules.Inserted / Replaced / Deleted), no rebuild; before session 3 round two these recompiled.
        var midInsert = new List<double>();
        var midInsertEdit = new List<double>();
        var midReplace = new List<double>();
        var midReplaceEdit = new List<double>();
        var midDelete = new List<double>();
        var midDeleteEdit = new List<double>();
        int mid = n / 2;
        string midText = mid.ToString(CultureInfo.InvariantCulture);
        for (int rep = 0; rep < (_quick ? UpdateRoundsQuick : UpdateRounds); rep++)
        {
            // -I a new rule at the middle, -R one of the loaded (indexed) rules after it, -D the next loaded one: the
            // rule count is back to n, and the overlay grows by two new rules and two dead ones per round.
            string replaceAt = (mid + 10 + 3 * rep).ToString(CultureInfo.InvariantCulture);
            string deleteAt = (mid + 11 + 3 * rep).ToString(CultureInfo.InvariantCulture);
            // Rules of addresses no other rule has (a rule with the same addresses and protocol as one already in the
            // chain costs RulesetEditor's RuleFinder a scan of the chain, ~2 ms at 100k: not the compiled form's cost).
            string[] ins = ["-s", $"198.51.{100 + rep}.7/32", "-d", "203.0.113.9/32", "-p", "tcp", "--dport", "443", "-j", "DROP"];
            string[] rep2 = ["-s", $"198.51.{100 + rep}.8/32", "-d", "203.0.113.9/32", "-p", "tcp", "--dport", "443", "-j", "DROP"];
            var sw = new Clock();
            new CommandExecutor(rules).Execute(parser.Parse(["iptables", "-I", "FORWARD", midText, .. ins]));
            double edit = sw.CpuSeconds;
            compiled.Inserted(forward, mid - 1);
            midInsert.Add(sw.CpuSeconds);
            midInsertEdit.Add(edit);
            sw.Restart();
            new CommandExecutor(rules).Execute(parser.Parse(["iptables", "-R", "FORWARD", replaceAt, .. rep2]));
            edit = sw.CpuSeconds;
            compiled.Replaced(forward, mid + 9 + 3 * rep);
            midReplace.Add(sw.CpuSeconds);
            midReplaceEdit.Add(edit);
            sw.Restart();
            new CommandExecutor(rules).Execute(parser.Parse(["iptables", "-D", "FORWARD", deleteAt]));
            edit = sw.CpuSeconds;
            compiled.Deleted(forward, mid + 10 + 3 * rep);
            midDelete.Add(sw.CpuSeconds);
            midDeleteEdit.Add(edit);
        }
        if (forward.Rules.Count != n || compiled.For(forward) is null) throw new InvalidOperationException("-I/-R/-D in the middle lost the compiled chain");
        ChainIndex overlaid = compiled.For(forward)!;
        int pendingNew = overlaid.PendingNew, pendingDead = overlaid.PendingDead;
        // -I at a random position of the chain, then -D of it by number: each edit far from the one before (the chain's
        // rule store moves the rules between its free slots and the edit: about a third of the chain on average).
        var randomInsert = new List<double>();
        var randomDelete = new List<double>();
        var positions = new Random(6);
        for (int rep = 0; rep < (_quick ? UpdateRoundsQuick : UpdateRounds); rep++)
        {
            int at = positions.Next(1, n + 1);
            string atText = at.ToString(CultureInfo.InvariantCulture);
            string[] ins = ["-s", $"198.51.{100 + rep}.9/32", "-d", "203.0.113.9/32", "-p", "tcp", "--dport", "443", "-j", "DROP"];
            var sw = new Clock();
            new CommandExecutor(rules).Execute(parser.Parse(["iptables", "-I", "FORWARD", atText, .. ins]));
            compiled.Inserted(forward, at - 1);
            randomInsert.Add(sw.CpuSeconds);
            sw.Restart();
            new CommandExecutor(rules).Execute(parser.Parse(["iptables", "-D", "FORWARD", atText]));
            compiled.Deleted(forward, at - 1);
            randomDelete.Add(sw.CpuSeconds);
        }
        if (forward.Rules.Count != n) throw new InvalidOperationException("-I/-D at random positions did not restore the rule count");
        return new JsonObject
        {
            ["rules"] = n,
            ["append"] = R(Median(appendAll) * 1e6, 1),
            ["delete"] = R(Median(deleteAll) * 1e6, 1),
            ["insert"] = R(Median(insertAll) * 1e6, 1),
            ["append_edit_only"] = R(Median(appendEdit) * 1e6, 1),
            ["delete_edit_only"] = R(Median(deleteEdit) * 1e6, 1),
            ["insert_edit_only"] = R(Median(insertEdit) * 1e6, 1),
            ["replace_edit_only"] = R(Median(replaceEdit) * 1e6, 1),
            ["delete_first_us"] = R(firstDelete * 1e6, 1),
            ["append_compiled_only"] = R(Median(appendAll.Zip(appendEdit, (a, e) => a - e).ToList()) * 1e6, 2),
            ["delete_compiled_only"] = R(Median(deleteAll.Zip(deleteEdit, (a, e) => a - e).ToList()) * 1e6, 2),
            ["insert_middle"] = R(Median(midInsert) * 1e6, 1),
            ["replace_middle"] = R(Median(midReplace) * 1e6, 1),
            ["delete_middle"] = R(Median(midDelete) * 1e6, 1),
            ["insert_middle_edit_only"] = R(Median(midInsertEdit) * 1e6, 1),
            ["replace_middle_edit_only"] = R(Median(midReplaceEdit) * 1e6, 1),
            ["delete_middle_edit_only"] = R(Median(midDeleteEdit) * 1e6, 1),
            ["insert_middle_compiled_only"] = R(Median(midInsert.Zip(midInsertEdit, (a, e) => a - e).ToList()) * 1e6, 2),
            ["replace_middle_compiled_only"] = R(Median(midReplace.Zip(midReplaceEdit, (a, e) => a - e).ToList()) * 1e6, 2),
            ["delete_middle_compiled_only"] = R(Median(midDelete.Zip(midDeleteEdit, (a, e) => a - e).ToList()) * 1e6, 2),
            ["insert_random"] = R(Median(randomInsert) * 1e6, 1),
            ["delete_random"] = R(Median(randomDelete) * 1e6, 1),
            ["overlay_pending_new"] = pendingNew,
            ["overlay_pending_dead"] = pendingDead,
            ["rebuild_after_new"] = CompiledRules.RebuildAfterNew,
            ["rebuild_after_dead"] = CompiledRules.RebuildAfterDead,
            ["recompile_us"] = R(Recompile(compiled, forward) * 1e6, 1),
            ["note"] = "in process, thread CPU, median: parse the command, edit the rule set (RulesetEditor: only the touched rules are checked when the table was checked whole before and no jump is involved; -D by rule through the chain's RuleFinder), update the compiled form incrementally (CompiledRules.Appended / Inserted / Replaced / Deleted: an overlay on the kept index, dead rules skipped, new ones walked where they stand); -I at the end position; *_middle = -I / -R / -D at the chain's middle position (inside the indexed run), each near the one before; insert_random / delete_random = -I at a random position, then -D of it by number (each far from the edit before); *_edit_only without the compiled update, *_compiled_only the compiled update alone; replace_edit_only = -R of the last rule; overlay_pending_* = new / dead rules in the overlay after the measured edits (the chain is rebuilt past rebuild_after_*); delete_first_us = the first -D by rule on the chain (a linear search comparing addresses and protocol before formatting; the second builds the chain's RuleFinder index, which the later ones use; the median is over all but the first); recompile_us = rebuilding the chain's index instead",
        };
    }

    private static double Recompile(CompiledRules compiled, Chain chain)
    {
        var times = new List<double>();
        for (int rep = 0; rep < 3; rep++)
        {
            var c = new Clock();
            compiled.Recompile(chain);
            times.Add(c.CpuSeconds);
        }
        return Median(times);
    }

    // ------------------------------------------------------------------ kube-proxy shapes

    private static VirtualHost ForwardingHost()
    {
        string dir = Path.Combine(Path.GetTempPath(), "cw-bench-host-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            var store = new HostStore(dir);
            var io = new ToolIo { In = TextReader.Null, Out = TextWriter.Null, Err = new StringWriter() };
            string[] commands =
            [
                "ip link add eth0 type dummy", "ip link set eth0 up", "ip addr add 10.0.0.1/24 dev eth0", "ip route add default via 10.0.0.254",
                "ip link add eth1 type dummy", "ip link set eth1 up", "ip addr add 192.168.0.1/16 dev eth1", "sysctl -w net.ipv4.ip_forward=1",
            ];
            // CW_CT_BUCKETS (or a file ct-buckets beside this harness's assembly, for bench/inproc_ab.sh's per-build A/B): the
            // host's nf_conntrack_buckets, for tries of the conntrack hash's size (session 11, ctslot).
            string? buckets = Environment.GetEnvironmentVariable("CW_CT_BUCKETS");
            string bucketsFile = Path.Combine(Path.GetDirectoryName(typeof(SpeedHarness).Assembly.Location) ?? ".", "ct-buckets");
            if (buckets is null && File.Exists(bucketsFile)) buckets = File.ReadAllText(bucketsFile).Trim();
            if (buckets is { Length: > 0 }) commands = [.. commands, "sysctl -w net.netfilter.nf_conntrack_buckets=" + buckets];
            foreach (string c in commands)
            {
                string[] argv = c.Split(' ');
                int rc = argv[0] == "sysctl" ? SysctlCompat.Run(argv, store, io) : IpCompat.Run(argv, store, io);
                if (rc != 0) throw new InvalidOperationException(c + ": " + io.Err);
            }
            return store.Load();
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static JsonObject Kube(int services)
    {
        var (text, svcs, ruleCount) = KubeProxyRules.Generate(services, seed: services);
        // The nat walk alone (new_nat_walk_mpps) runs RunTable without conntrack, where DNAT has no connection to bind:
        // its rules ACCEPT instead, which ends the walk as DNAT does. The pipeline figures use the rules as generated.
        string walkable = System.Text.RegularExpressions.Regex.Replace(text, "-j DNAT --to-destination [^ \\n]+", "-j ACCEPT");
        // The memory figures are the set as generated (kube-proxy's DNAT targets, each with its NAT range); the walkable
        // set's rule objects are reported beside (ruleset_bytes_per_rule_walkable).
        WarmKubeRestore();
        var (real, realBytes) = Measure(() => Restore(text));
        var (realForm, realCompiledHeap) = Measure(() => CompiledRules.Build(real));
        long realCompiledBytes = realForm.Bytes;
        GC.KeepAlive(realForm);
        var sw = new Clock();
        var (rules, rulesetBytes) = Measure(() => Restore(walkable));
        double load = sw.CpuSeconds;
        sw.Restart();
        CompiledRules compiled = CompiledRules.Build(rules);
        double build = sw.CpuSeconds;
        Table nat = rules.Find("nat")!;
        var host = VirtualHost.CreateFresh();
        host.V4 = rules;
        var fast = new Netfilter(host) { Compiled = compiled };
        var slow = new Netfilter(host);
        var rnd = new Random(services);
        int count = _quick ? 200_000 : 1_000_000;
        var skbs = new Skb[count];
        for (int i = 0; i < count; i++)
        {
            KubeProxyRules.Service s = svcs[rnd.Next(svcs.Length)];
            skbs[i] = new Skb(Packet.Parse(PacketBuilder.Ipv4(0xC0A80000u + (uint)rnd.Next(2, 60000), s.ClusterIp).Tcp((ushort)rnd.Next(1024, 65535), s.Port).Build())) { InDev = "eth1" };
        }
        double Walk(Netfilter nf, int n)
        {
            var ctx = new PacketContext(nf, skbs[0]) { Hook = Hook.Prerouting };
            var t = new Clock();
            for (int i = 0; i < n; i++)
            {
                ctx.Skb = skbs[i];
                nf.RunTable(ctx, nat, Hook.Prerouting);
            }
            return n / t.CpuSeconds / 1e6;
        }
        Walk(fast, Math.Min(count, 50_000));
        var natFast = new List<double>();
        for (int rep = 0; rep < (_quick ? 1 : 3); rep++) natFast.Add(Walk(fast, count));
        int linearN = Math.Min(count, services >= 10000 ? 3000 : 20000);
        double natSlow = Walk(slow, linearN);

        // The whole pipeline (nf.Process) on a forwarding host: parse, routing, conntrack, nat (DNAT in PREROUTING
        // through KUBE-SERVICES → KUBE-SVC → KUBE-SEP, MASQUERADE in POSTROUTING), filter FORWARD, confirmation.
        PipelineFigures withNat = Pipeline(text, svcs, services);
        // The same without the nat table (the figure before NAT was merged).
        PipelineFigures noNat = Pipeline(StripNat(text), svcs, services);
        return new JsonObject
        {
            ["rules"] = ruleCount,
            ["load_s"] = R(load),
            ["build_s"] = R(build, 4),
            ["new_mpps"] = R(withNat.NewMpps),
            ["new_burst_mpps"] = withNat.NewBurstMpps is double nb ? R(nb) : null,
            ["new_fate"] = withNat.NewFate,
            ["new_forwarded"] = withNat.NewForwarded,
            ["new_alloc_bytes_per_packet"] = R(withNat.NewAlloc, 1),
            ["new_gc"] = withNat.NewGc,
            ["new_nat_walk_mpps"] = R(Median(natFast)),
            ["new_nat_walk_linear_mpps"] = R(natSlow, 4),
            ["new_pipeline_no_nat_mpps"] = R(noNat.NewMpps),
            ["new_pipeline_no_nat_gc"] = noNat.NewGc,
            ["established_mpps"] = R(withNat.EstablishedMpps),
            ["established_fate"] = withNat.EstablishedFate,
            ["established_alloc_bytes_per_packet"] = R(withNat.EstablishedAlloc, 1),
            ["established_gc"] = withNat.EstablishedGc,
            ["established_no_nat_mpps"] = R(noNat.EstablishedMpps),
            ["established_burst_mpps"] = withNat.EstablishedBurstMpps is double eb ? R(eb) : null,
            ["established_burst_no_nat_mpps"] = noNat.EstablishedBurstMpps is double ebn ? R(ebn) : null,
            ["reply_mpps"] = R(withNat.ReplyMpps),
            ["reply_fate"] = withNat.ReplyFate,
            ["reply_gc"] = withNat.ReplyGc,
            ["flows"] = withNat.Flows,
            ["bytes_per_rule"] = R((double)realCompiledBytes / ruleCount, 1),
            ["compiled_heap_bytes_per_rule"] = R((double)realCompiledHeap / ruleCount, 1),
            ["ruleset_bytes_per_rule"] = R((double)realBytes / ruleCount, 1),
            ["bytes_per_rule_walkable"] = R((double)compiled.Bytes / ruleCount, 1),
            ["ruleset_bytes_per_rule_walkable"] = R((double)rulesetBytes / ruleCount, 1),
        };
    }

    /// <summary>Diagnostics: the types allocated while processing new, reply and established packets of the kube pipeline.</summary>
    private static int ProfilePipeline(int services)
    {
        var (text, svcs, _) = KubeProxyRules.Generate(services, seed: services);
        using var prof = new AllocationProfile();
        _profile = prof;
        PipelineFigures f = Pipeline(text, svcs, services);
        _profile = null;
        Log($"new {f.NewMpps:F3} Mpps {f.NewAlloc:F0} B/packet, established {f.EstablishedMpps:F3} Mpps {f.EstablishedAlloc:F0} B/packet, reply {f.ReplyMpps:F3}");
        foreach (var (type, bytes) in prof.Top(40)) Log($"{bytes / 1e6,10:F1} MB  {type}");
        return 0;
    }

    private static AllocationProfile? _profile;

    /// <summary>
    /// Diagnostics: the kube pipeline's established packets (clients' ACKs) timed whole (Process into a reused result)
    /// and in parts on the same connections: the filter table's FORWARD walk alone (RunTable), the conntrack lookup
    /// alone (Track at PREROUTING); ns per packet, thread CPU time, best of 5.
    /// </summary>
    /// <summary>
    /// <c>established-parts --rounds N</c>'s set-up (the pipeline, its connections, the inputs and the result), kept for the
    /// next call with the same arguments: bench/inproc_ab.sh calls each build's harness in turn, so every call after the
    /// first times its rounds at once, and the two builds alternate every few rounds instead of every set-up.
    /// </summary>
    private static (string Args, Netfilter Pipe, PacketInput[] Inputs, PacketResult Reused, int Rounds, PacketResult[] Burst)? _roundsKept;

    /// <summary>
    /// <c>--burst 1</c>: the rounds go through the burst entry point (<see cref="BurstSize"/> at a time) instead of packet by
    /// packet; <c>--burst ab</c>: even rounds packet by packet, odd rounds a burst at a time (the two entry points of one
    /// build interleaved in one process). Anything else: packet by packet.
    /// </summary>
    private static string _burstMode = "";

    /// <summary>Whether round <paramref name="round"/> goes a burst at a time (<see cref="_burstMode"/>; never without the entry point).</summary>
    private static bool BurstRound(int round) => BurstInto is not null && (_burstMode == "1" || (_burstMode == "ab" && round % 2 == 1));

    private static int EstablishedRounds(Netfilter pipe, PacketInput[] ackIn, PacketResult reused, int rounds, int first, PacketResult[] burstResults)
    {
        int flows = ackIn.Length;
        int passes = Math.Max(1, 200_000 / flows);
        for (int round = first; round < first + rounds; round++)
        {
            bool burst = BurstRound(round);
            var c = new Clock();
            for (int pass = 0; pass < passes; pass++)
            {
                if (burst) BurstAll(pipe, ackIn, burstResults);
                else for (int f = 0; f < flows; f++) ProcessInto(pipe, ackIn[f], reused);
            }
            Log($"round {round}: {(double)flows * passes / c.CpuSeconds / 1e6:F3} Mpps, fate {FateOf(burst ? burstResults[0] : reused)}{(burst ? ", burst" : "")}");
        }
        return 0;
    }

    private static int EstablishedParts(int services, string[] args)
    {
        string argsKey = string.Join(" ", args);
        if (Arg(args, "--rounds") is { } again && _roundsKept is { } kept && kept.Args == argsKey)
        {
            int n = int.Parse(again, CultureInfo.InvariantCulture);
            _roundsKept = kept with { Rounds = kept.Rounds + n };
            return EstablishedRounds(kept.Pipe, kept.Inputs, kept.Reused, n, kept.Rounds, kept.Burst);
        }
        var (text, svcs, _) = KubeProxyRules.Generate(services, seed: services);
        VirtualHost fwd = ForwardingHost();
        fwd.V4 = Restore(text);
        var ct = new ConntrackHooks();
        var pipe = new Netfilter(fwd) { Compiled = CompiledRules.Build(fwd.V4), Conntrack = ct };
        int flows = Arg(args, "--flows") is { } fl ? int.Parse(fl, CultureInfo.InvariantCulture) : 20_000;
        var rnd = new Random(services + 1);
        var ackIn = new PacketInput[flows];
        var reused = new PacketResult();
        // The burst's results beside the reused one, made before the set-up (so that its collections age them alike).
        PacketResult[] burstResults = NewBurstResults();
        var conns = new ConnEntry[flows];
        for (int f = 0; f < flows; f++)
        {
            KubeProxyRules.Service s = svcs[rnd.Next(svcs.Length)];
            PacketResult r = pipe.Process(ClientPacket(s, f, TcpFlags.Syn, seq: 1000));
            conns[f] = (ConnEntry)r.Connection!;
            ConnTuple t = conns[f].Reply;
            pipe.Process(new PacketInput { Bytes = PacketBuilder.Ipv4((uint)t.Source, (uint)t.Destination).Tcp(t.SourcePort, t.DestinationPort, TcpFlags.Syn | TcpFlags.Ack, seq: 5000, ack: 1001).Build(), InInterface = "eth0" });
            ackIn[f] = ClientPacket(s, f, TcpFlags.Ack, seq: 1001, ack: 5001);
        }
        double Best(Func<double> run)
        {
            double best = double.MaxValue;
            int reps = int.TryParse(Environment.GetEnvironmentVariable("CW_PARTS_REPS"), out int r) ? r : 6;
            for (int rep = 0; rep < reps; rep++)
            {
                double ns = run();
                if (rep > 0) best = Math.Min(best, ns);
            }
            return best;
        }
        if (Arg(args, "--rounds") is { } roundsArg)
        {
            // Rounds of the per-packet pass alone ("round N: X Mpps", for bench/inproc_ab.sh and perf): the same packets
            // each round, thread CPU time per round; the parts below are not timed. The set-up is kept for the next call.
            int rounds = int.Parse(roundsArg, CultureInfo.InvariantCulture);
            _roundsKept = (argsKey, pipe, ackIn, reused, rounds, burstResults);
            return EstablishedRounds(pipe, ackIn, reused, rounds, 0, burstResults);
        }
        double whole = double.MaxValue, burst = double.MaxValue;
        {
            // Per packet and a burst at a time, timed in turn (the same packets, the same repetitions).
            int reps = int.TryParse(Environment.GetEnvironmentVariable("CW_PARTS_REPS"), out int r) ? r : 6;
            for (int rep = 0; rep < reps; rep++)
            {
                var c = new Clock();
                for (int f = 0; f < flows; f++) ProcessInto(pipe, ackIn[f], reused);
                double ns = c.CpuSeconds / flows * 1e9;
                if (rep > 0) whole = Math.Min(whole, ns);
                if (BurstInto is null) continue;
                c = new Clock();
                BurstAll(pipe, ackIn, burstResults);
                ns = c.CpuSeconds / flows * 1e9;
                if (rep > 0) burst = Math.Min(burst, ns);
            }
        }
        // The packets as FORWARD sees them (after DNAT, TTL decremented), tracked as ESTABLISHED.
        var skbs = new Skb[flows];
        for (int f = 0; f < flows; f++)
        {
            ConnTuple t = conns[f].Reply;
            skbs[f] = new Skb(Packet.Parse(PacketBuilder.Ipv4((uint)conns[f].Original.Source, (uint)t.Source).Ttl(63).Tcp(conns[f].Original.SourcePort, t.SourcePort, TcpFlags.Ack, seq: 1001, ack: 5001).Build()))
            {
                InDev = "eth1", OutDev = "eth0", Conntrack = conns[f], CtInfo = CtInfo.Established,
            };
        }
        Table filter = fwd.V4.Find("filter")!;
        var ctx = new PacketContext(pipe, skbs[0]) { Hook = Hook.Forward };
        string? verdict = null;
        double walk = Best(() =>
        {
            var c = new Clock();
            for (int f = 0; f < flows; f++)
            {
                ctx.Skb = skbs[f];
                verdict ??= pipe.RunTable(ctx, filter, Hook.Forward).ToString();
                pipe.RunTable(ctx, filter, Hook.Forward);
            }
            return c.CpuSeconds / flows / 2 * 1e9;
        });
        var inSkbs = new Skb[flows];
        for (int f = 0; f < flows; f++) inSkbs[f] = new Skb(Packet.Parse(ackIn[f].Bytes)) { InDev = "eth1" };
        var tctx = new PacketContext(pipe, inSkbs[0]) { Hook = Hook.Prerouting };
        double track = Best(() =>
        {
            var c = new Clock();
            for (int f = 0; f < flows; f++)
            {
                Skb k = inSkbs[f];
                k.Conntrack = null;
                k.CtInfo = CtInfo.None;
                tctx.Skb = k;
                ct.Track(tctx);
            }
            return c.CpuSeconds / flows * 1e9;
        });
        // What the rules side holds per flow: distinct flow states and one-pass plans among the connections (shared
        // objects touch the same cache lines packet after packet; one per flow would be a miss per packet).
        if (Environment.GetEnvironmentVariable("CW_PARTS_SHARING") == "1")
        {
            var states = new HashSet<object>(ReferenceEqualityComparer.Instance);
            var plans = new HashSet<object>(ReferenceEqualityComparer.Instance);
            foreach (ConnEntry e in conns)
            {
                if (e.Flow is { } fs)
                {
                    states.Add(fs);
                    if (fs.OriginalPlan is { } op) plans.Add(op);
                }
            }
            Log($"flow states {states.Count}, original plans {plans.Count} among {flows} connections");
        }
        Log($"established, {services} services, {flows} flows: Process {whole:F0} ns/packet ({1e3 / whole:F3} Mpps); burst {(BurstInto is null ? "-" : burst.ToString("F0", CultureInfo.InvariantCulture))} ns; filter FORWARD walk {walk:F0} ns ({verdict}); conntrack Track {track:F0} ns");
        return 0;
    }

    /// <summary>
    /// Diagnostics (for perf and quick experiments): the new-connection phase of the kube pipeline repeated, each round
    /// with an empty conntrack table, so the profile is the SYN path's and not the set-up's. Prints Mpps per round.
    /// </summary>
    /// <summary>
    /// The new-connection phase alone, <paramref name="rounds"/> rounds of the same SYNs. Each round after the first starts
    /// with the table flushed (conntrack -F): what a node in its steady state has, a table at its nf_conntrack_buckets size
    /// and the entries of ended connections (a pooling tree reuses them); round 0 starts cold. <paramref name="fresh"/>
    /// (--fresh 1): a new, empty table every round instead (sessions 4-6: the hash grows and every entry is new each round).
    /// </summary>
    private static int NewLoop(int services, int rounds, bool noNat, bool fresh, bool reply = false)
    {
        var (text, svcs, _) = KubeProxyRules.Generate(services, seed: services);
        VirtualHost fwd = ForwardingHost();
        fwd.V4 = Restore(noNat ? StripNat(text) : text);
        var pipe = new Netfilter(fwd) { Compiled = CompiledRules.Build(fwd.V4), Conntrack = new ConntrackHooks() };
        int flows = _quick ? 20_000 : 100_000;
        var synIn = new PacketInput[flows];
        var rnd = new Random(services + 1);
        for (int f = 0; f < flows; f++)
        {
            KubeProxyRules.Service s = svcs[rnd.Next(svcs.Length)];
            synIn[f] = ClientPacket(s, f, TcpFlags.Syn, seq: 1000);
        }
        var reused = new PacketResult();
        PacketResult[] burstResults = NewBurstResults();
        string? fate = null;
        // CW_FLAT_AB=1: rounds alternate the flat walk on and off (Netfilter.FlatWalk, found by reflection so that this
        // harness still builds against a tree without it): old and new walk interleaved in one process.
        System.Reflection.PropertyInfo? flatWalk = Environment.GetEnvironmentVariable("CW_FLAT_AB") == "1" ? typeof(Netfilter).GetProperty("FlatWalk") : null;
        // CW_AB=Namespace.Type:Field: a static bool of the library set on even rounds, cleared on odd ones (an old and a new
        // way of one step interleaved in one process, where the library has such a switch).
        System.Reflection.FieldInfo? ab = Environment.GetEnvironmentVariable("CW_AB") is { Length: > 0 } abName && abName.Split(':') is [var abType, var abField]
            ? typeof(Netfilter).Assembly.GetType(abType)?.GetField(abField, System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic)
            : null;
        for (int round = 0; round < rounds; round++)
        {
            ab?.SetValue(null, round % 2 == 0);
            if (fresh || pipe.Conntrack is not ConntrackHooks hooks) pipe.Conntrack = new ConntrackHooks();
            else hooks.Table.Clear();
            flatWalk?.SetValue(pipe, round % 2 == 0);
            if (flatWalk is not null) FullCollection();
            long a0 = GC.GetAllocatedBytesForCurrentThread();
            int g0 = GC.CollectionCount(0), g1 = GC.CollectionCount(1), g2 = GC.CollectionCount(2);
            PacketInput[]? timed = null;
            if (reply)
            {
                // --reply: the SYNs untimed, then each connection's SYN-ACK (the server's reply: un-SNAT at PREROUTING,
                // un-DNAT at POSTROUTING) timed, in the SYNs' order (the replies' bytes made outside the window).
                timed = new PacketInput[flows];
                for (int f = 0; f < flows; f++)
                {
                    var ct = (ConnEntry)ProcessInto(pipe, synIn[f], reused).Connection!;
                    ConnTuple t = ct.Reply;
                    timed[f] = new PacketInput { Bytes = PacketBuilder.Ipv4((uint)t.Source, (uint)t.Destination).Tcp(t.SourcePort, t.DestinationPort, TcpFlags.Syn | TcpFlags.Ack, seq: 5000, ack: 1001).Build(), InInterface = "eth0" };
                }
                FullCollection();
                a0 = GC.GetAllocatedBytesForCurrentThread();
                (g0, g1, g2) = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));
            }
            bool burst = BurstRound(round);
            var sw = new Clock();
            if (burst)
            {
                BurstAll(pipe, timed ?? synIn, burstResults);
                fate ??= FateOf(burstResults[0]);
            }
            else
            {
                for (int f = 0; f < flows; f++)
                {
                    PacketResult res = ProcessInto(pipe, timed is null ? synIn[f] : timed[f], reused);
                    fate ??= FateOf(res);
                }
            }
            double s = sw.CpuSeconds;
            Log($"round {round}: {flows / s / 1e6:F3} Mpps{(burst ? " (burst)" : "")}, {(double)(GC.GetAllocatedBytesForCurrentThread() - a0) / flows:F0} B/packet, gc {GC.CollectionCount(0) - g0}/{GC.CollectionCount(1) - g1}/{GC.CollectionCount(2) - g2}, fate {fate}{(flatWalk is null ? "" : round % 2 == 0 ? ", flat walk" : ", index walk")}{(ab is null ? "" : round % 2 == 0 ? ", ab old" : ", ab new")}");
        }
        return 0;
    }

    private static string _profilePhase = Environment.GetEnvironmentVariable("CW_PROFILE_PHASE") ?? "established";

    /// <summary>
    /// A blocking, compacting collection of everything before a timed phase: the garbage of what came before (the set-up's
    /// restore text, an earlier pipeline's rule set, hundreds of MB at 30k services) is not collected inside the window
    /// (20k flows take ~0.1 s; a collection of that heap takes longer). The collections inside a window are reported
    /// beside its figure (gen0/gen1/gen2 counts).
    /// </summary>
    private static void FullCollection()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
    }

    /// <summary>The rule set without its nat table (the pipeline as it was before NAT).</summary>
    private static string StripNat(string text)
    {
        int a = text.IndexOf("*nat\n", StringComparison.Ordinal);
        if (a < 0) return text;
        int b = text.IndexOf("COMMIT\n", a, StringComparison.Ordinal);
        return text[..a] + text[(b + "COMMIT\n".Length)..];
    }

    private sealed record PipelineFigures(int Flows, double NewMpps, string? NewFate, int NewForwarded, double NewAlloc,
        double EstablishedMpps, string? EstablishedFate, double EstablishedAlloc, double ReplyMpps, string? ReplyFate, string NewGc, string ReplyGc, string EstablishedGc)
    {
        /// <summary>The established packets a burst at a time (null: the library has no burst entry point).</summary>
        public double? EstablishedBurstMpps { get; init; }

        /// <summary>The SYNs a burst at a time, after a flush (null: the library has no burst entry point).</summary>
        public double? NewBurstMpps { get; init; }
    }

    /// <summary>Packets per burst (DPDK's usual rx burst; CW_BURST_SIZE to try others).</summary>
    private static readonly int BurstSize = int.TryParse(Environment.GetEnvironmentVariable("CW_BURST_SIZE"), out int bs) && bs > 0 ? bs : 32;

    private delegate void BurstFn(Netfilter nf, ReadOnlySpan<PacketInput> inputs, ReadOnlySpan<PacketResult> results);

    /// <summary>Netfilter.Process over a span of inputs, where the library has it (else null: an older base commit; CW_NO_BURST=1: not timed).</summary>
    private static readonly BurstFn? BurstInto = Environment.GetEnvironmentVariable("CW_NO_BURST") == "1" ? null :
        typeof(Netfilter).GetMethod(nameof(Netfilter.Process), [typeof(ReadOnlySpan<PacketInput>), typeof(ReadOnlySpan<PacketResult>)]) is { } bm
            ? bm.CreateDelegate<BurstFn>()
            : null;

    private static PacketResult[] NewBurstResults()
    {
        var r = new PacketResult[BurstSize];
        for (int i = 0; i < r.Length; i++) r[i] = new PacketResult();
        return r;
    }

    /// <summary>Every input, <see cref="BurstSize"/> at a time, through the burst entry point.</summary>
    private static void BurstAll(Netfilter nf, PacketInput[] inputs, PacketResult[] results)
    {
        for (int at = 0; at < inputs.Length; at += BurstSize)
        {
            int n = Math.Min(BurstSize, inputs.Length - at);
            BurstInto!(nf, inputs.AsSpan(at, n), results.AsSpan(0, n));
        }
    }

    /// <summary>
    /// Every timed path once before the timing starts, on flows of their own (clients 192.168.224.x): each connection's SYN,
    /// the server's SYN-ACK and the client's ACK one packet at a time (the entry point the timed loops use), then the same
    /// three a burst at a time. The harness runs with tiered compilation off, so a method is compiled (fully optimised, a
    /// fraction of a millisecond to milliseconds each) on its first call. Until session 13 the warm-up sent SYNs only, through
    /// another entry point: the methods only a SYN-ACK reaches were compiled inside the timed SYN-ACK window, and those of
    /// the reused-result entry and of a burst of SYNs inside theirs (kube 1k: new 0.79 against 0.93–0.99 Mpps with this
    /// warm-up, SYN-ACKs 1.49–1.53 against 2.11–2.22, in the same runs). The caller flushes the table afterwards.
    /// </summary>
    private static void WarmEveryPath(Netfilter pipe, KubeProxyRules.Service[] svcs)
    {
        const int Flows = 2048;
        var result = new PacketResult();
        PacketResult[] results = NewBurstResults();
        for (int half = 0; half < 2; half++)
        {
            var syn = new PacketInput[Flows];
            var ack = new PacketInput[Flows];
            for (int f = 0; f < Flows; f++)
            {
                KubeProxyRules.Service s = svcs[f % svcs.Length];
                uint client = 0xC0A8E000u + (uint)half;
                syn[f] = new PacketInput { Bytes = PacketBuilder.Ipv4(client, s.ClusterIp).Tcp((ushort)(2000 + f), s.Port, TcpFlags.Syn, seq: 1000).Build(), InInterface = "eth1" };
                ack[f] = new PacketInput { Bytes = PacketBuilder.Ipv4(client, s.ClusterIp).Tcp((ushort)(2000 + f), s.Port, TcpFlags.Ack, seq: 1001, ack: 5001).Build(), InInterface = "eth1" };
            }
            bool burst = half == 1 && BurstInto is not null;
            var synAck = new List<PacketInput>(Flows);
            if (burst) BurstAll(pipe, syn, results);
            else foreach (PacketInput p in syn) ProcessInto(pipe, p, result);
            foreach (PacketInput p in syn)
            {
                // The connection each SYN made, found again by sending the SYN once more (a retransmission).
                if (ProcessInto(pipe, p, result).Connection is not ConnEntry e) continue;
                ConnTuple r = e.Reply;
                synAck.Add(new PacketInput { Bytes = PacketBuilder.Ipv4((uint)r.Source, (uint)r.Destination).Tcp(r.SourcePort, r.DestinationPort, TcpFlags.Syn | TcpFlags.Ack, seq: 5000, ack: 1001).Build(), InInterface = "eth0" });
            }
            if (burst)
            {
                BurstAll(pipe, synAck.ToArray(), results);
                BurstAll(pipe, ack, results);
            }
            else
            {
                foreach (PacketInput p in synAck) ProcessInto(pipe, p, result);
                foreach (PacketInput p in ack) ProcessInto(pipe, p, result);
            }
        }
    }

    private static string FateOf(PacketResult r) => string.Join(",", r.Fate) + (r.DropReason is { } why ? " (" + why + ")" : "") + (r.Error is { } e ? " [" + e + "]" : "");

    /// <summary>
    /// New connections to random services (each flow's SYN), then the servers' SYN-ACKs (replies: un-SNAT, un-DNAT),
    /// then the clients' ACKs (established: conntrack hit, the binding applied, filter FORWARD): nf.Process per packet,
    /// packets per thread CPU-second, managed bytes allocated per packet.
    /// </summary>
    /// <summary>
    /// Netfilter.Process into a result the caller reuses (what a replay does), where the library has that overload;
    /// else Process (an older base commit measured by this harness).
    /// </summary>
    private static readonly Func<Netfilter, PacketInput, PacketResult, PacketResult> ProcessInto =
        typeof(Netfilter).GetMethod(nameof(Netfilter.Process), [typeof(PacketInput), typeof(PacketResult)]) is { } m
            ? m.CreateDelegate<Func<Netfilter, PacketInput, PacketResult, PacketResult>>()
            : (nf, p, _) => nf.Process(p);

    private static PipelineFigures Pipeline(string rulesText, KubeProxyRules.Service[] svcs, int services)
    {
        VirtualHost fwd = ForwardingHost();
        fwd.V4 = Restore(rulesText);
        var ct = new ConntrackHooks();
        var pipe = new Netfilter(fwd) { Compiled = CompiledRules.Build(fwd.V4), Conntrack = ct };
        int flows = _quick ? 20_000 : 100_000;
        var synIn = new PacketInput[flows];
        var ackIn = new PacketInput[flows];
        var rnd = new Random(services + 1);
        for (int f = 0; f < flows; f++)
        {
            KubeProxyRules.Service s = svcs[rnd.Next(svcs.Length)];
            synIn[f] = ClientPacket(s, f, TcpFlags.Syn, seq: 1000);
            ackIn[f] = ClientPacket(s, f, TcpFlags.Ack, seq: 1001, ack: 5001);
        }
        // Warm-up on other flows (JIT, caches), not counted: as many connections as the timed phase makes, then a flush
        // (conntrack -F). The timed SYNs then meet what a node in its steady state has: a conntrack table at its
        // nf_conntrack_buckets size (a node's is allocated at start; ours takes that size past a small start) and the
        // entries of ended connections (a tree that pools them reuses them). Until session 6 the warm-up was 2,000 SYNs and
        // no flush: the hash grew to its full size inside the timed window and every entry was new.
        bool warm = Environment.GetEnvironmentVariable("CW_NO_WARMUP") != "1";
        if (warm && Environment.GetEnvironmentVariable("CW_NO_PATH_WARMUP") != "1") WarmEveryPath(pipe, svcs);
        for (int f = 0; f < (warm ? flows : 0); f++)
        {
            KubeProxyRules.Service s = svcs[f % svcs.Length];
            pipe.Process(new PacketInput { Bytes = PacketBuilder.Ipv4(0xC0A8F000u + (uint)(f / 30000), s.ClusterIp).Tcp((ushort)(2000 + f % 30000), s.Port, TcpFlags.Syn, seq: 1).Build(), InInterface = "eth1" });
        }
        ct.Table.Clear();
        var conns = new object?[flows];
        var reused = new PacketResult();
        FullCollection();
        int g0 = GC.CollectionCount(0), g1 = GC.CollectionCount(1), g2 = GC.CollectionCount(2);
        if (_profilePhase == "new") _profile?.Start();
        var sw = new Clock();
        long a0 = GC.GetAllocatedBytesForCurrentThread();
        int forwarded = 0;
        string? newFate = null;
        for (int f = 0; f < flows; f++)
        {
            PacketResult res = ProcessInto(pipe, synIn[f], reused);
            if (res.Fate.Count > 0 && res.Fate[0].StartsWith("forwarded", StringComparison.Ordinal)) forwarded++;
            newFate ??= FateOf(res);
            conns[f] = res.Connection;
        }
        double newS = sw.CpuSeconds;
        string newGc = $"{GC.CollectionCount(0) - g0}/{GC.CollectionCount(1) - g1}/{GC.CollectionCount(2) - g2}";
        if (_profilePhase == "new") _profile?.Stop();
        double newAlloc = (double)(GC.GetAllocatedBytesForCurrentThread() - a0) / flows;
        double newMpps = flows / newS / 1e6;
        // The servers' answers: from each connection's reply tuple (after DNAT and MASQUERADE), in on eth0.
        var synAckIn = new PacketInput?[flows];
        for (int f = 0; f < flows; f++)
        {
            if (conns[f] is not ConnEntry e) continue;
            ConnTuple r = e.Reply;
            synAckIn[f] = new PacketInput { Bytes = PacketBuilder.Ipv4((uint)r.Source, (uint)r.Destination).Tcp(r.SourcePort, r.DestinationPort, TcpFlags.Syn | TcpFlags.Ack, seq: 5000, ack: 1001).Build(), InInterface = "eth0" };
        }

        FullCollection();
        int r0 = GC.CollectionCount(0), r1 = GC.CollectionCount(1), r2 = GC.CollectionCount(2);
        sw.Restart();
        string? replyFate = null;
        int replies = 0;
        foreach (PacketInput? p in synAckIn)
        {
            if (p is null) continue;
            replies++;
            PacketResult res = ProcessInto(pipe, p, reused);
            replyFate ??= FateOf(res);
        }
        double replyMpps = replies / sw.CpuSeconds / 1e6;
        string replyGc = $"{GC.CollectionCount(0) - r0}/{GC.CollectionCount(1) - r1}/{GC.CollectionCount(2) - r2}";
        var est = new List<double>();
        var estBurst = new List<double>();
        PacketResult[] burstResults = NewBurstResults();
        string? fate = null;
        double estAlloc = 0;
        FullCollection();
        int e0c = GC.CollectionCount(0), e1c = GC.CollectionCount(1), e2c = GC.CollectionCount(2);
        if (_profilePhase != "new") _profile?.Start();
        for (int rep = 0; rep < (_profile is not null && _profilePhase == "established-long" ? (int.TryParse(Environment.GetEnvironmentVariable("CW_PROFILE_REPS"), out int reps) ? reps : 30) : _quick ? 8 : 12); rep++)
        {
            long e0 = GC.GetAllocatedBytesForCurrentThread();
            sw.Restart();
            foreach (PacketInput p in ackIn)
            {
                PacketResult res = ProcessInto(pipe, p, reused);
                fate ??= FateOf(res);
            }
            double s = sw.CpuSeconds;
            estAlloc = (double)(GC.GetAllocatedBytesForCurrentThread() - e0) / flows;
            if (rep > 0) est.Add(flows / s / 1e6);
            // The same packets a burst at a time (Netfilter.Process over a span), timed in the same repetitions.
            if (BurstInto is not null)
            {
                sw.Restart();
                BurstAll(pipe, ackIn, burstResults);
                double bs = sw.CpuSeconds;
                if (rep > 0) estBurst.Add(flows / bs / 1e6);
            }
        }
        _profile?.Stop();
        if (Environment.GetEnvironmentVariable("CW_PARTS_SHARING") == "1")
        {
            var states = new HashSet<object>(ReferenceEqualityComparer.Instance);
            var plans = new HashSet<object>(ReferenceEqualityComparer.Instance);
            int withFlow = 0;
            foreach (object? o in conns)
            {
                if (o is ConnEntry { Flow: { } fs })
                {
                    withFlow++;
                    states.Add(fs);
                    if (fs.OriginalPlan is { } op) plans.Add(op);
                }
            }
            Log($"pipeline {services}: one pass {pipe.OnePassPackets} packets; flow states {states.Count}, original plans {plans.Count} among {withFlow} connections with one");
        }
        string estGc = $"{GC.CollectionCount(0) - e0c}/{GC.CollectionCount(1) - e1c}/{GC.CollectionCount(2) - e2c}";
        // The same SYNs again a burst at a time, after a flush (conntrack -F), as the per-packet SYNs met the table: last,
        // so nothing measured before sees their connections.
        double? newBurstMpps = null;
        if (BurstInto is not null)
        {
            ct.Table.Clear();
            FullCollection();
            sw.Restart();
            BurstAll(pipe, synIn, burstResults);
            newBurstMpps = flows / sw.CpuSeconds / 1e6;
        }
        return new PipelineFigures(flows, newMpps, newFate, forwarded, newAlloc, Median(est), fate, estAlloc, replyMpps, replyFate, newGc, replyGc, estGc)
        {
            EstablishedBurstMpps = estBurst.Count == 0 ? null : Median(estBurst),
            NewBurstMpps = newBurstMpps,
        };
    }

    // ------------------------------------------------------------------ conntrack

    private static JsonObject ConntrackMemory()
    {
        VirtualHost fwd = ForwardingHost();
        fwd.V4 = Restore("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT\nCOMMIT\n");
        var ct = new ConntrackHooks();
        var nf = new Netfilter(fwd) { Conntrack = ct };
        int flows = _quick ? 50_000 : 200_000;
        var inputs = new PacketInput[flows];
        for (int f = 0; f < flows; f++)
        {
            inputs[f] = new PacketInput
            {
                Bytes = PacketBuilder.Ipv4(0xC0A80000u + (uint)(2 + f / 60000), 0x08080808).Tcp((ushort)(1024 + f % 60000), 443).Build(),
                InInterface = "eth1",
            };
        }
        // Then each connection's handshake and two data segments each way: established packets, which make the flow path's
        // memos (Engine/FlowPath.cs: a direction's second established packet), held by the entries from then on.
        var later = new PacketInput[flows * 6];
        for (int f = 0; f < flows; f++)
        {
            uint client = 0xC0A80000u + (uint)(2 + f / 60000);
            ushort port = (ushort)(1024 + f % 60000);
            PacketInput C(TcpFlags flags, uint seq, uint ack, int len) => new()
            {
                Bytes = PacketBuilder.Ipv4(client, 0x08080808).Tcp(port, 443, flags, seq: seq, ack: ack).PayloadLength(len).Build(),
                InInterface = "eth1",
            };
            PacketInput S(TcpFlags flags, uint seq, uint ack, int len) => new()
            {
                Bytes = PacketBuilder.Ipv4(0x08080808, client).Tcp(443, port, flags, seq: seq, ack: ack).PayloadLength(len).Build(),
                InInterface = "eth0",
            };
            later[f * 6] = S(TcpFlags.Syn | TcpFlags.Ack, 5000, 1, 0);
            later[f * 6 + 1] = C(TcpFlags.Ack, 1, 5001, 0);
            later[f * 6 + 2] = C(TcpFlags.Ack | TcpFlags.Psh, 1, 5001, 100);
            later[f * 6 + 3] = S(TcpFlags.Ack | TcpFlags.Psh, 5001, 101, 100);
            later[f * 6 + 4] = C(TcpFlags.Ack, 101, 5101, 0);
            later[f * 6 + 5] = S(TcpFlags.Ack, 5101, 101, 0);
        }
        long before = GC.GetTotalMemory(true);
        foreach (PacketInput p in inputs) nf.Process(p);
        long after = GC.GetTotalMemory(true);
        int entries = ct.Table.List(nf.State.Now).Count();
        foreach (PacketInput p in later) nf.Process(p);
        long afterEstablished = GC.GetTotalMemory(true);
        int established = ct.Table.Entries.Cast<ConnEntry>().Count(e => e.TcpState == TcpCtState.Established);
        GC.KeepAlive(inputs);
        GC.KeepAlive(later);
        return new JsonObject
        {
            ["entries"] = entries,
            ["bytes_per_entry"] = entries == 0 ? null : R((double)(after - before) / entries, 1),
            ["established_entries"] = established,
            ["bytes_per_established_entry"] = established == 0 ? null : R((double)(afterEstablished - before) / entries, 1),
            ["note"] = "managed heap growth while the entries were created by SYNs (entries, TCP state, the table's share), divided by the entries; "
                + "bytes_per_established_entry: the same after each connection's handshake and two data segments each way (TCP ESTABLISHED, the flow path's memos made)",
        };
    }
}
