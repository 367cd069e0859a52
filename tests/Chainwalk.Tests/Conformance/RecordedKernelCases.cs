using System.Globalization;
using System.Text;
using System.Text.Json;
using Chainwalk.Compat;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Chainwalk.Tests.Conformance;

/// <summary>
/// Kernel conformance: random filter + mangle rule sets and packets recorded from the real kernel
/// (tests/conformance/record.py, Linux 6.x, iptables 1.8.9 nft) replayed through <see cref="Netfilter"/>.
/// Each packet's fate, the packets that left the host and every counter (as <c>iptables-save -c</c> text)
/// must agree. A case whose packet reaches an extension the engine cannot evaluate yet is skipped, not
/// failed; differences Chainwalk makes on purpose are listed in tests/conformance/known-differences.md.
/// </summary>
/// <remarks>
/// Fields ignored on purpose when comparing outputs:
/// <list type="bullet">
/// <item>the IPv4 identification of packets the host generates (REJECT replies, ICMP errors: all outputs on
/// eth0, since every sender lives behind eth0): the kernel draws it from ip_idents (net/ipv4/route.c,
/// ip_select_ident), randomly seeded per boot; the header checksum covers it, so it is ignored too.</item>
/// </list>
/// The recorder's fate <c>rejected:?</c> (two REJECT rules with different --reject-with moved, e.g. the
/// reply hit another REJECT rule in OUTPUT) agrees with any <c>rejected:</c> fate.
/// </remarks>
public sealed class RecordedKernelCases(ITestOutputHelper output)
{
    /// <summary>Where the cases are: CHAINWALK_CONFORMANCE_DIR (a live recording) or the committed ones.</summary>
    public static string CaseDirectory =>
        Environment.GetEnvironmentVariable("CHAINWALK_CONFORMANCE_DIR") is { Length: > 0 } d
            ? d
            : Path.Combine(TestPaths.RepoRoot, "tests", "conformance", "recorded");

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (string f in CaseFiles()) data.Add(Path.GetFileNameWithoutExtension(f));
        return data;
    }

    private static IEnumerable<string> CaseFiles() =>
        Directory.Exists(CaseDirectory)
            ? Directory.GetFiles(CaseDirectory, "case-*.json").Order(StringComparer.Ordinal)
            : [];

    /// <summary>The areas a packet is compared in.</summary>
    public static readonly string[] Areas = ["fate", "outputs", "counters", "save-text"];

    public enum CaseStatus
    {
        Agrees,
        Disagrees,
        Known,
        Skipped,
    }

    public sealed record PacketOutcome(int Index, Dictionary<string, string?> Differences);

    public sealed class CaseOutcome
    {
        public required string Name { get; init; }

        /// <summary>The packets the engine could not evaluate (an extension throws NotEvaluatedException): number and extension.</summary>
        public List<(int Packet, string Extension)> Skips { get; } = new();

        /// <summary>The first extension a packet of this case could not be evaluated in, or null.</summary>
        public string? SkippedFor => Skips.Count == 0 ? null : Skips[0].Extension;

        /// <summary>Packets compared (all but the skipped ones).</summary>
        public int Compared { get; set; }

        public List<PacketOutcome> Packets { get; } = new();

        /// <summary>No compared packet differs in any area.</summary>
        public bool NoDifference => Packets.All(p => p.Differences.Count == 0);

        /// <summary>Every packet was compared and agrees.</summary>
        public bool Agrees => Skips.Count == 0 && NoDifference;

        public CaseStatus Status => !NoDifference ? (KnownReason is null ? CaseStatus.Disagrees : CaseStatus.Known) : Skips.Count > 0 ? CaseStatus.Skipped : CaseStatus.Agrees;

        public string? KnownReason { get; set; }

        public List<string> Extensions { get; } = new();
    }

    private static readonly Lazy<Dictionary<string, CaseOutcome>> All = new(() =>
    {
        var d = new Dictionary<string, CaseOutcome>(StringComparer.Ordinal);
        Dictionary<string, string> known = KnownDifferences();
        foreach (string f in CaseFiles())
        {
            CaseOutcome o = Run(f);
            if (known.TryGetValue(o.Name, out string? why)) o.KnownReason = why;
            d[o.Name] = o;
        }
        WriteSummary(d.Values);
        return d;
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Kernel_case_agrees(string name)
    {
        CaseOutcome o = All.Value[name];
        string report = Describe(o);
        output.WriteLine(report);
        foreach (var g in o.Skips.GroupBy(s => s.Extension))
            output.WriteLine($"skipped: extension {g.Key} not evaluated yet (packets {string.Join(",", g.Select(s => s.Packet))})");
        if (o.Status == CaseStatus.Known) output.WriteLine("known difference: " + o.KnownReason);
        // Real disagreements fail, also in packets compared beside skipped ones.
        if (o.Status == CaseStatus.Disagrees) Assert.Fail(report);
    }

    [Fact]
    public void Summary_of_agreement_per_area()
    {
        string text = Summary(All.Value.Values);
        output.WriteLine(text);
        // The figures are real only when cases exist.
        Assert.NotEmpty(All.Value);
    }

    [Fact]
    public void Known_differences_name_existing_cases()
    {
        // An entry for a case that no longer disagrees is stale and must go.
        foreach ((string name, _) in KnownDifferences())
        {
            if (All.Value.TryGetValue(name, out CaseOutcome? o) && o.Skips.Count == 0)
                Assert.False(o.NoDifference, $"{name} agrees now: remove it from known-differences.md");
        }
    }

    // ------------------------------------------------------------------ replay

    private static CaseOutcome Run(string file)
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(file));
        JsonElement root = doc.RootElement;
        var outcome = new CaseOutcome { Name = Path.GetFileNameWithoutExtension(file) };
        string rules = root.GetProperty("rules").GetString()!;
        outcome.Extensions.AddRange(ExtensionsIn(rules));
        VirtualHost host = BuildHost(root.GetProperty("host").EnumerateArray().Select(e => e.GetString()!).ToArray());
        host.V4 = new RestoreReader(IpFamily.V4, "iptables-restore").Apply(new Ruleset(IpFamily.V4), rules, new RestoreOptions { Counters = true });
        var nf = new Netfilter(host);
        int index = 0;
        foreach (JsonElement p in root.GetProperty("packets").EnumerateArray())
        {
            index++;
            string kernelSave = p.GetProperty("counters").GetString()!;
            PacketResult result;
            try
            {
                result = nf.Process(new PacketInput
                {
                    Bytes = Convert.FromHexString(p.GetProperty("hex").GetString()!),
                    InInterface = p.GetProperty("in").GetString(),
                    SourceMac = Mac(p.GetProperty("sourceMac").GetString()!),
                    DestinationMac = Mac(p.GetProperty("destinationMac").GetString()!),
                });
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // An engine crash is a disagreement of this packet; the rest of the case goes on from the kernel's counters.
                outcome.Compared++;
                outcome.Packets.Add(new PacketOutcome(index, new Dictionary<string, string?>(StringComparer.Ordinal) { ["fate"] = "engine threw " + ex.GetType().Name + ": " + ex.Message }));
                host.V4 = new RestoreReader(IpFamily.V4, "iptables-restore").Apply(new Ruleset(IpFamily.V4), kernelSave, new RestoreOptions { Counters = true });
                continue;
            }
            if (result.Fate is ["error"])
            {
                // The engine stopped inside an extension it cannot evaluate yet: the packet is skipped, and
                // the counters are taken over from the kernel's save text so the following packets compare
                // from the same state (no other state survives a packet: no conntrack, marks are per packet).
                string ext = NotEvaluatedName(result.Error);
                outcome.Skips.Add((index, ext));
                host.V4 = new RestoreReader(IpFamily.V4, "iptables-restore").Apply(new Ruleset(IpFamily.V4), kernelSave, new RestoreOptions { Counters = true });
                continue;
            }
            outcome.Compared++;
            var diff = new Dictionary<string, string?>(StringComparer.Ordinal);
            string wantFate = p.GetProperty("fate").GetString()!;
            string gotFate = string.Join(",", result.Fate);
            if (!FateAgrees(wantFate, gotFate)) diff["fate"] = $"kernel {wantFate}, chainwalk {gotFate}" + (result.DropReason is { } dr ? $" ({dr})" : "");

            List<string> want = p.GetProperty("outputs").EnumerateArray()
                .Select(o => Output(o.GetProperty("interface").GetString()!, Convert.FromHexString(o.GetProperty("hex").GetString()!)))
                .Order(StringComparer.Ordinal).ToList();
            List<string> got = result.Outputs.Select(o => Output(o.Interface, o.Bytes)).Order(StringComparer.Ordinal).ToList();
            if (!want.SequenceEqual(got))
                diff["outputs"] = $"kernel [{string.Join(" ", want)}]\n      chainwalk [{string.Join(" ", got)}]";

            string ourSave = SaveWriter.Write(host.V4, counters: true);
            CompareSave(kernelSave, ourSave, diff);
            // A counter difference would repeat in every later packet: take the kernel's counters over, so each
            // packet reports only its own difference.
            if (diff.ContainsKey("counters"))
                host.V4 = new RestoreReader(IpFamily.V4, "iptables-restore").Apply(new Ruleset(IpFamily.V4), kernelSave, new RestoreOptions { Counters = true });
            outcome.Packets.Add(new PacketOutcome(index, diff));
        }
        return outcome;
    }

    private static bool FateAgrees(string kernel, string ours) =>
        kernel == ours || (kernel == "rejected:?" && ours.StartsWith("rejected:", StringComparison.Ordinal));

    /// <summary>"chainwalk: the X extension cannot be evaluated on packets" → X.</summary>
    private static string NotEvaluatedName(string? error)
    {
        const string Head = "chainwalk: the ";
        if (error is not null && error.StartsWith(Head, StringComparison.Ordinal))
        {
            int end = error.IndexOf(" extension", StringComparison.Ordinal);
            if (end > Head.Length) return error[Head.Length..end];
        }
        return error ?? "?";
    }

    /// <summary>An output as compared: interface and hex; generated packets (eth0) with IP ID and header checksum zeroed.</summary>
    private static string Output(string iface, byte[] bytes)
    {
        byte[] b = (byte[])bytes.Clone();
        if (iface == "eth0" && b.Length >= 20)
        {
            b[4] = b[5] = 0;
            b[10] = b[11] = 0;
        }
        return iface + ":" + Convert.ToHexString(b).ToLowerInvariant();
    }

    private static ulong Mac(string text) => ulong.Parse(text.Replace(":", "", StringComparison.Ordinal), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private static VirtualHost BuildHost(string[] commands)
    {
        string dir = Directory.CreateTempSubdirectory("cw-conf-").FullName;
        try
        {
            var store = new HostStore(dir);
            foreach (string line in commands)
            {
                string[] argv = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var text = new StringWriter();
                var io = new ToolIo { In = TextReader.Null, Out = text, Err = text };
                int rc = argv[0] == "sysctl" ? SysctlCompat.Run(argv, store, io) : IpCompat.Run(argv, store, io);
                if (rc != 0) throw new InvalidOperationException($"{line}: {text}");
            }
            return store.LoadNetwork();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // ------------------------------------------------------------------ save text

    /// <summary>Table name → (line without counters, counters) for the lines of the given tables; '#' lines dropped.</summary>
    private static Dictionary<string, List<(string Line, string Counters)>> ParseSave(string text)
    {
        var tables = new Dictionary<string, List<(string, string)>>(StringComparer.Ordinal);
        List<(string, string)>? cur = null;
        foreach (string raw in text.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.Length == 0 || line[0] == '#') continue;
            if (line[0] == '*')
            {
                cur = new List<(string, string)>();
                tables[line[1..]] = cur;
                continue;
            }
            if (cur is null) continue;
            if (line[0] == '[')
            {
                int close = line.IndexOf(']', StringComparison.Ordinal);
                cur.Add((line[(close + 1)..].TrimStart(), line[..(close + 1)]));
            }
            else if (line[0] == ':' && line.LastIndexOf('[') is int open and > 0)
            {
                cur.Add((line[..open].TrimEnd(), line[open..]));
            }
            else
            {
                cur.Add((line, ""));
            }
        }
        return tables;
    }

    private static void CompareSave(string kernel, string ours, Dictionary<string, string?> diff)
    {
        var k = ParseSave(kernel);
        var o = ParseSave(ours);
        var counters = new StringBuilder();
        var text = new StringBuilder();
        foreach (string table in new[] { "mangle", "filter" })
        {
            List<(string Line, string Counters)> kl = k.GetValueOrDefault(table) ?? [];
            List<(string Line, string Counters)> ol = o.GetValueOrDefault(table) ?? [];
            if (kl.Count != ol.Count)
            {
                text.Append(CultureInfo.InvariantCulture, $"\n      {table}: kernel {kl.Count} lines, chainwalk {ol.Count}");
                continue;
            }
            for (int i = 0; i < kl.Count; i++)
            {
                if (kl[i].Counters != ol[i].Counters)
                    counters.Append(CultureInfo.InvariantCulture, $"\n      {table} {kl[i].Line}: kernel {kl[i].Counters}, chainwalk {ol[i].Counters}");
                if (kl[i].Line != ol[i].Line)
                    text.Append(CultureInfo.InvariantCulture, $"\n      {table}: kernel \"{kl[i].Line}\", chainwalk \"{ol[i].Line}\"");
            }
        }
        if (counters.Length > 0) diff["counters"] = counters.ToString();
        if (text.Length > 0) diff["save-text"] = text.ToString();
    }

    /// <summary>The match and target extensions a rule set uses (-m NAME, -j NAME, -p NAME for the protocol matches).</summary>
    private static IEnumerable<string> ExtensionsIn(string rules)
    {
        var set = new SortedSet<string>(StringComparer.Ordinal);
        foreach (string line in rules.Split('\n'))
        {
            if (!line.StartsWith("-A ", StringComparison.Ordinal)) continue;
            string[] w = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            for (int i = 0; i + 1 < w.Length; i++)
            {
                if (w[i] == "-m") set.Add(w[i + 1]);
                else if (w[i] == "-p") set.Add(w[i + 1]);
                else if (w[i] == "-j" && w[i + 1] is not ("ACCEPT" or "DROP" or "RETURN") && !IsUserChain(w[i + 1])) set.Add(w[i + 1]);
            }
        }
        return set;
    }

    private static bool IsUserChain(string name) => name.Length >= 2 && (name[0] is 'F' or 'M') && name[1..].All(char.IsAsciiDigit);

    // ------------------------------------------------------------------ known differences and the summary

    /// <summary>Lines "- case-SSSS-NNNN: reason" of tests/conformance/known-differences.md.</summary>
    private static Dictionary<string, string> KnownDifferences()
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        string path = Path.Combine(TestPaths.RepoRoot, "tests", "conformance", "known-differences.md");
        if (!File.Exists(path)) return d;
        foreach (string line in File.ReadAllLines(path))
        {
            if (!line.StartsWith("- case-", StringComparison.Ordinal)) continue;
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0) continue;
            d[line[2..colon].Trim()] = line[(colon + 1)..].Trim();
        }
        return d;
    }

    private static string Describe(CaseOutcome o)
    {
        var sb = new StringBuilder();
        string status = o.Status switch
        {
            CaseStatus.Agrees => "agrees",
            CaseStatus.Disagrees => "DISAGREES",
            CaseStatus.Known => "differs (known)",
            _ => "no difference in the packets compared, some skipped",
        };
        sb.Append(CultureInfo.InvariantCulture, $"{o.Name}: {status} ({o.Compared} packets compared, {o.Skips.Count} skipped; uses {string.Join(" ", o.Extensions)})");
        foreach (PacketOutcome p in o.Packets.Where(p => p.Differences.Count > 0))
        {
            foreach ((string area, string? what) in p.Differences)
                sb.Append(CultureInfo.InvariantCulture, $"\n  packet {p.Index} {area}: {what}");
        }
        return sb.ToString();
    }

    public static string Summary(IEnumerable<CaseOutcome> outcomes)
    {
        List<CaseOutcome> all = outcomes.ToList();
        var sb = new StringBuilder();
        int agree = all.Count(o => o.Status == CaseStatus.Agrees);
        int skipped = all.Count(o => o.Status == CaseStatus.Skipped);
        int known = all.Count(o => o.Status == CaseStatus.Known);
        int disagree = all.Count(o => o.Status == CaseStatus.Disagrees);
        sb.Append(CultureInfo.InvariantCulture, $"kernel conformance: {agree} agree, {disagree} disagree, {known} known differences, {skipped} skipped (no difference in the packets compared), of {all.Count} cases\n");
        List<PacketOutcome> packets = all.SelectMany(o => o.Packets).ToList();
        int skippedPackets = all.Sum(o => o.Skips.Count);
        sb.Append(CultureInfo.InvariantCulture, $"  packets: {packets.Count} compared, {skippedPackets} skipped\n");
        foreach (string area in Areas)
        {
            int bad = packets.Count(p => p.Differences.ContainsKey(area));
            sb.Append(CultureInfo.InvariantCulture, $"  {area,-10} {packets.Count - bad}/{packets.Count} packets agree, {bad} disagree\n");
        }
        foreach (var g in all.SelectMany(o => o.Skips).GroupBy(s => s.Extension).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal))
            sb.Append(CultureInfo.InvariantCulture, $"  skipped: extension {g.Key} not evaluated yet: {g.Count()} packets\n");
        // Per extension: of the cases whose rules use it, how many show no difference in the packets compared.
        foreach (var g in all.SelectMany(o => o.Extensions.Select(e => (e, o))).GroupBy(x => x.e).OrderBy(g => g.Key, StringComparer.Ordinal))
            sb.Append(CultureInfo.InvariantCulture, $"  rules use {g.Key,-10} in {g.Count()} cases: {g.Count(x => x.o.NoDifference)} without difference, {g.Count(x => x.o.Agrees)} fully compared and agreeing\n");
        sb.Append(CultureInfo.InvariantCulture, $"conformance: {agree}/{all.Count} cases agree\n");
        return sb.ToString();
    }

    private static void WriteSummary(IEnumerable<CaseOutcome> outcomes)
    {
        try
        {
            string dir = Path.Combine(TestPaths.RepoRoot, "tests", "Chainwalk.Tests", "TestResults");
            Directory.CreateDirectory(dir);
            List<CaseOutcome> all = outcomes.ToList();
            File.WriteAllText(Path.Combine(dir, "conformance.txt"), Summary(all));
            File.WriteAllText(Path.Combine(dir, "conformance-differences.txt"),
                string.Join("\n\n", all.Where(o => !o.NoDifference).Select(Describe)) + "\n");
        }
        catch (IOException)
        {
            // the summary is in the test output too
        }
        catch (UnauthorizedAccessException)
        {
            // likewise
        }
    }
}
