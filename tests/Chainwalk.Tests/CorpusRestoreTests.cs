using Chainwalk.Extensions;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Tests.Support;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// Every corpus rule set is restored and saved again; the text must equal what the real
/// iptables-nft-save 1.8.9 printed (../shared/corpus/reference-output/nft). The files the kernel
/// rejects must be rejected with the same message.
/// </summary>
public class CorpusRestoreTests
{
    public static TheoryData<string> LoadableFiles()
    {
        var data = new TheoryData<string>();
        foreach (string f in CorpusFiles())
        {
            if (File.Exists(ReferenceFor(f))) data.Add(f);
        }
        return data;
    }

    public static IEnumerable<string> CorpusFiles()
    {
        string root = TestPaths.Corpus;
        return Directory.EnumerateFiles(root, "*.rules", SearchOption.AllDirectories)
            .Where(p => !p.Contains("reference-output", StringComparison.Ordinal))
            .Select(p => Path.GetRelativePath(root, p))
            .Order(StringComparer.Ordinal);
    }

    public static string ReferenceFor(string rel) =>
        Path.Combine(TestPaths.Corpus, "reference-output", "nft", Path.ChangeExtension(rel, ".save"));

    public static IpFamily FamilyOf(string rel) => rel.StartsWith("ipv6", StringComparison.Ordinal) ? IpFamily.V6 : IpFamily.V4;

    /// <summary>Loads a corpus file as SOURCES.md describes (ufw fragments: chains created first, then -n).</summary>
    public static Ruleset Load(string rel, NameDb names)
    {
        IpFamily family = FamilyOf(rel);
        string program = family == IpFamily.V4 ? "iptables-restore" : "ip6tables-restore";
        string text = File.ReadAllText(Path.Combine(TestPaths.Corpus, rel));
        KernelObjects.Current = PrerequisiteObjects(text, family);
        var ruleset = new Ruleset(family);
        bool noflush = false;
        if (Path.GetFileName(rel).StartsWith("ufw-0.37-conf", StringComparison.Ordinal))
        {
            // ufw-init creates the chains these fragments jump to before loading them with --noflush.
            ruleset = CreateMissingChains(ruleset, text, family, names);
            noflush = true;
        }
        var reader = new RestoreReader(family, program, names);
        return reader.Apply(ruleset, text, new RestoreOptions { NoFlush = noflush });
    }

    /// <summary>The ipsets (--match-set NAME, of the file's family) and nfacct objects (--nfacct-name NAME) SOURCES.md created first.</summary>
    public static KernelObjects PrerequisiteObjects(string text, IpFamily family)
    {
        var k = new KernelObjects();
        foreach (string line in text.Split('\n'))
        {
            string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            for (int i = 0; i + 1 < f.Length; i++)
            {
                if (f[i] == "--match-set") k.IpSets[f[i + 1]] = family;
                else if (f[i] == "--nfacct-name") k.NfacctObjects.Add(f[i + 1]);
            }
        }
        return k;
    }

    private static Ruleset CreateMissingChains(Ruleset ruleset, string text, IpFamily family, NameDb names)
    {
        string? table = null;
        var declared = new HashSet<(string, string)>();
        var needed = new List<(string Table, string Chain)>();
        foreach (string line in text.Split('\n'))
        {
            if (line.StartsWith('*')) table = line[1..].Trim();
            else if (line.StartsWith(':') && table is not null) declared.Add((table, line[1..].Split(' ')[0]));
            else if (table is not null)
            {
                string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                for (int i = 0; i + 1 < f.Length; i++)
                {
                    if ((f[i] is "-j" or "-g" or "-A" or "-I") && f[i + 1].StartsWith("ufw", StringComparison.Ordinal)) needed.Add((table, f[i + 1]));
                }
            }
        }
        var editor = new RulesetEditor(ruleset);
        foreach (var (t, c) in needed.Distinct())
        {
            if (declared.Contains((t, c))) continue;
            if (ruleset.Find(t)?.Find(c) is not null) continue;
            editor.NewChain(t, c);
        }
        _ = family;
        _ = names;
        return ruleset;
    }

    public static string StripComments(string text) =>
        string.Concat(text.Split('\n').Where(l => !l.StartsWith('#') && l.Length > 0).Select(l => l + "\n"));

    [Theory]
    [MemberData(nameof(LoadableFiles))]
    public void Restore_then_save_matches_real_iptables_save(string rel)
    {
        Ruleset rules = Load(rel, CorpusNames.Db);
        string saved = SaveWriter.Write(rules, counters: false, names: CorpusNames.Db);
        string expected = StripComments(File.ReadAllText(ReferenceFor(rel)));
        Assert.Equal(expected, saved);
    }

    public static TheoryData<string, string> RejectedFiles() => new()
    {
        { "other/linux-gda-pl-2003.rules", "iptables-restore v1.8.9 (nf_tables): unknown option \"--days\"" },
        { "other/tum-net-firewall-2013-11-20.rules", "iptables-restore v1.8.9 (nf_tables): Invalid MAC address specified." },
        { "other/tum-net-firewall-2015-09-03.rules", "iptables-restore v1.8.9 (nf_tables): Invalid MAC address specified." },
        { "other/ugent-server-2015.rules", "Bad argument `192.168.122.0/24'" },
    };

    [Theory]
    [MemberData(nameof(RejectedFiles))]
    public void Files_the_kernel_rejects_are_rejected_with_the_same_message(string rel, string firstLine)
    {
        var ex = Assert.Throws<XtablesException>(() => Load(rel, CorpusNames.Db));
        var err = new StringWriter();
        Chainwalk.Compat.IptablesCompat.ReportError(ex, "iptables-restore", err, restore: true);
        Assert.Equal(firstLine, err.ToString().Split('\n')[0]);
    }

    [Fact]
    public void Every_corpus_file_is_either_loadable_or_known_rejected()
    {
        var rejected = RejectedFiles().Select(r => (string)r[0]).ToHashSet();
        foreach (string f in CorpusFiles())
        {
            Assert.True(File.Exists(ReferenceFor(f)) || rejected.Contains(f), $"{f}: no reference output and not a known rejection");
        }
    }
}
