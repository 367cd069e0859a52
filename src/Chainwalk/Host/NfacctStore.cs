using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Chainwalk.Host;

/// <summary>One extended accounting object (nfnetlink_acct): a name and its packet and byte counters.</summary>
public sealed class NfacctObject(string name)
{
    public string Name { get; } = name;

    public ulong Packets { get; set; }

    public ulong Bytes { get; set; }
}

/// <summary>
/// The host's nfacct objects, in creation order as the kernel lists them, kept in <c>nfacct.conf</c> (one
/// "NAME PACKETS BYTES" line each; see docs/host-state.md). Rules name them with <c>-m nfacct --nfacct-name</c>.
/// </summary>
public sealed partial class NfacctStore
{
    public const string FileName = "nfacct.conf";

    public List<NfacctObject> Objects { get; } = new();

    public NfacctObject? Find(string name) => Objects.Find(o => o.Name == name);

    public static NfacctStore Load(HostStore host)
    {
        var store = new NfacctStore();
        string path = Path.Combine(host.Directory, FileName);
        if (!File.Exists(path)) return store;
        int lineNo = 0;
        foreach (string raw in File.ReadLines(path))
        {
            lineNo++;
            if (raw.Length == 0 || raw[0] == '#') continue;
            string[] f = raw.Split(' ');
            if (f.Length != 3 || !ulong.TryParse(f[1], NumberStyles.None, CultureInfo.InvariantCulture, out ulong p)
                || !ulong.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out ulong b))
            {
                throw new InvalidDataException($"{FileName}: line {lineNo}: expected NAME PACKETS BYTES");
            }
            store.Objects.Add(new NfacctObject(f[0]) { Packets = p, Bytes = b });
        }
        return store;
    }

    public void Save(HostStore host)
    {
        var sb = new StringBuilder("# Chainwalk nfacct objects: NAME PACKETS BYTES, in creation order\n");
        foreach (NfacctObject o in Objects)
        {
            sb.Append(o.Name).Append(' ').Append(o.Packets.ToString(CultureInfo.InvariantCulture)).Append(' ')
              .Append(o.Bytes.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        HostStore.WriteAtomic(Path.Combine(host.Directory, FileName), sb.ToString());
    }

    /// <summary>Whether a stored rule of either family names the object (the kernel then refuses to delete it, EBUSY).</summary>
    public static bool InUse(HostStore host, string name)
    {
        foreach (Net.IpFamily family in new[] { Net.IpFamily.V4, Net.IpFamily.V6 })
        {
            string path = Path.Combine(host.Directory, HostStore.RulesFile(family));
            if (!File.Exists(path)) continue;
            foreach (string line in File.ReadLines(path))
            {
                foreach (Match m in NfacctName().Matches(line))
                {
                    if (m.Groups[1].Value == name) return true;
                }
            }
        }
        return false;
    }

    [GeneratedRegex(@"--nfacct-name\s+(\S+)")]
    private static partial Regex NfacctName();
}
