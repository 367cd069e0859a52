using BenchmarkDotNet.Attributes;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Bench;

/// <summary>iptables-restore parsing and iptables-save printing of the largest real rule set in the corpus.</summary>
[MemoryDiagnoser]
public class RestoreBenchmarks
{
    private string _text = string.Empty;
    private Ruleset _loaded = new(IpFamily.V4);

    [GlobalSetup]
    public void Setup()
    {
        string path = Path.Combine(CorpusLocator.Corpus, "other", "tum-net-firewall-2015-09-03.rules");
        _text = File.ReadAllText(path).Replace("XX:XX:XX:XX:XX:XX", "02:00:00:00:00:01", StringComparison.Ordinal);
        _loaded = Restore();
    }

    [Benchmark]
    public Ruleset Restore() => new RestoreReader(IpFamily.V4, "iptables-restore").Apply(new Ruleset(IpFamily.V4), _text, new RestoreOptions());

    [Benchmark]
    public string Save() => SaveWriter.Write(_loaded, counters: true);
}

internal static class CorpusLocator
{
    public static string Corpus
    {
        get
        {
            if (Environment.GetEnvironmentVariable("CW_CORPUS") is { Length: > 0 } env && Directory.Exists(env)) return env;
            string? dir = AppContext.BaseDirectory;
            while (dir is not null)
            {
                string candidate = Path.Combine(dir, "..", "shared", "corpus");
                if (Directory.Exists(candidate)) return Path.GetFullPath(candidate);
                dir = Path.GetDirectoryName(dir);
            }
            throw new DirectoryNotFoundException("../shared/corpus not found above " + AppContext.BaseDirectory);
        }
    }
}
