using Chainwalk.Net;

namespace Chainwalk.Tests.Support;

/// <summary>
/// The name databases the corpus was validated with: this machine's /etc, plus groups java and ftp (both gid 60000, as the reference output shows)
/// (SOURCES.md: the Istio owner-groups files were loaded with them added to /etc/group).
/// </summary>
public static class CorpusNames
{
    private static readonly Lazy<NameDb> _db = new(Build);

    public static NameDb Db => _db.Value;

    private static NameDb Build()
    {
        string dir = Path.Combine(Path.GetTempPath(), "chainwalk-test-etc-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        foreach (string f in new[] { "services", "protocols", "hosts", "networks", "passwd" })
        {
            if (File.Exists("/etc/" + f)) File.Copy("/etc/" + f, Path.Combine(dir, f), overwrite: true);
        }
        string group = File.Exists("/etc/group") ? File.ReadAllText("/etc/group") : string.Empty;
        if (!group.Contains("\njava:", StringComparison.Ordinal)) group += "java:x:60000:\n";
        if (!group.Contains("\nftp:", StringComparison.Ordinal) && !group.StartsWith("ftp:", StringComparison.Ordinal)) group += "ftp:x:60000:\n";
        File.WriteAllText(Path.Combine(dir, "group"), group);
        return NameDb.Load(dir);
    }
}
