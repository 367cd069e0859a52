using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Chainwalk.Compat;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Chainwalk.Tests;

/// <summary>
/// netfilter's own CLI tests (extensions/*.t, read from ../shared at test time) replayed in process and
/// compared with what the real iptables 1.8.9 (nf_tables) did with the same lines on the reference machine
/// (golden/tfiles/iptables-1.8.9.tsv, recorded by tests/tools/record-tfiles.py). For each file, each tool
/// the file name implies, each rule line and each chain of its chain list: <c>TOOL -t TABLE -A CHAIN RULE</c>
/// on a fresh ruleset per (file, tool), then the last <c>-A CHAIN</c> line of the saved table, then the rule is
/// deleted again. <c>%iptables ...</c> set-up lines run the same way; <c>@cmd</c> lines (nfacct, nfct) are
/// outside Chainwalk and are not replayed. A check agrees when both succeed with the same saved line, or
/// both fail with the same exit code. Rows listed in golden/tfiles/known-differences.txt are reported, not failed.
/// </summary>
public class NetfilterTFileTests(ITestOutputHelper output)
{
    private readonly ITestOutputHelper _output = output;

    public static string TsvPath => Path.Combine(TestPaths.Golden, "tfiles", "iptables-1.8.9.tsv");

    public static string KnownDifferencesPath => Path.Combine(TestPaths.Golden, "tfiles", "known-differences.txt");

    /// <summary>../shared/corpus/netfilter-tests/extensions; from a git worktree, the nearest shared/ above the repository.</summary>
    public static string ExtensionsDir { get; } = FindExtensions();

    private static string FindExtensions()
    {
        const string rel = "corpus/netfilter-tests/extensions";
        string first = Path.Combine(TestPaths.Shared, rel);
        string? dir = TestPaths.RepoRoot;
        while (dir is not null)
        {
            string cand = Path.Combine(Path.GetDirectoryName(dir) ?? dir, "shared", rel);
            if (Directory.Exists(cand)) return cand;
            dir = Path.GetDirectoryName(dir);
        }
        return first;
    }

    // ---------------------------------------------------------------- recorded expectations

    /// <summary>One TSV row: what the real tool did with one (file, line, tool, chain).</summary>
    public sealed record Expected(string File, int Line, string Tool, string Table, string Chain, int Exit, string Saved, string ErrFirst, string Err)
    {
        public bool IsExternal => Chain == "@";

        public bool IsToolCommand => Chain == "%";
    }

    public sealed class Recording
    {
        public List<Expected> Rows { get; } = new();

        public Dictionary<string, string> Sha256 { get; } = new(StringComparer.Ordinal);

        public List<string> Header { get; } = new();
    }

    private static readonly Lazy<Recording> _recording = new(() => ReadTsv(TsvPath));

    public static Recording Recorded => _recording.Value;

    public static Recording ReadTsv(string path)
    {
        var rec = new Recording();
        foreach (string line in File.ReadLines(path))
        {
            if (line.Length == 0) continue;
            if (line.StartsWith('#'))
            {
                string[] h = line.Split(' ');
                if (h.Length == 4 && h[1] == "sha256") rec.Sha256[h[2]] = h[3];
                else rec.Header.Add(line);
                continue;
            }
            string[] c = line.Split('\t').Select(Unescape).ToArray();
            if (c[0] == "file") continue;
            if (c.Length < 8) throw new InvalidDataException($"{path}: short row: {line}");
            rec.Rows.Add(new Expected(c[0], int.Parse(c[1], CultureInfo.InvariantCulture), c[2], c[3], c[4],
                int.Parse(c[5], CultureInfo.InvariantCulture), c[6], c[7], c.Length > 8 ? c[8] : c[7]));
        }
        return rec;
    }

    public static string Unescape(string s)
    {
        if (!s.Contains('\\', StringComparison.Ordinal)) return s;
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 1 < s.Length)
            {
                char n = s[++i];
                sb.Append(n switch { 't' => '\t', 'n' => '\n', 'r' => '\r', _ => n });
            }
            else
            {
                sb.Append(s[i]);
            }
        }
        return sb.ToString();
    }

    // ---------------------------------------------------------------- known differences

    /// <summary>One accepted difference: <c>file:line tool chain reason</c> (tool and chain may be <c>*</c>).</summary>
    public sealed record KnownDifference(string File, int Line, string Tool, string Chain, string Reason)
    {
        public bool Covers(Expected e) =>
            e.File == File && e.Line == Line && (Tool == "*" || Tool == e.Tool) && (Chain == "*" || Chain == e.Chain);
    }

    private static readonly Lazy<List<KnownDifference>> _known = new(() => ReadKnownDifferences(KnownDifferencesPath));

    public static List<KnownDifference> Known => _known.Value;

    public static List<KnownDifference> ReadKnownDifferences(string path)
    {
        var list = new List<KnownDifference>();
        if (!File.Exists(path)) return list;
        int no = 0;
        foreach (string raw in File.ReadLines(path))
        {
            no++;
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            string[] f = line.Split(' ', 4, StringSplitOptions.RemoveEmptyEntries);
            int colon = f[0].LastIndexOf(':');
            if (f.Length < 4 || colon < 0 || !int.TryParse(f[0][(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int lineNo) || f[3].Trim().Length == 0)
            {
                throw new InvalidDataException($"{path}:{no}: expected `file:line tool chain reason` (a reason is required): {raw}");
            }
            list.Add(new KnownDifference(f[0][..colon], lineNo, f[1], f[2], f[3].Trim()));
        }
        return list;
    }

    // ---------------------------------------------------------------- replay in process

    /// <summary>What Chainwalk did with one recorded row, and whether it agrees.</summary>
    public sealed record Outcome(Expected Want, int Exit, string Saved, string Err, bool Agrees, KnownDifference? Known)
    {
        public string ErrFirst => Err.Split('\n')[0];
    }

    public sealed class FileResult
    {
        public required string File { get; init; }

        public List<Outcome> Checks { get; } = new();

        public List<string> Problems { get; } = new();

        public List<string> NotReplayed { get; } = new();

        public List<KnownDifference> StaleKnown { get; } = new();

        public int Agree => Checks.Count(c => c.Agrees);

        public IEnumerable<Outcome> Unexpected => Checks.Where(c => !c.Agrees && c.Known is null);
    }

    private static readonly Lazy<Dictionary<string, FileResult>> _results = new(RunAll);

    public static Dictionary<string, FileResult> Results => _results.Value;

    private static Dictionary<string, FileResult> RunAll()
    {
        var all = new Dictionary<string, FileResult>(StringComparer.Ordinal);
        foreach (var group in Recorded.Rows.GroupBy(r => r.File))
        {
            all[group.Key] = RunFile(group.Key, group.ToList());
        }
        return all;
    }

    /// <summary>The .t file's lines (1-based access through <see cref="TextAt"/>).</summary>
    private static string[] ReadT(string file, FileResult result)
    {
        string path = Path.Combine(ExtensionsDir, file);
        if (!System.IO.File.Exists(path))
        {
            result.Problems.Add($"{path} not found (the .t files are read from ../shared at test time)");
            return [];
        }
        byte[] bytes = System.IO.File.ReadAllBytes(path);
        string sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (Recorded.Sha256.TryGetValue(file, out string? want) && want != sha)
        {
            result.Problems.Add($"{file} changed since the recording (sha256 {sha}, recorded {want}): re-run tests/tools/record-tfiles.py {file}");
        }
        return Encoding.UTF8.GetString(bytes).Split('\n');
    }

    private static string TextAt(string[] lines, int line) => line >= 1 && line <= lines.Length ? lines[line - 1].TrimEnd('\r') : string.Empty;

    public static FileResult RunFile(string file, IReadOnlyList<Expected> rows)
    {
        var result = new FileResult { File = file };
        string[] lines = ReadT(file, result);
        if (lines.Length == 0) return result;
        foreach (var byTool in rows.GroupBy(r => r.Tool))
        {
            IpFamily family = byTool.Key == "ip6tables" ? IpFamily.V6 : IpFamily.V4;
            var rules = new Ruleset(family);
            foreach (Expected want in byTool)
            {
                string text = TextAt(lines, want.Line);
                if (want.IsExternal)
                {
                    if (!text.StartsWith('@')) result.Problems.Add($"line {want.Line}: recorded as an @ command but the .t line is `{text}`");
                    result.NotReplayed.Add($"line {want.Line} [{want.Tool}] {text} (real exit {want.Exit}{(want.ErrFirst.Length > 0 ? ": " + want.ErrFirst : string.Empty)})");
                    continue;
                }
                if (want.IsToolCommand)
                {
                    if (!text.StartsWith('%'))
                    {
                        result.Problems.Add($"line {want.Line}: recorded as a % command but the .t line is `{text}`");
                        continue;
                    }
                    List<string> argv = ShellSplit(text[1..]);
                    if (argv.Count > 0 && argv[0] is "iptables" or "ip6tables") argv[0] = want.Tool;
                    (int exit, string err) = Run(ref rules, family, argv.ToArray());
                    Add(result, want, exit, string.Empty, err);
                    continue;
                }
                if (text.Length == 0 || text[0] is '#' or ':' or '*' or '@' or '%')
                {
                    result.Problems.Add($"line {want.Line}: recorded as a rule line but the .t line is `{text}`");
                    continue;
                }
                string rule = text.Split(';')[0];
                var args = new List<string> { want.Tool, "-t", want.Table, "-A", want.Chain };
                args.AddRange(ShellSplit(rule));
                (int rc, string stderr) = Run(ref rules, family, args.ToArray());
                string saved = string.Empty;
                if (rc == 0)
                {
                    saved = SavedLineAndDelete(ref rules, want.Table, want.Chain);
                }
                Add(result, want, rc, saved, stderr);
            }
        }
        foreach (KnownDifference k in Known.Where(k => k.File == file))
        {
            if (!result.Checks.Any(c => c.Known == k)) result.StaleKnown.Add(k);
        }
        return result;
    }

    private static void Add(FileResult result, Expected want, int exit, string saved, string err)
    {
        bool agrees = (want.Exit == 0) == (exit == 0) && (exit == 0 ? saved == want.Saved : exit == want.Exit);
        KnownDifference? known = agrees ? null : Known.FirstOrDefault(k => k.Covers(want));
        result.Checks.Add(new Outcome(want, exit, saved, err, agrees, known));
    }

    /// <summary>The last <c>-A CHAIN</c> line of the saved table; the rule (the chain's last) is then deleted, as netfilter's harness does.</summary>
    private static string SavedLineAndDelete(ref Ruleset rules, string table, string chain)
    {
        try
        {
            string save = SaveWriter.Write(rules, counters: false, onlyTable: table, names: TestNames.System);
            string[] mine = save.Split('\n').Where(l => l.StartsWith("-A " + chain + " ", StringComparison.Ordinal) || l == "-A " + chain).ToArray();
            if (mine.Length == 0) return "(none)";
            Ruleset work = rules.Clone();
            new RulesetEditor(work).DeleteNumber(table, chain, mine.Length);
            rules = work;
            return mine[^1];
        }
#pragma warning disable CA1031 // the runner measures: one broken extension must not stop the other checks
        catch (Exception ex)
#pragma warning restore CA1031
        {
            return $"(Chainwalk save failed: {ex.GetType().Name}: {ex.Message})";
        }
    }

    /// <summary>iptables/ip6tables with argv (argv[0] the program), in process, as IptablesCompat.Run does it, on <paramref name="rules"/>.</summary>
    public static (int Exit, string Err) Run(ref Ruleset rules, IpFamily family, string[] argv)
    {
        string program = family.Tool();
        var err = new StringWriter { NewLine = "\n" };
        try
        {
            ParsedCommand cmd = new CommandLineParser(family, program, TestNames.System).Parse(argv);
            foreach (string w in cmd.Warnings) err.WriteLine(w);
            Ruleset work = rules.Clone();
            new CommandExecutor(work, TestNames.System).Execute(cmd);
            rules = work;
            return (0, err.ToString());
        }
        catch (XtablesException ex)
        {
            int code = IptablesCompat.ReportError(ex, program, err);
            return (code, err.ToString());
        }
#pragma warning disable CA1031 // the runner measures: a crash is a disagreement, not the end of the run
        catch (Exception ex)
#pragma warning restore CA1031
        {
            return (-1, $"Chainwalk crashed: {ex.GetType().Name}: {ex.Message}\n");
        }
    }

    /// <summary>Splits a .t rule as sh would (netfilter's harness runs it through a shell): blanks, '...', "...", backslash.</summary>
    public static List<string> ShellSplit(string s)
    {
        var words = new List<string>();
        var cur = new StringBuilder();
        bool inWord = false;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c is ' ' or '\t' or '\n')
            {
                if (inWord) words.Add(cur.ToString());
                cur.Clear();
                inWord = false;
                continue;
            }
            inWord = true;
            if (c == '\'')
            {
                int end = s.IndexOf('\'', i + 1);
                if (end < 0) throw new FormatException("unterminated ' in " + s);
                cur.Append(s, i + 1, end - i - 1);
                i = end;
            }
            else if (c == '"')
            {
                for (i++; i < s.Length && s[i] != '"'; i++)
                {
                    if (s[i] == '\\' && i + 1 < s.Length && s[i + 1] is '"' or '\\' or '$' or '`') i++;
                    cur.Append(s[i]);
                }
                if (i >= s.Length) throw new FormatException("unterminated \" in " + s);
            }
            else if (c == '\\' && i + 1 < s.Length)
            {
                cur.Append(s[++i]);
            }
            else
            {
                cur.Append(c);
            }
        }
        if (inWord) words.Add(cur.ToString());
        return words;
    }

    // ---------------------------------------------------------------- reporting

    private static string Describe(string tool, int exit, string saved, string err) =>
        exit == 0 ? $"exit 0, saved `{saved}`" : $"exit {exit}: {FirstErrorLine(tool, err)}";

    /// <summary>The line that says why: the first stderr line, or the error after leading "Warning:" lines.</summary>
    private static string FirstErrorLine(string tool, string err)
    {
        string[] l = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (l.Length == 0) return "(no message)";
        string? e = l.FirstOrDefault(x => x.StartsWith(tool + " v", StringComparison.Ordinal) || x.StartsWith("Chainwalk", StringComparison.Ordinal));
        return e is not null && e != l[0] ? l[0] + " / " + e : l[0];
    }

    /// <summary>
    /// The readable list of a file's differing checks. Checks of one line and tool that differ the same way in
    /// every chain are shown once, with the chains listed; at most <paramref name="maxGroups"/> groups are shown.
    /// </summary>
    public static string Report(FileResult r, int maxGroups = int.MaxValue)
    {
        string path = Path.Combine(ExtensionsDir, r.File);
        string[] lines = System.IO.File.Exists(path) ? System.IO.File.ReadAllLines(path) : [];
        var sb = new StringBuilder();
        var bad = r.Unexpected.ToList();
        sb.Append(CultureInfo.InvariantCulture, $"{r.File}: {bad.Count} of {r.Checks.Count} checks differ from the real iptables 1.8.9");
        sb.Append(CultureInfo.InvariantCulture, $" ({r.Agree} agree, {r.Checks.Count(c => c.Known is not null)} known differences)\n");
        foreach (string p in r.Problems) sb.Append("  PROBLEM: ").Append(p).Append('\n');
        foreach (KnownDifference k in r.StaleKnown)
        {
            sb.Append(CultureInfo.InvariantCulture, $"  STALE known difference (now agrees or no such row; remove it): {k.File}:{k.Line} {k.Tool} {k.Chain} {k.Reason}\n");
        }
        var groups = bad
            .GroupBy(o => (o.Want.Line, o.Want.Tool, o.Want.Table,
                Real: Generic(Describe(o.Want.Tool, o.Want.Exit, o.Want.Saved, o.Want.Err), o.Want.Chain),
                Mine: Generic(Describe(o.Want.Tool, o.Exit, o.Saved, o.Err), o.Want.Chain)))
            .ToList();
        foreach (var g in groups.Take(maxGroups))
        {
            Outcome o = g.First();
            Expected w = o.Want;
            string text = w.Line <= lines.Length ? lines[w.Line - 1] : "?";
            string chains = string.Join(",", g.Select(x => x.Want.Chain));
            sb.Append(CultureInfo.InvariantCulture, $"  line {w.Line} [{w.Tool} -t {w.Table} {chains}] {text}\n");
            sb.Append("      iptables 1.8.9: ").Append(Describe(w.Tool, w.Exit, w.Saved, w.Err)).Append('\n');
            sb.Append("      Chainwalk:      ").Append(Describe(w.Tool, o.Exit, o.Saved, o.Err)).Append('\n');
        }
        if (groups.Count > maxGroups)
        {
            sb.Append(CultureInfo.InvariantCulture, $"  ... and {groups.Count - maxGroups} more (all of them: tests/Chainwalk.Tests/TestResults/netfilter-tfiles-differences.txt after the Agreement_figure test)\n");
        }
        return sb.ToString();
    }

    private static string Generic(string described, string chain) =>
        described.Replace("-A " + chain, "-A CHAIN", StringComparison.Ordinal).Replace("chain " + chain, "chain CHAIN", StringComparison.Ordinal);

    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        foreach (string f in Recorded.Rows.Select(r => r.File).Distinct().Order(StringComparer.Ordinal)) data.Add(f);
        return data;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void T_file_agrees_with_real_iptables_1_8_9(string file)
    {
        FileResult r = Results[file];
        bool ok = r.Problems.Count == 0 && r.StaleKnown.Count == 0 && !r.Unexpected.Any();
        if (!ok) Assert.Fail(Report(r, maxGroups: 25));
        _output.WriteLine($"{file}: {r.Agree}/{r.Checks.Count} checks agree");
    }

    /// <summary>Prints the agreement figure; fails only when the instrument itself is broken (no recording, no .t files).</summary>
    [Fact]
    public void Agreement_figure()
    {
        Assert.True(Recorded.Rows.Count > 0, "no recorded rows in " + TsvPath);
        Assert.True(Directory.Exists(ExtensionsDir), ExtensionsDir + " not found");
        var results = Results.Values.OrderBy(r => r.File, StringComparer.Ordinal).ToList();
        int total = results.Sum(r => r.Checks.Count);
        int agree = results.Sum(r => r.Agree);
        int known = results.Sum(r => r.Checks.Count(c => c.Known is not null));
        int messages = results.Sum(r => r.Checks.Count(c => c.Agrees && c.Err == c.Want.Err));
        int unloaded = results.Sum(r => r.Checks.Count(c => c.Agrees && c.Exit != 0 && LacksExtension(c.Err) && !LacksExtension(c.Want.Err)));
        int filesOk = results.Count(r => r.Problems.Count == 0 && r.StaleKnown.Count == 0 && !r.Unexpected.Any());
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"netfilter .t: {agree}/{total} checks agree");
        sb.Append(CultureInfo.InvariantCulture, $" ({known} known differences; {filesOk}/{results.Count} files fully agree;");
        sb.Append(CultureInfo.InvariantCulture, $" stderr also identical on {messages}/{agree} agreeing checks)\n");
        sb.Append(CultureInfo.InvariantCulture, $"  of the agreeing checks, at least {unloaded} are FAIL lines that Chainwalk refuses only because it lacks the extension (Couldn't load ...)\n");
        foreach (FileResult r in results)
        {
            sb.Append(CultureInfo.InvariantCulture, $"  {r.File}: {r.Agree}/{r.Checks.Count}");
            if (r.Problems.Count > 0) sb.Append(CultureInfo.InvariantCulture, $" ({r.Problems.Count} problems)");
            if (r.NotReplayed.Count > 0) sb.Append(CultureInfo.InvariantCulture, $" ({r.NotReplayed.Count} @ lines not replayed)");
            sb.Append('\n');
        }
        string text = sb.ToString();
        _output.WriteLine(text);
        Console.WriteLine(text.Split('\n')[0]);
        try
        {
            string dir = Path.Combine(TestPaths.RepoRoot, "tests", "Chainwalk.Tests", "TestResults");
            Directory.CreateDirectory(dir);
            System.IO.File.WriteAllText(Path.Combine(dir, "netfilter-tfiles.txt"), text);
            var details = new StringBuilder(text).Append('\n');
            foreach (FileResult r in results.Where(r => r.Problems.Count > 0 || r.StaleKnown.Count > 0 || r.Unexpected.Any())) details.Append(Report(r)).Append('\n');
            System.IO.File.WriteAllText(Path.Combine(dir, "netfilter-tfiles-differences.txt"), details.ToString());
            var stderr = new StringBuilder("Checks that agree (same exit code and saved line) but whose stderr differs (informational)\n");
            foreach (Outcome o in results.SelectMany(r => r.Checks).Where(c => c.Agrees && c.Err != c.Want.Err))
            {
                stderr.Append(CultureInfo.InvariantCulture, $"{o.Want.File}:{o.Want.Line} [{o.Want.Tool} {o.Want.Chain}]\n");
                stderr.Append("   iptables 1.8.9: ").Append(o.Want.Err.Replace("\n", "\\n", StringComparison.Ordinal)).Append('\n');
                stderr.Append("   Chainwalk:      ").Append(o.Err.Replace("\n", "\\n", StringComparison.Ordinal)).Append('\n');
            }
            System.IO.File.WriteAllText(Path.Combine(dir, "netfilter-tfiles-stderr.txt"), stderr.ToString());
        }
        catch (IOException)
        {
            // the figure is in the test output already
        }
        catch (UnauthorizedAccessException)
        {
            // likewise
        }
    }

    private static bool LacksExtension(string err) =>
        err.Contains("Couldn't load match", StringComparison.Ordinal) || err.Contains("Couldn't load target", StringComparison.Ordinal);

    [Fact]
    public void Shell_split_handles_the_quoting_the_t_files_use()
    {
        Assert.Equal(["-j", "LOG", "--log-prefix", "test: "], ShellSplit("-j LOG --log-prefix \"test: \""));
        Assert.Equal(["-c", ""], ShellSplit("-c \"\""));
        Assert.Equal(["--u32", "0x0=0x0&&0x0=0x1"], ShellSplit("--u32 \"0x0=0x0&&0x0=0x1\""));
        Assert.Equal(["a b", "c\"d", "e"], ShellSplit("'a b' \"c\\\"d\"  e"));
    }

    [Fact]
    public void Every_t_file_is_recorded_for_every_tool_it_implies()
    {
        var recorded = Recorded.Rows.Select(r => (r.File, r.Tool)).ToHashSet();
        foreach (string path in Directory.EnumerateFiles(ExtensionsDir, "*.t").Order(StringComparer.Ordinal))
        {
            string f = Path.GetFileName(path);
            string[] tools = f.StartsWith("libip6t_", StringComparison.Ordinal) ? ["ip6tables"]
                : f.StartsWith("libxt_", StringComparison.Ordinal) ? ["iptables", "ip6tables"] : ["iptables"];
            foreach (string tool in tools)
            {
                Assert.True(recorded.Contains((f, tool)), $"{f} has no recorded rows for {tool}: run tests/tools/record-tfiles.py {f}");
            }
        }
    }

    [Fact]
    public void Known_differences_file_is_well_formed()
    {
        foreach (KnownDifference k in Known)
        {
            Assert.True(Recorded.Rows.Any(k.Covers), $"known difference {k.File}:{k.Line} {k.Tool} {k.Chain} matches no recorded row");
        }
    }
}
